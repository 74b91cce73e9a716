//! The desktop shell: a thin Tauri layer over `mailroom-engine`.
//!
//! Invariants:
//! - Commands are short async adapters grouped by feature under `commands/`; the logic they
//!   call lives in GUI-free crates.
//! - Errors cross to the UI as `{code, message}` ([`commands::UiError`]); the UI switches on
//!   `code`, never on the text.
//! - One instance per user: a second launch focuses the first window.

mod commands;
mod notify;
mod sandbox_mode;
mod tray;

use mailroom_engine::engine::{Engine, EngineOptions};
use mailroom_engine::events::EventBus;
use mailroom_engine::Core;
use tauri::Manager;

/// State shared by all commands.
pub struct AppState {
    pub core: Core,
    /// The in-process sandbox tenant, in sandbox mode (`--sandbox`).
    pub sandbox: Option<mailroom_sandbox::Sandbox>,
    /// Sandbox mode: how many test emails were sent (to vary the sender).
    pub test_emails_sent: std::sync::atomic::AtomicUsize,
    /// This process's hold on its data directory, until it exits.
    _lock: mailroom_store::DataDirLock,
    /// Flushes the log file when the app state is dropped.
    _log_guard: Option<mailroom_engine::logging::WorkerGuard>,
}

/// Opens the core, and in sandbox mode starts the sandbox with a fresh sandbox data directory.
/// The data directory's lock is taken first: a second process on the same directory stops here,
/// before it has read, reset or written anything of the first one's.
async fn open(
    sandbox: bool,
) -> Result<
    (
        mailroom_store::DataDirLock,
        Core,
        Option<mailroom_sandbox::Sandbox>,
    ),
    String,
> {
    let base = mailroom_store::data_dir().map_err(|e| e.to_string())?;
    if !sandbox {
        let lock =
            mailroom_store::DataDirLock::acquire(&base, "Mailroom").map_err(|e| e.to_string())?;
        let core = Core::open(&base).await.map_err(|e| e.to_string())?;
        return Ok((lock, core, None));
    }
    let secrets = sandbox_mode::secrets();
    let dir = sandbox_mode::data_dir(&base);
    let lock = mailroom_store::DataDirLock::acquire(&dir, "Mailroom (sandbox)")
        .map_err(|e| e.to_string())?;
    sandbox_mode::reset_data_dir(&dir, &secrets).await?;
    let core = Core::open_with_secrets(&dir, secrets)
        .await
        .map_err(|e| e.to_string())?;
    let sandbox = sandbox_mode::start_sandbox().await?;
    sandbox_mode::connect_demo_tenant(&core, &sandbox).await?;
    Ok((lock, core, Some(sandbox)))
}

/// Opens the data directory and puts the app state in place. Runs in `setup`, after the
/// single-instance plugin had its chance to hand a second launch over to the first one.
fn start(app: &mut tauri::App) {
    let sandbox_mode = sandbox_mode::requested();
    let (lock, core, sandbox) =
        tauri::async_runtime::block_on(open(sandbox_mode)).unwrap_or_else(|e| {
            eprintln!("Mailroom cannot start: {e}");
            std::process::exit(1);
        });
    let log_guard = mailroom_engine::logging::init(core.data_dir(), true);
    tracing::info!(data_dir = %core.data_dir().display(), version = env!("CARGO_PKG_VERSION"), sandbox = sandbox_mode, "Mailroom starting");
    if let Some(sandbox) = &sandbox {
        // The summary names the sandbox's credentials: log only where it listens.
        tracing::info!(
            authority = %sandbox.authority_url(),
            graph = %sandbox.graph_url(),
            psa = %sandbox.psa_url(),
            control = %sandbox.control_url(),
            "sandbox tenant running"
        );
    }
    // The one engine of the process, on Tauri's (shared) runtime; it keeps itself up and the
    // window only shows its state.
    let options = EngineOptions {
        webhook_any_port: sandbox.is_some(),
        create_missing_subscriptions: sandbox.is_some(),
        ..Default::default()
    };
    let events = EventBus::new();
    notify::start(app.handle().clone(), core.clone(), events.clone());
    let engine =
        tauri::async_runtime::block_on(Engine::start(core.clone(), events, &lock, options))
            .unwrap_or_else(|e| {
                eprintln!("Mailroom cannot start its engine: {e}");
                std::process::exit(1);
            });
    app.manage(commands::inbound::InboundState::new(engine));
    app.manage(AppState {
        core,
        sandbox,
        test_emails_sent: Default::default(),
        _lock: lock,
        _log_guard: log_guard,
    });
}

