//! Step 6: the certificate HaloPSA signs its webhook deliveries with ("Sign Request Body with
//! a X.509 Certificate").
//!
//! *Generate certificate* makes an RSA-2048 key and a self-signed certificate (rcgen), keeps
//! certificate + key as a PEM bundle in the keyring only, and hands back a password-protected
//! PFX and its password once (for the admin who uploads it by hand). *Import PFX* keeps an
//! existing one instead. *Create it for me* uploads it to HaloPSA: the PFX, written afresh with
//! a one-time password, as an attachment, then `POST /Certificate` naming it — or updates
//! Mailroom's existing certificate record there when it holds another certificate.
//!
//! Invariants: the private key is only ever in the keyring (and in a PFX handed to the admin
//! or the PSA); the settings keep the public certificate, which the webhook receiver verifies
//! signatures with; a certificate whose validity has ended is refused.

use chrono::{DateTime, Duration, Utc};
use mailroom_graph::{CertificateCredential, SecretBytes};
use mailroom_psa::{ErrorKind, Secret};
use mailroom_secrets::{SecretKey, SecretKind, SecretValue};
use serde::{Deserialize, Serialize};

use super::{CheckItem, Clients, Step, StepResult};
use crate::connect::EXPIRY_WARNING_DAYS;
use crate::psa_connection::PSA_CONNECTION_ID;
use crate::{Core, CoreError};

/// Settings key of [`WebhookCertificate`].
pub(crate) const CERTIFICATE_KEY: &str = "integration.certificate";

/// The name of Mailroom's certificate in HaloPSA (what the webhook's *Certificate* field shows).
pub const PSA_CERTIFICATE_NAME: &str = "Mailroom";

/// Where certificates are registered in HaloPSA.
pub(super) const CERTIFICATES_PATH: &str = "Configuration > Advanced Settings > Certificates";

/// How long a generated certificate is valid.
pub const GENERATED_VALIDITY_DAYS: i64 = 730;

/// How a kept certificate came to Mailroom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateOrigin {
    Generated,
    Imported,
}

/// The webhook certificate as the settings keep it (its public part; the key is in the
/// keyring).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCertificate {
    pub subject: String,
    /// SHA-1 thumbprint, upper-case hex (what HaloPSA and Windows show).
    pub thumbprint: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// The certificate in PEM (public).
    pub cert_pem: String,
    pub origin: CertificateOrigin,
    pub saved_at: DateTime<Utc>,
}

impl WebhookCertificate {
    fn of(cred: &CertificateCredential, origin: CertificateOrigin, now: DateTime<Utc>) -> Self {
        WebhookCertificate {
            subject: cred.subject().to_string(),
            thumbprint: cred.thumbprint_sha1_hex(),
            not_before: cred.not_before(),
            not_after: cred.not_after(),
            cert_pem: pem::encode(&pem::Pem::new("CERTIFICATE", cred.cert_der().to_vec())),
            origin,
            saved_at: now,
        }
    }

    /// The warning to show at `now`: expired, or expiring within [`EXPIRY_WARNING_DAYS`].
    pub fn warning(&self, now: DateTime<Utc>) -> Option<String> {
        let date = self.not_after.format("%Y-%m-%d");
        let days_left = (self.not_after - now).num_days();
        if self.not_after <= now {
            Some(format!(
                "The certificate expired on {date}: HaloPSA's signatures can no longer be trusted. Generate a new one and upload it."
            ))
        } else if days_left < EXPIRY_WARNING_DAYS {
            Some(format!(
                "The certificate expires on {date} ({days_left} days left). Generate a new one and upload it before then."
            ))
        } else {
            None
        }
    }
}

/// A freshly generated certificate: the PFX for the admin and its password, shown once.
#[derive(Debug, Clone)]
pub struct GeneratedCertificate {
    pub certificate: WebhookCertificate,
    pub pfx: Vec<u8>,
    pub password: String,
}

/// The certificate step's form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateView {
    pub certificate: Option<WebhookCertificate>,
    pub warning: Option<String>,
    /// The name to give it in HaloPSA.
    pub psa_name: &'static str,
}

