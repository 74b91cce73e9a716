//! The *Integration* area: the PSA integration wizard's steps, their kept results and their
//! checks (`mailroom_engine::integration`).

use mailroom_engine::integration::{
    CertificateView, IntegrationStatus, ScopeSettings, ScopeView, Step, StepResult,
    WebhookCertificate, PSA_WEBHOOK_NAME,
};
use mailroom_engine::psa_webhook::PsaWebhookSettings;
use mailroom_engine::store_types::PsaDelivery;
use mailroom_engine::ticket_tab::{TabAuthScheme, TabRejectionRecord, TabSettings};
use mailroom_engine::CoreError;
use serde::Serialize;
use tauri::{AppHandle, State};

use super::inbound::InboundState;

use super::UiResult;
use crate::dialogs::{choose_pfx, PfxDialog};
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

/// The ticket tab step's form: the URL to give the custom tab, its saved settings, and the
/// newest refused requests (what they carried).
#[derive(Serialize)]
pub struct TabView {
    url: String,
    settings: Option<TabSettings>,
    rejections: Vec<TabRejectionRecord>,
}

#[tauri::command]
pub async fn integration_tab_get(state: State<'_, AppState>) -> UiResult<TabView> {
    Ok(TabView {
        url: state.core.ticket_tab_url().await?,
        settings: state.core.ticket_tab_settings().await?,
        rejections: state.core.ticket_tab_rejections().await?,
    })
}

/// Saves the tab secret (keyring) and scheme, lets the engine start the receiver that serves
/// the tab, and checks the step.
#[tauri::command]
pub async fn integration_tab_set(
    state: State<'_, AppState>,
    inbound: State<'_, InboundState>,
    secret: String,
    scheme: TabAuthScheme,
) -> UiResult<StepResult> {
    state
        .core
        .set_ticket_tab(mailroom_secrets::SecretValue::new(secret), scheme)
        .await?;
    inbound.engine().refresh();
    Ok(state.core.check_integration_step(Step::Tab).await?)
}

/// *Create it for me* (tab step): the tab in HaloPSA and the chosen ticket types allowing it;
/// answers the step's check.
#[tauri::command]
pub async fn integration_tab_create(state: State<'_, AppState>) -> UiResult<StepResult> {
    Ok(state.core.create_ticket_tab().await?)
}

/// The resolve step's form: the chosen status and the PSA's statuses.
#[tauri::command]
pub async fn integration_resolve_get(
    state: State<'_, AppState>,
) -> UiResult<mailroom_engine::integration::ResolveView> {
    Ok(state.core.integration_resolve().await?)
}

/// Keeps the status the resolve action sets and checks the step.
#[tauri::command]
pub async fn integration_resolve_set(
    state: State<'_, AppState>,
    status_id: i64,
) -> UiResult<StepResult> {
    Ok(state.core.set_resolve_status(status_id).await?)
}

/// Keeps whether a requester's reply asking to close closes the ticket, and on which phrases.
#[tauri::command]
pub async fn integration_resolve_close_set(
    state: State<'_, AppState>,
    enabled: bool,
    phrases: Vec<String>,
) -> UiResult<mailroom_engine::integration::ResolveSettings> {
    Ok(state.core.set_close_on_request(enabled, phrases).await?)
}

/// *Create it for me* (resolve step): the action "Mailroom resolve" as the step checks it.
#[tauri::command]
pub async fn integration_resolve_create(state: State<'_, AppState>) -> UiResult<StepResult> {
    Ok(state.core.create_resolve_action().await?)
}

/// The certificate step's form: the kept certificate, its expiry warning, and the name to give
/// it in HaloPSA.
#[tauri::command]
pub async fn integration_certificate_get(state: State<'_, AppState>) -> UiResult<CertificateView> {
    Ok(state.core.webhook_certificate_view().await?)
}

/// A generated certificate as the UI shows it once: where the PFX was written and its password.
#[derive(Serialize)]
pub struct GeneratedView {
    certificate: WebhookCertificate,
    path: String,
    password: String,
}

