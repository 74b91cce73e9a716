//! What the dashboard reads: emails per received hour, mailbox and state (kept by triggers,
//! migration 0018) and the oldest email a mailbox has not finished.

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

impl Store {
    /// Emails per hour, mailbox and state, received since `since` (its hour included).
    pub async fn hourly_counts(&self, since: DateTime<Utc>) -> Result<Vec<HourCount>> {
        let from = ts(since)[..13].to_string();
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT hour, mailbox_id, state, n FROM inbound_hourly_counts
             WHERE hour >= ? AND n > 0 ORDER BY hour",
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
                SELECT MIN(received_at) AS at FROM inbound_emails WHERE mailbox_id = ?1 AND state = 'seen'
                UNION ALL SELECT MIN(received_at) FROM inbound_emails WHERE mailbox_id = ?1 AND state = 'claimed'
                UNION ALL SELECT MIN(received_at) FROM inbound_emails WHERE mailbox_id = ?1 AND state = 'psa_written'
                UNION ALL SELECT MIN(received_at) FROM inbound_emails WHERE mailbox_id = ?1 AND state = 'retrying')",
        )
        .bind(mailbox_id)
        .fetch_one(self.pool())
        .await?;
        oldest.as_deref().map(parse_ts).transpose()
    }
}
