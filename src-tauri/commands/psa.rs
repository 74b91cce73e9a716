//! HaloPSA: the connection (read, save with a proof that it works, *Test connection*) and the
//! lookups of the mailbox settings — the outcome (action type) of the actions added for
//! inbound replies, picked from the PSA's own `Outcome` list, and their visibility.

use mailroom_engine::integration::{Step, StepResult};
use mailroom_engine::outcomes::{OutcomeList, ReplyOutcomeSetting};
use mailroom_engine::pipeline::{PsaBatching, ReplyVisibility};
use mailroom_engine::psa_check::PsaTestReport;
use mailroom_engine::psa_connection::PsaConnection;
use tauri::State;

use super::inbound::InboundState;
use super::UiResult;
use crate::AppState;

/// The mailbox's reply outcome with the PSA's outcomes and the default Mailroom would use
/// (`psa.default == null`: none of the usual names exists, the admin must pick one).
#[tauri::command]
pub async fn psa_reply_outcome_get(
    state: State<'_, AppState>,
    mailbox_id: String,
) -> UiResult<ReplyOutcomeSetting> {
    Ok(state.core.mailbox_reply_outcome(&mailbox_id).await?)
}

/// Sets the mailbox's reply outcome by id (`null`: use the default).
#[tauri::command]
pub async fn psa_reply_outcome_set(
    state: State<'_, AppState>,
    mailbox_id: String,
    outcome_id: Option<i64>,
) -> UiResult<ReplyOutcomeSetting> {
    Ok(state
        .core
        .set_mailbox_reply_outcome(&mailbox_id, outcome_id)
        .await?)
}

/// Sets who sees the actions added for the mailbox's replies (`follow_outcome`, `visible`,
/// `hidden`).
#[tauri::command]
pub async fn psa_reply_visibility_set(
    state: State<'_, AppState>,
    mailbox_id: String,
    visibility: ReplyVisibility,
) -> UiResult<ReplyOutcomeSetting> {
    Ok(state
        .core
        .set_mailbox_reply_visibility(&mailbox_id, visibility)
        .await?)
}

/// *Test connection* for HaloPSA: sign-in, scopes, ticket types, every mailbox's reply
/// outcome — each check with its fix.
#[tauri::command]
pub async fn psa_test(state: State<'_, AppState>) -> UiResult<PsaTestReport> {
    Ok(state.core.test_psa_connection().await?)
}

/// The PSA's outcomes and the default for replies (checked right after the PSA connection is
/// saved: it proves the credentials work, and `default == null` means every mailbox must pick
/// an outcome before replies can be added).
#[tauri::command]
pub async fn psa_outcomes(state: State<'_, AppState>) -> UiResult<OutcomeList> {
    Ok(state.core.psa_outcomes().await?)
}

#[tauri::command]
pub async fn psa_connection_get(state: State<'_, AppState>) -> UiResult<Option<PsaConnection>> {
    Ok(state.core.psa_connection().await?)
}

/// A saved connection and its check (step 1 of the integration wizard).
#[derive(serde::Serialize)]
pub struct PsaSaved {
    connection: PsaConnection,
    check: StepResult,
}

/// Saves the connection (secret to the keyring) and checks it at once: bad input is refused
/// with the reason; credentials the PSA refuses are saved, and the check says why and what to
/// change.
#[tauri::command]
pub async fn psa_connection_set(
    state: State<'_, AppState>,
    inbound: State<'_, InboundState>,
    base_url: String,
    client_id: String,
    client_secret: String,
    tenant: Option<String>,
) -> UiResult<PsaSaved> {
    let conn = state
        .core
        .set_psa_connection(
            &base_url,
            &client_id,
            mailroom_secrets::SecretValue::new(client_secret),
            tenant.as_deref(),
        )
        .await?;
    let check = state.core.check_integration_step(Step::Connection).await?;
    // The engine builds its PSA client from the connection: pick the new one up now.
    inbound.engine().refresh();
    Ok(PsaSaved {
        connection: conn,
        check,
    })
}

/// How PSA writes are batched (records per request, the longest wait for others).
#[tauri::command]
pub async fn psa_batching_get(state: State<'_, AppState>) -> UiResult<PsaBatching> {
    Ok(state.core.psa_batching().await?)
}

/// Changes the batching of PSA writes; the running engine applies it at once.
#[tauri::command]
pub async fn psa_batching_set(
    inbound: State<'_, InboundState>,
    batching: PsaBatching,
) -> UiResult<PsaBatching> {
    inbound.engine().set_psa_batching(batching).await?;
    Ok(batching)
}
