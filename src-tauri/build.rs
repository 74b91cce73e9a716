//! Tauri build script. The app manifest lists Mailroom's own commands so that each gets an
//! `allow-<command>` permission and the capability in `capabilities/` grants exactly those.
//! With the `sandbox` feature, the sandbox's commands and `capabilities/sandbox/` are added.

/// Every `#[tauri::command]` the shell registers (keep in sync with `lib.rs`).
const COMMANDS: &[&str] = &[
    "app_info",
    "ui_language_set",
    "ui_language_get",
    "engine_refresh",
    "engine_status",
    "inbound_log",
    "inbound_attempts",
    "inbound_reprocess",
    "inbound_import_now",
    "inbound_subscribe",
    "contacts_setup",
    "contacts_settings_set",
    "contacts_schedule_set",
    "contacts_preview",
    "contacts_import_start",
    "contacts_import_cancel",
    "contacts_runs",
    "contacts_run_rows",
    "mailbox_canary_set",
    "dashboard",
    "console_get",
    "console_test",
    "console_set",
    "console_processes",
    "retention_get",
    "retention_set",
    "retention_prune_now",
    "inbound_export_csv",
    "mailbox_checks",
    "mailbox_check_now",
    "mailbox_sign_in_as_set",
    "outbound_list",
    "outbound_attempts",
    "outbound_resend",
    "outbound_default_get",
    "outbound_default_set",
    "notifications_get",
    "notifications_set",
    "notifications_agents",
    "notifications_recent",
    "notifications_test",
    "integration_status",
    "integration_check",
    "integration_scope_get",
    "integration_scope_set",
    "integration_tab_get",
    "integration_tab_set",
    "integration_tab_create",
    "integration_resolve_get",
    "integration_resolve_set",
    "integration_resolve_create",
    "integration_resolve_close_set",
    "integration_certificate_get",
    "integration_certificate_generate",
    "integration_certificate_import",
    "integration_certificate_upload",
    "integration_webhook_get",
    "integration_webhook_settings_set",
    "integration_webhook_create",
    "integration_test_run",
    "psa_connection_get",
    "psa_connection_set",
    "psa_outcomes",
    "psa_batching_get",
    "psa_batching_set",
    "psa_reply_outcome_get",
    "psa_reply_outcome_set",
    "psa_reply_visibility_set",
    "psa_test",
    "list_mailboxes",
    "add_mailbox",
    "remove_mailbox",
    "pfx_choose",
    "save_mailbox",
    "mailbox_status",
    "authorize_start",
    "authorize_wait",
    "authorize_cancel",
    "connect_app_only",
    "test_connection",
    "disconnect_mailbox",
    "diagnose_error_text",
    "subscription_show",
    "subscription_create",
    "subscription_cancel",
    "subscription_events_all",
    "webhook_settings_get",
    "webhook_settings_set",
];

/// The sandbox tenant's commands, only in builds with the `sandbox` feature.
const SANDBOX_COMMANDS: &[&str] = &["sandbox_info", "sandbox_send_test_email"];

fn main() {
    // A build without the sandbox knows neither its commands nor its capability
    // (`capabilities/sandbox/`), so no window of it can be granted one.
    let sandbox = std::env::var_os("CARGO_FEATURE_SANDBOX").is_some();
    let mut commands = COMMANDS.to_vec();
    let capabilities = if sandbox {
        commands.extend_from_slice(SANDBOX_COMMANDS);
        "./src-tauri/capabilities/**/*.json"
    } else {
        "./src-tauri/capabilities/*.json"
    };
    println!("cargo:rerun-if-changed=src-tauri/capabilities");
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .capabilities_path_pattern(capabilities)
            .app_manifest(tauri_build::AppManifest::new().commands(commands.leak())),
    )
    .expect("tauri build script");
}
