//! Outgoing mail: each email Mailroom sends (an agent's reply from the PSA, a notification) is
//! an intent stored before anything is sent, then its attempts.
//!
//! Invariants:
//! - One row per cause: `source_key` is unique (the PSA action `psa-action:{ticket}:{action}`),
//!   so a duplicate or replayed webhook adds nothing.
//! - The Internet Message-ID is chosen when the row is made and never changes; the sender
//!   looks it up in Sent Items before sending, so a crash after the send never sends twice.
//! - States move `pending` → `drafted` → `sent`, or to `failed` (a permanent error, or a
//!   resend asked for moves it back to `pending`).

use chrono::{DateTime, Utc};
use mailroom_trace::HttpExchange;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::inbound::{parse_ts, parse_ts_opt as opt_ts, ts, LogLine};
use crate::{Result, Store, StoreError};

/// Where an outgoing email is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundStatus {
    /// Stored; nothing exists in the mailbox yet.
    Pending,
    /// A draft with the chosen Message-ID exists (its id is kept).
    Drafted,
    Sent,
    /// Gave up: a permanent error (its code and message say which).
    Failed,
}

text_enum!(OutboundStatus {
    Pending => "pending",
    Drafted => "drafted",
    Sent => "sent",
    Failed => "failed",
});

/// A new outgoing email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutbound {
    pub source_key: String,
    pub mailbox_id: String,
    pub ticket_id: Option<i64>,
    pub action_id: Option<i64>,
    pub reply_to_message_id: Option<String>,
    pub internet_message_id: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub body_html: String,
    /// PSA attachment ids it carries.
    pub attachment_ids: Vec<i64>,
}

/// A stored outgoing email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboundEmail {
    pub id: i64,
    pub source_key: String,
    pub mailbox_id: String,
    pub ticket_id: Option<i64>,
    pub action_id: Option<i64>,
    pub reply_to_message_id: Option<String>,
    pub internet_message_id: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub body_html: String,
    pub attachment_ids: Vec<i64>,
    pub status: OutboundStatus,
    pub draft_id: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// One attempt at sending.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboundAttempt {
    pub number: i64,
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub result: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub log: Vec<LogLine>,
    pub requests: Vec<HttpExchange>,
}

fn list(text: &str) -> Vec<String> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn outbound_from_row(r: &sqlx::any::AnyRow) -> Result<OutboundEmail> {
    Ok(OutboundEmail {
        id: r.try_get("id")?,
        source_key: r.try_get("source_key")?,
        mailbox_id: r.try_get("mailbox_id")?,
        ticket_id: r.try_get("ticket_id")?,
        action_id: r.try_get("action_id")?,
        reply_to_message_id: r.try_get("reply_to_message_id")?,
        internet_message_id: r.try_get("internet_message_id")?,
        to: list(r.try_get("to_addresses")?),
        cc: list(r.try_get("cc_addresses")?),
        subject: r.try_get("subject")?,
        body_html: r.try_get("body_html")?,
        attachment_ids: serde_json::from_str(r.try_get("attachment_ids")?)
            .map_err(|e| StoreError::Corrupt(format!("attachment ids: {e}")))?,
        status: r.try_get::<&str, _>("status")?.parse()?,
        draft_id: r.try_get("draft_id")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: opt_ts(r.try_get("next_attempt_at")?)?,
        error_code: r.try_get("error_code")?,
        error_message: r.try_get("error_message")?,
        created_at: parse_ts(r.try_get("created_at")?)?,
        sent_at: opt_ts(r.try_get("sent_at")?)?,
    })
}