fn key() -> SecretKey {
    SecretKey::new(PSA_CONNECTION_ID, SecretKind::WebhookCertificate)
}

fn certificate_error(e: mailroom_graph::CertificateError) -> CoreError {
    CoreError::Certificate(e.to_string())
}

/// A PFX password: 24 characters from an alphabet without look-alikes (about 140 bits).
fn new_password() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..24)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// An RSA-2048 key and a self-signed certificate for `common_name`, valid from an hour ago for
/// [`GENERATED_VALIDITY_DAYS`].
fn generate(common_name: &str, now: DateTime<Utc>) -> Result<CertificateCredential, CoreError> {
    let failed =
        |e: rcgen::Error| CoreError::Certificate(format!("generating the certificate failed: {e}"));
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(failed)?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Mailroom");
    let to_offset = |t: DateTime<Utc>| {
        rcgen::date_time_ymd(1970, 1, 1)
            + std::time::Duration::from_secs(t.timestamp().max(0) as u64)
    };
    params.not_before = to_offset(now - Duration::hours(1));
    params.not_after = to_offset(now + Duration::days(GENERATED_VALIDITY_DAYS));
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key_pair).map_err(failed)?;
    CertificateCredential::from_der(
        cert.der().to_vec(),
        SecretBytes::new(key_pair.serialize_der()),
    )
    .map_err(certificate_error)
}

/// Writes `bytes` to `path`, readable by the user only (a PFX holds the private key).
pub fn write_private_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

impl Core {
    /// The kept webhook certificate (its public part), if any.
    pub async fn webhook_certificate(&self) -> Result<Option<WebhookCertificate>, CoreError> {
        Ok(self.store().setting(CERTIFICATE_KEY).await?)
    }

    /// The certificate step's form.
    pub async fn webhook_certificate_view(&self) -> Result<CertificateView, CoreError> {
        let certificate = self.webhook_certificate().await?;
        Ok(CertificateView {
            warning: certificate.as_ref().and_then(|c| c.warning(Utc::now())),
            certificate,
            psa_name: PSA_CERTIFICATE_NAME,
        })
    }

    /// *Generate certificate*: a new key pair and self-signed certificate, kept (replacing the
    /// previous one) and returned as a PFX with a new password, which is not kept anywhere.
    pub async fn generate_webhook_certificate(&self) -> Result<GeneratedCertificate, CoreError> {
        let now = Utc::now();
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .map(|h| format!(" ({})", h.trim()))
            .unwrap_or_default();
        let cred = tokio::task::spawn_blocking(move || {
            generate(&format!("Mailroom PSA webhooks{host}"), now)
        })
        .await
        .map_err(|e| CoreError::Certificate(format!("generating the certificate failed: {e}")))??;
        let password = new_password();
        let pfx = cred
            .to_pfx(PSA_CERTIFICATE_NAME, &password)
            .map_err(certificate_error)?;
        let certificate = self
            .keep_webhook_certificate(&cred, CertificateOrigin::Generated, now)
            .await?;
        Ok(GeneratedCertificate {
            certificate,
            pfx,
            password,
        })
    }

    /// *Import PFX*: keeps an existing certificate with its private key (a wrong password, a
    /// file without a private key, or an expired certificate is refused, and the kept one
    /// stays).
    pub async fn import_webhook_certificate(
        &self,
        pfx: &[u8],
        password: &str,
    ) -> Result<WebhookCertificate, CoreError> {
        let cred = CertificateCredential::from_pfx(pfx, password).map_err(certificate_error)?;
        let now = Utc::now();
        if cred.not_after() <= now {
            return Err(CoreError::Certificate(format!(
                "the certificate {} expired on {}; HaloPSA cannot sign with it. Generate a new one instead",
                cred.thumbprint_sha1_hex(),
                cred.not_after().format("%Y-%m-%d")
            )));
        }
        self.keep_webhook_certificate(&cred, CertificateOrigin::Imported, now)
            .await
    }

