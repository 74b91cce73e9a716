//! The desktop shell: a thin Tauri layer over `mailroom-engine`.
//!
//! Invariants:
//! - Commands are short async adapters grouped by feature under `commands/`; the logic they
//!   call lives in GUI-free crates.
//! - Errors cross to the UI as `{code, message}` ([`commands::UiError`]); the UI switches on
//!   `code`, never on the text.
//! - One instance per user: a second launch focuses the first window.

mod commands;
mod dialogs;
mod notify;
#[cfg(feature = "sandbox")]
mod sandbox_mode;
mod tray;

use mailroom_engine::engine::{Engine, EngineOptions};
use mailroom_engine::events::EventBus;
use mailroom_engine::Core;
use mailroom_store::DataDirLock;
use tauri::Manager;

/// Command-line flag that selects sandbox mode (builds with the `sandbox` feature).
const SANDBOX_FLAG: &str = "--sandbox";

/// The database this run opened (see `mailroom_engine::console`).
#[derive(Debug, Clone)]
pub struct ActiveDatabase {
    /// The shared PostgreSQL database, without its password; `None`: this workstation's own.
    pub url: Option<String>,
    /// Whether this workstation processes mail.
    pub processing: bool,
    /// Why the shared database the settings name was not opened (the own one was).
    pub error: Option<String>,
}

impl ActiveDatabase {
    #[cfg(feature = "sandbox")]
    fn own() -> Self {
        ActiveDatabase {
            url: None,
            processing: true,
            error: None,
        }
    }
}

/// State shared by all commands.
pub struct AppState {
    pub core: Core,
    /// Whether the app runs on the built-in sandbox tenant.
    pub sandbox_mode: bool,
    pub database: ActiveDatabase,
    /// This process's hold on its data directory, until it exits.
    _lock: DataDirLock,
    /// Flushes the log file when the app state is dropped.
    _log_guard: Option<mailroom_engine::logging::WorkerGuard>,
}

/// An opened data directory: its lock (taken first, so that a second process on the same
/// directory stops before it has read, reset or written anything of the first one's), the core
/// on it, and in sandbox mode the running sandbox tenant.
struct Opened {
    lock: DataDirLock,
    core: Core,
    database: ActiveDatabase,
    #[cfg(feature = "sandbox")]
    sandbox: Option<mailroom_sandbox::Sandbox>,
}

impl Opened {
    fn sandbox_mode(&self) -> bool {
        #[cfg(feature = "sandbox")]
        return self.sandbox.is_some();
        #[cfg(not(feature = "sandbox"))]
        false
    }
}

/// Opens the real data directory, or in sandbox mode the sandbox's (afresh) with the sandbox
/// tenant running.
async fn open(sandbox: bool) -> Result<Opened, String> {
    let base = mailroom_store::data_dir().map_err(|e| e.to_string())?;
    if sandbox {
        #[cfg(feature = "sandbox")]
        return sandbox_mode::open(&base).await;
        #[cfg(not(feature = "sandbox"))]
        return Err(format!(
            "this build has no sandbox tenant ({SANDBOX_FLAG}); build it with the `sandbox` \
             feature, as `./dev run` does"
        ));
    }
    let lock = DataDirLock::acquire(&base, "Mailroom").map_err(|e| e.to_string())?;
    let configured = Core::open_configured(&base, mailroom_secrets::Secrets::from_env())
        .await
        .map_err(|e| e.to_string())?;
    let database = ActiveDatabase {
        url: configured
            .is_shared()
            .then(|| configured.settings.database_url.clone())
            .flatten(),
        processing: configured.process_mail(),
        error: configured.shared_error.clone(),
    };
    Ok(Opened {
        lock,
        core: configured.core,
        database,
        #[cfg(feature = "sandbox")]
        sandbox: None,
    })
}

