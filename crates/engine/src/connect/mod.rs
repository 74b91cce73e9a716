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

pub mod checks;
mod connection;
mod credentials;
mod diagnosis;
mod sign_in;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailroom_graph::{
    required_permissions, AccessMethod, AppOnlyTokens, AppRegistration, CertificateCredential,
    ClientCredential, Cloud, DelegatedTokens, GraphClient, IdentityClient, MailboxRef, Secret,
    TokenProvider, TokenSet,
};
use mailroom_secrets::{SecretKey, SecretKind, SecretValue};
use mailroom_store::{Cloud as StoreCloud, CredentialKind, Mailbox, MailboxMethod};

use crate::{Core, CoreError};
use credentials::refuse_expired;

pub use connection::{Connection, ConnectionTest, InboxMessage, PermissionProbe};
pub use credentials::{
    credential_warning, credential_warning_now, parse_pfx, CertificateInfo, CredentialWarning,
    PfxImport,
};
pub use diagnosis::{diagnose_text, ConnectError, DiagnosisReport};
pub use mailroom_graph::CancellationToken;
pub use sign_in::{Authorization, EXPECTED_ACCOUNT_SETTING};

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
        Ok(self.secrets().get(&SecretKey::new(owner, kind)).await?)
    }

    async fn delete_secret(&self, owner: &str, kind: SecretKind) -> Result<(), CoreError> {
        let secrets = self.secrets().clone();
        let key = SecretKey::new(owner, kind);
        Ok(secrets.delete(&key).await?)
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
                    Arc::new(move |set: TokenSet| {
                        let (secrets, owner) = (secrets.clone(), owner.clone());
                        Box::pin(async move {
                            if let Some(rt) = &set.refresh_token {
                                let key = SecretKey::new(owner.clone(), SecretKind::RefreshToken);
                                let value = SecretValue::new(rt.expose());
                                if let Err(e) = secrets.set(&key, &value).await {
                                    tracing::warn!(mailbox = %owner, "could not persist the rotated refresh token: {e}");
                                }
                            }
                        })
                    }),
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
}

#[cfg(test)]
mod tests {
    use super::diagnosis::snake;
    use super::*;
    use mailroom_graph::DiagnosisKind;

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
