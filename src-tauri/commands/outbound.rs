//! Outgoing mail (agents' replies sent from the connected mailboxes): the outbound log per
//! mailbox and in Monitoring, an email's attempts, *Resend*, and the outgoing default mailbox
//! (`mailroom_engine::outbound`).

use mailroom_engine::store_types::{OutboundAttempt, OutboundEmail};
use tauri::State;

use super::UiResult;
use crate::AppState;

/// Outgoing emails, newest first (of one mailbox when given).
#[tauri::command]
pub async fn outbound_list(
    state: State<'_, AppState>,
    mailbox_id: Option<String>,
) -> UiResult<Vec<OutboundEmail>> {
    Ok(state
        .core
        .store()
        .outbound_list(mailbox_id.as_deref(), 200, None)
        .await
        .map_err(mailroom_engine::CoreError::from)?)
}

/// One outgoing email's attempts, oldest first.
#[tauri::command]
pub async fn outbound_attempts(
    state: State<'_, AppState>,
    id: i64,
) -> UiResult<Vec<OutboundAttempt>> {
    Ok(state
        .core
        .store()
        .outbound_attempts(id)
        .await
        .map_err(mailroom_engine::CoreError::from)?)
}

/// *Resend*: a failed email is tried again now; answers it afterwards.
#[tauri::command]
pub async fn outbound_resend(state: State<'_, AppState>, id: i64) -> UiResult<OutboundEmail> {
    Ok(state.core.resend_outbound(id).await?)
}

/// The mailbox replies go out from for tickets that did not start as email.
#[tauri::command]
pub async fn outbound_default_get(state: State<'_, AppState>) -> UiResult<Option<String>> {
    Ok(state.core.outgoing_default_mailbox().await?)
}

/// Chooses (or, with `None`, clears) the outgoing default mailbox.
#[tauri::command]
pub async fn outbound_default_set(
    state: State<'_, AppState>,
    mailbox_id: Option<String>,
) -> UiResult<()> {
    Ok(state
        .core
        .set_outgoing_default_mailbox(mailbox_id.as_deref())
        .await?)
}
