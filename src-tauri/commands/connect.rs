//! The Incoming tab: saving a mailbox with its credential (client secret or PFX), delegated
//! Authorize (system browser + loopback listener), app-only Connect, Test connection,
//! Disconnect and diagnosis. Logic lives in `mailroom_engine::connect`.
//!
//! Errors carry `{code, message, diagnosis}`: `diagnosis.code` is a stable snake_case code
//! (e.g. `wrong_secret`, `consent_missing`) the UI may switch on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use mailroom_engine::connect::{
    self, Authorization, CancellationToken, Connection, ConnectionTest, CredentialWarning,
    DiagnosisReport, PfxImport,
};
use mailroom_engine::mailboxes::MailboxSetup;
use mailroom_engine::store_types::CredentialKind;
use mailroom_engine::{CoreError, ErrorCode, Mailbox};
use mailroom_secrets::SecretValue;
use serde::Serialize;
use tauri::{AppHandle, State};
use tauri_plugin_opener::OpenerExt;

use crate::dialogs::{choose_pfx, PfxDialog};
use crate::AppState;

/// An error as the Incoming tab receives it.
#[derive(Debug, Serialize)]
pub struct ConnectUiError {
    pub code: ErrorCode,
    pub message: String,
    pub diagnosis: Option<DiagnosisReport>,
}

impl From<CoreError> for ConnectUiError {
    fn from(error: CoreError) -> Self {
        ConnectUiError {
            code: error.code(),
            message: error.to_string(),
            diagnosis: error.diagnosis().cloned(),
        }
    }
}

type ConnectResult<T> = Result<T, ConnectUiError>;

/// Sign-ins in progress, by mailbox id, and the PFX file chosen in the native file picker.
#[derive(Default)]
pub struct ConnectState {
    pending: Mutex<HashMap<String, Authorization>>,
    cancels: Mutex<HashMap<String, CancellationToken>>,
    /// The path the native file picker returned ([`pfx_choose`]); `save_mailbox` reads this
    /// file, so the webview never names a file for the backend to read.
    chosen_pfx: Mutex<Option<PathBuf>>,
}

/// Opens the native file picker for the certificate (PFX/P12) and keeps the chosen path.
/// Answers the path to show, or `None` when the picker was cancelled (an earlier choice stays).
#[tauri::command]
pub async fn pfx_choose(
    app: AppHandle,
    connect: State<'_, ConnectState>,
) -> ConnectResult<Option<String>> {
    let Some(path) = choose_pfx(
        &app,
        "Choose the certificate (PFX with private key)",
        PfxDialog::Open,
    )
    .await?
    else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    *connect.chosen_pfx.lock().expect("lock") = Some(path);
    Ok(Some(shown))
}

/// A mailbox with what the Incoming tab shows about it.
#[derive(Serialize)]
pub struct MailboxStatus {
    pub mailbox: Mailbox,
    pub warning: Option<CredentialWarning>,
    pub needed_permissions: Vec<String>,
    pub sign_in_pending: bool,
}

/// A started sign-in.
#[derive(Serialize)]
pub struct AuthorizeStarted {
    pub url: String,
    pub redirect_uri: String,
    pub browser_opened: bool,
}

#[tauri::command]
pub async fn save_mailbox(
    state: State<'_, AppState>,
    connect: State<'_, ConnectState>,
    setup: MailboxSetup,
    secret_expires_on: Option<String>,
    pfx_password: Option<String>,
) -> ConnectResult<Mailbox> {
    let expires = match secret_expires_on.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => Some(connect::parse_expiry_date(text)?),
        _ => None,
    };
    let chosen = match setup.credential_kind {
        CredentialKind::Certificate => connect.chosen_pfx.lock().expect("lock").clone(),
        _ => None,
    };
    let pfx = match &chosen {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                CoreError::InvalidInput(format!(
                    "Could not read the certificate file '{}': {e}. Choose it again.",
                    path.display()
                ))
            })?;
            Some(PfxImport {
                bytes,
                password: SecretValue::new(pfx_password.unwrap_or_default()),
            })
        }
        None => None,
    };
    let mailbox = state
        .core
        .add_mailbox_with_credentials(setup, expires, pfx)
        .await?;
    if chosen.is_some() {
        // Imported: the next certificate is chosen afresh.
        *connect.chosen_pfx.lock().expect("lock") = None;
    }
    Ok(mailbox)
}