impl Store {
    /// Stores an outgoing email unless one with the same `source_key` exists; returns its id
    /// and whether it is new.
    pub async fn insert_outbound(
        &self,
        new: &NewOutbound,
        now: DateTime<Utc>,
    ) -> Result<(i64, bool)> {
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO outbound_emails (source_key, mailbox_id, ticket_id, action_id,
               reply_to_message_id, internet_message_id, to_addresses, cc_addresses, subject,
               body_html, attachment_ids, status, created_at, updated_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13, $14)
             ON CONFLICT (source_key) DO NOTHING RETURNING id",
        )
        .bind(&new.source_key)
        .bind(&new.mailbox_id)
        .bind(new.ticket_id)
        .bind(new.action_id)
        .bind(new.reply_to_message_id.as_deref())
        .bind(&new.internet_message_id)
        .bind(new.to.join(";"))
        .bind(new.cc.join(";"))
        .bind(&new.subject)
        .bind(&new.body_html)
        .bind(serde_json::to_string(&new.attachment_ids).unwrap_or_else(|_| "[]".into()))
        .bind(ts(now))
        .bind(ts(now))
        .bind(ts(now))
        .fetch_optional(self.pool())
        .await?;
        match inserted {
            Some(id) => Ok((id, true)),
            None => {
                let id = sqlx::query_scalar("SELECT id FROM outbound_emails WHERE source_key = $1")
                    .bind(&new.source_key)
                    .fetch_one(self.pool())
                    .await?;
                Ok((id, false))
            }
        }
    }

    /// One outgoing email.
    pub async fn outbound(&self, id: i64) -> Result<Option<OutboundEmail>> {
        sqlx::query("SELECT * FROM outbound_emails WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(outbound_from_row)
            .transpose()
    }

    /// Outgoing emails, newest first (of one mailbox when given), at most `limit`, older
    /// than `before_id` when given.
    pub async fn outbound_list(
        &self,
        mailbox_id: Option<&str>,
        limit: i64,
        before_id: Option<i64>,
    ) -> Result<Vec<OutboundEmail>> {
        sqlx::query(
            "SELECT * FROM outbound_emails WHERE ($1 IS NULL OR mailbox_id = $2) AND id < $3
             ORDER BY id DESC LIMIT $4",
        )
        .bind(mailbox_id)
        .bind(mailbox_id)
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(outbound_from_row)
        .collect()
    }

    /// Emails to work on at `now`: pending or drafted, and due.
    pub async fn outbound_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<OutboundEmail>> {
        sqlx::query(
            "SELECT * FROM outbound_emails WHERE status IN ('pending', 'drafted')
               AND (next_attempt_at IS NULL OR next_attempt_at <= $1) ORDER BY id LIMIT $2",
        )
        .bind(ts(now))
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(outbound_from_row)
        .collect()
    }

    /// When the next email falls due (for the sender's sleep), if any waits.
    pub async fn outbound_next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let next: Option<String> = sqlx::query_scalar(
            "SELECT MIN(COALESCE(next_attempt_at, created_at)) FROM outbound_emails
             WHERE status IN ('pending', 'drafted')",
        )
        .fetch_one(self.pool())
        .await?;
        opt_ts(next)
    }

    /// Keeps the draft's Graph id (status `drafted`).
    pub async fn outbound_drafted(
        &self,
        id: i64,
        draft_id: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE outbound_emails SET status = 'drafted', draft_id = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(draft_id)
        .bind(ts(now))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks the email sent.
    pub async fn outbound_sent(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE outbound_emails SET status = 'sent', sent_at = $1, updated_at = $2,
               next_attempt_at = NULL, error_code = NULL, error_message = NULL WHERE id = $3",
        )
        .bind(ts(now))
        .bind(ts(now))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a failure: tried again at `retry_at`, or (`None`) given up.
    pub async fn outbound_failed(
        &self,
        id: i64,
        code: &str,
        message: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE outbound_emails SET error_code = $1, error_message = $2, updated_at = $3,
               next_attempt_at = $4,
               status = CASE WHEN $5 IS NULL THEN 'failed' ELSE status END
             WHERE id = $6",
        )
        .bind(code)
        .bind(message)
        .bind(ts(now))
        .bind(retry_at.map(ts))
        .bind(retry_at.map(ts))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// *Resend*: a failed email is tried again now (a sent one stays sent).
    pub async fn outbound_resend(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbound_emails SET status = CASE WHEN draft_id IS NULL THEN 'pending' ELSE 'drafted' END,
               next_attempt_at = $1, updated_at = $2 WHERE id = $3 AND status = 'failed'",
        )
        .bind(ts(now))
        .bind(ts(now))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Starts an attempt; returns (attempt id, its number).
    pub async fn outbound_start_attempt(
        &self,
        id: i64,
        trigger: &str,
        now: DateTime<Utc>,
    ) -> Result<(i64, i64)> {
        let mut tx = self.pool().begin().await?;
        let number: i64 = sqlx::query_scalar(
            "UPDATE outbound_emails SET attempts = attempts + 1, updated_at = $1 WHERE id = $2 RETURNING attempts",
        )
        .bind(ts(now))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let attempt: i64 = sqlx::query_scalar(
            "INSERT INTO outbound_attempts (outbound_id, number, trigger, started_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(id)
        .bind(number)
        .bind(trigger)
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((attempt, number))
    }

    /// Finishes an attempt with its result, log and requests.
    pub async fn outbound_finish_attempt(
        &self,
        attempt_id: i64,
        result: &str,
        error: Option<(&str, &str)>,
        log: &[LogLine],
        requests: &[HttpExchange],
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE outbound_attempts SET finished_at = $1, result = $2, error_code = $3, error_message = $4,
               log = $5, requests = $6 WHERE id = $7",
        )
        .bind(ts(now))
        .bind(result)
        .bind(error.map(|e| e.0))
        .bind(error.map(|e| e.1))
        .bind(serde_json::to_string(log).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(requests).unwrap_or_else(|_| "[]".into()))
        .bind(attempt_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// An email's attempts, oldest first.
    pub async fn outbound_attempts(&self, id: i64) -> Result<Vec<OutboundAttempt>> {
        sqlx::query("SELECT * FROM outbound_attempts WHERE outbound_id = $1 ORDER BY number")
            .bind(id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                let log: String = r.try_get("log")?;
                let requests: String = r.try_get("requests")?;
                Ok(OutboundAttempt {
                    number: r.try_get("number")?,
                    trigger: r.try_get("trigger")?,
                    started_at: parse_ts(r.try_get("started_at")?)?,
                    finished_at: opt_ts(r.try_get("finished_at")?)?,
                    result: r.try_get("result")?,
                    error_code: r.try_get("error_code")?,
                    error_message: r.try_get("error_message")?,
                    log: serde_json::from_str(&log)
                        .map_err(|e| StoreError::Corrupt(format!("attempt log: {e}")))?,
                    requests: serde_json::from_str(&requests)
                        .map_err(|e| StoreError::Corrupt(format!("attempt requests: {e}")))?,
                })
            })
            .collect()
    }

    /// Marks the PSA's agent action handled (an outgoing email was made for it, or it sends
    /// nothing).
    pub async fn mark_psa_agent_action_handled(
        &self,
        ticket_id: i64,
        action_id: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE psa_agent_actions SET handled_at = $1 WHERE ticket_id = $2 AND action_id = $3",
        )
        .bind(ts(now))
        .bind(ticket_id)
        .bind(action_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(key: &str) -> NewOutbound {
        NewOutbound {
            source_key: key.into(),
            mailbox_id: "mb".into(),
            ticket_id: Some(7),
            action_id: Some(3),
            reply_to_message_id: None,
            internet_message_id: format!("<{key}@mailroom.invalid>"),
            to: vec!["pat@fabrikam.test".into()],
            cc: vec![],
            subject: "[ID:7] Printer".into(),
            body_html: "<p>Done</p>".into(),
            attachment_ids: vec![],
        }
    }

    crate::testing::on_both!(one_row_per_cause_and_the_states_move_forward);
    async fn one_row_per_cause_and_the_states_move_forward(store: Store) {
        // The store keeps milliseconds.
        let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
        let (id, fresh) = store.insert_outbound(&new("a"), now).await.unwrap();
        assert!(fresh);
        assert_eq!(
            store.insert_outbound(&new("a"), now).await.unwrap(),
            (id, false)
        );
        assert_eq!(store.outbound_due(now, 10).await.unwrap().len(), 1);
        store.outbound_drafted(id, "draft-1", now).await.unwrap();
        let later = now + chrono::Duration::seconds(30);
        store
            .outbound_failed(id, "throttled", "429", Some(later), now)
            .await
            .unwrap();
        assert!(store.outbound_due(now, 10).await.unwrap().is_empty());
        assert_eq!(store.outbound_next_due().await.unwrap(), Some(later));
        let due = store.outbound_due(later, 10).await.unwrap();
        assert_eq!(due[0].status, OutboundStatus::Drafted);
        assert_eq!(due[0].draft_id.as_deref(), Some("draft-1"));
        store.outbound_sent(id, later).await.unwrap();
        assert!(
            !store.outbound_resend(id, later).await.unwrap(),
            "a sent email stays sent"
        );
        let (attempt, number) = store.outbound_start_attempt(id, "new", now).await.unwrap();
        assert_eq!(number, 1);
        store
            .outbound_finish_attempt(attempt, "sent", None, &[], &[], now)
            .await
            .unwrap();
        assert_eq!(
            store.outbound_attempts(id).await.unwrap()[0]
                .result
                .as_deref(),
            Some("sent")
        );
        let (other, _) = store.insert_outbound(&new("b"), now).await.unwrap();
        store
            .outbound_failed(other, "forbidden", "no Mail.Send", None, now)
            .await
            .unwrap();
        assert_eq!(
            store.outbound(other).await.unwrap().unwrap().status,
            OutboundStatus::Failed
        );
        assert!(store.outbound_resend(other, now).await.unwrap());
        assert_eq!(
            store.outbound(other).await.unwrap().unwrap().status,
            OutboundStatus::Pending
        );
    }
}
