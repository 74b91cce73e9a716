//! Connecting a mailbox to Microsoft 365: Graph clients built from a mailbox record, delegated
//! sign-in (authorization code + PKCE over a `127.0.0.1` loopback listener), app-only
//! connection checks (client secret or a certificate imported from a PFX), *Test connection*
//! (inbox listing, granted vs needed permissions, one probe per needed permission), and the
//! plain-language diagnosis of identity-platform failures.
//!
//! Invariants:
//! - Credentials (client secret, refresh token, certificate PEM bundle with its private key) go
//!   to the OS keyring through [`mailroom_secrets`], and only there. SQLite holds public facts:
//!   the connected account, the credential's expiry date and the certificate thumbprint.
//! - A rotated refresh token is written to the keyring before the new access token is used
//!   (the [`DelegatedTokens`] rotation callback).
//! - Every failure a front end shows carries a stable [`ErrorCode`] and, for identity/Graph
//!   failures, a [`DiagnosisReport`] with a stable `code`, the cause and the fix.
//! - App-only access is probed on `users/{upn}/mailFolders/inbox/messages`, never on
//!   `users/{upn}` (which needs `User.Read.All`, a permission the daemon does not hold).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailroom_graph::{
    delegated_scopes, diagnose, diagnose_sign_in, granted_permissions, missing_permissions,
    required_permissions, AccessMethod, AppOnlyTokens, AppRegistration, CertificateCredential,
    CertificateError, ClientCredential, Cloud, DelegatedTokens, Diagnosis, DiagnosisKind,
    GraphClient, GraphError, GraphErrorKind, IdentityClient, IdentityError, LoopbackSignIn,
    MailboxRef, MessageQuery, PendingSignIn, Secret, SignInError, SignInOptions, TokenProvider,
    TokenSet,
};
use mailroom_secrets::{SecretKey, SecretKind, SecretValue};
use mailroom_store::{Cloud as StoreCloud, CredentialKind, Mailbox, MailboxMethod};
use serde::Serialize;

use crate::mailboxes::MailboxSetup;
use crate::{Core, CoreError, ErrorCode};

pub use mailroom_graph::CancellationToken;

/// Parses an expiry date typed by an admin (`YYYY-MM-DD`, end of that day UTC, or RFC 3339).
pub fn parse_expiry_date(text: &str) -> Result<DateTime<Utc>, CoreError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            CoreError::InvalidInput(format!(
                "'{text}' is not a date: enter the secret's expiry as YYYY-MM-DD (shown under Certificates & secrets)"
            ))
        })
}

/// The Graph permissions the mailbox's method needs.
pub fn needed_permissions(mailbox: &Mailbox) -> Vec<String> {
    required_permissions(access_method(mailbox))
}

/// Secret and certificate expiry warnings start this many days before the credential lapses.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// How long an interactive sign-in may take by default.
pub const DEFAULT_SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

/// Environment variable: when set, front ends do not open the system browser for sign-in
/// (they still show the URL). Used by tests and headless machines.
pub const NO_BROWSER_ENV: &str = "MAILROOM_NO_BROWSER";

/// An admin-facing diagnosis with a stable code the UI can switch on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiagnosisReport {
    /// Stable snake_case code, e.g. `wrong_secret`, `consent_missing`, `access_denied`.
    pub code: String,
    /// What went wrong, in plain words (with the AADSTS number when known).
    pub cause: String,
    /// What to do about it.
    pub fix: String,
}

fn snake(kind: DiagnosisKind) -> String {
    let name = format!("{kind:?}");
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl DiagnosisReport {
    /// From the Graph crate's diagnosis.
    pub fn from_diagnosis(d: &Diagnosis) -> Self {
        DiagnosisReport {
            code: snake(d.kind),
            cause: d.cause.clone(),
            fix: d.fix.clone(),
        }
    }

    /// The Graph crate's kind, when the code is one of its kinds.
    pub fn is(&self, kind: DiagnosisKind) -> bool {
        self.code == snake(kind)
    }
}

/// Why connecting or using a mailbox's Microsoft 365 connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No usable credential/token is stored: authorize (delegated) or re-enter the credential.
    #[error("{0}")]
    NotConnected(String),
    /// The identity platform refused (or the sign-in did not complete); see the diagnosis.
    #[error("{}. {}", diagnosis.cause, diagnosis.fix)]
    Identity {
        code: ErrorCode,
        diagnosis: DiagnosisReport,
    },
    /// The PFX could not be imported.
    #[error("{message}")]
    Certificate {
        wrong_password: bool,
        message: String,
    },
    /// The certificate's validity has ended: Entra refuses assertions signed with it
    /// (AADSTS700027, "The key used is expired").
    #[error(
        "the certificate {thumbprint} of mailbox '{mailbox}' expired on {}. Create a new \
         certificate, upload its public part (.cer) to the app registration in Entra \
         (Certificates & secrets), and import the new PFX",
        not_after.format("%Y-%m-%d %H:%M UTC")
    )]
    CertificateExpired {
        mailbox: String,
        thumbprint: String,
        not_after: DateTime<Utc>,
    },
    /// A Graph call failed.
    #[error("{}. {}", diagnosis.cause, diagnosis.fix)]
    Graph { diagnosis: DiagnosisReport },
    /// Cancel/finish was called but no sign-in is running for the mailbox.
    #[error("no sign-in is in progress for this mailbox; click Authorize to start one")]
    NoSignInPending,
}

