//! *Shared database*: which database this workstation opens (its own, or the PostgreSQL
//! database the Mailroom service's workers share) and whether it processes mail. Saved for the
//! next start; see `mailroom_engine::console`.

use mailroom_engine::console::{self, ConsoleChange, DatabaseCheck, Processes, SavedConsole};
use mailroom_engine::CoreError;
use mailroom_secrets::Secrets;
use serde::Serialize;
use tauri::State;

use super::UiResult;
use crate::commands::inbound::InboundState;
use crate::AppState;

/// The database this run opened, and what is saved for the next start.
#[derive(Debug, Serialize)]
pub struct ConsoleView {
    /// The shared database open now (without its password); `None`: this workstation's own.
    pub active_url: Option<String>,
    /// Whether this workstation processes mail now.
    pub processing: bool,
    /// Why the saved shared database could not be opened at start.
    pub shared_error: Option<String>,
    pub saved: SavedConsole,
    /// The saved settings differ from what runs: they apply at the next start.
    pub restart_needed: bool,
    /// The sandbox tenant always runs on its own database.
    pub sandbox: bool,
}

fn view(state: &AppState, saved: SavedConsole) -> ConsoleView {
    let active = &state.database;
    let restart_needed = !state.sandbox_mode
        && (saved.database_url != active.url
            || (saved.database_url.is_some() && saved.process_mail != active.processing)
            || (active.error.is_some() && saved.database_url.is_none()));
    ConsoleView {
        active_url: active.url.clone(),
        processing: active.processing,
        shared_error: active.error.clone(),
        saved,
        restart_needed,
        sandbox: state.sandbox_mode,
    }
}

fn sandbox_refused(state: &AppState) -> UiResult<()> {
    if state.sandbox_mode {
        return Err(CoreError::InvalidInput(
            "the sandbox tenant always runs on its own database: start Mailroom without \
             --sandbox to use a shared one"
                .into(),
        )
        .into());
    }
    Ok(())
}

#[tauri::command]
pub async fn console_get(state: State<'_, AppState>) -> UiResult<ConsoleView> {
    let saved = console::saved(state.core.data_dir(), &Secrets::from_env()).await?;
    Ok(view(&state, saved))
}

/// Reaches the shared database the change names and checks that the key opens its secrets.
#[tauri::command]
pub async fn console_test(
    state: State<'_, AppState>,
    change: ConsoleChange,
) -> UiResult<DatabaseCheck> {
    sandbox_refused(&state)?;
    Ok(console::check(state.core.data_dir(), &Secrets::from_env(), &change).await?)
}

/// Saves the change for the next start (a shared database only once [`console_test`]'s checks
/// pass).
#[tauri::command]
pub async fn console_set(
    state: State<'_, AppState>,
    change: ConsoleChange,
) -> UiResult<ConsoleView> {
    sandbox_refused(&state)?;
    let keyring = Secrets::from_env();
    console::apply(state.core.data_dir(), &keyring, &change).await?;
    let saved = console::saved(state.core.data_dir(), &keyring).await?;
    Ok(view(&state, saved))
}

/// The Mailroom processes on the database (service workers, desktop apps), and which one is
/// this window's.
#[derive(Debug, Serialize)]
pub struct ProcessesView {
    #[serde(flatten)]
    pub processes: Processes,
    pub this_id: String,
}

#[tauri::command]
pub async fn console_processes(
    state: State<'_, AppState>,
    inbound: State<'_, InboundState>,
) -> UiResult<ProcessesView> {
    Ok(ProcessesView {
        processes: state.core.processes(chrono::Utc::now()).await?,
        this_id: inbound.engine().id().to_string(),
    })
}