/// Opens the data directory and puts the app state in place. Runs in `setup`, after the
/// single-instance plugin had its chance to hand a second launch over to the first one.
fn start(app: &mut tauri::App) {
    let sandbox_requested = std::env::args().skip(1).any(|a| a == SANDBOX_FLAG);
    let opened = tauri::async_runtime::block_on(open(sandbox_requested)).unwrap_or_else(|e| {
        eprintln!("Mailroom cannot start: {e}");
        std::process::exit(1);
    });
    let sandbox_mode = opened.sandbox_mode();
    let database = opened.database.clone();
    let core = opened.core;
    let log_guard = mailroom_engine::logging::init(core.data_dir(), true);
    tracing::info!(data_dir = %core.data_dir().display(), version = env!("CARGO_PKG_VERSION"), sandbox = sandbox_mode, shared_database = database.url.as_deref().unwrap_or("-"), processing = database.processing, "Mailroom starting");
    #[cfg(feature = "sandbox")]
    app.manage(sandbox_mode::SandboxState::new(opened.sandbox));
    // The one engine of the process, on Tauri's (shared) runtime; it keeps itself up and the
    // window only shows its state.
    let options = EngineOptions {
        webhook_any_port: sandbox_mode,
        create_missing_subscriptions: sandbox_mode,
        process_mail: database.processing,
        // On a shared database the window shows the other workers' work as it happens.
        hear_other_workers: true,
        role: "desktop",
        ..Default::default()
    };
    let events = EventBus::new();
    notify::start(app.handle().clone(), core.clone(), events.clone());
    let engine =
        tauri::async_runtime::block_on(Engine::start(core.clone(), events, &opened.lock, options))
            .unwrap_or_else(|e| {
                eprintln!("Mailroom cannot start its engine: {e}");
                std::process::exit(1);
            });
    app.manage(commands::inbound::InboundState::new(engine));
    app.manage(AppState {
        core,
        sandbox_mode,
        database,
        _lock: opened.lock,
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
        // The window reopens at the size and place the admin left it (never hidden: a window
        // closed to the tray opens shown). The state is kept per user, so an explicit data
        // directory (tests, portable installs) opens at the configured size instead.
        builder = builder.plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(
                    tauri_plugin_window_state::StateFlags::SIZE
                        | tauri_plugin_window_state::StateFlags::POSITION
                        | tauri_plugin_window_state::StateFlags::MAXIMIZED,
                )
                .build(),
        );
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
            commands::app::ui_language_set,
            commands::app::ui_language_get,
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
            commands::contacts::contacts_setup,
            commands::contacts::contacts_settings_set,
            commands::contacts::contacts_schedule_set,
            commands::contacts::contacts_preview,
            commands::contacts::contacts_import_start,
            commands::contacts::contacts_import_cancel,
            commands::contacts::contacts_runs,
            commands::contacts::contacts_run_rows,
            commands::mailboxes::mailbox_canary_set,
            commands::inbound::dashboard,
            commands::console::console_get,
            commands::console::console_test,
            commands::console::console_set,
            commands::console::console_processes,
            commands::retention::retention_get,
            commands::retention::retention_set,
            commands::retention::retention_prune_now,
            commands::inbound::inbound_export_csv,
            commands::mailboxes::mailbox_checks,
            commands::mailboxes::mailbox_check_now,
            commands::mailboxes::mailbox_sign_in_as_set,
            commands::outbound::outbound_list,
            commands::outbound::outbound_attempts,
            commands::outbound::outbound_resend,
            commands::outbound::outbound_default_get,
            commands::outbound::outbound_default_set,
            commands::notifications::notifications_get,
            commands::notifications::notifications_set,
            commands::notifications::notifications_agents,
            commands::notifications::notifications_recent,
            commands::notifications::notifications_test,
            commands::integration::integration_status,
            commands::integration::integration_check,
            commands::integration::integration_scope_get,
            commands::integration::integration_scope_set,
            commands::integration::integration_tab_get,
            commands::integration::integration_tab_set,
            commands::integration::integration_tab_create,
            commands::integration::integration_resolve_get,
            commands::integration::integration_resolve_set,
            commands::integration::integration_resolve_create,
            commands::integration::integration_resolve_close_set,
            commands::integration::integration_certificate_get,
            commands::integration::integration_certificate_generate,
            commands::integration::integration_certificate_import,
            commands::integration::integration_certificate_upload,
            commands::integration::integration_webhook_get,
            commands::integration::integration_webhook_settings_set,
            commands::integration::integration_webhook_create,
            commands::integration::integration_test_run,
            commands::psa::psa_connection_get,
            commands::psa::psa_connection_set,
            commands::psa::psa_outcomes,
            commands::psa::psa_batching_get,
            commands::psa::psa_batching_set,
            commands::psa::psa_reply_outcome_get,
            commands::psa::psa_reply_outcome_set,
            commands::psa::psa_reply_visibility_set,
            commands::psa::psa_test,
            commands::mailboxes::list_mailboxes,
            commands::mailboxes::add_mailbox,
            commands::mailboxes::remove_mailbox,
            commands::connect::pfx_choose,
            commands::connect::save_mailbox,
            commands::connect::mailbox_status,
            commands::connect::authorize_start,
            commands::connect::authorize_wait,
            commands::connect::authorize_cancel,
            commands::connect::connect_app_only,
            commands::connect::test_connection,
            commands::connect::disconnect_mailbox,
            commands::connect::diagnose_error_text,
            #[cfg(feature = "sandbox")]
            commands::sandbox::sandbox_info,
            #[cfg(feature = "sandbox")]
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