impl ConnectError {
    /// The stable code for front ends.
    pub fn code(&self) -> ErrorCode {
        match self {
            ConnectError::NotConnected(_) => ErrorCode::NotConnected,
            ConnectError::Identity { code, .. } => *code,
            ConnectError::Certificate {
                wrong_password: true,
                ..
            } => ErrorCode::PfxPasswordWrong,
            ConnectError::Certificate { .. } => ErrorCode::CertificateInvalid,
            ConnectError::CertificateExpired { .. } => ErrorCode::CertificateExpired,
            ConnectError::Graph { .. } => ErrorCode::GraphFailed,
            ConnectError::NoSignInPending => ErrorCode::SignInNotPending,
        }
    }

    /// The diagnosis, for identity and Graph failures.
    pub fn diagnosis(&self) -> Option<&DiagnosisReport> {
        match self {
            ConnectError::Identity { diagnosis, .. } | ConnectError::Graph { diagnosis } => {
                Some(diagnosis)
            }
            _ => None,
        }
    }

    fn identity(error: &IdentityError) -> Self {
        ConnectError::Identity {
            code: ErrorCode::AuthFailed,
            diagnosis: DiagnosisReport::from_diagnosis(&diagnose(error)),
        }
    }

    fn sign_in(error: &SignInError) -> Self {
        let code = match error {
            SignInError::Cancelled => ErrorCode::SignInCancelled,
            SignInError::TimedOut(_) => ErrorCode::SignInTimedOut,
            _ => ErrorCode::AuthFailed,
        };
        let diagnosis = match error {
            SignInError::Cancelled => DiagnosisReport {
                code: "cancelled".into(),
                cause: "the sign-in was cancelled".into(),
                fix: "Click Authorize to start it again.".into(),
            },
            other => DiagnosisReport::from_diagnosis(&diagnose_sign_in(other)),
        };
        ConnectError::Identity { code, diagnosis }
    }

    fn certificate(error: CertificateError) -> Self {
        ConnectError::Certificate {
            wrong_password: matches!(error, CertificateError::WrongPassword),
            message: error.to_string(),
        }
    }

    fn graph(error: &GraphError, mailbox: &str) -> Self {
        if let Some(identity) = &error.identity {
            return ConnectError::identity(identity);
        }
        let diagnosis = match error.kind {
            GraphErrorKind::AccessDenied => DiagnosisReport {
                code: "access_denied".into(),
                cause: format!(
                    "Microsoft Graph refused access to {mailbox} ({}): a permission is missing or \
                     of the wrong type (delegated vs application), the signed-in user has no \
                     access to the shared mailbox, or an application access policy excludes this \
                     mailbox",
                    error.message
                ),
                fix: "Check the app's API permissions and admin consent in Entra; for webhooks, \
                      add the mailbox to the application access policy; for a shared mailbox, \
                      give the signed-in user Full Access."
                    .into(),
            },
            GraphErrorKind::NotFound => DiagnosisReport {
                code: "mailbox_not_found".into(),
                cause: format!("the mailbox {mailbox} was not found ({})", error.message),
                fix: "Check the mailbox address: its UPN must match the address, and the \
                      mailbox must be licensed or shared."
                    .into(),
            },
            GraphErrorKind::Unauthorized => DiagnosisReport {
                code: "token_rejected".into(),
                cause: format!(
                    "Microsoft Graph rejected the access token ({})",
                    error.message
                ),
                fix: "Check that the selected cloud matches the tenant, then connect again.".into(),
            },
            GraphErrorKind::Throttled => DiagnosisReport {
                code: "throttled".into(),
                cause: "Microsoft Graph is throttling requests for this mailbox".into(),
                fix: "Wait a few minutes and try again.".into(),
            },
            _ => DiagnosisReport {
                code: "graph_error".into(),
                cause: format!("the Microsoft Graph call failed: {error}"),
                fix: "Check the network and the Graph URL of the selected cloud, then try again."
                    .into(),
            },
        };
        ConnectError::Graph { diagnosis }
    }
}

/// Diagnoses an error text an admin saw (the Microsoft sign-in page, a log line, a CLI
/// message) by the AADSTS code it contains.
pub fn diagnose_text(text: &str) -> Option<DiagnosisReport> {
    let error = mailroom_graph::AadError::from_text(text)?;
    Some(DiagnosisReport::from_diagnosis(
        &mailroom_graph::diagnose_aad(&error, None),
    ))
}