    async fn keep_webhook_certificate(
        &self,
        cred: &CertificateCredential,
        origin: CertificateOrigin,
        now: DateTime<Utc>,
    ) -> Result<WebhookCertificate, CoreError> {
        self.secrets()
            .set(&key(), &SecretValue::new(cred.to_pem_bundle().expose()))
            .await?;
        let certificate = WebhookCertificate::of(cred, origin, now);
        self.store()
            .set_setting(CERTIFICATE_KEY, &certificate)
            .await?;
        tracing::info!(thumbprint = %certificate.thumbprint, ?origin, "webhook certificate kept");
        Ok(certificate)
    }

    /// The kept certificate with its private key, from the keyring.
    async fn webhook_certificate_credential(
        &self,
    ) -> Result<Option<CertificateCredential>, CoreError> {
        let Some(bundle) = self.secrets().get(&key()).await? else {
            return Ok(None);
        };
        CertificateCredential::from_pem_bundle(bundle.expose())
            .map(Some)
            .map_err(certificate_error)
    }

    /// *Create it for me* of the certificate step: uploads the kept certificate to HaloPSA as
    /// "Mailroom" — created, or the existing "Mailroom" record updated when it holds another
    /// certificate; nothing is sent when HaloPSA already has this one. Then checks the step.
    pub async fn upload_webhook_certificate(&self) -> Result<StepResult, CoreError> {
        let Some(cred) = self.webhook_certificate_credential().await? else {
            return Err(CoreError::InvalidInput(
                "generate or import the certificate first".into(),
            ));
        };
        let admin = self.psa_setup_client().await?;
        let existing = admin.certificates().await?;
        let thumbprint = cred.thumbprint_sha1_hex();
        if !existing.iter().any(|c| {
            c.thumbprint
                .as_deref()
                .is_some_and(|t| same_thumbprint(t, &thumbprint))
        }) {
            let password = new_password();
            let pfx = cred
                .to_pfx(PSA_CERTIFICATE_NAME, &password)
                .map_err(certificate_error)?;
            let attachment = admin
                .upload_attachment(&mailroom_psa::NewAttachment::from_bytes(
                    "mailroom-webhooks.pfx",
                    Some("application/x-pkcs12".to_string()),
                    &pfx,
                ))
                .await?;
            let mut extra = serde_json::Map::new();
            if let Some(old) = existing
                .iter()
                .find(|c| c.name.as_deref() == Some(PSA_CERTIFICATE_NAME))
            {
                extra.insert("id".into(), serde_json::json!(old.id));
            }
            let created = admin
                .create_certificate(&mailroom_psa::NewCertificate {
                    name: PSA_CERTIFICATE_NAME.into(),
                    attachment_id: attachment.id,
                    new_password: Secret::new(password),
                    extra,
                })
                .await?;
            tracing::info!(certificate = created.id, %thumbprint, "uploaded the webhook certificate to HaloPSA");
        }
        self.check_integration_step(Step::Certificate).await
    }
}

/// Thumbprints compare without case, spaces or colons.
pub(crate) fn same_thumbprint(a: &str, b: &str) -> bool {
    let clean = |s: &str| {
        s.chars()
            .filter(char::is_ascii_hexdigit)
            .map(|c| c.to_ascii_uppercase())
            .collect::<String>()
    };
    clean(a) == clean(b)
}

