//! Engine events: what the UI shows live (new or changed inbound-log rows, finished attempts,
//! mailbox sync status). Published on a `tokio::sync::broadcast` channel; a slow receiver
//! loses the oldest events (it is told how many through `RecvError::Lagged`) and should then
//! reload the page it shows.

use chrono::{DateTime, Utc};
use mailroom_store::inbound::InboundEmail;
use serde::Serialize;
use tokio::sync::broadcast;

pub use tokio_util::sync::CancellationToken;

/// Capacity of the event channel.
pub const EVENT_CAPACITY: usize = 4096;

/// What a mailbox's sync task is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Reading the inbox or processing mail.
    Scanning,
    /// Waiting for the next interval.
    Idle,
    /// Paused by the admin.
    Paused,
    /// The last scan failed (see `error`); retried at the next interval.
    Error,
    /// The task ended.
    Stopped,
    /// The delegated sign-in was revoked or expired (`invalid_grant`): the task stopped asking
    /// the token endpoint and waits for the admin to sign in again (`error` says why).
    NeedsSignIn,
}

/// A mailbox's sync status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncStatus {
    pub mailbox_id: String,
    pub state: SyncState,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub next_scan_at: Option<DateTime<Utc>>,
    /// Admin-readable error of the last scan.
    pub error: Option<String>,
}

/// One engine event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EngineEvent {
    /// An inbound-log row was added (`new`) or changed; carries the row as it is now.
    Email { email: Box<InboundEmail>, new: bool },
    /// A line of an attempt's processing log, as it is written (the UI's live tail).
    Step {
        email_id: i64,
        mailbox_id: String,
        at: DateTime<Utc>,
        /// `info`, `warn` or `error`.
        level: String,
        message: String,
    },
    /// A processing attempt finished.
    AttemptFinished {
        email_id: i64,
        attempt_id: i64,
        /// `processed`, `skipped` or `failed`.
        result: String,
    },
    /// A mailbox's sync status changed.
    MailboxSync(SyncStatus),
    /// The engine's own state changed (starting, running, degraded, stopping, stopped).
    Engine(crate::engine::EngineState),
    /// This receiver fell behind and `missed` events were dropped: reload what is shown.
    Resync { missed: u64 },
    /// A step of the PSA integration that was green failed its periodic check.
    IntegrationBroken {
        /// The step's id (`connection`, `agent`, …).
        step: String,
        title: String,
        /// What failed, in one line.
        summary: String,
    },
    /// A mailbox's Graph subscription could not be renewed, reauthorized or recreated: Microsoft
    /// 365 may stop telling Mailroom about new mail until it is (the subscription log says why).
    SubscriptionFailed {
        mailbox_id: String,
        /// What failed (`renew: …`, `reauthorize: …`, `recreate: …`).
        detail: String,
    },
    /// A contact import's progress (after each batch).
    ContactImport {
        progress: crate::contacts::run::ImportProgress,
    },
    /// A contact import ended (finished, cancelled, failed, or interrupted by a stop).
    ContactImportDone {
        mailbox_id: String,
        run: Option<Box<mailroom_store::contacts::ImportRun>>,
        /// Why it failed, if it did.
        error: Option<String>,
    },
    /// A problem that needs someone was recorded (error notifications): the desktop shows it
    /// unless the admin turned desktop notifications off.
    NeedsAttention {
        /// `email_failed`, `mailbox_disconnected`, `subscription_lost`, `credential_expiring`,
        /// `psa_unreachable`, `contacts_failed`.
        kind: String,
        title: String,
        detail: String,
        fix: String,
    },
}

/// The sending side of the event channel (cheap to clone).
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<EngineEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with [`EVENT_CAPACITY`].
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(EVENT_CAPACITY);
        EventBus { tx }
    }

    /// Publishes an event (dropped when nobody listens).
    pub fn publish(&self, event: EngineEvent) {
        let _ = self.tx.send(event);
    }

    /// A new receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.tx.subscribe()
    }
}