/// Graph refused access and the token lacks needed permissions: consent is missing.
fn consent_missing(missing: &[String], method: MailboxMethod) -> ConnectError {
    let kind = match method {
        MailboxMethod::Scan => "delegated",
        MailboxMethod::Webhook => "application",
    };
    ConnectError::Graph {
        diagnosis: DiagnosisReport {
            code: snake(DiagnosisKind::ConsentMissing),
            cause: format!(
                "the access token does not grant {} ({kind} permissions): admin consent is missing or was withdrawn",
                missing.join(", ")
            ),
            fix: format!(
                "In Entra, App registrations > API permissions: add {} as {kind} permissions of Microsoft Graph and click 'Grant admin consent'.",
                missing.join(", ")
            ),
        },
    }
}

impl CoreError {
    /// The diagnosis behind a connection failure, if any.
    pub fn diagnosis(&self) -> Option<&DiagnosisReport> {
        match self {
            CoreError::Connect(e) => e.diagnosis(),
            _ => None,
        }
    }
}

/// Refuses a certificate whose validity has ended: Entra would refuse every assertion signed
/// with it, so importing (or using) it could only fail later with a vaguer error.
fn refuse_expired(
    mailbox: &str,
    cert: &CertificateCredential,
    now: DateTime<Utc>,
) -> Result<(), ConnectError> {
    if cert.not_after() <= now {
        return Err(ConnectError::CertificateExpired {
            mailbox: mailbox.to_string(),
            thumbprint: cert.thumbprint_sha1_hex().to_ascii_uppercase(),
            not_after: cert.not_after(),
        });
    }
    Ok(())
}

/// The Microsoft cloud of a mailbox record.
pub fn cloud_of(mailbox: &Mailbox) -> Result<Cloud, CoreError> {
    Ok(match mailbox.cloud {
        StoreCloud::Global => Cloud::Global,
        StoreCloud::UsgovGccHigh => Cloud::UsGovGccHigh,
        StoreCloud::UsgovDod => Cloud::UsGovDod,
        StoreCloud::China => Cloud::China,
        StoreCloud::Custom => {
            let parse = |label: &str, v: &Option<String>| {
                let text = v.as_deref().ok_or_else(|| {
                    CoreError::InvalidInput(format!("the custom cloud has no {label}"))
                })?;
                url::Url::parse(text).map_err(|e| {
                    CoreError::InvalidInput(format!("the custom {label} '{text}' is invalid: {e}"))
                })
            };
            Cloud::Custom {
                authority_url: parse("authority URL", &mailbox.authority_url)?,
                graph_url: parse("Graph URL", &mailbox.graph_url)?,
            }
        }
    })
}

/// Which mailbox Graph calls address: `/me`, the shared mailbox (scan) or the webhook address.
pub fn mailbox_ref(mailbox: &Mailbox) -> MailboxRef {
    match mailbox.method {
        MailboxMethod::Scan => match &mailbox.shared_mailbox {
            Some(shared) => MailboxRef::User(shared.clone()),
            None => MailboxRef::Me,
        },
        MailboxMethod::Webhook => match &mailbox.mailbox_address {
            Some(address) => MailboxRef::User(address.clone()),
            None => MailboxRef::Me,
        },
    }
}

/// The permissions the mailbox's method needs (reference: delegated or application).
pub fn access_method(mailbox: &Mailbox) -> AccessMethod {
    let contacts = mailbox
        .settings
        .get("contact_import")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    match mailbox.method {
        MailboxMethod::Scan => AccessMethod::MailboxScan {
            shared_mailbox: mailbox.shared_mailbox.is_some(),
            contacts,
        },
        MailboxMethod::Webhook => AccessMethod::Webhooks { contacts },
    }
}

/// A credential that lapses soon (or already did).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialWarning {
    /// `secret_expiring`, `secret_expired`, `certificate_expiring` or `certificate_expired`.
    pub code: String,
    pub expires_at: DateTime<Utc>,
    /// Whole days left (negative when expired).
    pub days_left: i64,
    pub message: String,
}

/// The expiry warning for a mailbox's credential at `now`, if it lapses within
/// [`EXPIRY_WARNING_DAYS`].
pub fn credential_warning(mailbox: &Mailbox, now: DateTime<Utc>) -> Option<CredentialWarning> {
    let expires_at = mailbox.credential_expires_at?;
    let what = match mailbox.credential_kind {
        CredentialKind::Public => return None,
        CredentialKind::Secret => "secret",
        CredentialKind::Certificate => "certificate",
    };
    let days_left = (expires_at - now).num_days();
    let date = expires_at.format("%Y-%m-%d");
    let (code, message) = if expires_at <= now {
        (
            format!("{what}_expired"),
            format!(
                "The client {what} expired on {date}. Create a new one in Entra (Certificates & \
                 secrets) and enter it here; until then Mailroom cannot reach the mailbox."
            ),
        )
    } else if days_left < EXPIRY_WARNING_DAYS {
        (
            format!("{what}_expiring"),
            format!(
                "The client {what} expires on {date} ({days_left} days left). Create a new one \
                 in Entra (Certificates & secrets) and enter it here before then."
            ),
        )
    } else {
        return None;
    };
    Some(CredentialWarning {
        code,
        expires_at,
        days_left,
        message,
    })
}

