//! The *Integration* area: the PSA integration wizard's steps, their kept results and their
//! checks (`mailroom_engine::integration`).

use mailroom_engine::integration::{IntegrationStatus, ScopeSettings, ScopeView, Step, StepResult};
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
