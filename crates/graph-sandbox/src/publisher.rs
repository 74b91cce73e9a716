//! The change-notification publisher: POSTs notification and lifecycle payloads to
//! subscribers with Graph's 3 s timeout, retries failures with exponential backoff over a
//! retry window, and can be told to drop notifications (which the app must recover by delta).
//!
//! It runs on its own thread with its own Tokio runtime so that [`crate::GraphSandbox::deliver`]
//! works from any context (sync tests, the control API, another runtime). The thread ends when
//! the last [`crate::GraphSandbox`] clone is dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailroom_clock::SharedClock;
use serde::Serialize;
use tokio::sync::mpsc;

/// Knobs of the notification publisher and of subscription creation.
#[derive(Debug, Clone, PartialEq)]
pub struct PublisherOptions {
    /// Drop (never send) the next N change notifications.
    pub drop_next: u32,
    /// Emit a `missed` lifecycle event when a change notification is dropped.
    pub emit_missed_on_drop: bool,
    /// Time to wait for a 2xx from a notification endpoint (Graph: 3 s).
    pub timeout: Duration,
    /// How long failed notifications are retried before being discarded (Graph: 4 h).
    pub retry_window: chrono::Duration,
    /// First retry delay; doubles per attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest delay between retries.
    pub max_backoff: Duration,
    /// Longest allowed subscription lifetime in minutes ([UNCERTAIN] 4,230 vs 10,070; default 4,230).
    pub max_expiration_minutes: i64,
    /// Time the validation handshake may take (Graph: 10 s).
    pub validation_timeout: Duration,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        Self {
            drop_next: 0,
            emit_missed_on_drop: false,
            timeout: Duration::from_secs(3),
            retry_window: chrono::Duration::hours(4),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_expiration_minutes: 4230,
            validation_timeout: Duration::from_secs(10),
        }
    }
}

/// Lifecycle events Graph sends to `lifecycleNotificationUrl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LifecycleEvent {
    /// The access token or subscription needs reauthorizing.
    ReauthorizationRequired,
    /// The subscription was removed (it is deleted from the emulator).
    SubscriptionRemoved,
    /// Notifications were missed; the app must resync with delta.
    Missed,
}

impl LifecycleEvent {
    /// The wire value (`reauthorizationRequired`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ReauthorizationRequired => "reauthorizationRequired",
            Self::SubscriptionRemoved => "subscriptionRemoved",
            Self::Missed => "missed",
        }
    }
}

/// What a notification record was about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum NotificationKind {
    /// A change notification (`created`, `updated`, `deleted`).
    Change(String),
    /// A lifecycle notification.
    Lifecycle(LifecycleEvent),
}

/// Where a notification ended up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum NotificationOutcome {
    /// Still being attempted.
    Pending,
    /// The receiver answered 2xx with this status.
    Delivered(u16),
    /// Dropped on purpose (publisher knob); never sent.
    Dropped,
    /// Retried for the whole window without a 2xx; discarded.
    GaveUp,
}

/// One notification the publisher handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationRecord {
    pub subscription_id: String,
    pub url: String,
    pub kind: NotificationKind,
    /// HTTP attempts made so far.
    pub attempts: u32,
    pub outcome: NotificationOutcome,
    /// Status codes / errors seen, in order.
    pub failures: Vec<String>,
}

pub(crate) struct Job {
    pub subscription_id: String,
    pub url: String,
    pub kind: NotificationKind,
    pub body: serde_json::Value,
    /// Lifecycle URL and payload to use for a `missed` event when this job is dropped.
    pub missed: Option<(String, serde_json::Value)>,
}

pub(crate) struct Publisher {
    tx: mpsc::UnboundedSender<Job>,
    pub options: Arc<Mutex<PublisherOptions>>,
    pub log: Arc<Mutex<Vec<NotificationRecord>>>,
}

