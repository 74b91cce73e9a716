//! Retention: how long an email's attempts (with their requests and processing log) and the
//! bodies of its HTTP exchanges are kept, and the pruning the engine runs in the background
//! (`EngineOptions::prune_every`; `mailroom retention --prune-now`). Pruning goes in batches
//! of [`PRUNE_BATCH`], each its own short write, with a pause between them so processing goes
//! on meanwhile, and stops at cancellation. An email's own row always stays (see
//! `mailroom_store::retention`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use mailroom_store::retention::StoreSize;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{Core, CoreError};

/// Settings key of [`RetentionSettings`].
const SETTINGS_KEY: &str = "retention";

/// Rows per pruning write.
pub const PRUNE_BATCH: i64 = 500;

/// The pause between two pruning writes: processing's writes get the database in between.
const PRUNE_PAUSE: Duration = Duration::from_millis(25);

/// Free pages given back per step after pruning.
const RECLAIM_PAGES: i64 = 2_000;

/// How long what is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionSettings {
    /// Days the request and response bodies of an attempt's HTTP exchanges are kept (the
    /// exchange itself — method, URL, status, headers, timing — stays as long as its attempt).
    pub request_bodies_days: u32,
    /// Days an email's attempts, their exchanges and processing log lines are kept.
    pub attempts_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            request_bodies_days: 30,
            attempts_days: 180,
        }
    }
}

/// What one pruning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub request_bodies: u64,
    pub attempts: u64,
    /// Bytes the database file gave back to the file system.
    pub reclaimed_bytes: u64,
    /// Whether the pass stopped early (Mailroom stopping).
    pub interrupted: bool,
}

impl Core {
    /// The retention settings (the defaults until changed).
    pub async fn retention(&self) -> Result<RetentionSettings, CoreError> {
        Ok(self
            .store()
            .setting::<RetentionSettings>(SETTINGS_KEY)
            .await?
            .unwrap_or_default())
    }

    /// Changes the retention settings: 1 to 3,650 days each, bodies no longer than attempts.
    pub async fn set_retention(&self, settings: RetentionSettings) -> Result<(), CoreError> {
        let days = 1..=3650;
        if !days.contains(&settings.request_bodies_days) || !days.contains(&settings.attempts_days)
        {
            return Err(CoreError::InvalidInput(
                "Keep things between 1 and 3,650 days.".into(),
            ));
        }
        if settings.request_bodies_days > settings.attempts_days {
            return Err(CoreError::InvalidInput(format!(
                "Request bodies cannot be kept longer ({} days) than the attempts they belong to ({} days).",
                settings.request_bodies_days, settings.attempts_days
            )));
        }
        self.store().set_setting(SETTINGS_KEY, &settings).await?;
        Ok(())
    }

    /// The database's size (for the dashboard and `mailroom retention`).
    pub async fn store_size(&self) -> Result<StoreSize, CoreError> {
        Ok(self.store().size().await?)
    }

    /// Prunes now what the settings no longer keep (the admin's *Prune now*).
    pub async fn prune_now(&self) -> Result<PruneReport, CoreError> {
        self.prune(Utc::now(), &CancellationToken::new()).await
    }

    /// Prunes everything older than the settings allow at `now`, batch by batch, then gives
    /// the freed pages back; stops between batches when `cancel` fires.
    pub async fn prune(
        &self,
        now: DateTime<Utc>,
        cancel: &CancellationToken,
    ) -> Result<PruneReport, CoreError> {
        let settings = self.retention().await?;
        let bodies_before = now - chrono::Duration::days(settings.request_bodies_days.into());
        let attempts_before = now - chrono::Duration::days(settings.attempts_days.into());
        let mut report = PruneReport::default();
        // Processes silent for a week leave the console's list.
        self.store().prune_heartbeats(now).await?;
        // Attempts first: their bodies go with them.
        for step in [Step::Attempts, Step::Bodies, Step::Reclaim] {
            loop {
                if cancel.is_cancelled() {
                    report.interrupted = true;
                    return Ok(report);
                }
                let done = match step {
                    Step::Attempts => {
                        let n = self
                            .store()
                            .prune_attempts(attempts_before, PRUNE_BATCH)
                            .await?;
                        report.attempts += n;
                        n
                    }
                    Step::Bodies => {
                        let n = self
                            .store()
                            .prune_request_bodies(bodies_before, PRUNE_BATCH)
                            .await?;
                        report.request_bodies += n;
                        n
                    }
                    Step::Reclaim => {
                        let n = self.store().reclaim_free_pages(RECLAIM_PAGES).await?;
                        report.reclaimed_bytes += n;
                        n
                    }
                };
                if done == 0 {
                    break;
                }
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(PRUNE_PAUSE) => {}
                }
            }
        }
        if report.attempts + report.request_bodies > 0 {
            tracing::info!(
                attempts = report.attempts,
                request_bodies = report.request_bodies,
                reclaimed_bytes = report.reclaimed_bytes,
                "old processing details pruned"
            );
        }
        Ok(report)
    }
}

#[derive(Clone, Copy)]
enum Step {
    Attempts,
    Bodies,
    Reclaim,
}
