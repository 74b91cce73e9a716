//! Mailbox records: how each Microsoft 365 mailbox is reached. Credentials are not here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{flag, now_text, Result, Store, StoreError};

/// How mail reaches Mailroom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxMethod {
    /// Delegated sign-in; the sync loop scans the inbox with a delta query.
    Scan,
    /// Application permissions; Graph change notifications, with a slower scan as safety net.
    Webhook,
}

/// Which Microsoft cloud the tenant lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cloud {
    Global,
    UsgovGccHigh,
    UsgovDod,
    China,
    /// Explicit authority and Graph URLs (the sandbox, or a proxy).
    Custom,
}

/// What credential the app registration uses (the credential itself lives in the keyring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A public client (Mobile and desktop platform): no credential.
    Public,
    Secret,
    Certificate,
}

text_enum!(MailboxMethod { Scan => "scan", Webhook => "webhook" });
text_enum!(Cloud {
    Global => "global",
    UsgovGccHigh => "usgov_gcc_high",
    UsgovDod => "usgov_dod",
    China => "china",
    Custom => "custom",
});
text_enum!(CredentialKind { Public => "public", Secret => "secret", Certificate => "certificate" });

/// A mailbox as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mailbox {
    pub id: String,
    pub name: String,
    pub method: MailboxMethod,
    pub cloud: Cloud,
    pub authority_url: Option<String>,
    pub graph_url: Option<String>,
    pub tenant_id: String,
    pub client_id: String,
    pub credential_kind: CredentialKind,
    pub credential_expires_at: Option<DateTime<Utc>>,
    pub certificate_thumbprint: Option<String>,
    pub shared_mailbox: Option<String>,
    pub mailbox_address: Option<String>,
    pub connected_account: Option<String>,
    pub connected_at: Option<DateTime<Utc>>,
    /// Why the mailbox must be signed in again (its refresh grant was revoked or expired);
    /// `None` while its sign-in works.
    pub sign_in_required: Option<String>,
    pub enabled: bool,
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the setup form submits for a new mailbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMailbox {
    pub name: String,
    pub method: MailboxMethod,
    pub cloud: Cloud,
    pub authority_url: Option<String>,
    pub graph_url: Option<String>,
    pub tenant_id: String,
    pub client_id: String,
    pub credential_kind: CredentialKind,
    pub shared_mailbox: Option<String>,
    pub mailbox_address: Option<String>,
}

fn parse_time(text: Option<String>) -> Result<Option<DateTime<Utc>>> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(&t)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| StoreError::Corrupt(format!("timestamp '{t}': {e}")))
    })
    .transpose()
}

fn required_time(text: String) -> Result<DateTime<Utc>> {
    parse_time(Some(text)).map(|t| t.expect("Some in, Some out"))
}

impl Mailbox {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Self> {
        let settings: String = row.try_get("settings")?;
        Ok(Mailbox {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            method: MailboxMethod::parse(row.try_get("method")?)?,
            cloud: Cloud::parse(row.try_get("cloud")?)?,
            authority_url: row.try_get("authority_url")?,
            graph_url: row.try_get("graph_url")?,
            tenant_id: row.try_get("tenant_id")?,
            client_id: row.try_get("client_id")?,
            credential_kind: CredentialKind::parse(row.try_get("credential_kind")?)?,
            credential_expires_at: parse_time(row.try_get("credential_expires_at")?)?,
            certificate_thumbprint: row.try_get("certificate_thumbprint")?,
            shared_mailbox: row.try_get("shared_mailbox")?,
            mailbox_address: row.try_get("mailbox_address")?,
            connected_account: row.try_get("connected_account")?,
            connected_at: parse_time(row.try_get("connected_at")?)?,
            sign_in_required: row.try_get("sign_in_required")?,
            enabled: flag(row, "enabled")?,
            settings: serde_json::from_str(&settings)
                .map_err(|e| StoreError::Corrupt(format!("mailbox settings: {e}")))?,
            created_at: required_time(row.try_get("created_at")?)?,
            updated_at: required_time(row.try_get("updated_at")?)?,
        })
    }
}

impl Store {
    /// All mailboxes, by name.
    pub async fn mailboxes(&self) -> Result<Vec<Mailbox>> {
        let rows = sqlx::query("SELECT * FROM mailboxes ORDER BY lower(name), name")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(Mailbox::from_row).collect()
    }