/// The app is exiting (tray *Quit*, or the last window closed without a tray): the engine
/// stops (attempts in flight interrupted, their claims released, the webhook receiver shut),
/// bounded by the engine's stop timeout, then the store is closed. The data directory's lock
/// goes with the process.
fn shut_down(app: &tauri::AppHandle) {
    let (Some(inbound), Some(state)) = (
        app.try_state::<commands::inbound::InboundState>(),
        app.try_state::<AppState>(),
    ) else {
        return;
    };
    let started = std::time::Instant::now();
    tauri::async_runtime::block_on(async {
        inbound.engine().stop().await;
        state.core.store().close().await;
    });
    tracing::info!(
        took_ms = started.elapsed().as_millis() as u64,
        "Mailroom stopped"
    );
}

/// Starts the desktop app. Blocks until the app exits.
pub fn run() {
    let mut builder = tauri::Builder::default();
    // One instance per user, registered first so a second launch exits before doing any work.
    // An explicit data directory (tests, portable installs) is its own instance; the data
    // directory's lock keeps any two processes on one directory apart.
    if std::env::var_os(mailroom_store::DATA_DIR_ENV).is_none() {
        builder = builder.plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            tray::show_main_window(app);
        }));
    }
    let result = builder
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .manage(commands::connect::ConnectState::default())
        .setup(|app| {
            start(app);
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
            commands::inbound::engine_refresh,
            commands::webhooks::subscription_show,
            commands::webhooks::subscription_create,
            commands::webhooks::subscription_cancel,
            commands::webhooks::subscription_events_all,
            commands::webhooks::webhook_settings_get,
            commands::webhooks::webhook_settings_set,
            commands::inbound::engine_status,
            commands::inbound::inbound_log,
            commands::inbound::inbound_attempts,
            commands::inbound::inbound_reprocess,
            commands::inbound::inbound_import_now,
            commands::inbound::inbound_subscribe,
            commands::psa::psa_connection_get,
            commands::psa::psa_connection_set,
            commands::psa::psa_outcomes,
            commands::psa::psa_reply_outcome_get,
            commands::psa::psa_reply_outcome_set,
            commands::psa::psa_reply_visibility_set,
            commands::psa::psa_test,
            commands::mailboxes::list_mailboxes,
            commands::mailboxes::add_mailbox,
            commands::mailboxes::remove_mailbox,
            commands::connect::save_mailbox,
            commands::connect::mailbox_status,
            commands::connect::authorize_start,
            commands::connect::authorize_wait,
            commands::connect::authorize_cancel,
            commands::connect::connect_app_only,
            commands::connect::test_connection,
            commands::connect::disconnect_mailbox,
            commands::connect::diagnose_error_text,
            commands::sandbox::sandbox_info,
            commands::sandbox::sandbox_send_test_email,
        ])
        .build(tauri::generate_context!());
    let result = result.map(|app| {
        app.run(|app, event| {
            if let tauri::RunEvent::Exit = event {
                shut_down(app);
            }
        })
    });
    if let Err(e) = result {
        tracing::error!("Mailroom stopped with an error: {e}");
        eprintln!("Mailroom stopped with an error: {e}");
    }
}
