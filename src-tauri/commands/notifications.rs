//! Error notifications: who gets the digests, which problems, from which mailbox, how often,
//! the desktop switch, the recent problems, and a test digest
//! (`mailroom_engine::notifications`).

use mailroom_engine::notifications::{NotificationSettings, NotifiedAgent};
use mailroom_engine::store_types::StoredNotification;
use tauri::State;

use super::UiResult;
use crate::AppState;

#[tauri::command]
pub async fn notifications_get(state: State<'_, AppState>) -> UiResult<NotificationSettings> {
    Ok(state.core.notification_settings().await?)
}

#[tauri::command]
pub async fn notifications_set(
    state: State<'_, AppState>,
    settings: NotificationSettings,
) -> UiResult<()> {
    Ok(state.core.set_notification_settings(&settings).await?)
}

/// The PSA's agents who can get the digests (read live).
#[tauri::command]
pub async fn notifications_agents(state: State<'_, AppState>) -> UiResult<Vec<NotifiedAgent>> {
    Ok(state.core.notifiable_agents().await?)
}

/// The newest problems recorded.
#[tauri::command]
pub async fn notifications_recent(state: State<'_, AppState>) -> UiResult<Vec<StoredNotification>> {
    Ok(state
        .core
        .store()
        .recent_notifications(20)
        .await
        .map_err(mailroom_engine::CoreError::from)?)
}

/// Sends a digest to each chosen agent now (a test one when no problem waits).
#[tauri::command]
pub async fn notifications_test(
    state: State<'_, AppState>,
) -> UiResult<Vec<mailroom_engine::store_types::OutboundEmail>> {
    Ok(state.core.send_test_notifications().await?)
}
