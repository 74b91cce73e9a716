//! Webhook mode's tables: the subscription of each *Webhooks* mailbox, the notifications the
//! receiver accepted (persisted before it answers 202), and the subscription event log.
//!
//! Invariants:
//! - At most one subscription per mailbox; its clientState is a keyring secret, never here.
//! - Rejected notifications never add a row each: they are counted in one `rejected` event per
//!   mailbox per minute (count and last reason), and counters older than
//!   [`REJECTION_RETENTION_DAYS`] are pruned, so forged posts cannot grow the database without
//!   limit.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::inbound::{parse_ts, parse_ts_opt, ts};
use crate::{Result, Store, StoreError};

/// How long per-minute rejection counters are kept.
pub const REJECTION_RETENTION_DAYS: i64 = 7;

/// What happened to a mailbox's subscription (the event log's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionEventKind {
    Created,
    Renewed,
    Reauthorized,
    Recreated,
    Cancelled,
    /// A delta resync after missed notifications.
    Resync,
    /// Notifications dropped by the receiver (counted per minute).
    Rejected,
    Failed,
}

text_enum!(SubscriptionEventKind {
    Created => "created",
    Renewed => "renewed",
    Reauthorized => "reauthorized",
    Recreated => "recreated",
    Cancelled => "cancelled",
    Resync => "resync",
    Rejected => "rejected",
    Failed => "failed",
});

/// What a persisted notification announced: a change, or a lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotificationKind {
    #[serde(rename = "created")]
    Created,
    #[serde(rename = "updated")]
    Updated,
    #[serde(rename = "deleted")]
    Deleted,
    #[serde(rename = "reauthorizationRequired")]
    ReauthorizationRequired,
    #[serde(rename = "subscriptionRemoved")]
    SubscriptionRemoved,
    #[serde(rename = "missed")]
    Missed,
}

text_enum!(NotificationKind {
    Created => "created",
    Updated => "updated",
    Deleted => "deleted",
    ReauthorizationRequired => "reauthorizationRequired",
    SubscriptionRemoved => "subscriptionRemoved",
    Missed => "missed",
});

impl NotificationKind {
    /// Whether this is a lifecycle event (not a change notification).
    pub fn is_lifecycle(self) -> bool {
        matches!(
            self,
            NotificationKind::ReauthorizationRequired
                | NotificationKind::SubscriptionRemoved
                | NotificationKind::Missed
        )
    }
}

/// A stored subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionRecord {
    pub mailbox_id: String,
    pub subscription_id: String,
    pub resource: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub last_notification_at: Option<DateTime<Utc>>,
    pub renewals: i64,
}

/// One entry of a mailbox's subscription log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionEvent {
    pub id: i64,
    pub mailbox_id: String,
    /// When it happened (for a rejection counter: the last rejection counted).
    pub at: DateTime<Utc>,
    pub kind: SubscriptionEventKind,
    /// What happened (for a rejection counter: the last reason).
    pub detail: String,
    /// How many times it happened: 1, or the rejections counted in this event's minute.
    pub count: i64,
}

/// A notification persisted by the receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredNotification {
    pub id: i64,
    pub mailbox_id: String,
    pub subscription_id: String,
    pub kind: NotificationKind,
    pub resource: Option<String>,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

/// The minute bucket of a rejection counter.
fn minute(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M").to_string()
}

fn event_from_row(r: &sqlx::any::AnyRow) -> Result<SubscriptionEvent> {
    Ok(SubscriptionEvent {
        id: r.try_get("id")?,
        mailbox_id: r.try_get("mailbox_id")?,
        at: parse_ts(r.try_get("at")?)?,
        kind: r.try_get::<&str, _>("kind")?.parse()?,
        detail: r.try_get("detail")?,
        count: r.try_get("count")?,
    })
}

fn notification_from_row(r: &sqlx::any::AnyRow) -> Result<StoredNotification> {
    Ok(StoredNotification {
        id: r.try_get("id")?,
        mailbox_id: r.try_get("mailbox_id")?,
        subscription_id: r.try_get("subscription_id")?,
        kind: r.try_get::<&str, _>("kind")?.parse()?,
        resource: r.try_get("resource")?,
        received_at: parse_ts(r.try_get("received_at")?)?,
        processed_at: parse_ts_opt(r.try_get("processed_at")?)?,
    })
}

