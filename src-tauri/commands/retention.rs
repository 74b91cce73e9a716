//! Retention: how long attempts and request bodies are kept, and *Prune now* (the dashboard's
//! storage card).

use mailroom_engine::retention::{PruneReport, RetentionSettings};
use tauri::State;

use super::UiResult;
use crate::AppState;

#[tauri::command]
pub async fn retention_get(state: State<'_, AppState>) -> UiResult<RetentionSettings> {
    Ok(state.core.retention().await?)
}

/// Saves the settings (1 to 3,650 days; bodies no longer than attempts); the next pruning pass,
/// within the hour, applies them.
#[tauri::command]
pub async fn retention_set(
    state: State<'_, AppState>,
    settings: RetentionSettings,
) -> UiResult<RetentionSettings> {
    state.core.set_retention(settings).await?;
    Ok(settings)
}

#[tauri::command]
pub async fn retention_prune_now(state: State<'_, AppState>) -> UiResult<PruneReport> {
    Ok(state.core.prune_now().await?)
}
