//! The last findings of each mailbox's safety checks and when they ran (the engine owns their
//! shape; the store keeps them as JSON).

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::inbound::{parse_ts, ts};
use crate::{Result, Store, StoreError};

/// What the last check of a mailbox found.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedChecks {
    pub mailbox_id: String,
    pub checked_at: DateTime<Utc>,
    /// The engine's list of findings.
    pub findings: Value,
}

impl Store {
    /// Records a mailbox's findings (replacing the previous ones).
    pub async fn record_mailbox_checks(
        &self,
        mailbox_id: &str,
        findings: &Value,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO mailbox_checks (mailbox_id, checked_at, findings) VALUES ($1, $2, $3)
             ON CONFLICT (mailbox_id) DO UPDATE SET checked_at = excluded.checked_at,
                 findings = excluded.findings",
        )
        .bind(mailbox_id)
        .bind(ts(at))
        .bind(findings.to_string())
        .execute(self.pool())
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound {
                what: "mailbox",
                id: mailbox_id.to_string(),
            },
            e => e.into(),
        })?;
        Ok(())
    }

    /// The last findings of a mailbox, if it was ever checked.
    pub async fn mailbox_checks(&self, mailbox_id: &str) -> Result<Option<RecordedChecks>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT checked_at, findings FROM mailbox_checks WHERE mailbox_id = $1")
                .bind(mailbox_id)
                .fetch_optional(self.pool())
                .await?;
        row.map(|(at, findings)| {
            Ok(RecordedChecks {
                mailbox_id: mailbox_id.to_string(),
                checked_at: parse_ts(&at)?,
                findings: serde_json::from_str(&findings)
                    .map_err(|e| StoreError::Corrupt(format!("mailbox checks: {e}")))?,
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::testing::on_both!(the_last_findings_replace_the_previous_and_go_with_their_mailbox);
    async fn the_last_findings_replace_the_previous_and_go_with_their_mailbox(store: Store) {
        let mailbox = store
            .add_mailbox(&crate::mailboxes::tests::scan_mailbox("Support"))
            .await
            .unwrap();
        assert_eq!(store.mailbox_checks(&mailbox.id).await.unwrap(), None);
        let first = Utc::now() - chrono::Duration::days(1);
        store
            .record_mailbox_checks(
                &mailbox.id,
                &json!([{"id": "identity", "state": "ok"}]),
                first,
            )
            .await
            .unwrap();
        let now = Utc::now();
        store
            .record_mailbox_checks(
                &mailbox.id,
                &json!([{"id": "identity", "state": "failed"}]),
                now,
            )
            .await
            .unwrap();
        let last = store.mailbox_checks(&mailbox.id).await.unwrap().unwrap();
        assert_eq!(last.findings[0]["state"], "failed");
        assert_eq!(ts(last.checked_at), ts(now));

        let unknown = store
            .record_mailbox_checks("nope", &json!([]), now)
            .await
            .unwrap_err();
        assert!(matches!(unknown, StoreError::NotFound { .. }), "{unknown}");

        store.delete_mailbox(&mailbox.id).await.unwrap();
        assert_eq!(store.mailbox_checks(&mailbox.id).await.unwrap(), None);
    }
}