/// [`credential_warning`] at the current time.
pub fn credential_warning_now(mailbox: &Mailbox) -> Option<CredentialWarning> {
    credential_warning(mailbox, Utc::now())
}

/// A certificate imported from a PFX: what the store keeps about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    /// SHA-1 thumbprint, hex (what the Entra portal shows).
    pub thumbprint: String,
    pub subject: String,
    pub not_after: DateTime<Utc>,
}

/// A PFX to import along with a new mailbox: the file's bytes and its password.
pub struct PfxImport {
    pub bytes: Vec<u8>,
    pub password: SecretValue,
}

impl std::fmt::Debug for PfxImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PfxImport([{} bytes], [redacted])", self.bytes.len())
    }
}

/// Parses a PFX (wrong password → [`ErrorCode::PfxPasswordWrong`]).
pub fn parse_pfx(bytes: &[u8], password: &SecretValue) -> Result<CertificateCredential, CoreError> {
    CertificateCredential::from_pfx(bytes, password.expose())
        .map_err(|e| ConnectError::certificate(e).into())
}

/// The account a mailbox is connected as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    pub mailbox_id: String,
    /// The signed-in UPN (delegated) or the mailbox address (app-only).
    pub account: String,
    /// Display name of the signed-in user, when known.
    pub display_name: Option<String>,
    /// The permissions the token grants.
    pub granted: Vec<String>,
    /// Needed permissions the token does not grant.
    pub missing: Vec<String>,
}

/// One probe call for one needed permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionProbe {
    pub permission: String,
    /// Whether the token grants it.
    pub granted: bool,
    /// `ok`, `failed` or `not_probed` (a permission that can only be exercised by a side
    /// effect, e.g. sending mail, is checked against the token only).
    pub outcome: String,
    pub detail: String,
}

/// A message of the inbox listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboxMessage {
    pub subject: String,
    pub from: String,
    pub received: Option<DateTime<Utc>>,
}

/// The result of *Test connection*.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionTest {
    pub mailbox_id: String,
    /// The mailbox Graph calls address (`me` or `users/{upn}`).
    pub mailbox: String,
    pub messages: Vec<InboxMessage>,
    pub granted: Vec<String>,
    pub required: Vec<String>,
    pub missing: Vec<String>,
    pub probes: Vec<PermissionProbe>,
    pub warning: Option<CredentialWarning>,
    /// Whether every probe passed and nothing is missing.
    pub ok: bool,
}

enum Tokens {
    Delegated(Arc<DelegatedTokens>),
    AppOnly(Arc<AppOnlyTokens>),
}

impl Tokens {
    fn provider(&self) -> Arc<dyn TokenProvider> {
        match self {
            Tokens::Delegated(t) => t.clone(),
            Tokens::AppOnly(t) => t.clone(),
        }
    }

    async fn current(&self) -> Option<TokenSet> {
        match self {
            Tokens::Delegated(t) => Some(t.current().await),
            Tokens::AppOnly(t) => t.current().await,
        }
    }
}

/// A sign-in in progress: the loopback listener is running. Open `url` in a browser, then
/// [`Core::finish_authorization`].
pub struct Authorization {
    mailbox_id: String,
    pending: PendingSignIn,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorization")
            .field("mailbox_id", &self.mailbox_id)
            .field("redirect_uri", &self.pending.redirect_uri())
            .finish()
    }
}

impl Authorization {
    /// The mailbox being authorized.
    pub fn mailbox_id(&self) -> &str {
        &self.mailbox_id
    }

    /// The redirect URI in use (`http://localhost:<port>`).
    pub fn redirect_uri(&self) -> &str {
        self.pending.redirect_uri()
    }

