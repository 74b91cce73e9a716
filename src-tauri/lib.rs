//! The desktop shell: a thin Tauri layer over `mailroom-engine`.
//!
//! Invariants:
//! - Commands are short async adapters grouped by feature under `commands/`; the logic they
//!   call lives in GUI-free crates.
//! - Errors cross to the UI as `{code, message}` ([`commands::UiError`]); the UI switches on
//!   `code`, never on the text.
//! - One instance per user: a second launch focuses the first window.

mod commands;
mod tray;

use mailroom_engine::Core;
use tauri::Manager;

/// State shared by all commands.
pub struct AppState {
    pub core: Core,
}

/// Starts the desktop app. Blocks until the app exits.
pub fn run() {
    let core = tauri::async_runtime::block_on(Core::open_default()).unwrap_or_else(|e| {
        eprintln!("Mailroom cannot start: {e}");
        std::process::exit(1);
    });
    let log_guard = mailroom_engine::logging::init(core.data_dir(), true);
    tracing::info!(data_dir = %core.data_dir().display(), version = env!("CARGO_PKG_VERSION"), "Mailroom starting");

    let mut builder = tauri::Builder::default();
    // One instance per user, registered first so a second launch exits before doing any work.
    // An explicit data directory (tests, portable installs) is its own instance.
    if std::env::var_os(mailroom_store::DATA_DIR_ENV).is_none() {
        builder = builder.plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            tray::show_main_window(app);
        }));
    }
    let result = builder
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_dialog::init())
        .manage(AppState { core })
        .setup(|app| {
            tray::install(app.handle())?;
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window keeps Mailroom running in the tray, so syncing continues.
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                if tray::is_installed(window.app_handle()) {
                    api.prevent_close();
                    let _ = window.hide();
                }
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::app::app_info,
            commands::mailboxes::list_mailboxes,
            commands::mailboxes::add_mailbox,
            commands::mailboxes::remove_mailbox,
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        tracing::error!("Mailroom stopped with an error: {e}");
    }
    drop(log_guard);
}