impl Publisher {
    pub fn start(clock: SharedClock) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let options = Arc::new(Mutex::new(PublisherOptions::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (opts2, log2) = (options.clone(), log.clone());
        std::thread::Builder::new()
            .name("graph-sandbox-publisher".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("publisher runtime");
                rt.block_on(async move {
                    let client = reqwest::Client::builder()
                        .no_proxy()
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .expect("publisher HTTP client");
                    while let Some(job) = rx.recv().await {
                        let dropped = {
                            let mut o = opts2.lock().expect("publisher options");
                            if matches!(job.kind, NotificationKind::Change(_)) && o.drop_next > 0 {
                                o.drop_next -= 1;
                                Some(o.emit_missed_on_drop)
                            } else {
                                None
                            }
                        };
                        if let Some(emit_missed) = dropped {
                            log2.lock()
                                .expect("publisher log")
                                .push(NotificationRecord {
                                    subscription_id: job.subscription_id.clone(),
                                    url: job.url.clone(),
                                    kind: job.kind.clone(),
                                    attempts: 0,
                                    outcome: NotificationOutcome::Dropped,
                                    failures: vec![],
                                });
                            match (emit_missed, job.missed) {
                                (true, Some((url, body))) => Job {
                                    subscription_id: job.subscription_id,
                                    url,
                                    kind: NotificationKind::Lifecycle(LifecycleEvent::Missed),
                                    body,
                                    missed: None,
                                },
                                _ => continue,
                            }
                            .spawn(&client, &opts2, &log2, &clock);
                            continue;
                        }
                        job.spawn(&client, &opts2, &log2, &clock);
                    }
                });
            })
            .expect("spawning the publisher thread");
        Self { tx, options, log }
    }

    pub fn send(&self, job: Job) {
        // The receiver lives as long as the publisher thread, which outlives every sender.
        let _ = self.tx.send(job);
    }
}

impl Job {
    fn spawn(
        self,
        client: &reqwest::Client,
        options: &Arc<Mutex<PublisherOptions>>,
        log: &Arc<Mutex<Vec<NotificationRecord>>>,
        clock: &SharedClock,
    ) {
        let index = {
            let mut l = log.lock().expect("publisher log");
            l.push(NotificationRecord {
                subscription_id: self.subscription_id.clone(),
                url: self.url.clone(),
                kind: self.kind.clone(),
                attempts: 0,
                outcome: NotificationOutcome::Pending,
                failures: vec![],
            });
            l.len() - 1
        };
        let (client, options, log, clock) =
            (client.clone(), options.clone(), log.clone(), clock.clone());
        tokio::spawn(async move {
            let first = clock.now();
            let mut backoff = options.lock().expect("publisher options").initial_backoff;
            loop {
                let (timeout, window, max_backoff) = {
                    let o = options.lock().expect("publisher options");
                    (o.timeout, o.retry_window, o.max_backoff)
                };
                let result = client
                    .post(&self.url)
                    .header("content-type", "application/json; charset=utf-8")
                    .timeout(timeout)
                    .body(self.body.to_string())
                    .send()
                    .await;
                let failure = match result {
                    Ok(r) if r.status().is_success() => {
                        let mut l = log.lock().expect("publisher log");
                        l[index].attempts += 1;
                        l[index].outcome = NotificationOutcome::Delivered(r.status().as_u16());
                        return;
                    }
                    Ok(r) => format!("HTTP {}", r.status().as_u16()),
                    Err(e) if e.is_timeout() => {
                        format!("no response within {} ms", timeout.as_millis())
                    }
                    Err(e) => format!("request failed: {e}"),
                };
                tracing::debug!(url = %self.url, %failure, "notification delivery failed; will retry");
                {
                    let mut l = log.lock().expect("publisher log");
                    l[index].attempts += 1;
                    l[index].failures.push(failure);
                    if clock.now() - first >= window {
                        l[index].outcome = NotificationOutcome::GaveUp;
                        return;
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
                if clock.now() - first >= window {
                    log.lock().expect("publisher log")[index].outcome = NotificationOutcome::GaveUp;
                    return;
                }
            }
        });
    }
}