#[tauri::command]
pub async fn mailbox_status(
    state: State<'_, AppState>,
    connect: State<'_, ConnectState>,
    id: String,
) -> ConnectResult<MailboxStatus> {
    let mailbox = state
        .core
        .store()
        .mailbox(&id)
        .await
        .map_err(CoreError::from)?;
    let sign_in_pending = connect.cancels.lock().expect("lock").contains_key(&id);
    Ok(MailboxStatus {
        warning: connect::credential_warning_now(&mailbox),
        needed_permissions: connect::needed_permissions(&mailbox),
        mailbox,
        sign_in_pending,
    })
}

#[tauri::command]
pub async fn authorize_start(
    app: AppHandle,
    state: State<'_, AppState>,
    connect: State<'_, ConnectState>,
    id: String,
) -> ConnectResult<AuthorizeStarted> {
    let (url, authorization) = state.core.start_authorization(&id).await?;
    let redirect_uri = authorization.redirect_uri().to_string();
    if let Some(old) = connect
        .cancels
        .lock()
        .expect("lock")
        .insert(id.clone(), authorization.canceller())
    {
        old.cancel();
    }
    connect
        .pending
        .lock()
        .expect("lock")
        .insert(id.clone(), authorization);
    let mut browser_opened = false;
    if std::env::var_os(connect::NO_BROWSER_ENV).is_none() {
        match app.opener().open_url(url.as_str(), None::<&str>) {
            Ok(()) => browser_opened = true,
            Err(e) => tracing::warn!("could not open the system browser: {e}"),
        }
    }
    Ok(AuthorizeStarted {
        url: url.to_string(),
        redirect_uri,
        browser_opened,
    })
}

#[tauri::command]
pub async fn authorize_wait(
    state: State<'_, AppState>,
    connect: State<'_, ConnectState>,
    inbound: State<'_, super::inbound::InboundState>,
    id: String,
) -> ConnectResult<Connection> {
    let authorization = connect
        .pending
        .lock()
        .expect("lock")
        .remove(&id)
        .ok_or_else(|| CoreError::from(connect::ConnectError::NoSignInPending))?;
    let result = state
        .core
        .finish_authorization(authorization, connect::DEFAULT_SIGN_IN_TIMEOUT)
        .await;
    connect.cancels.lock().expect("lock").remove(&id);
    let connection = result?;
    // The engine starts syncing the mailbox now rather than at its next round.
    inbound.engine().refresh();
    Ok(connection)
}

#[tauri::command]
pub async fn authorize_cancel(connect: State<'_, ConnectState>, id: String) -> ConnectResult<()> {
    match connect.cancels.lock().expect("lock").remove(&id) {
        Some(cancel) => {
            cancel.cancel();
            Ok(())
        }
        None => Err(CoreError::from(connect::ConnectError::NoSignInPending).into()),
    }
}

#[tauri::command]
pub async fn connect_app_only(
    state: State<'_, AppState>,
    inbound: State<'_, super::inbound::InboundState>,
    id: String,
) -> ConnectResult<Connection> {
    let connection = state.core.connect_app_only(&id).await?;
    inbound.engine().refresh();
    Ok(connection)
}

#[tauri::command]
pub async fn test_connection(
    state: State<'_, AppState>,
    id: String,
) -> ConnectResult<ConnectionTest> {
    Ok(state.core.test_connection(&id).await?)
}

/// *Disconnect*; a Webhooks mailbox's subscription is cancelled and the mailbox is
/// unregistered from the running receiver.
#[tauri::command]
pub async fn disconnect_mailbox(
    state: State<'_, AppState>,
    inbound: State<'_, super::inbound::InboundState>,
    id: String,
) -> ConnectResult<Mailbox> {
    let mailbox = state.core.disconnect_mailbox(&id).await?;
    if let Some(webhooks) = inbound.webhooks().await {
        webhooks.remove_mailbox(&id);
    }
    inbound.engine().stop_mailbox(&id).await;
    Ok(mailbox)
}

#[tauri::command]
pub async fn diagnose_error_text(text: String) -> ConnectResult<Option<DiagnosisReport>> {
    Ok(connect::diagnose_text(&text))
}
