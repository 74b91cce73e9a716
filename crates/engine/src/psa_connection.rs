//! The HaloPSA connection: one per installation. The record (URL, client id, tenant) lives in
//! the store's `psa_connections` table, the client secret in the keyring
//! (`SecretKind::PsaClientSecret`, owner = the connection id).

use mailroom_psa::{PsaClient, PsaConfig, RollingWindow};
use mailroom_secrets::{SecretKey, SecretKind, SecretValue};
use serde::{Deserialize, Serialize};

use crate::{Core, CoreError};

/// Id of the single PSA connection.
pub const PSA_CONNECTION_ID: &str = "default";

/// Settings key of the PSA rate limit (`{"requests": 300, "window_secs": 300}`).
pub const PSA_RATE_LIMIT_SETTING: &str = "psa.rate_limit";

/// The stored PSA connection (no secret): the store's record.
pub use mailroom_store::PsaConnection;

/// The PSA request limit Mailroom keeps to (HaloPSA's rolling window; default 300 / 5 min).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsaRateLimit {
    pub requests: u32,
    pub window_secs: u64,
}

impl Default for PsaRateLimit {
    fn default() -> Self {
        PsaRateLimit {
            requests: 300,
            window_secs: 300,
        }
    }
}

fn check_base_url(url: &str) -> Result<String, CoreError> {
    let url = url.trim().trim_end_matches('/').to_string();
    let lower = url.to_ascii_lowercase();
    let loopback = lower.starts_with("http://127.0.0.1") || lower.starts_with("http://localhost");
    if !(lower.starts_with("https://") || loopback) {
        return Err(CoreError::InvalidInput(
            "the HaloPSA URL must start with https:// (e.g. https://yourcompany.halopsa.com)"
                .into(),
        ));
    }
    Ok(url)
}

impl Core {
    /// Saves the PSA connection (replacing any previous one); the secret goes to the keyring.
    pub async fn set_psa_connection(
        &self,
        base_url: &str,
        client_id: &str,
        secret: SecretValue,
        tenant: Option<&str>,
    ) -> Result<PsaConnection, CoreError> {
        let base_url = check_base_url(base_url)?;
        let client_id = client_id.trim();
        if client_id.is_empty() {
            return Err(CoreError::InvalidInput(
                "the HaloPSA Client ID is required (Configuration > Integrations > HaloPSA API > View Applications)".into(),
            ));
        }
        if secret.expose().trim().is_empty() {
            return Err(CoreError::InvalidInput(
                "the HaloPSA client secret is required".into(),
            ));
        }
        let tenant = tenant.map(str::trim).filter(|t| !t.is_empty());
        self.secrets()
            .set(
                &SecretKey::new(PSA_CONNECTION_ID, SecretKind::PsaClientSecret),
                &secret,
            )
            .await?;
        self.store()
            .upsert_psa_connection(
                &mailroom_store::NewPsaConnection {
                    id: PSA_CONNECTION_ID,
                    base_url: &base_url,
                    tenant,
                    client_id,
                    scopes: &crate::integration::requested_scopes(),
                },
                chrono::Utc::now(),
            )
            .await?;
        // The integration checks were made against the previous connection.
        self.forget_integration_checks().await?;
        self.psa_connection()
            .await?
            .ok_or_else(|| CoreError::NotConfigured("the PSA connection was not saved".into()))
    }

    /// The stored PSA connection, if any.
    pub async fn psa_connection(&self) -> Result<Option<PsaConnection>, CoreError> {
        Ok(self.store().psa_connection(PSA_CONNECTION_ID).await?)
    }

    /// The configured PSA request limit.
    pub async fn psa_rate_limit(&self) -> Result<PsaRateLimit, CoreError> {
        Ok(self
            .store()
            .setting::<PsaRateLimit>(PSA_RATE_LIMIT_SETTING)
            .await?
            .unwrap_or_default())
    }

    /// A client for the stored PSA connection (secret from the keyring).
    /// What the PSA client is built from — the connection, its secret and the rate limit — as
    /// a digest (`None` without a connection). A running engine compares it at every start-up
    /// round and rebuilds its pipeline when it changed: an admin's change, on this workstation
    /// or another worker's console, applies without a restart.
    pub async fn psa_fingerprint(&self) -> Result<Option<String>, CoreError> {
        use sha2::Digest as _;
        let Some(conn) = self.psa_connection().await? else {
            return Ok(None);
        };
        let secret = self
            .secrets()
            .get(&SecretKey::new(&conn.id, SecretKind::PsaClientSecret))
            .await?;
        let limit = self.psa_rate_limit().await?;
        let mut digest = sha2::Sha256::new();
        for part in [
            conn.base_url.as_str(),
            &conn.client_id,
            conn.tenant.as_deref().unwrap_or(""),
            conn.auth_url.as_deref().unwrap_or(""),
            &conn.scopes,
            secret.as_ref().map_or("", |s| s.expose()),
            &limit.requests.to_string(),
            &limit.window_secs.to_string(),
        ] {
            digest.update(part.as_bytes());
            digest.update([0]);
        }
        Ok(Some(
            digest
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        ))
    }

    pub async fn psa_client(&self) -> Result<PsaClient, CoreError> {
        self.psa_client_requesting(None).await
    }

    /// A client for the stored PSA connection whose tokens ask for `scopes` instead of the
    /// connection's (the integration checks ask for `admin` on its own).
    pub(crate) async fn psa_client_requesting(
        &self,
        scopes: Option<&str>,
    ) -> Result<PsaClient, CoreError> {
        let conn = self.psa_connection().await?.ok_or_else(|| {
            CoreError::NotConfigured(
                "no HaloPSA connection is configured; enter the HaloPSA URL, Client ID and secret first".into(),
            )
        })?;
        let secret = self
            .secrets()
            .get(&SecretKey::new(&conn.id, SecretKind::PsaClientSecret))
            .await?
            .ok_or_else(|| {
                CoreError::NotConfigured(
                    "the HaloPSA client secret is missing from the keyring; enter it again".into(),
                )
            })?;
        let limit = self.psa_rate_limit().await?;
        let mut config = PsaConfig::new(conn.base_url, conn.client_id, secret.expose());
        config.tenant = conn.tenant;
        config.auth_url = conn.auth_url;
        config.scopes = scopes.map(str::to_string).unwrap_or(conn.scopes);
        config.rate_limit = RollingWindow {
            requests: limit.requests.max(1),
            window: std::time::Duration::from_secs(limit.window_secs.max(1)),
        };
        Ok(PsaClient::new(config, mailroom_clock::system())?)
    }
}