    /// Cancelling this token ends the wait with [`ErrorCode::SignInCancelled`].
    pub fn canceller(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

fn not_connected(mailbox: &Mailbox) -> CoreError {
    let hint = match mailbox.method {
        MailboxMethod::Scan => format!(
            "Mailbox '{}' is not connected: click Authorize and sign in.",
            mailbox.name
        ),
        MailboxMethod::Webhook => format!(
            "Mailbox '{}' has no stored credential: enter the client secret or import the certificate again.",
            mailbox.name
        ),
    };
    ConnectError::NotConnected(hint).into()
}

fn display_ref(r: &MailboxRef) -> String {
    match r {
        MailboxRef::Me => "me".into(),
        MailboxRef::User(upn) => format!("users/{upn}"),
    }
}

impl Core {
    async fn secret(
        &self,
        owner: &str,
        kind: SecretKind,
    ) -> Result<Option<SecretValue>, CoreError> {
        Ok(self
            .secrets()
            .get_async(SecretKey::new(owner, kind))
            .await?)
    }

    async fn delete_secret(&self, owner: &str, kind: SecretKind) -> Result<(), CoreError> {
        let secrets = self.secrets().clone();
        let key = SecretKey::new(owner, kind);
        tokio::task::spawn_blocking(move || secrets.delete(&key))
            .await
            .map_err(|e| CoreError::InvalidInput(format!("keyring task failed: {e}")))??;
        Ok(())
    }

    /// The app registration of a mailbox, with its credential loaded from the keyring.
    pub async fn app_registration(&self, mailbox: &Mailbox) -> Result<AppRegistration, CoreError> {
        let credential = match mailbox.credential_kind {
            CredentialKind::Public => ClientCredential::Public,
            CredentialKind::Secret => {
                let secret = self
                    .secret(&mailbox.id, SecretKind::ClientSecret)
                    .await?
                    .ok_or_else(|| {
                        ConnectError::NotConnected(format!(
                            "The client secret of mailbox '{}' is not in the keyring: enter it again.",
                            mailbox.name
                        ))
                    })?;
                ClientCredential::Secret(Secret::new(secret.expose()))
            }
            CredentialKind::Certificate => {
                let bundle = self
                    .secret(&mailbox.id, SecretKind::Certificate)
                    .await?
                    .ok_or_else(|| {
                        ConnectError::NotConnected(format!(
                            "The certificate of mailbox '{}' is not in the keyring: import the PFX again.",
                            mailbox.name
                        ))
                    })?;
                let cert = CertificateCredential::from_pem_bundle(bundle.expose())
                    .map_err(ConnectError::certificate)?;
                refuse_expired(&mailbox.name, &cert, Utc::now())?;
                ClientCredential::Certificate(Box::new(cert))
            }
        };
        Ok(AppRegistration {
            cloud: cloud_of(mailbox)?,
            tenant: mailbox.tenant_id.clone(),
            client_id: mailbox.client_id.clone(),
            credential,
        })
    }

    async fn tokens_for(&self, mailbox: &Mailbox) -> Result<(AppRegistration, Tokens), CoreError> {
        let app = self.app_registration(mailbox).await?;
        let identity = IdentityClient::new(mailroom_clock::system());
        let tokens = match mailbox.method {
            MailboxMethod::Scan => {
                let refresh = self
                    .secret(&mailbox.id, SecretKind::RefreshToken)
                    .await?
                    .ok_or_else(|| not_connected(mailbox))?;
                let secrets = self.secrets().clone();
                let owner = mailbox.id.clone();
                let tokens = DelegatedTokens::from_refresh_token(
                    identity,
                    app.clone(),
                    Secret::new(refresh.expose()),
                    move |set: &TokenSet| {
                        if let Some(rt) = &set.refresh_token {
                            let key = SecretKey::new(owner.clone(), SecretKind::RefreshToken);
                            if let Err(e) = secrets.set(&key, &SecretValue::new(rt.expose())) {
                                tracing::warn!(mailbox = %owner, "could not persist the rotated refresh token: {e}");
                            }
                        }
                    },
                );
                Tokens::Delegated(Arc::new(tokens))
            }
            MailboxMethod::Webhook => {
                Tokens::AppOnly(Arc::new(AppOnlyTokens::new(identity, app.clone())))
            }
        };
        Ok((app, tokens))
    }

    /// A Graph client for the mailbox: the cloud's Graph URL, delegated tokens from the
    /// keyring's refresh token (rotation persisted back to the keyring) or app-only tokens from
    /// the client secret / certificate, addressing `/me`, the shared mailbox or the webhook
    /// mailbox address.
    pub async fn graph_client_for(&self, mailbox: &Mailbox) -> Result<GraphClient, CoreError> {
        let (app, tokens) = self.tokens_for(mailbox).await?;
        Ok(GraphClient::new(
            app.cloud.graph_url(),
            tokens.provider(),
            mailbox_ref(mailbox),
        ))
    }

    /// Imports a PFX for a mailbox: the PEM bundle (certificate + private key) to the keyring,
    /// the thumbprint and expiry to the store.
    pub async fn import_certificate(
        &self,
        mailbox_id: &str,
        pfx: PfxImport,
    ) -> Result<CertificateInfo, CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        let cert = parse_pfx(&pfx.bytes, &pfx.password)?;
        self.store_certificate(&mailbox, &cert).await
    }

    async fn store_certificate(
        &self,
        mailbox: &Mailbox,
        cert: &CertificateCredential,
    ) -> Result<CertificateInfo, CoreError> {
        refuse_expired(&mailbox.name, cert, Utc::now())?;
        let bundle = cert.to_pem_bundle();
        self.secrets()
            .set_async(
                SecretKey::new(&mailbox.id, SecretKind::Certificate),
                SecretValue::new(bundle.expose()),
            )
            .await?;
        let info = CertificateInfo {
            thumbprint: cert.thumbprint_sha1_hex().to_ascii_uppercase(),
            subject: cert.subject().to_string(),
            not_after: cert.not_after(),
        };
        self.store()
            .set_mailbox_credential_info(&mailbox.id, Some(info.not_after), Some(&info.thumbprint))
            .await?;
        tracing::info!(mailbox = %mailbox.name, thumbprint = %info.thumbprint, "certificate imported");
        Ok(info)
    }

    /// Adds a mailbox with its credential: the client secret (and its optional expiry date) or
    /// a PFX. The PFX is parsed before anything is stored, so a wrong password leaves nothing
    /// behind.
    pub async fn add_mailbox_with_credentials(
        &self,
        setup: MailboxSetup,
        secret_expires_at: Option<DateTime<Utc>>,
        pfx: Option<PfxImport>,
    ) -> Result<Mailbox, CoreError> {
        let cert = match (&setup.credential_kind, &pfx) {
            (CredentialKind::Certificate, Some(pfx)) => Some(parse_pfx(&pfx.bytes, &pfx.password)?),
            (CredentialKind::Certificate, None) => return Err(CoreError::InvalidInput(
                "Choose the certificate's PFX file (with its private key) and enter its password."
                    .into(),
            )),
            _ => None,
        };
        if let Some(cert) = &cert {
            // Before the mailbox exists: an expired certificate leaves nothing behind.
            refuse_expired(&setup.name, cert, Utc::now())?;
        }
        setup.validate()?;
        let mailbox = self.add_mailbox(setup).await?;
        let result = async {
            if let Some(cert) = &cert {
                self.store_certificate(&mailbox, cert).await?;
            } else if mailbox.credential_kind == CredentialKind::Secret
                && secret_expires_at.is_some()
            {
                self.store()
                    .set_mailbox_credential_info(&mailbox.id, secret_expires_at, None)
                    .await?;
            }
            Ok::<_, CoreError>(())
        }
        .await;
        if let Err(e) = result {
            if let Err(rollback) = self.remove_mailbox(&mailbox.id).await {
                tracing::error!(
                    mailbox = %mailbox.name,
                    "setting up the mailbox failed ({e}) and it could not be removed again: {rollback}"
                );
            }
            return Err(e);
        }
        Ok(self.store().mailbox(&mailbox.id).await?)
    }

    /// Starts the delegated sign-in: binds the loopback listener and returns the authorize URL
    /// to open in the system browser. The signed-in user's inbox (or the shared mailbox) is
    /// what gets processed.
    pub async fn start_authorization(
        &self,
        mailbox_id: &str,
    ) -> Result<(url::Url, Authorization), CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        if mailbox.method != MailboxMethod::Scan {
            return Err(CoreError::InvalidInput(
                "Webhook mailboxes use application permissions: use Connect, not Authorize.".into(),
            ));
        }
        let app = self.app_registration(&mailbox).await?;
        let scopes = match access_method(&mailbox) {
            AccessMethod::MailboxScan {
                shared_mailbox,
                contacts,
            } => delegated_scopes(shared_mailbox, contacts),
            AccessMethod::Webhooks { .. } => unreachable!("scan mailbox"),
        };
        let (url, pending) = LoopbackSignIn::start(&app, &scopes, SignInOptions::default())
            .await
            .map_err(|e| CoreError::from(ConnectError::sign_in(&e)))?;
        tracing::info!(mailbox = %mailbox.name, redirect_uri = %pending.redirect_uri(), "sign-in started");
        Ok((
            url,
            Authorization {
                mailbox_id: mailbox.id,
                pending,
                cancel: CancellationToken::new(),
            },
        ))
    }