impl Store {
    /// Stores the mailbox's subscription, replacing any previous one (renewal count and last
    /// notification reset).
    pub async fn put_webhook_subscription(
        &self,
        mailbox_id: &str,
        subscription_id: &str,
        resource: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_subscriptions (mailbox_id, subscription_id, resource, expires_at, created_at, renewals)
             VALUES ($1, $2, $3, $4, $5, 0)
             ON CONFLICT(mailbox_id) DO UPDATE SET subscription_id = excluded.subscription_id,
               resource = excluded.resource, expires_at = excluded.expires_at,
               created_at = excluded.created_at, last_notification_at = NULL, renewals = 0",
        )
        .bind(mailbox_id)
        .bind(subscription_id)
        .bind(resource)
        .bind(ts(expires_at))
        .bind(ts(now))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The mailbox's stored subscription, if any.
    pub async fn webhook_subscription(
        &self,
        mailbox_id: &str,
    ) -> Result<Option<SubscriptionRecord>> {
        let row = sqlx::query(
            "SELECT mailbox_id, subscription_id, resource, expires_at, created_at, last_notification_at, renewals
             FROM webhook_subscriptions WHERE mailbox_id = $1",
        )
        .bind(mailbox_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(SubscriptionRecord {
                mailbox_id: r.try_get("mailbox_id")?,
                subscription_id: r.try_get("subscription_id")?,
                resource: r.try_get("resource")?,
                expires_at: parse_ts(r.try_get("expires_at")?)?,
                created_at: parse_ts(r.try_get("created_at")?)?,
                last_notification_at: parse_ts_opt(r.try_get("last_notification_at")?)?,
                renewals: r.try_get("renewals")?,
            })
        })
        .transpose()
    }

    /// Forgets the mailbox's subscription; returns whether there was one.
    pub async fn delete_webhook_subscription(&self, mailbox_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhook_subscriptions WHERE mailbox_id = $1")
            .bind(mailbox_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a renewal: the new expiry, one more renewal.
    pub async fn renew_webhook_subscription(
        &self,
        mailbox_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE webhook_subscriptions SET expires_at = $1, renewals = renewals + 1 WHERE mailbox_id = $2",
        )
        .bind(ts(expires_at))
        .bind(mailbox_id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "webhook subscription",
                id: mailbox_id.into(),
            });
        }
        Ok(())
    }

    /// Persists an accepted notification and notes it as the subscription's last one, in one
    /// transaction. Returns the notification's id.
    pub async fn insert_webhook_notification(
        &self,
        mailbox_id: &str,
        subscription_id: &str,
        kind: NotificationKind,
        resource: Option<&str>,
        received_at: DateTime<Utc>,
    ) -> Result<i64> {
        let mut tx = self.pool().begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_notifications (mailbox_id, subscription_id, kind, resource, received_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(mailbox_id)
        .bind(subscription_id)
        .bind(kind.as_str())
        .bind(resource)
        .bind(ts(received_at))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_subscriptions SET last_notification_at = $1 WHERE mailbox_id = $2",
        )
        .bind(ts(received_at))
        .bind(mailbox_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// One persisted notification.
    pub async fn webhook_notification(&self, id: i64) -> Result<Option<StoredNotification>> {
        sqlx::query("SELECT * FROM webhook_notifications WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(notification_from_row)
            .transpose()
    }

    /// A mailbox's persisted notifications, oldest first; only unprocessed ones with
    /// `pending_only`.
    pub async fn webhook_notifications(
        &self,
        mailbox_id: &str,
        pending_only: bool,
    ) -> Result<Vec<StoredNotification>> {
        let sql = if pending_only {
            "SELECT * FROM webhook_notifications WHERE mailbox_id = $1 AND processed_at IS NULL ORDER BY id"
        } else {
            "SELECT * FROM webhook_notifications WHERE mailbox_id = $1 ORDER BY id"
        };
        sqlx::query(sql)
            .bind(mailbox_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(notification_from_row)
            .collect()
    }

    /// Marks notifications as handled, in one transaction.
    pub async fn mark_webhook_notifications_processed(
        &self,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = ts(now);
        let mut tx = self.pool().begin().await?;
        for id in ids {
            sqlx::query("UPDATE webhook_notifications SET processed_at = $1 WHERE id = $2")
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Appends an event to a mailbox's subscription log; returns its id. Rejections go through
    /// [`Store::count_webhook_rejections`] instead.
    pub async fn record_webhook_event(
        &self,
        mailbox_id: &str,
        kind: SubscriptionEventKind,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO webhook_events (mailbox_id, at, kind, detail) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(mailbox_id)
        .bind(ts(at))
        .bind(kind.as_str())
        .bind(detail)
        .fetch_one(self.pool())
        .await?)
    }

    /// Counts `count` rejected notifications of a mailbox in the `rejected` event of `at`'s
    /// minute (created on the first, then incremented; the detail becomes `last_reason`), and
    /// prunes the mailbox's counters older than [`REJECTION_RETENTION_DAYS`].
    pub async fn count_webhook_rejections(
        &self,
        mailbox_id: &str,
        count: u64,
        last_reason: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO webhook_events (mailbox_id, at, kind, detail, bucket, count) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (mailbox_id, kind, bucket) WHERE bucket IS NOT NULL DO UPDATE SET
                 count = webhook_events.count + excluded.count, detail = excluded.detail, at = excluded.at",
        )
        .bind(mailbox_id)
        .bind(ts(at))
        .bind(SubscriptionEventKind::Rejected.as_str())
        .bind(last_reason)
        .bind(minute(at))
        .bind(count)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM webhook_events WHERE mailbox_id = $1 AND bucket IS NOT NULL AND bucket < $2",
        )
        .bind(mailbox_id)
        .bind(minute(at - Duration::days(REJECTION_RETENTION_DAYS)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A mailbox's subscription log, oldest first.
    pub async fn webhook_events(&self, mailbox_id: &str) -> Result<Vec<SubscriptionEvent>> {
        sqlx::query(
            "SELECT id, mailbox_id, at, kind, detail, count FROM webhook_events WHERE mailbox_id = $1 ORDER BY id",
        )
        .bind(mailbox_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }

    /// The most recent events of every mailbox, newest first, at most `limit`.
    pub async fn webhook_events_all(&self, limit: u32) -> Result<Vec<SubscriptionEvent>> {
        sqlx::query(
            "SELECT id, mailbox_id, at, kind, detail, count FROM webhook_events ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }
}
