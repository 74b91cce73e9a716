//! PSA connection records (URL, client id, tenant). The client secret is in the keyring.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::inbound::ts;
use crate::{Result, Store};

/// A stored PSA connection (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsaConnection {
    pub id: String,
    pub name: String,
    pub base_url: String,
    pub auth_url: Option<String>,
    pub tenant: Option<String>,
    pub client_id: String,
    pub scopes: String,
}

/// What [`Store::upsert_psa_connection`] writes; a connection saved again keeps its name,
/// authorisation URL and creation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPsaConnection<'a> {
    pub id: &'a str,
    pub base_url: &'a str,
    pub tenant: Option<&'a str>,
    pub client_id: &'a str,
    /// Space-separated scopes to request with each token.
    pub scopes: &'a str,
}

type Row = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);

impl Store {
    /// Saves a PSA connection, replacing the URL, tenant and client id of an existing one.
    pub async fn upsert_psa_connection(
        &self,
        c: &NewPsaConnection<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = ts(now);
        sqlx::query(
            "INSERT INTO psa_connections (id, name, base_url, auth_url, tenant, client_id, scopes, created_at, updated_at)
             VALUES ($1, 'HaloPSA', $2, NULL, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET base_url = excluded.base_url, tenant = excluded.tenant,
                 client_id = excluded.client_id, scopes = excluded.scopes,
                 updated_at = excluded.updated_at",
        )
        .bind(c.id)
        .bind(c.base_url)
        .bind(c.tenant)
        .bind(c.client_id)
        .bind(c.scopes)
        .bind(&now)
        .bind(&now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The PSA connection with this id, if any.
    pub async fn psa_connection(&self, id: &str) -> Result<Option<PsaConnection>> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, name, base_url, auth_url, tenant, client_id, scopes FROM psa_connections WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(
            |(id, name, base_url, auth_url, tenant, client_id, scopes)| PsaConnection {
                id,
                name,
                base_url,
                auth_url,
                tenant,
                client_id,
                scopes,
            },
        ))
    }
}
