//! Imports in the background of the running engine: started from the window (one at a time
//! per mailbox), cancelled from it, started on each mailbox's schedule, their progress
//! published as [`EngineEvent::ContactImport`]; a failed import is tried again with back-off. A stop of the engine drops an import where it
//! is (its run is marked interrupted and resumed by the next import of that mailbox; an
//! address claimed mid-request is settled from HaloPSA's list then).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailroom_store::contacts::{ImportTrigger, RunState};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::run::{ImportProgress, RunOptions};
use crate::events::{EngineEvent, EventBus};
use crate::{Core, CoreError};

/// A mailbox's import schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContactSchedule {
    /// "Import contacts from this mailbox on a schedule".
    pub enabled: bool,
    /// Minutes between the starts of two scheduled imports.
    pub every_minutes: u32,
}

impl Default for ContactSchedule {
    fn default() -> Self {
        Self {
            enabled: false,
            every_minutes: 60,
        }
    }
}

/// The shortest and longest intervals a schedule takes.
pub const SCHEDULE_MINUTES: std::ops::RangeInclusive<u32> = 5..=10_080;

fn schedule_key(mailbox_id: &str) -> String {
    format!("contacts.schedule.{mailbox_id}")
}

impl Core {
    pub async fn contact_schedule(&self, mailbox_id: &str) -> Result<ContactSchedule, CoreError> {
        Ok(self
            .store()
            .setting(&schedule_key(mailbox_id))
            .await?
            .unwrap_or_default())
    }

    pub async fn set_contact_schedule(
        &self,
        mailbox_id: &str,
        schedule: ContactSchedule,
    ) -> Result<ContactSchedule, CoreError> {
        if !SCHEDULE_MINUTES.contains(&schedule.every_minutes) {
            return Err(CoreError::InvalidInput(format!(
                "Import every {} to {} minutes (one week), not {}.",
                SCHEDULE_MINUTES.start(),
                SCHEDULE_MINUTES.end(),
                schedule.every_minutes
            )));
        }
        self.store().mailbox(mailbox_id).await?;
        self.store()
            .set_setting(&schedule_key(mailbox_id), &schedule)
            .await?;
        Ok(schedule)
    }

