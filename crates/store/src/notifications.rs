//! Problems to tell agents about (error notifications): one row per problem, digested into
//! emails at most every few minutes per agent.
//!
//! Invariants: a problem's `key` is unique, so the same failure is told once however often it
//! is seen; a row is marked digested only after the digest emails carrying it were stored as
//! outgoing mail.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::inbound::{parse_ts, ts};
use crate::{Result, Store, StoreError};

/// A problem as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredNotification {
    pub id: i64,
    pub key: String,
    pub kind: String,
    pub mailbox_id: Option<String>,
    pub title: String,
    pub detail: String,
    pub fix: String,
    pub created_at: DateTime<Utc>,
    pub digested_at: Option<DateTime<Utc>>,
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<StoredNotification> {
    let digested: Option<String> = r.try_get("digested_at")?;
    Ok(StoredNotification {
        id: r.try_get("id")?,
        key: r.try_get("key")?,
        kind: r.try_get("kind")?,
        mailbox_id: r.try_get("mailbox_id")?,
        title: r.try_get("title")?,
        detail: r.try_get("detail")?,
        fix: r.try_get("fix")?,
        created_at: parse_ts(r.try_get("created_at")?)?,
        digested_at: digested.as_deref().map(parse_ts).transpose()?,
    })
}

impl Store {
    /// Records a problem; `None` when one with the same key was recorded before.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_notification(
        &self,
        key: &str,
        kind: &str,
        mailbox_id: Option<&str>,
        title: &str,
        detail: &str,
        fix: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredNotification>> {
        sqlx::query(
            "INSERT INTO notifications (key, kind, mailbox_id, title, detail, fix, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING RETURNING *",
        )
        .bind(key)
        .bind(kind)
        .bind(mailbox_id)
        .bind(title)
        .bind(detail)
        .bind(fix)
        .bind(ts(now))
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// One recorded problem.
    pub async fn notification(&self, id: i64) -> Result<StoredNotification> {
        let row = sqlx::query("SELECT * FROM notifications WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "notification",
                id: id.to_string(),
            })?;
        from_row(&row)
    }

    /// Problems not yet in a digest, oldest first.
    pub async fn pending_notifications(&self) -> Result<Vec<StoredNotification>> {
        sqlx::query("SELECT * FROM notifications WHERE digested_at IS NULL ORDER BY id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// The newest problems, newest first.
    pub async fn recent_notifications(&self, limit: i64) -> Result<Vec<StoredNotification>> {
        sqlx::query("SELECT * FROM notifications ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// Marks problems as told (their digest is stored as outgoing mail).
    pub async fn mark_notifications_digested(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for id in ids {
            sqlx::query("UPDATE notifications SET digested_at = $1 WHERE id = $2")
                .bind(ts(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::testing::on_both!(a_problem_is_recorded_once_and_digested_once);
    async fn a_problem_is_recorded_once_and_digested_once(store: Store) {
        let now = Utc::now();
        let first = store
            .insert_notification(
                "email_failed:7",
                "email_failed",
                Some("mb"),
                "Email failed",
                "403",
                "Grant it",
                now,
            )
            .await
            .unwrap();
        assert!(first.is_some());
        assert!(store
            .insert_notification(
                "email_failed:7",
                "email_failed",
                Some("mb"),
                "Email failed",
                "403",
                "Grant it",
                now
            )
            .await
            .unwrap()
            .is_none());
        let pending = store.pending_notifications().await.unwrap();
        assert_eq!(pending.len(), 1);
        store
            .mark_notifications_digested(&[pending[0].id], now)
            .await
            .unwrap();
        assert!(store.pending_notifications().await.unwrap().is_empty());
        assert_eq!(store.recent_notifications(10).await.unwrap().len(), 1);
    }
}