/// *Generate certificate*: asks where to save the PFX (native save dialog, opened by the
/// backend), then makes the key pair and certificate, keeps the key in the keyring and writes
/// the password-protected PFX there (readable by the user only). `None` when the dialog was
/// cancelled: nothing changes then.
#[tauri::command]
pub async fn integration_certificate_generate(
    app: AppHandle,
    state: State<'_, AppState>,
    inbound: State<'_, InboundState>,
) -> UiResult<Option<GeneratedView>> {
    let Some(path) = choose_pfx(
        &app,
        "Save Mailroom's webhook certificate (PFX)",
        PfxDialog::Save {
            file_name: "mailroom-webhooks.pfx",
        },
    )
    .await?
    else {
        return Ok(None);
    };
    let generated = state.core.generate_webhook_certificate().await?;
    // The receiver (which takes HaloPSA's webhook) runs once a certificate is kept.
    inbound.engine().refresh();
    mailroom_engine::integration::write_private_file(&path, &generated.pfx).map_err(|e| {
        CoreError::InvalidInput(format!(
            "The certificate was generated and kept, but {} could not be written ({e}); generate it again to save the file elsewhere",
            path.display()
        ))
    })?;
    Ok(Some(GeneratedView {
        certificate: generated.certificate,
        path: path.display().to_string(),
        password: generated.password,
    }))
}

/// *Import PFX*: opens the native file picker and imports the chosen file with `password`
/// (a wrong password, a file without a private key or an expired certificate is refused and
/// the kept certificate stays). `None` when the picker was cancelled.
#[tauri::command]
pub async fn integration_certificate_import(
    app: AppHandle,
    state: State<'_, AppState>,
    inbound: State<'_, InboundState>,
    password: String,
) -> UiResult<Option<WebhookCertificate>> {
    let Some(path) = choose_pfx(
        &app,
        "Choose the webhook certificate (PFX with private key)",
        PfxDialog::Open,
    )
    .await?
    else {
        return Ok(None);
    };
    let bytes = std::fs::read(&path)
        .map_err(|e| CoreError::InvalidInput(format!("{} cannot be read: {e}", path.display())))?;
    let certificate = state
        .core
        .import_webhook_certificate(&bytes, &password)
        .await?;
    inbound.engine().refresh();
    Ok(Some(certificate))
}

/// *Create it for me* (certificate step): uploads the kept certificate to HaloPSA.
#[tauri::command]
pub async fn integration_certificate_upload(state: State<'_, AppState>) -> UiResult<StepResult> {
    Ok(state.core.upload_webhook_certificate().await?)
}

/// The webhook step's form: Mailroom's webhook URL, the receiver's settings, and the newest
/// deliveries.
#[derive(Serialize)]
pub struct WebhookView {
    url: String,
    name: &'static str,
    settings: PsaWebhookSettings,
    deliveries: Vec<PsaDelivery>,
}

#[tauri::command]
pub async fn integration_webhook_get(state: State<'_, AppState>) -> UiResult<WebhookView> {
    Ok(WebhookView {
        url: state.core.psa_webhook_url().await?,
        name: PSA_WEBHOOK_NAME,
        settings: state.core.psa_webhook_settings().await?,
        deliveries: state.core.psa_webhook_deliveries(50, None).await?,
    })
}

/// Keeps the receiver's settings (signature scheme, oldest delivery accepted, event numbers).
#[tauri::command]
pub async fn integration_webhook_settings_set(
    state: State<'_, AppState>,
    settings: PsaWebhookSettings,
) -> UiResult<()> {
    Ok(state.core.set_psa_webhook_settings(&settings).await?)
}

/// *Create it for me* (webhook step): the webhook in HaloPSA, created or corrected. The
/// engine is refreshed so that the receiver runs.
#[tauri::command]
pub async fn integration_webhook_create(
    state: State<'_, AppState>,
    inbound: State<'_, InboundState>,
) -> UiResult<StepResult> {
    inbound.engine().refresh();
    Ok(state.core.create_psa_webhook().await?)
}

/// The end-to-end test: logs a test ticket, follows it through the chain, deletes it.
#[tauri::command]
pub async fn integration_test_run(state: State<'_, AppState>) -> UiResult<StepResult> {
    Ok(state
        .core
        .run_end_to_end_test(mailroom_engine::integration::DELIVERY_WAIT)
        .await?)
}