    /// Whether an import of the mailbox is due at `now`, and with which trigger: a run that
    /// failed (HaloPSA or Microsoft 365 unreachable, throttled past the wait) is tried again
    /// after 1, 2, 4 … up to 60 minutes, at most [`IMPORT_RETRIES`] times, as email processing
    /// is; otherwise the schedule's import when it is on and its interval has passed since the
    /// last scheduled run started.
    pub async fn contact_import_due(
        &self,
        mailbox_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ImportTrigger>, CoreError> {
        let runs = self
            .store()
            .contact_import_runs(Some(mailbox_id), 50)
            .await?;
        let failed_in_a_row = runs
            .iter()
            .take_while(|r| matches!(r.state, RunState::Failed | RunState::Interrupted))
            .count();
        if let Some(last) = runs.first().filter(|_| failed_in_a_row > 0) {
            if failed_in_a_row > IMPORT_RETRIES {
                // Given up until the admin starts one or the schedule comes round.
            } else {
                let wait =
                    chrono::Duration::minutes((1i64 << (failed_in_a_row - 1).min(6)).min(60));
                let since = last.finished_at.unwrap_or(last.started_at);
                return Ok((now - since >= wait).then_some(last.trigger));
            }
        }
        let schedule = self.contact_schedule(mailbox_id).await?;
        if !schedule.enabled {
            return Ok(None);
        }
        let last = runs
            .into_iter()
            .find(|r| r.trigger == ImportTrigger::Scheduled);
        let due = last.is_none_or(|r| {
            now - r.started_at >= chrono::Duration::minutes(schedule.every_minutes.into())
        });
        Ok(due.then_some(ImportTrigger::Scheduled))
    }
}

/// How often a failed import is tried again before Mailroom waits for the admin or the
/// schedule.
pub const IMPORT_RETRIES: usize = 6;

/// The engine's contact imports.
pub struct ContactImports {
    core: Core,
    events: EventBus,
    shutdown: CancellationToken,
    running: Mutex<HashMap<String, CancellationToken>>,
}

impl ContactImports {
    pub fn new(core: Core, events: EventBus, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            core,
            events,
            shutdown,
            running: Mutex::default(),
        })
    }

    /// The mailboxes whose import runs now.
    pub fn running(&self) -> Vec<String> {
        self.running
            .lock()
            .expect("imports lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Starts an import of the mailbox in the background (resuming its interrupted run).
    pub fn start(
        self: &Arc<Self>,
        mailbox_id: &str,
        trigger: ImportTrigger,
    ) -> Result<(), CoreError> {
        if self.shutdown.is_cancelled() {
            return Err(CoreError::Busy("Mailroom is stopping.".into()));
        }
        let cancel = CancellationToken::new();
        {
            let mut running = self.running.lock().expect("imports lock");
            if running.contains_key(mailbox_id) {
                return Err(CoreError::Busy(
                    "An import of this mailbox's contacts is already running.".into(),
                ));
            }
            running.insert(mailbox_id.to_string(), cancel.clone());
        }
        let this = self.clone();
        let mailbox_id = mailbox_id.to_string();
        tokio::spawn(async move {
            this.run(&mailbox_id, trigger, cancel).await;
            this.running
                .lock()
                .expect("imports lock")
                .remove(&mailbox_id);
        });
        Ok(())
    }

    /// Cancels a mailbox's running import (it stops after the batch in flight).
    pub fn cancel(&self, mailbox_id: &str) -> bool {
        match self.running.lock().expect("imports lock").get(mailbox_id) {
            Some(c) => {
                c.cancel();
                true
            }
            None => false,
        }
    }

    async fn run(&self, mailbox_id: &str, trigger: ImportTrigger, cancel: CancellationToken) {
        let events = self.events.clone();
        let progress = Arc::new(move |p: ImportProgress| {
            events.publish(EngineEvent::ContactImport { progress: p });
        });
        let import = self.core.run_contact_import(
            mailbox_id,
            RunOptions {
                trigger,
                ..RunOptions::default()
            },
            Some(progress),
            cancel,
        );
        let (run, error) = tokio::select! {
            result = import => match result {
                Ok(run) => (Some(run), None),
                Err(e) => {
                    tracing::warn!(mailbox = mailbox_id, "contact import failed: {e}");
                    (None, Some(e.to_string()))
                }
            },
            // Stopping: the import is dropped where it is; its run resumes next time.
            _ = self.shutdown.cancelled() => {
                let store = self.core.store();
                let _ = store.interrupt_contact_imports().await;
                let run = store
                    .contact_import_runs(Some(mailbox_id), 1)
                    .await
                    .ok()
                    .and_then(|r| r.into_iter().next())
                    .filter(|r| r.state == RunState::Interrupted);
                (run, None)
            }
        };
        let run = match run {
            Some(run) => Some(run),
            None => self
                .core
                .store()
                .contact_import_runs(Some(mailbox_id), 1)
                .await
                .ok()
                .and_then(|r| r.into_iter().next()),
        };
        self.events.publish(EngineEvent::ContactImportDone {
            mailbox_id: mailbox_id.to_string(),
            run: run.map(Box::new),
            error,
        });
    }

    /// Starts each mailbox's scheduled import when it is due, checking every `every`, until
    /// the engine stops. Runs left running by a process that stopped are marked interrupted
    /// first (the engine holds the data directory's lock: no other process runs one).
    pub async fn schedule(self: Arc<Self>, every: Duration) {
        if let Err(e) = self.core.store().interrupt_contact_imports().await {
            tracing::warn!("could not mark stopped contact imports interrupted: {e}");
        }
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let Ok(mailboxes) = self.core.store().mailboxes().await else {
                continue;
            };
            for m in mailboxes {
                if self.running().contains(&m.id) {
                    continue;
                }
                match self.core.contact_import_due(&m.id, Utc::now()).await {
                    Ok(Some(trigger)) => {
                        let _ = self.start(&m.id, trigger);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(mailbox = %m.name, "contact schedule unreadable: {e}"),
                }
            }
        }
    }
}