    /// One mailbox by id.
    pub async fn mailbox(&self, id: &str) -> Result<Mailbox> {
        let row = sqlx::query("SELECT * FROM mailboxes WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "mailbox",
                id: id.to_string(),
            })?;
        Mailbox::from_row(&row)
    }

    /// Adds a mailbox and returns it with its new id.
    pub async fn add_mailbox(&self, new: &NewMailbox) -> Result<Mailbox> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_text();
        let result = sqlx::query(
            "INSERT INTO mailboxes (id, name, method, cloud, authority_url, graph_url, tenant_id,
                client_id, credential_kind, shared_mailbox, mailbox_address, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&id)
        .bind(new.name.trim())
        .bind(new.method.as_str())
        .bind(new.cloud.as_str())
        .bind(&new.authority_url)
        .bind(&new.graph_url)
        .bind(new.tenant_id.trim())
        .bind(new.client_id.trim())
        .bind(new.credential_kind.as_str())
        .bind(&new.shared_mailbox)
        .bind(&new.mailbox_address)
        .bind(&now)
        .bind(&now)
        .execute(self.pool())
        .await;
        match result {
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                return Err(StoreError::DuplicateName(new.name.trim().to_string()))
            }
            other => {
                other?;
            }
        }
        self.mailbox(&id).await
    }

    /// Records the signed-in account (or clears it with `None` on disconnect); either way the
    /// mailbox no longer waits for a new sign-in.
    pub async fn set_mailbox_connection(&self, id: &str, account: Option<&str>) -> Result<()> {
        let connected_at = account.map(|_| now_text());
        let done = sqlx::query(
            "UPDATE mailboxes SET connected_account = $1, connected_at = $2, sign_in_required = NULL, updated_at = $3
             WHERE id = $4",
        )
        .bind(account)
        .bind(connected_at)
        .bind(now_text())
        .bind(id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "mailbox",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Marks the mailbox as needing a new sign-in, with the reason (or clears the mark).
    pub async fn set_mailbox_sign_in_required(&self, id: &str, reason: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE mailboxes SET sign_in_required = $1, updated_at = $2 WHERE id = $3")
            .bind(reason)
            .bind(now_text())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records public facts about the credential: expiry and certificate thumbprint.
    pub async fn set_mailbox_credential_info(
        &self,
        id: &str,
        expires_at: Option<DateTime<Utc>>,
        thumbprint: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE mailboxes SET credential_expires_at = $1, certificate_thumbprint = $2, updated_at = $3
             WHERE id = $4",
        )
        .bind(expires_at.map(|t| t.to_rfc3339()))
        .bind(thumbprint)
        .bind(now_text())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Replaces a mailbox's processing settings (JSON owned by the engine).
    pub async fn set_mailbox_settings(&self, id: &str, settings: &serde_json::Value) -> Result<()> {
        sqlx::query("UPDATE mailboxes SET settings = $1, updated_at = $2 WHERE id = $3")
            .bind(settings.to_string())
            .bind(now_text())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deletes a mailbox. The caller removes its keyring entries.
    pub async fn delete_mailbox(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM mailboxes WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn scan_mailbox(name: &str) -> NewMailbox {
        NewMailbox {
            name: name.into(),
            method: MailboxMethod::Scan,
            cloud: Cloud::Global,
            authority_url: None,
            graph_url: None,
            tenant_id: "6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab".into(),
            client_id: "c0ffee00-0000-4000-8000-000000000001".into(),
            credential_kind: CredentialKind::Public,
            shared_mailbox: Some("helpdesk@contoso.test".into()),
            mailbox_address: None,
        }
    }

    crate::testing::on_both!(mailbox_round_trip_and_connection);
    async fn mailbox_round_trip_and_connection(store: Store) {
        let added = store.add_mailbox(&scan_mailbox("Helpdesk")).await.unwrap();
        assert_eq!(added.method, MailboxMethod::Scan);
        assert_eq!(added.connected_account, None);
        store
            .set_mailbox_connection(&added.id, Some("megan@contoso.test"))
            .await
            .unwrap();
        let listed = store.mailboxes().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].connected_account.as_deref(),
            Some("megan@contoso.test")
        );
        assert!(listed[0].connected_at.is_some());
        store.set_mailbox_connection(&added.id, None).await.unwrap();
        assert_eq!(store.mailbox(&added.id).await.unwrap().connected_at, None);
    }

    crate::testing::on_both!(duplicate_names_are_refused_clearly);
    async fn duplicate_names_are_refused_clearly(store: Store) {
        store.add_mailbox(&scan_mailbox("Support")).await.unwrap();
        let err = store
            .add_mailbox(&scan_mailbox(" Support "))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::DuplicateName(ref n) if n == "Support"),
            "{err}"
        );
    }

    crate::testing::on_both!(missing_mailbox_is_not_found);
    async fn missing_mailbox_is_not_found(store: Store) {
        let err = store
            .set_mailbox_connection("nope", None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }));
    }
}