    /// Waits for the browser to come back (or `timeout` / cancellation), stores the refresh
    /// token in the keyring and the connected account in the store.
    pub async fn finish_authorization(
        &self,
        authorization: Authorization,
        timeout: Duration,
    ) -> Result<Connection, CoreError> {
        let Authorization {
            mailbox_id,
            pending,
            cancel,
        } = authorization;
        let mailbox = self.store().mailbox(&mailbox_id).await?;
        let tokens = match pending.wait(timeout, cancel).await {
            Ok(tokens) => tokens,
            Err(e) => {
                let err = ConnectError::sign_in(&e);
                tracing::warn!(mailbox = %mailbox.name, code = ?err.code(), "sign-in failed: {err}");
                return Err(err.into());
            }
        };
        let Some(refresh) = tokens.refresh_token.clone() else {
            return Err(ConnectError::NotConnected(
                "The sign-in returned no refresh token: the app registration needs the delegated offline_access permission."
                    .into(),
            )
            .into());
        };
        let mut account = tokens.account.as_ref().and_then(|a| a.upn.clone());
        let mut display_name = tokens.account.as_ref().and_then(|a| a.name.clone());
        if account.is_none() {
            let graph = GraphClient::new(
                cloud_of(&mailbox)?.graph_url(),
                Arc::new(mailroom_graph::StaticToken(tokens.access_token.clone())),
                MailboxRef::Me,
            );
            let me = graph
                .me()
                .await
                .map_err(|e| CoreError::from(ConnectError::graph(&e, "me")))?;
            account = me.user_principal_name.or(me.mail);
            display_name = me.display_name;
        }
        let account = account.unwrap_or_else(|| "(unknown account)".into());
        self.secrets()
            .set_async(
                SecretKey::new(&mailbox.id, SecretKind::RefreshToken),
                SecretValue::new(refresh.expose()),
            )
            .await?;
        self.store()
            .set_mailbox_connection(&mailbox.id, Some(&account))
            .await?;
        let granted = granted_permissions(&tokens);
        let missing = missing_permissions(&granted, &required_permissions(access_method(&mailbox)));
        tracing::info!(mailbox = %mailbox.name, %account, "mailbox connected (delegated)");
        Ok(Connection {
            mailbox_id: mailbox.id,
            account,
            display_name,
            granted,
            missing,
        })
    }

