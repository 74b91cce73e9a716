//! The home dashboard: one card per mailbox (its connection, the last 24 hours' emails per
//! status, the oldest email not yet finished), emails per hour over 24 hours and per day over
//! 30 days, and the database's size. Everything comes from kept counters and index seeks, so
//! it answers at once however long the log.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use mailroom_store::inbound::LogStatus;
use mailroom_store::retention::StoreSize;
use mailroom_store::{Mailbox, MailboxMethod};
use serde::Serialize;

use crate::{Core, CoreError};

/// Emails per status in a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub processed: i64,
    pub skipped: i64,
    pub failed: i64,
    pub retrying: i64,
    pub pending: i64,
}

impl StatusCounts {
    /// Every email counted, whatever its status.
    pub fn total(&self) -> i64 {
        self.processed + self.skipped + self.failed + self.retrying + self.pending
    }

    fn add(&mut self, status: LogStatus, n: i64) {
        match status {
            LogStatus::Processed => self.processed += n,
            LogStatus::Skipped => self.skipped += n,
            LogStatus::Failed => self.failed += n,
            LogStatus::Retrying => self.retrying += n,
            LogStatus::Pending => self.pending += n,
        }
    }
}

/// One mailbox's card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MailboxCard {
    pub id: String,
    pub name: String,
    pub method: MailboxMethod,
    pub address: Option<String>,
    pub connected_account: Option<String>,
    pub credential_expires_at: Option<DateTime<Utc>>,
    /// When the Graph subscription of a Webhooks mailbox expires (renewed before it does).
    pub subscription_expires_at: Option<DateTime<Utc>>,
    /// Emails received in the last 24 hours, by status.
    pub last_24h: StatusCounts,
    /// Every email of the mailbox's log, by status (the log's own counts).
    pub total: StatusCounts,
    /// When the oldest email not yet finished was received.
    pub oldest_unfinished_at: Option<DateTime<Utc>>,
}

/// One bar of a chart: a period's emails by status, all mailboxes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Start of the hour or day (UTC).
    pub start: DateTime<Utc>,
    #[serde(flatten)]
    pub counts: StatusCounts,
}

/// The dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dashboard {
    pub generated_at: DateTime<Utc>,
    pub mailboxes: Vec<MailboxCard>,
    /// The last 24 hours, hour by hour (oldest first, the current hour last).
    pub hourly: Vec<Bucket>,
    /// The last 30 days, day by day (UTC; the current day last).
    pub daily: Vec<Bucket>,
    /// Requests made while processing mail over the last 24 hours, hour by hour.
    pub requests: Vec<RequestBucket>,
    pub store: StoreSize,
}

/// One hour of requests made while processing mail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestBucket {
    pub start: DateTime<Utc>,
    pub graph: i64,
    pub psa: i64,
    /// Answered 429, either service.
    pub throttled: i64,
    /// Answered 5xx or not at all, either service.
    pub failed: i64,
    /// Of `throttled` and `failed`, the PSA's own (the dashboard's HaloPSA card).
    pub psa_throttled: i64,
    pub psa_failed: i64,
}

fn card(mailbox: &Mailbox) -> MailboxCard {
    MailboxCard {
        id: mailbox.id.clone(),
        name: mailbox.name.clone(),
        method: mailbox.method,
        address: mailbox
            .mailbox_address
            .clone()
            .or_else(|| mailbox.shared_mailbox.clone()),
        connected_account: mailbox.connected_account.clone(),
        credential_expires_at: mailbox.credential_expires_at,
        subscription_expires_at: None,
        last_24h: StatusCounts::default(),
        total: StatusCounts::default(),
        oldest_unfinished_at: None,
    }
}

/// The start of a stored hour (`YYYY-MM-DDTHH`, UTC).
fn hour_start(hour: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(&format!("{hour}:00:00"), "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

impl Core {
    /// The dashboard now.
    pub async fn dashboard(&self) -> Result<Dashboard, CoreError> {
        self.dashboard_at(Utc::now()).await
    }

    /// A mailbox's emails by status since the counts began, and the oldest one not finished
    /// (the dashboard's cards and `/metrics`, from the store's kept counters).
    pub async fn mailbox_totals(
        &self,
        mailbox_id: &str,
    ) -> Result<(StatusCounts, Option<DateTime<Utc>>), CoreError> {
        let mut total = StatusCounts::default();
        for (status, n) in self.store().status_counts(Some(mailbox_id)).await? {
            total.add(status, n);
        }
        Ok((total, self.store().oldest_unfinished(mailbox_id).await?))
    }

    /// The dashboard as of `now`.
    pub async fn dashboard_at(&self, now: DateTime<Utc>) -> Result<Dashboard, CoreError> {
        let hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
        let day = now.duration_trunc(Duration::days(1)).unwrap_or(now);
        let first_day = day - Duration::days(29);
        let first_hour = hour - Duration::hours(23);
        let mut hourly: BTreeMap<DateTime<Utc>, StatusCounts> = (0..24)
            .map(|i| (first_hour + Duration::hours(i), StatusCounts::default()))
            .collect();
        let mut daily: BTreeMap<DateTime<Utc>, StatusCounts> = (0..30)
            .map(|i| (first_day + Duration::days(i), StatusCounts::default()))
            .collect();
        let mut mailboxes: Vec<MailboxCard> =
            self.store().mailboxes().await?.iter().map(card).collect();
        for count in self.store().hourly_counts(first_day).await? {
            let Some(start) = hour_start(&count.hour) else {
                continue;
            };
            let status = count.state.status();
            if let Some(bucket) =
                daily.get_mut(&start.duration_trunc(Duration::days(1)).unwrap_or(start))
            {
                bucket.add(status, count.n);
            }
            if let Some(bucket) = hourly.get_mut(&start) {
                bucket.add(status, count.n);
                if let Some(card) = mailboxes.iter_mut().find(|c| c.id == count.mailbox_id) {
                    card.last_24h.add(status, count.n);
                }
            }
        }
        for card in &mut mailboxes {
            (card.total, card.oldest_unfinished_at) = self.mailbox_totals(&card.id).await?;
            card.subscription_expires_at = self
                .store()
                .webhook_subscription(&card.id)
                .await?
                .map(|s| s.expires_at);
        }
        let mut requests: BTreeMap<DateTime<Utc>, RequestBucket> = (0..24)
            .map(|i| {
                let start = first_hour + Duration::hours(i);
                (
                    start,
                    RequestBucket {
                        start,
                        ..Default::default()
                    },
                )
            })
            .collect();
        for hour in self.store().request_hourly_counts(first_hour).await? {
            let Some(bucket) = hour_start(&hour.hour).and_then(|h| requests.get_mut(&h)) else {
                continue;
            };
            match hour.service.as_str() {
                "graph" => bucket.graph += hour.requests,
                _ => {
                    bucket.psa += hour.requests;
                    bucket.psa_throttled += hour.throttled;
                    bucket.psa_failed += hour.failed;
                }
            }
            bucket.throttled += hour.throttled;
            bucket.failed += hour.failed;
        }
        let bucket = |(start, counts): (DateTime<Utc>, StatusCounts)| Bucket { start, counts };
        Ok(Dashboard {
            generated_at: now,
            mailboxes,
            hourly: hourly.into_iter().map(bucket).collect(),
            daily: daily.into_iter().map(bucket).collect(),
            requests: requests.into_values().collect(),
            store: self.store().size().await?,
        })
    }
}