pub(super) async fn check_certificate(
    core: &Core,
    clients: &Clients,
) -> Result<Vec<CheckItem>, CoreError> {
    let label = "Certificate in Mailroom";
    let Some(kept) = core.webhook_certificate().await? else {
        return Ok(vec![CheckItem::failed(
            "saved",
            label,
            "No certificate yet",
            "Click Generate certificate (or Import PFX to use one you have).",
        )]);
    };
    let mut items = Vec::new();
    items.push(match core.webhook_certificate_credential().await {
        Ok(Some(cred)) if same_thumbprint(&cred.thumbprint_sha1_hex(), &kept.thumbprint) => {
            CheckItem::ok(
                "saved",
                label,
                format!(
                    "{} ({}), private key in the keyring",
                    kept.subject, kept.thumbprint
                ),
            )
        }
        Ok(_) => CheckItem::failed(
            "saved",
            label,
            "The private key is missing from the keyring",
            "Generate or import the certificate again.",
        ),
        Err(e) => CheckItem::failed(
            "saved",
            label,
            format!("The keyring entry cannot be read: {e}"),
            "Generate or import the certificate again.",
        ),
    });
    let now = Utc::now();
    items.push(match kept.warning(now) {
        None => CheckItem::ok(
            "validity",
            "Validity",
            format!("Valid until {}", kept.not_after.format("%Y-%m-%d")),
        ),
        Some(warning) => CheckItem {
            optional: kept.not_after > now,
            ..CheckItem::failed(
                "validity",
                "Validity",
                warning,
                "Generate a new certificate, then upload it (Create it for me).",
            )
        },
    });
    let label = "Uploaded to HaloPSA";
    items.push(match clients.admin.certificates().await {
        Err(e) => CheckItem {
            optional: matches!(e.kind, ErrorKind::Forbidden | ErrorKind::Unauthorized),
            ..CheckItem::failed(
                "psa_certificate",
                label,
                format!("Mailroom cannot read the PSA's certificates: {e}"),
                format!("Allow admin on the API application to let Mailroom check it, or check by hand in {CERTIFICATES_PATH} that \"{PSA_CERTIFICATE_NAME}\" has thumbprint {}.", kept.thumbprint),
            )
        },
        Ok(list) => {
            let fix = format!(
                "Click Create it for me, or in {CERTIFICATES_PATH} > New: Name {PSA_CERTIFICATE_NAME}, Pfx: the file you saved, Password: the one shown with it."
            );
            if let Some(found) = list.iter().find(|c| {
                c.thumbprint
                    .as_deref()
                    .is_some_and(|t| same_thumbprint(t, &kept.thumbprint))
            }) {
                CheckItem::ok(
                    "psa_certificate",
                    label,
                    format!(
                        "As \"{}\" (id {})",
                        found.name.clone().unwrap_or_default(),
                        found.id
                    ),
                )
            } else if let Some(other) = list
                .iter()
                .find(|c| c.name.as_deref() == Some(PSA_CERTIFICATE_NAME))
            {
                CheckItem::failed(
                    "psa_certificate",
                    label,
                    format!(
                        "HaloPSA's \"{PSA_CERTIFICATE_NAME}\" is another certificate (thumbprint {}); Mailroom's is {}",
                        other.thumbprint.clone().unwrap_or_default(),
                        kept.thumbprint
                    ),
                    fix,
                )
            } else {
                CheckItem::failed(
                    "psa_certificate",
                    label,
                    "Not uploaded yet",
                    fix,
                )
            }
        }
    });
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_rsa_self_signed_and_valid_for_two_years() {
        let now = Utc::now();
        let cred = generate("Mailroom PSA webhooks", now).unwrap();
        assert_eq!(cred.subject(), "CN=Mailroom PSA webhooks, O=Mailroom");
        assert_eq!(cred.issuer(), cred.subject());
        assert_eq!(
            (cred.not_after() - now).num_days(),
            GENERATED_VALIDITY_DAYS - 1
        );
        let pfx = cred.to_pfx(PSA_CERTIFICATE_NAME, "pw").unwrap();
        let back = CertificateCredential::from_pfx(&pfx, "pw").unwrap();
        assert_eq!(back.thumbprint_sha1(), cred.thumbprint_sha1());
    }

    #[test]
    fn passwords_are_long_and_differ() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)));
    }

    #[test]
    fn warnings_start_thirty_days_before_expiry() {
        let now = Utc::now();
        let cert = |days: i64| WebhookCertificate {
            subject: "CN=x".into(),
            thumbprint: "AB".into(),
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(days),
            cert_pem: String::new(),
            origin: CertificateOrigin::Generated,
            saved_at: now,
        };
        assert_eq!(cert(400).warning(now), None);
        assert!(cert(10).warning(now).unwrap().contains("days left"));
        assert!(cert(-1).warning(now).unwrap().contains("expired"));
    }

    #[test]
    fn thumbprints_compare_loosely() {
        assert!(same_thumbprint("ab:cd 12", "ABCD12"));
        assert!(!same_thumbprint("ABCD12", "ABCD13"));
    }
}
