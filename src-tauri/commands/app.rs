//! Facts about the running app.

use serde::Serialize;
use tauri::State;

use super::UiResult;
use crate::AppState;

#[derive(Serialize)]
pub struct AppInfo {
    version: &'static str,
    data_dir: String,
    log_dir: String,
    /// Whether the app runs on the built-in sandbox tenant (`--sandbox`).
    sandbox: bool,
}

#[tauri::command]
pub async fn app_info(state: State<'_, AppState>) -> Result<AppInfo, super::UiError> {
    let data_dir = state.core.data_dir();
    Ok(AppInfo {
        version: env!("CARGO_PKG_VERSION"),
        data_dir: data_dir.display().to_string(),
        log_dir: mailroom_engine::logging::log_dir(data_dir)
            .display()
            .to_string(),
        sandbox: state.sandbox_mode,
    })
}

/// The interface language (`en`, `de`).
#[tauri::command]
pub async fn ui_language_get(state: State<'_, AppState>) -> UiResult<String> {
    Ok(state.core.ui_language().await?)
}

/// Keeps the interface language; the window switches to it at once.
#[tauri::command]
pub async fn ui_language_set(state: State<'_, AppState>, language: String) -> UiResult<()> {
    Ok(state.core.set_ui_language(&language).await?)
}