    /// Connects an app-only (webhook) mailbox: acquires a token with the stored secret or
    /// certificate and probes the mailbox's inbox. On success the mailbox address is recorded
    /// as the connected account.
    pub async fn connect_app_only(&self, mailbox_id: &str) -> Result<Connection, CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        if mailbox.method != MailboxMethod::Webhook {
            return Err(CoreError::InvalidInput(
                "Mailbox scan signs a user in: use Authorize, not Connect.".into(),
            ));
        }
        let (app, tokens) = self.tokens_for(&mailbox).await?;
        let target = mailbox_ref(&mailbox);
        let graph = GraphClient::new(app.cloud.graph_url(), tokens.provider(), target.clone());
        let address = mailbox.mailbox_address.clone().unwrap_or_default();
        let probe = graph
            .list_messages(
                "inbox",
                &MessageQuery {
                    top: Some(1),
                    max_pages: Some(1),
                    select: vec!["id".into()],
                    ..Default::default()
                },
            )
            .await;
        let set = tokens.current().await;
        let granted = set.as_ref().map(granted_permissions).unwrap_or_default();
        let missing = missing_permissions(&granted, &required_permissions(access_method(&mailbox)));
        if let Err(e) = probe {
            if e.kind == GraphErrorKind::AccessDenied && !missing.is_empty() && set.is_some() {
                return Err(consent_missing(&missing, mailbox.method).into());
            }
            return Err(ConnectError::graph(&e, &address).into());
        }
        self.store()
            .set_mailbox_connection(&mailbox.id, Some(&address))
            .await?;
        tracing::info!(mailbox = %mailbox.name, "mailbox connected (app-only)");
        Ok(Connection {
            mailbox_id: mailbox.id,
            account: address,
            display_name: None,
            granted,
            missing,
        })
    }

    /// Disconnects: deletes the refresh token from the keyring and clears the connected account.
    /// A Webhooks mailbox's Graph subscription is cancelled first (best effort, logged).
    /// The app registration's own credential (secret/certificate) stays until the mailbox is
    /// removed.
    pub async fn disconnect_mailbox(&self, mailbox_id: &str) -> Result<Mailbox, CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        if mailbox.method == mailroom_store::MailboxMethod::Webhook {
            // While the credentials still work: no orphan subscription keeps posting.
            self.cancel_subscription_on_disconnect(&mailbox).await;
        }
        self.delete_secret(&mailbox.id, SecretKind::RefreshToken)
            .await?;
        self.store()
            .set_mailbox_connection(&mailbox.id, None)
            .await?;
        tracing::info!(mailbox = %mailbox.name, "mailbox disconnected");
        Ok(self.store().mailbox(&mailbox.id).await?)
    }

    /// *Test connection*: lists a few inbox messages, compares granted permissions with what
    /// the method needs, and probes each needed permission.
    pub async fn test_connection(&self, mailbox_id: &str) -> Result<ConnectionTest, CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        let (app, tokens) = self.tokens_for(&mailbox).await?;
        let target = mailbox_ref(&mailbox);
        let shown = display_ref(&target);
        let graph = GraphClient::new(app.cloud.graph_url(), tokens.provider(), target.clone());
        let listing = graph
            .list_messages(
                "inbox",
                &MessageQuery {
                    top: Some(5),
                    max_pages: Some(1),
                    select: vec![
                        "id".into(),
                        "subject".into(),
                        "from".into(),
                        "receivedDateTime".into(),
                    ],
                    orderby: Some("receivedDateTime desc".into()),
                    ..Default::default()
                },
            )
            .await;
        // A token failure is not a permission question: report it as such.
        if let Err(e) = &listing {
            if e.identity.is_some() {
                return Err(ConnectError::graph(e, &shown).into());
            }
        }
        let set = tokens.current().await;
        let granted = set.as_ref().map(granted_permissions).unwrap_or_default();
        let required = required_permissions(access_method(&mailbox));
        let missing = missing_permissions(&granted, &required);
        let missing_set: BTreeSet<&String> = missing.iter().collect();
        let mut probes = Vec::new();
        for permission in &required {
            let is_granted = !missing_set.contains(permission);
            let (outcome, detail) = match permission.as_str() {
                "Mail.ReadWrite" | "Mail.ReadWrite.Shared" => match &listing {
                    Ok(list) => (
                        "ok",
                        format!("listed {} inbox message(s) of {shown}", list.len()),
                    ),
                    Err(e) => ("failed", ConnectError::graph(e, &shown).to_string()),
                },
                "User.Read" => match graph.me().await {
                    Ok(me) => (
                        "ok",
                        format!(
                            "read the signed-in user ({})",
                            me.user_principal_name.unwrap_or_default()
                        ),
                    ),
                    Err(e) => ("failed", ConnectError::graph(&e, "me").to_string()),
                },
                "Contacts.Read" => match graph.contacts().await {
                    Ok(c) => ("ok", format!("read {} contact(s)", c.len())),
                    Err(e) => ("failed", ConnectError::graph(&e, &shown).to_string()),
                },
                _ => (
                    "not_probed",
                    if is_granted {
                        "granted by the token; only sending mail would exercise it".to_string()
                    } else {
                        "not granted by the token".to_string()
                    },
                ),
            };
            probes.push(PermissionProbe {
                permission: permission.clone(),
                granted: is_granted,
                outcome: outcome.to_string(),
                detail,
            });
        }
        let messages = listing
            .map(|list| {
                list.into_iter()
                    .map(|m| InboxMessage {
                        subject: m.subject.unwrap_or_default(),
                        from: m
                            .from
                            .and_then(|f| f.email_address.address)
                            .unwrap_or_default(),
                        received: m.received_date_time,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ok = missing.is_empty() && probes.iter().all(|p| p.outcome != "failed");
        Ok(ConnectionTest {
            mailbox_id: mailbox.id.clone(),
            mailbox: shown,
            messages,
            granted,
            required,
            missing,
            probes,
            warning: credential_warning(&mailbox, Utc::now()),
            ok,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(kind: CredentialKind, expires: Option<DateTime<Utc>>) -> Mailbox {
        let now = Utc::now();
        Mailbox {
            id: "m1".into(),
            name: "Support".into(),
            method: MailboxMethod::Webhook,
            cloud: StoreCloud::Global,
            authority_url: None,
            graph_url: None,
            tenant_id: "t".into(),
            client_id: "c".into(),
            credential_kind: kind,
            credential_expires_at: expires,
            certificate_thumbprint: None,
            shared_mailbox: None,
            mailbox_address: Some("support@contoso.test".into()),
            connected_account: None,
            connected_at: None,
            sign_in_required: None,
            enabled: true,
            settings: serde_json::json!({}),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn expiry_warnings_start_thirty_days_ahead() {
        let now = Utc::now();
        let days = |d: i64| Some(now + chrono::Duration::days(d));
        assert_eq!(
            credential_warning(&mailbox(CredentialKind::Secret, days(90)), now),
            None
        );
        let soon =
            credential_warning(&mailbox(CredentialKind::Certificate, days(12)), now).unwrap();
        assert_eq!(soon.code, "certificate_expiring");
        assert_eq!(soon.days_left, 12);
        let gone = credential_warning(&mailbox(CredentialKind::Secret, days(-1)), now).unwrap();
        assert_eq!(gone.code, "secret_expired");
        assert!(gone.message.contains("expired on"));
        assert_eq!(
            credential_warning(&mailbox(CredentialKind::Public, days(1)), now),
            None
        );
    }

    #[test]
    fn expiry_dates_and_snake_codes() {
        let t = parse_expiry_date("2027-03-31").unwrap();
        assert_eq!(t.to_rfc3339(), "2027-03-31T23:59:59+00:00");
        assert!(parse_expiry_date("31/03/2027")
            .unwrap_err()
            .to_string()
            .contains("YYYY-MM-DD"));
        assert_eq!(
            snake(DiagnosisKind::PublicClientSentSecret),
            "public_client_sent_secret"
        );
        let d = diagnose_text("AADSTS50011: The redirect URI 'http://localhost:1234' specified in the request does not match").unwrap();
        assert_eq!(d.code, "redirect_uri_not_registered");
        assert_eq!(diagnose_text("nothing to see"), None);
    }

    #[test]
    fn mailbox_refs_follow_the_method() {
        let mut m = mailbox(CredentialKind::Secret, None);
        assert_eq!(
            mailbox_ref(&m),
            MailboxRef::User("support@contoso.test".into())
        );
        m.method = MailboxMethod::Scan;
        m.mailbox_address = None;
        assert_eq!(mailbox_ref(&m), MailboxRef::Me);
        m.shared_mailbox = Some("helpdesk@contoso.test".into());
        assert_eq!(
            mailbox_ref(&m),
            MailboxRef::User("helpdesk@contoso.test".into())
        );
        assert!(needed_permissions(&m).contains(&"Mail.Send.Shared".to_string()));
    }
}
