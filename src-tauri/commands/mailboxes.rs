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
pub async fn remove_mailbox(state: State<'_, AppState>, id: String) -> UiResult<()> {
    Ok(state.core.remove_mailbox(&id).await?)
}
