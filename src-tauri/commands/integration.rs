//! The *Integration* area: the PSA integration wizard's steps, their kept results and their
//! checks (`mailroom_engine::integration`).

use mailroom_engine::integration::{IntegrationStatus, ScopeSettings, ScopeView, Step, StepResult};
use mailroom_engine::ticket_tab::{TabAuthScheme, TabRejectionRecord, TabSettings};
use serde::Serialize;

use super::inbound::InboundState;
use tauri::State;

use super::UiResult;
use crate::AppState;

/// Every step with its last result, whether a PSA connection is saved, and the permissions
/// Mailroom needs.
#[tauri::command]
pub async fn integration_status(state: State<'_, AppState>) -> UiResult<IntegrationStatus> {
    Ok(state.core.integration_status().await?)
}

/// Checks one step (`step`: its id) or, without one, every step in order; each result is kept.
#[tauri::command]
pub async fn integration_check(
    state: State<'_, AppState>,
    step: Option<String>,
) -> UiResult<Vec<StepResult>> {
    Ok(match step {
        Some(id) => vec![state.core.check_integration_step(Step::parse(&id)?).await?],
        None => state.core.check_integration().await?,
    })
}

/// The scope step's form: the chosen ticket types and the PSA's, read live.
#[tauri::command]
pub async fn integration_scope_get(state: State<'_, AppState>) -> UiResult<ScopeView> {
    Ok(state.core.integration_scope().await?)
}

/// Keeps the scope (every chosen type must exist in the PSA) and checks the step.
#[tauri::command]
pub async fn integration_scope_set(
    state: State<'_, AppState>,
    settings: ScopeSettings,
) -> UiResult<StepResult> {
    Ok(state.core.set_integration_scope(settings).await?)
}

/// The ticket tab step's form: the URL to give the custom tab, its saved settings, and the
/// newest refused requests (what they carried).
#[derive(Serialize)]
pub struct TabView {
    url: String,
    settings: Option<TabSettings>,
    rejections: Vec<TabRejectionRecord>,
}

#[tauri::command]
pub async fn integration_tab_get(state: State<'_, AppState>) -> UiResult<TabView> {
    Ok(TabView {
        url: state.core.ticket_tab_url().await?,
        settings: state.core.ticket_tab_settings().await?,
        rejections: state.core.ticket_tab_rejections().await?,
    })
}

/// Saves the tab secret (keyring) and scheme, lets the engine start the receiver that serves
/// the tab, and checks the step.
#[tauri::command]
pub async fn integration_tab_set(
    state: State<'_, AppState>,
    inbound: State<'_, InboundState>,
    secret: String,
    scheme: TabAuthScheme,
) -> UiResult<StepResult> {
    state
        .core
        .set_ticket_tab(mailroom_secrets::SecretValue::new(secret), scheme)
        .await?;
    inbound.engine().refresh();
    Ok(state.core.check_integration_step(Step::Tab).await?)
}

/// *Create it for me* (tab step): the tab in HaloPSA and the chosen ticket types allowing it;
/// answers the step's check.
#[tauri::command]
pub async fn integration_tab_create(state: State<'_, AppState>) -> UiResult<StepResult> {
    Ok(state.core.create_ticket_tab().await?)
}

/// The resolve step's form: the chosen status and the PSA's statuses.
#[tauri::command]
pub async fn integration_resolve_get(
    state: State<'_, AppState>,
) -> UiResult<mailroom_engine::integration::ResolveView> {
    Ok(state.core.integration_resolve().await?)
}

/// Keeps the status the resolve action sets and checks the step.
#[tauri::command]
pub async fn integration_resolve_set(
    state: State<'_, AppState>,
    status_id: i64,
) -> UiResult<StepResult> {
    Ok(state.core.set_resolve_status(status_id).await?)
}

/// *Create it for me* (resolve step): the action "Mailroom resolve" as the step checks it.
#[tauri::command]
pub async fn integration_resolve_create(state: State<'_, AppState>) -> UiResult<StepResult> {
    Ok(state.core.create_resolve_action().await?)
}
