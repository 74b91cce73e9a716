//! What the dashboard reads: emails per received hour, mailbox and state (kept by triggers,
//! migration 0018), requests per hour and service (migration 0020), and the oldest email a
//! mailbox has not finished.

use chrono::{DateTime, Utc};

use crate::inbound::{parse_ts, ts, EmailState};
use crate::{Result, Store};

/// Emails of one mailbox received in one hour, in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    /// `YYYY-MM-DDTHH` (UTC).
    pub hour: String,
    pub mailbox_id: String,
    pub state: EmailState,
    pub n: i64,
}

/// HTTP requests made while processing mail in one hour, to one service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RequestHour {
    /// `YYYY-MM-DDTHH` (UTC).
    pub hour: String,
    /// `graph` or `psa`.
    pub service: String,
    pub requests: i64,
    /// Answered 429 Too Many Requests.
    pub throttled: i64,
    /// Answered 5xx, or not at all.
    pub failed: i64,
}

impl Store {
    /// Requests per hour and service made since `since` (its hour included), oldest first.
    pub async fn request_hourly_counts(&self, since: DateTime<Utc>) -> Result<Vec<RequestHour>> {
        let from = ts(since)[..13].to_string();
        let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT hour, service, requests, throttled, failed FROM request_hourly_counts
             WHERE hour >= $1 ORDER BY hour, service",
        )
        .bind(from)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(hour, service, requests, throttled, failed)| RequestHour {
                hour,
                service,
                requests,
                throttled,
                failed,
            })
            .collect())
    }

    /// Requests per service since the counts began (what `/metrics` exposes as counters).
    pub async fn request_totals(&self) -> Result<Vec<RequestHour>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT service, CAST(SUM(requests) AS BIGINT), CAST(SUM(throttled) AS BIGINT),
                    CAST(SUM(failed) AS BIGINT) FROM request_hourly_counts
             GROUP BY service ORDER BY service",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(service, requests, throttled, failed)| RequestHour {
                hour: String::new(),
                service,
                requests,
                throttled,
                failed,
            })
            .collect())
    }

    /// Emails per hour, mailbox and state, received since `since` (its hour included).
    pub async fn hourly_counts(&self, since: DateTime<Utc>) -> Result<Vec<HourCount>> {
        let from = ts(since)[..13].to_string();
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT hour, mailbox_id, state, n FROM inbound_hourly_counts
             WHERE hour >= $1 AND n > 0 ORDER BY hour",
        )
        .bind(from)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(hour, mailbox_id, state, n)| {
                Ok(HourCount {
                    hour,
                    mailbox_id,
                    state: EmailState::parse(&state)?,
                    n,
                })
            })
            .collect()
    }

    /// When the oldest email a mailbox has not finished (seen, claimed, written, retrying)
    /// was received.
    pub async fn oldest_unfinished(&self, mailbox_id: &str) -> Result<Option<DateTime<Utc>>> {
        // One index seek per state (mailbox, state, received_at), not a scan.
        let oldest: Option<String> = sqlx::query_scalar(
            "SELECT MIN(at) FROM (
                SELECT MIN(received_at) AS at FROM inbound_emails WHERE mailbox_id = $1 AND state = 'seen'
                UNION ALL SELECT MIN(received_at) FROM inbound_emails WHERE mailbox_id = $1 AND state = 'claimed'
                UNION ALL SELECT MIN(received_at) FROM inbound_emails WHERE mailbox_id = $1 AND state = 'psa_written'
                UNION ALL SELECT MIN(received_at) FROM inbound_emails WHERE mailbox_id = $1 AND state = 'retrying')",
        )
        .bind(mailbox_id)
        .fetch_one(self.pool())
        .await?;
        oldest.as_deref().map(parse_ts).transpose()
    }
}