/// Collects events into batches: flushes when `max` events are waiting or `every` has passed
/// since the first waiting event (the shell sends each batch over a Tauri Channel).
pub async fn batched(
    mut rx: broadcast::Receiver<EngineEvent>,
    every: std::time::Duration,
    max: usize,
    cancel: tokio_util::sync::CancellationToken,
    mut send: impl FnMut(Vec<EngineEvent>) -> bool,
) {
    let mut batch: Vec<EngineEvent> = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = timer => {
                deadline = None;
                if !batch.is_empty() && !send(std::mem::take(&mut batch)) {
                    return;
                }
            }
            received = rx.recv() => match received {
                Ok(event) => {
                    batch.push(event);
                    if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + every);
                    }
                    if batch.len() >= max {
                        deadline = None;
                        if !send(std::mem::take(&mut batch)) {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // The view cannot be patched from the events it still gets: tell it to
                    // reload, in order with the rest of the batch.
                    batch.push(EngineEvent::Resync { missed });
                    if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + every);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
    if !batch.is_empty() {
        send(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The UI (ui/inbound-log.js) reads these exact shapes.
    #[test]
    fn events_serialize_with_a_type_tag() {
        let sync = serde_json::to_value(EngineEvent::MailboxSync(SyncStatus {
            mailbox_id: "m1".into(),
            state: SyncState::Idle,
            last_sync_at: None,
            next_scan_at: None,
            error: None,
        }))
        .unwrap();
        assert_eq!(sync["type"], "mailbox_sync");
        assert_eq!(sync["mailbox_id"], "m1");
        assert_eq!(sync["state"], "idle");
        let done = serde_json::to_value(EngineEvent::AttemptFinished {
            email_id: 7,
            attempt_id: 9,
            result: "processed".into(),
        })
        .unwrap();
        assert_eq!(done["type"], "attempt_finished");
        assert_eq!(done["email_id"], 7);
    }

    #[tokio::test]
    async fn batches_flush_at_the_size_limit_and_when_the_stream_ends() {
        let bus = EventBus::new();
        let rx = bus.subscribe();
        let (tx, mut batches) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(batched(
            rx,
            std::time::Duration::from_secs(3600),
            2,
            CancellationToken::new(),
            move |b| tx.send(b.len()).is_ok(),
        ));
        for id in 0..3 {
            bus.publish(EngineEvent::AttemptFinished {
                email_id: id,
                attempt_id: id,
                result: "processed".into(),
            });
        }
        assert_eq!(batches.recv().await, Some(2));
        // The third would wait for the timer (an hour); closing the bus flushes it.
        drop(bus);
        task.await.unwrap();
        assert_eq!(batches.recv().await, Some(1));
        assert_eq!(batches.recv().await, None);
    }

    /// Issue 24 #3: the timer path, in paused time. A batch that is not full goes out when
    /// `every` has passed since its first event — not before, and without waiting for more.
    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_is_sent_when_its_interval_has_passed() {
        let bus = EventBus::new();
        let rx = bus.subscribe();
        let (tx, mut batches) = tokio::sync::mpsc::unbounded_channel();
        let every = std::time::Duration::from_millis(250);
        let started = tokio::time::Instant::now();
        tokio::spawn(batched(
            rx,
            every,
            100,
            CancellationToken::new(),
            move |b| tx.send((tokio::time::Instant::now(), b.len())).is_ok(),
        ));
        let event = |id| EngineEvent::AttemptFinished {
            email_id: id,
            attempt_id: id,
            result: "processed".into(),
        };
        bus.publish(event(1));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        bus.publish(event(2));
        let (sent_at, len) = batches.recv().await.unwrap();
        assert_eq!(len, 2);
        assert_eq!(
            sent_at - started,
            every,
            "sent `every` after the first event"
        );
        // The next event starts a new interval of its own.
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        let second = tokio::time::Instant::now();
        bus.publish(event(3));
        let (sent_at, len) = batches.recv().await.unwrap();
        assert_eq!(len, 1);
        assert_eq!(sent_at - second, every);
    }

    /// Issue 22: a receiver that fell behind (the window busy, a burst of thousands of events)
    /// is told so in its stream, in order, and can reload instead of silently missing rows.
    #[tokio::test]
    async fn a_lagging_receiver_gets_a_resync_marker() {
        let bus = EventBus::new();
        let rx = bus.subscribe();
        // More than the channel holds, before the forwarder reads anything.
        let overflow = EVENT_CAPACITY as i64 + 10;
        for id in 0..overflow {
            bus.publish(EngineEvent::AttemptFinished {
                email_id: id,
                attempt_id: id,
                result: "processed".into(),
            });
        }
        drop(bus);
        let (tx, mut batches) = tokio::sync::mpsc::unbounded_channel();
        batched(
            rx,
            std::time::Duration::from_millis(10),
            100_000,
            CancellationToken::new(),
            move |b| tx.send(b).is_ok(),
        )
        .await;
        let mut events = Vec::new();
        while let Ok(batch) = batches.try_recv() {
            events.extend(batch);
        }
        assert_eq!(events[0], EngineEvent::Resync { missed: 10 });
        assert_eq!(events.len(), 1 + EVENT_CAPACITY);
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["type"], "resync");
        assert_eq!(json["missed"], 10);
    }
}
