//! Mailbox list and setup.

use mailroom_engine::mailboxes::MailboxSetup;
use mailroom_engine::Mailbox;
use tauri::State;

use super::UiResult;
use crate::AppState;

#[tauri::command]
pub async fn list_mailboxes(state: State<'_, AppState>) -> UiResult<Vec<Mailbox>> {
    Ok(state.core.mailboxes().await?)
}

#[tauri::command]
pub async fn add_mailbox(state: State<'_, AppState>, setup: MailboxSetup) -> UiResult<Mailbox> {
    Ok(state.core.add_mailbox(setup).await?)
}

#[tauri::command]
pub async fn remove_mailbox(
    state: State<'_, AppState>,
    inbound: State<'_, super::inbound::InboundState>,
    id: String,
) -> UiResult<()> {
    // Its sync task first, so that nothing reads the mailbox while its credentials go.
    if let Some(webhooks) = inbound.webhooks().await {
        webhooks.remove_mailbox(&id);
    }
    inbound.engine().stop_mailbox(&id).await;
    Ok(state.core.remove_mailbox(&id).await?)
}

/// The mailbox's last safety-check findings and when they were made.
#[tauri::command]
pub async fn mailbox_checks(
    state: State<'_, AppState>,
    mailbox_id: String,
) -> UiResult<mailroom_engine::connect::checks::MailboxChecks> {
    Ok(state.core.mailbox_checks(&mailbox_id).await?)
}

/// *Check now*: runs the mailbox's safety checks and records them.
#[tauri::command]
pub async fn mailbox_check_now(
    state: State<'_, AppState>,
    mailbox_id: String,
) -> UiResult<mailroom_engine::connect::checks::MailboxChecks> {
    Ok(state.core.check_mailbox_now(&mailbox_id).await?)
}

/// Names (or forgets) the mailbox a Webhooks mailbox's application must not reach.
#[tauri::command]
pub async fn mailbox_canary_set(
    state: State<'_, AppState>,
    mailbox_id: String,
    address: Option<String>,
) -> UiResult<()> {
    Ok(state
        .core
        .set_canary_address(&mailbox_id, address.as_deref())
        .await?)
}

/// Names (or forgets) the account that must sign in to a scan mailbox.
#[tauri::command]
pub async fn mailbox_sign_in_as_set(
    state: State<'_, AppState>,
    mailbox_id: String,
    account: Option<String>,
) -> UiResult<()> {
    Ok(state
        .core
        .set_expected_account(&mailbox_id, account.as_deref())
        .await?)
}
