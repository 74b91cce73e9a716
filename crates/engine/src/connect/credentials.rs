//! A mailbox's credential: client-secret and certificate expiry warnings, PFX import
//! (parsed before anything is stored; the key to the keyring), and adding a mailbox with its
//! credential.

use chrono::{DateTime, Utc};
use mailroom_graph::CertificateCredential;
use mailroom_secrets::{SecretKey, SecretKind, SecretValue};
use mailroom_store::{CredentialKind, Mailbox};
use serde::Serialize;

use super::diagnosis::ConnectError;
use super::EXPIRY_WARNING_DAYS;
use crate::mailboxes::MailboxSetup;
use crate::{Core, CoreError};

/// Refuses a certificate whose validity has ended: Entra would refuse every assertion signed
/// with it, so importing (or using) it could only fail later with a vaguer error.
pub(super) fn refuse_expired(
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

impl Core {
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

    pub(super) async fn store_certificate(
        &self,
        mailbox: &Mailbox,
        cert: &CertificateCredential,
    ) -> Result<CertificateInfo, CoreError> {
        refuse_expired(&mailbox.name, cert, Utc::now())?;
        let bundle = cert.to_pem_bundle();
        self.secrets()
            .set(
                &SecretKey::new(&mailbox.id, SecretKind::Certificate),
                &SecretValue::new(bundle.expose()),
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
}
