//! The engine handle: one running engine per process, the same for `mailroom run` and the app.
//!
//! [`Engine::start`] releases the claims a killed process left (it takes the data directory's
//! lock as proof that no other process works on the store), then spawns one supervising task
//! on the caller's tokio runtime. That task brings the engine up — the PSA client and the
//! pipeline, the webhook receiver when a Webhooks mailbox exists, one sync task per enabled,
//! connected mailbox — and keeps it up: a failed step is retried with back-off, mailboxes that
//! could not start (credentials unreadable, not signed in yet) are tried again every
//! `refresh_every` or at once on [`EngineHandle::refresh`]. Its state (starting, running,
//! degraded with a reason, stopping, stopped) is published on the event bus as
//! [`EngineEvent::Engine`], so front ends only show it.
//!
//! [`EngineHandle::stop`] cancels everything and returns once the mailbox tasks have released
//! their claims (see the stop guarantee in `sync`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailroom_http::Backoff;
use mailroom_store::{DataDirLock, MailboxMethod};
use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::contacts::imports::ContactImports;
use crate::events::{EngineEvent, EventBus, SyncStatus};
use crate::pipeline::Pipeline;
use crate::sync::{ScanReport, SyncOptions, SyncSupervisor};
use crate::webhooks::Webhooks;
use crate::{Core, CoreError, ErrorCode};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Tuning of the mailbox tasks.
    pub sync: SyncOptions,
    /// Serve the webhook receiver on any free port instead of the configured one (sandbox
    /// mode, tests).
    pub webhook_any_port: bool,
    /// Create a Graph subscription for every Webhooks mailbox that has none (sandbox mode:
    /// the emulated Graph reaches the local receiver directly; a real tenant needs the public
    /// URL set up first, so production leaves this to the admin).
    pub create_missing_subscriptions: bool,
    /// Back-off between attempts of a start-up that failed (no PSA connection, the receiver's
    /// port taken, …).
    pub start_retry: Backoff,
    /// How often mailboxes that could not start are tried again.
    pub refresh_every: Duration,
    /// How long [`EngineHandle::stop`] waits for the tasks (they stop within about a second;
    /// this bounds a stuck store).
    pub stop_timeout: Duration,
    /// How often the PSA integration's steps are checked again (also once at start): a step
    /// that was green and broke since is published as [`EngineEvent::IntegrationBroken`].
    pub integration_check_every: Duration,
    /// How often agents' replies reported by the PSA's webhook are queued and due outgoing
    /// mail is sent.
    pub outbound_every: Duration,
    /// How often expiring credentials are looked for and due notification digests queued.
    pub problems_every: Duration,
    /// How often the mailboxes' contact import schedules are looked at.
    pub contact_schedule_every: Duration,
    /// How often old attempts and request bodies are pruned (also once at start; see
    /// [`crate::retention`]).
    pub prune_every: Duration,
    /// Whether this process processes mail: reads mailboxes, serves the webhook receiver,
    /// writes tickets, sends mail, prunes, runs scheduled imports. Off, it only shows what the
    /// service's workers on the shared database do ([`EngineState::Watching`]; the desktop
    /// console, see [`crate::console`]).
    pub process_mail: bool,
    /// Whether other workers' changes on a shared database are published on the event bus as
    /// they happen (the desktop window shows them; a service worker has no window to show
    /// them in).
    pub hear_other_workers: bool,
    /// What this process is, in the list of processes on the database (`service`,
    /// `desktop`).
    pub role: &'static str,
    /// How often this process records that it is alive ([`mailroom_store::heartbeats`]).
    pub heartbeat_every: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            sync: SyncOptions::default(),
            webhook_any_port: false,
            create_missing_subscriptions: false,
            start_retry: Backoff::new(Duration::from_secs(5), Duration::from_secs(300)),
            refresh_every: Duration::from_secs(60),
            stop_timeout: Duration::from_millis(1500),
            integration_check_every: Duration::from_secs(3600),
            outbound_every: Duration::from_secs(5),
            problems_every: Duration::from_secs(60),
            contact_schedule_every: Duration::from_secs(60),
            prune_every: Duration::from_secs(3600),
            process_mail: true,
            hear_other_workers: false,
            role: "service",
            heartbeat_every: Duration::from_secs(10),
        }
    }
}

/// What the engine is doing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EngineState {
    /// Bringing itself up.
    Starting,
    /// Up; `mailboxes` are being synced.
    Running { mailboxes: usize },
    /// Partly or not at all up; tried again at `retry_at`.
    Degraded {
        code: ErrorCode,
        reason: String,
        retry_at: Option<DateTime<Utc>>,
        mailboxes: usize,
    },
    /// Processes no mail here: the workers sharing the database do; their changes are shown
    /// as they happen.
    Watching,
    /// Stopping its tasks.
    Stopping,
    /// Stopped.
    Stopped,
}

/// A mailbox as the last start-up round left it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MailboxStart {
    pub id: String,
    pub name: String,
    pub method: MailboxMethod,
    /// `None`: syncing; otherwise why not (disabled, not signed in, …).
    pub not_synced: Option<String>,
}

/// The last start-up round: every mailbox and the webhook receiver.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StartReport {
    pub mailboxes: Vec<MailboxStart>,
    /// The receiver's local address and the base URL Graph posts to, when it runs.
    pub receiver: Option<(String, String)>,
}

/// Why an engine call failed. Each maps to a stable [`ErrorCode`].
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine is not up (yet); the reason is the degraded state's.
    #[error("Mailroom is not processing mail yet: {0}")]
    NotRunning(String),
    /// The mailbox has no sync task (disabled, or not connected).
    #[error("this mailbox is not being synced; connect it first")]
    MailboxNotSynced(String),
    /// The mailbox's task or the engine stopped during the call.
    #[error("Mailroom is stopping")]
    Stopping,
    /// Reading the mailbox failed (in plain words).
    #[error("{0}")]
    Scan(String),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl EngineError {
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::NotRunning(_) => ErrorCode::NotConfigured,
            EngineError::MailboxNotSynced(_) => ErrorCode::NotConnected,
            EngineError::Stopping => ErrorCode::Internal,
            EngineError::Scan(_) => ErrorCode::GraphFailed,
            EngineError::Core(e) => e.code(),
        }
    }
}

impl From<mailroom_store::StoreError> for EngineError {
    fn from(e: mailroom_store::StoreError) -> Self {
        EngineError::Core(e.into())
    }
}

/// The engine's entry point.
pub struct Engine;

impl Engine {
    /// Releases every claim left in the store (the caller holds the data directory's `lock`,
    /// so no other process can own one) and starts the engine on the current tokio runtime.
    pub async fn start(
        core: Core,
        events: EventBus,
        lock: &DataDirLock,
        options: EngineOptions,
    ) -> Result<EngineHandle, EngineError> {
        let released = core.store().release_all_claims(lock, Utc::now()).await?;
        if released > 0 {
            tracing::info!(
                released,
                "claims left by a stopped or killed process released; their mail is processed now"
            );
        }
        let (state, _) = watch::channel(EngineState::Starting);
        let cancel = CancellationToken::new();
        let imports = ContactImports::new(core.clone(), events.clone(), cancel.clone());
        let inner = Arc::new(Inner {
            id: crate::pipeline::worker_id(),
            started_at: Utc::now(),
            core,
            events,
            options,
            imports,
            cancel,
            state,
            refresh: Notify::new(),
            round: tokio::sync::Mutex::new(()),
            up: Mutex::new(Up::default()),
            report: Mutex::new(StartReport::default()),
        });
        inner.publish(EngineState::Starting);
        let task = tokio::spawn(inner.clone().supervise());
        Ok(EngineHandle {
            inner,
            task: tokio::sync::Mutex::new(Some(task)),
        })
    }
}

/// The running engine. Dropping it stops nothing: call [`EngineHandle::stop`].
pub struct EngineHandle {
    inner: Arc<Inner>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// `host:pid:random`: this process in the leases it holds and the heartbeats it records.
    id: String,
    started_at: DateTime<Utc>,
    core: Core,
    events: EventBus,
    options: EngineOptions,
    /// Contact imports (started from the window or on schedule).
    imports: Arc<ContactImports>,
    cancel: CancellationToken,
    state: watch::Sender<EngineState>,
    refresh: Notify,
    /// Held through a start-up round (rounds never overlap).
    round: tokio::sync::Mutex<()>,
    /// What is up; never held across an await.
    up: Mutex<Up>,
    report: Mutex<StartReport>,
}

/// What is up so far.
#[derive(Default, Clone)]
struct Up {
    supervisor: Option<Arc<SyncSupervisor>>,
    webhooks: Option<Webhooks>,
    /// What the pipeline's PSA client was built from ([`Core::psa_fingerprint`]).
    psa: Option<String>,
}

/// A start-up step that failed, for the degraded state.
struct StepFailure {
    code: ErrorCode,
    reason: String,
}

impl From<CoreError> for StepFailure {
    fn from(e: CoreError) -> Self {
        StepFailure {
            code: e.code(),
            reason: e.to_string(),
        }
    }
}

impl Inner {
    /// What is up now (a copy: cheap handles).
    fn up(&self) -> Up {
        self.up.lock().expect("engine lock").clone()
    }

    fn publish(&self, state: EngineState) {
        self.state.send_replace(state.clone());
        self.events.publish(EngineEvent::Engine(state));
    }

    /// The engine's task: the start-up rounds and the integration's checks, until cancelled;
    /// only the other workers' changes when it processes no mail.
    async fn supervise(self: Arc<Self>) {
        if !self.options.process_mail {
            self.publish(EngineState::Watching);
            tokio::join!(
                self.clone().forward_changes(),
                self.clone().beat(),
                self.clone().console_rounds()
            );
            return;
        }
        tokio::join!(
            self.clone().beat(),
            self.clone().forward_changes(),
            self.imports
                .clone()
                .schedule(self.options.contact_schedule_every),
            self.clone().bring_up_rounds(),
            self.clone().watch_integration(),
            self.clone().send_outbound_mail(),
            self.clone().prune_periodically(),
            self.watch_problems()
        );
    }

    /// A console's rounds (no mail processed here): Webhooks mailboxes are registered with a
    /// receiver-less [`Webhooks::console`] so that the admin can create and cancel their
    /// subscriptions for the workers; at start, on [`EngineHandle::refresh`] and every
    /// `refresh_every`.
    async fn console_rounds(self: Arc<Self>) {
        loop {
            if let Err(e) = self.console_round().await {
                tracing::info!("subscriptions cannot be managed from this console yet: {e}");
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                _ = self.refresh.notified() => {}
                _ = tokio::time::sleep(self.options.refresh_every) => {}
            }
        }
    }

    async fn console_round(&self) -> Result<(), CoreError> {
        let _round = self.round.lock().await;
        let options = self
            .core
            .webhook_settings()
            .await?
            .options()
            .map_err(CoreError::InvalidInput)?;
        let webhooks = match self.up().webhooks {
            // The public URL changed: point new subscriptions at the new one.
            Some(w) if Some(w.base_url()) == options.public_base_url.as_ref() => w,
            _ => {
                let webhooks = Webhooks::console(
                    options,
                    self.core.store().clone(),
                    self.core.secrets().clone(),
                    mailroom_clock::system(),
                )?;
                self.up.lock().expect("engine lock").webhooks = Some(webhooks.clone());
                webhooks
            }
        };
        let mailboxes = self.core.mailboxes().await?;
        for mailbox in &mailboxes {
            let wanted = mailbox.method == MailboxMethod::Webhook && mailbox.enabled;
            if wanted && !webhooks.has_mailbox(&mailbox.id) {
                if let Ok(graph) = self.core.graph_client_for(mailbox).await {
                    webhooks.add_mailbox(mailbox.clone(), graph).await;
                }
            } else if !wanted {
                webhooks.remove_mailbox(&mailbox.id);
            }
        }
        Ok(())
    }

    /// Records every `heartbeat_every` that this process is alive (and whether it processes
    /// mail), until cancelled; the console lists the processes on the database from these.
    async fn beat(self: Arc<Self>) {
        let host = self.id.split(':').next().unwrap_or_default().to_string();
        loop {
            let beat = mailroom_store::heartbeats::Heartbeat {
                id: self.id.clone(),
                host: host.clone(),
                pid: i64::from(std::process::id()),
                version: env!("CARGO_PKG_VERSION").into(),
                role: self.options.role.into(),
                processing: self.options.process_mail,
                started_at: self.started_at,
                seen_at: Utc::now(),
            };
            if let Err(e) = self.core.store().record_heartbeat(&beat).await {
                tracing::info!("the heartbeat was not recorded: {e}");
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(self.options.heartbeat_every) => {}
            }
        }
    }

    /// Other workers' changes on a shared database, published as if they were this process's
    /// own: an inbound-log row as [`EngineEvent::Email`], a recorded problem as
    /// [`EngineEvent::NeedsAttention`], an ended attempt as its steps; a lost connection as
    /// [`EngineEvent::Resync`] (what changed meanwhile was not heard), then listening again
    /// with back-off. Nothing to do on SQLite (one process).
    async fn forward_changes(self: Arc<Self>) {
        if !self.options.hear_other_workers {
            return;
        }
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let mut failures = 0u32;
        loop {
            let why = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                heard = self.hear_changes(&mut failures) => match heard {
                    Some(why) => why,
                    None => return,
                },
            };
            failures += 1;
            tracing::warn!("other workers' changes are not heard: {why}");
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff.delay(failures, None)) => {}
            }
        }
    }

    /// Listens and publishes other workers' changes until the connection fails (returns why;
    /// a lost connection is published as [`EngineEvent::Resync`]); `None` when there is
    /// nothing to listen to (SQLite).
    async fn hear_changes(&self, failures: &mut u32) -> Option<String> {
        use mailroom_store::changes::StoreChange;
        let store = self.core.store();
        let mut listener = match store.listen().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        };
        loop {
            let change = match listener.next().await {
                Ok(StoreChange::Missed) => {
                    self.events.publish(EngineEvent::Resync { missed: 0 });
                    return Some("the connection to the database was lost".into());
                }
                Err(e) => return Some(e.to_string()),
                Ok(change) => change,
            };
            *failures = 0;
            self.publish_change(change).await;
        }
    }

    /// Publishes another worker's change as this process publishes its own.
    async fn publish_change(&self, change: mailroom_store::changes::StoreChange) {
        use mailroom_store::changes::StoreChange;
        let store = self.core.store();
        match change {
            StoreChange::Email { id, new } => {
                if let Ok(email) = store.inbound_email(id).await {
                    self.events.publish(EngineEvent::Email {
                        email: Box::new(email),
                        new,
                    });
                }
            }
            StoreChange::Notification { id } => {
                if let Ok(problem) = store.notification(id).await {
                    self.events.publish(EngineEvent::NeedsAttention {
                        kind: problem.kind,
                        title: problem.title,
                        detail: problem.detail,
                        fix: problem.fix,
                    });
                }
            }
            StoreChange::AttemptFinished { id } => {
                if let Ok(attempt) = store.finished_attempt(id).await {
                    for line in attempt.log {
                        self.events.publish(EngineEvent::Step {
                            email_id: attempt.email_id,
                            mailbox_id: attempt.mailbox_id.clone(),
                            at: line.at,
                            level: line.level,
                            message: line.message,
                        });
                    }
                    self.events.publish(EngineEvent::AttemptFinished {
                        email_id: attempt.email_id,
                        attempt_id: id,
                        result: attempt.result.unwrap_or_default(),
                    });
                }
            }
            StoreChange::Missed => {}
        }
    }

    /// Retention: prunes at start and every `prune_every`, in batches that leave processing
    /// its turn; a stop ends a pass between two batches.
    async fn prune_periodically(self: Arc<Self>) {
        loop {
            if let Err(e) = self.core.prune(chrono::Utc::now(), &self.cancel).await {
                tracing::warn!("old processing details were not pruned: {e}");
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                _ = tokio::time::sleep(self.options.prune_every) => {}
            }
        }
    }

    /// A mailbox's name for a message (its id when it is gone).
    async fn mailbox_name(&self, mailbox_id: &str) -> String {
        self.core
            .store()
            .mailbox(mailbox_id)
            .await
            .map(|m| m.name)
            .unwrap_or_else(|_| mailbox_id.to_string())
    }

    /// Error notifications: the events that mean a problem (an email failed for good, a
    /// mailbox's sign-in revoked, a Graph subscription lost, the PSA unreachable) and, every
    /// minute, expiring credentials are recorded once each and published for the desktop; due
    /// digests to the chosen agents are queued as outgoing mail (crates/engine notifications).
    async fn watch_problems(self: Arc<Self>) {
        use crate::notifications::Problem;
        let mut rx = self.events.subscribe();
        let mut tick = tokio::time::interval(self.options.problems_every);
        loop {
            let mut problems: Vec<Problem> = Vec::new();
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                event = rx.recv() => match event {
                    Ok(EngineEvent::Email { email, .. }) if email.state == mailroom_store::inbound::EmailState::Failed => {
                        problems.push(Problem {
                            kind: "email_failed",
                            key: format!("email_failed:{}", email.id),
                            mailbox_id: Some(email.mailbox_id.clone()),
                            title: format!("An email was not turned into a ticket: {}", email.subject),
                            detail: format!(
                                "From {}: {}",
                                email.from_address,
                                email.error_message.clone().unwrap_or_default()
                            ),
                            fix: "Open the mailbox's inbound log, fix what the error names, then Reprocess the email.".into(),
                        });
                    }
                    Ok(EngineEvent::MailboxSync(status)) if status.state == crate::events::SyncState::NeedsSignIn => {
                        let name = self.mailbox_name(&status.mailbox_id).await;
                        problems.push(Problem {
                            kind: "mailbox_disconnected",
                            key: format!("mailbox_disconnected:{}:{}", status.mailbox_id, chrono::Utc::now().format("%Y-%m-%d")),
                            mailbox_id: Some(status.mailbox_id.clone()),
                            title: format!("{name}: sign in again"),
                            detail: format!("Mailroom stopped reading this mailbox: {}", status.error.clone().unwrap_or_default()),
                            fix: "Open Mailroom and use Authorize on the mailbox's Incoming tab.".into(),
                        });
                    }
                    Ok(EngineEvent::ContactImportDone { mailbox_id, run, error }) => {
                        let failed = run.as_ref().map_or(0, |r| r.counts.failed);
                        if error.is_some() || failed > 0 {
                            let name = self.mailbox_name(&mailbox_id).await;
                            problems.push(Problem {
                                kind: "contacts_failed",
                                key: format!("contacts_failed:{mailbox_id}:{}", chrono::Utc::now().format("%Y-%m-%d")),
                                mailbox_id: Some(mailbox_id),
                                title: format!("{name}: contacts were not imported"),
                                detail: match error {
                                    Some(e) => format!("The import stopped: {e}"),
                                    None => format!("{failed} contact(s) failed; the import log says why for each."),
                                },
                                fix: "Open the mailbox's Contact imports tab, fix what the import log names, then Import contacts again (nothing is created twice).".into(),
                            });
                        }
                    }
                    Ok(EngineEvent::SubscriptionFailed { mailbox_id, detail }) => {
                        let name = self.mailbox_name(&mailbox_id).await;
                        problems.push(Problem {
                            kind: "subscription_lost",
                            key: format!("subscription_lost:{mailbox_id}:{}", chrono::Utc::now().format("%Y-%m-%d")),
                            mailbox_id: Some(mailbox_id),
                            title: format!("{name}: Microsoft 365 may stop telling Mailroom about new mail"),
                            detail: format!("Its Graph subscription failed: {detail}"),
                            fix: "Open the mailbox's Incoming tab and use Recreate subscription; its subscription events name the cause (a revoked permission, an unreachable notification URL).".into(),
                        });
                    }
                    Ok(EngineEvent::IntegrationBroken { step, summary, .. }) if step == "connection" => {
                        problems.push(Problem {
                            kind: "psa_unreachable",
                            key: format!("psa_unreachable:{}", chrono::Utc::now().format("%Y-%m-%dT%H")),
                            mailbox_id: None,
                            title: "Mailroom cannot reach HaloPSA".into(),
                            detail: summary,
                            fix: "Open Mailroom > Integration, step 1, for the cause and the fix.".into(),
                        });
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => {
                    match self.core.expiring_credentials(chrono::Utc::now()).await {
                        Ok(found) => problems.extend(found),
                        Err(e) => tracing::info!("expiring credentials not checked: {e}"),
                    }
                    // The daily re-check of the mailbox checks; a stop does not wait for it.
                    let recheck = self.core.recheck_due_mailboxes(chrono::Utc::now());
                    let rechecked = tokio::select! {
                        _ = self.cancel.cancelled() => break,
                        found = recheck => found,
                    };
                    match rechecked {
                        Ok(red) => problems.extend(red.into_iter().map(|(mailbox, check)| Problem {
                            kind: "mailbox_check_failed",
                            key: format!("mailbox_check_failed:{}:{}:{}", mailbox.id, check.id, chrono::Utc::now().format("%Y-%m-%d")),
                            mailbox_id: Some(mailbox.id.clone()),
                            title: format!("{}: {}", mailbox.name, check.title),
                            detail: check.detail,
                            fix: check.fix.unwrap_or_else(|| "Open the mailbox's Incoming tab: its safety checks say what to do.".into()),
                        })),
                        Err(e) => tracing::info!("mailbox checks not re-run: {e}"),
                    }
                    if let Err(e) = self.core.queue_notification_digests(chrono::Utc::now(), false).await {
                        tracing::warn!("notification digests not queued: {e}");
                    }
                }
            }
            let mut noted = false;
            for problem in problems {
                match self.core.note_problem(&problem, chrono::Utc::now()).await {
                    Ok(Some(stored)) => {
                        noted = true;
                        self.events.publish(EngineEvent::NeedsAttention {
                            kind: stored.kind,
                            title: stored.title,
                            detail: stored.detail,
                            fix: stored.fix,
                        })
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("a problem was not recorded: {e}"),
                }
            }
            // A new problem goes out at once to each agent whose interval is over; the others
            // get it in their next digest.
            if noted {
                if let Err(e) = self
                    .core
                    .queue_notification_digests(chrono::Utc::now(), false)
                    .await
                {
                    tracing::warn!("notification digests not queued: {e}");
                }
            }
        }
    }

    /// Outgoing mail: every `outbound_every`, agents' replies the PSA's webhook reported are
    /// queued and due emails are sent (crates/engine outbound). A stop cancels a send in
    /// flight; the next start finds it by its Message-ID, so nothing is sent twice.
    async fn send_outbound_mail(self: Arc<Self>) {
        loop {
            let work = async {
                if let Ok(Some(_)) = self.core.psa_connection().await {
                    if let Err(e) = self.core.queue_agent_replies().await {
                        tracing::info!("agents' replies were not queued: {e}");
                    }
                }
                if let Err(e) = self.core.send_due_outbound(chrono::Utc::now()).await {
                    tracing::warn!("outgoing mail was not sent: {e}");
                }
            };
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                _ = work => {}
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                _ = tokio::time::sleep(self.options.outbound_every) => {}
            }
        }
    }

    /// The PSA integration's checks at start and every `integration_check_every`; a step that
    /// was green before a round and is not after it is published (a rotated secret, a deleted
    /// tab). Skipped while no PSA connection is saved.
    async fn watch_integration(self: Arc<Self>) {
        loop {
            if let Ok(Some(_)) = self.core.psa_connection().await {
                let before = self.core.integration_status().await.ok();
                let checked = tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => break,
                    checked = self.core.check_integration() => checked,
                };
                match checked {
                    Ok(results) => {
                        for result in results.iter().filter(|r| !r.ok) {
                            let was_ok = before.as_ref().is_some_and(|b| {
                                b.steps.iter().any(|s| {
                                    s.step == result.step && s.result.as_ref().is_some_and(|r| r.ok)
                                })
                            });
                            if was_ok {
                                tracing::warn!(
                                    step = result.step.id(),
                                    "the PSA integration broke: {}",
                                    result.summary
                                );
                                self.events.publish(EngineEvent::IntegrationBroken {
                                    step: result.step.id().to_string(),
                                    title: result.step.title().to_string(),
                                    summary: result.summary.clone(),
                                });
                            }
                        }
                    }
                    Err(e) => tracing::info!("the PSA integration was not checked: {e}"),
                }
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                _ = tokio::time::sleep(self.options.integration_check_every) => {}
            }
        }
    }

    async fn bring_up_rounds(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            let wait = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                result = self.bring_up() => match result {
                    Ok(mailboxes) => {
                        failures = 0;
                        self.publish(EngineState::Running { mailboxes });
                        self.options.refresh_every
                    }
                    Err((failure, mailboxes)) => {
                        failures += 1;
                        let wait = self.options.start_retry.delay(failures, None);
                        tracing::warn!(
                            "the engine is degraded: {}; trying again in {} s",
                            failure.reason,
                            wait.as_secs()
                        );
                        self.publish(EngineState::Degraded {
                            code: failure.code,
                            reason: failure.reason,
                            retry_at: chrono::Duration::from_std(wait).ok().map(|d| Utc::now() + d),
                            mailboxes,
                        });
                        wait
                    }
                }
            };
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                _ = self.refresh.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One start-up round; idempotent. Returns how many mailboxes are synced, or the step that
    /// failed (with how many are synced anyway).
    async fn bring_up(&self) -> Result<usize, (StepFailure, usize)> {
        let _round = self.round.lock().await;
        // The PSA connection changed since the pipeline was built (here or through another
        // worker's console): processing starts again with the new one. Attempts in flight
        // finish or are released first, as at a stop.
        let psa = self
            .core
            .psa_fingerprint()
            .await
            .map_err(|e| (e.into(), 0))?;
        let built = self.up();
        if built.supervisor.is_some() && built.psa != psa {
            tracing::info!("the PSA connection changed: processing restarts with the new one");
            // The receiver stays up at its address (the PSA's ticket tab and webhook, and
            // Graph's subscriptions, point at it); only the pipeline and its tasks go.
            let old = self.up.lock().expect("engine lock").supervisor.take();
            if let Some(supervisor) = old {
                supervisor.shutdown().await;
            }
        }
        let existing = self.up().supervisor;
        let supervisor = match existing {
            Some(supervisor) => supervisor,
            None => {
                let pipeline = Pipeline::from_core(&self.core, self.events.clone())
                    .await
                    .map_err(|e| (e.into(), 0))?
                    .with_worker_id(self.id.clone());
                let supervisor = Arc::new(SyncSupervisor::new(
                    Arc::new(pipeline),
                    self.options.sync.clone(),
                ));
                {
                    let mut up = self.up.lock().expect("engine lock");
                    up.supervisor = Some(supervisor.clone());
                    up.psa = psa;
                    if let Some(webhooks) = &up.webhooks {
                        webhooks.set_supervisor(supervisor.clone());
                    }
                }
                supervisor
            }
        };
        let mailboxes = self
            .core
            .mailboxes()
            .await
            .map_err(|e| (e.into(), supervisor.statuses().len()))?;

        // The receiver serves Graph's notifications, the PSA's ticket tab and its webhook.
        let tab = self
            .core
            .ticket_tab_settings()
            .await
            .map_err(|e| (e.into(), supervisor.statuses().len()))?;
        let psa_webhook = self
            .core
            .webhook_certificate()
            .await
            .map_err(|e| (e.into(), supervisor.statuses().len()))?;
        let wants_receiver = tab.is_some()
            || psa_webhook.is_some()
            || mailboxes
                .iter()
                .any(|m| m.enabled && m.method == MailboxMethod::Webhook);
        let mut receiver_failure = None;
        let mut webhooks = self.up().webhooks;
        if wants_receiver && webhooks.is_none() {
            match self.start_receiver(&supervisor).await {
                Ok(service) => {
                    self.up.lock().expect("engine lock").webhooks = Some(service.clone());
                    webhooks = Some(service);
                }
                Err(e) => receiver_failure = Some(StepFailure::from(e)),
            }
        }

        // A mailbox removed since the last round (by another worker's console: this process
        // was not told) stops here too.
        for status in supervisor.statuses() {
            if !mailboxes.iter().any(|m| m.id == status.mailbox_id) {
                if let Some(webhooks) = &webhooks {
                    webhooks.remove_mailbox(&status.mailbox_id);
                }
                supervisor.stop_mailbox(&status.mailbox_id).await;
                tracing::info!(mailbox_id = %status.mailbox_id, "a removed mailbox is no longer synced");
            }
        }

        let mut report = StartReport {
            mailboxes: Vec::new(),
            receiver: webhooks
                .as_ref()
                .map(|w| (w.local_addr().to_string(), w.base_url().to_string())),
        };
        for mailbox in mailboxes {
            let mut entry = MailboxStart {
                id: mailbox.id.clone(),
                name: mailbox.name.clone(),
                method: mailbox.method,
                not_synced: None,
            };
            if !mailbox.enabled {
                if supervisor.has_mailbox(&mailbox.id) {
                    supervisor.stop_mailbox(&mailbox.id).await;
                }
                entry.not_synced = Some("disabled".into());
            } else if let Some(reason) = &mailbox.sign_in_required {
                // Not started again until the admin signs in (which clears the mark): a
                // revoked grant must not be tried at every round.
                entry.not_synced = Some(format!("sign in again: {reason}"));
            } else if !supervisor.has_mailbox(&mailbox.id) {
                match self.core.graph_client_for(&mailbox).await {
                    Ok(graph) => match (mailbox.method, webhooks.as_ref()) {
                        (MailboxMethod::Webhook, Some(webhooks)) => {
                            webhooks.add_mailbox(mailbox.clone(), graph).await
                        }
                        (MailboxMethod::Webhook, None) => {
                            entry.not_synced = Some("the webhook receiver is not running".into())
                        }
                        _ => supervisor.start_mailbox(mailbox.clone(), graph),
                    },
                    Err(e) => entry.not_synced = Some(e.to_string()),
                }
            }
            report.mailboxes.push(entry);
        }
        if self.options.create_missing_subscriptions {
            if let Some(webhooks) = &webhooks {
                create_missing_subscriptions(webhooks, &supervisor, &report).await;
            }
        }
        let synced = report
            .mailboxes
            .iter()
            .filter(|m| m.not_synced.is_none())
            .count();
        *self.report.lock().expect("report lock") = report;
        match receiver_failure {
            Some(failure) => Err((failure, synced)),
            None => Ok(synced),
        }
    }

    async fn start_receiver(
        &self,
        supervisor: &Arc<SyncSupervisor>,
    ) -> Result<Webhooks, CoreError> {
        let mut options = self
            .core
            .webhook_settings()
            .await?
            .options()
            .map_err(CoreError::InvalidInput)?;
        if self.options.webhook_any_port {
            options.bind.set_port(0);
        }
        let webhooks = Webhooks::start(
            options,
            self.core.store().clone(),
            self.core.secrets().clone(),
            supervisor.pipeline().clock().clone(),
            Some(supervisor.clone()),
        )
        .await?;
        // Where the receiver is reached (the ticket tab's URL is shown from it).
        self.core
            .store()
            .set_setting(
                crate::ticket_tab::RECEIVER_BASE_URL_KEY,
                webhooks.base_url().as_str(),
            )
            .await?;
        Ok(webhooks)
    }
}

async fn create_missing_subscriptions(
    webhooks: &Webhooks,
    supervisor: &SyncSupervisor,
    report: &StartReport,
) {
    for mailbox in &report.mailboxes {
        if mailbox.method == MailboxMethod::Webhook
            && mailbox.not_synced.is_none()
            && supervisor.has_mailbox(&mailbox.id)
            && matches!(webhooks.subscription(&mailbox.id).await, Ok(None))
        {
            if let Err(e) = webhooks.create_subscription(&mailbox.id).await {
                tracing::warn!(mailbox = %mailbox.name, "subscription not created: {e}");
            }
        }
    }
}

impl EngineHandle {
    /// The engine's state now.
    pub fn state(&self) -> EngineState {
        self.inner.state.borrow().clone()
    }

    /// Waits until the first start-up round is over (running or degraded) and returns the
    /// state then.
    pub async fn started(&self) -> EngineState {
        let mut rx = self.inner.state.subscribe();
        let state = rx
            .wait_for(|s| !matches!(s, EngineState::Starting))
            .await
            .map(|s| s.clone());
        state.unwrap_or(EngineState::Stopped)
    }

    /// The last start-up round's mailboxes and receiver.
    pub fn report(&self) -> StartReport {
        self.inner.report.lock().expect("report lock").clone()
    }

    /// Asks for a start-up round now (a mailbox was added or connected, the PSA connection or
    /// the webhook settings changed).
    pub fn refresh(&self) {
        self.inner.refresh.notify_one();
    }

    /// This process among those on the database (`host:pid:random`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The event bus the engine publishes on.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// The status of every mailbox task.
    pub fn statuses(&self) -> Vec<SyncStatus> {
        match &self.inner.up.lock().expect("engine lock").supervisor {
            Some(s) => s.statuses(),
            None => Vec::new(),
        }
    }

    /// The PSA client's rate-limit window (requests in it now, the window) and its 429
    /// back-off, while the engine processes mail.
    pub fn psa_usage(&self) -> Option<PsaUsage> {
        let psa = self.pipeline()?.psa().clone();
        let (used, window) = (psa.limiter().in_window() as u32, psa.limiter().limit());
        let throttle = psa.throttle_state();
        Some(PsaUsage {
            used,
            limit: window.requests,
            window_secs: window.window.as_secs(),
            backing_off: throttle.backing_off,
            resume_at: throttle.resume_at,
            rate_limited_total: throttle.rate_limited_total,
        })
    }

    /// The running pipeline, while the engine is up.
    fn pipeline(&self) -> Option<Arc<crate::pipeline::Pipeline>> {
        self.inner
            .up
            .lock()
            .expect("engine lock")
            .supervisor
            .as_ref()
            .map(|s| s.pipeline().clone())
    }

    /// Changes how PSA writes are batched (see [`crate::Core::set_psa_batching`]) and applies
    /// it to the running pipeline at once.
    pub async fn set_psa_batching(
        &self,
        batching: crate::pipeline::PsaBatching,
    ) -> Result<(), EngineError> {
        self.inner.core.set_psa_batching(batching).await?;
        if let Some(pipeline) = self.pipeline() {
            pipeline.set_batching(batching.config());
        }
        Ok(())
    }

    /// Contact imports: start, cancel, and what runs.
    pub fn contact_imports(&self) -> &Arc<ContactImports> {
        &self.inner.imports
    }

    /// The webhook receiver, when it runs.
    pub fn webhooks(&self) -> Option<Webhooks> {
        self.inner.up.lock().expect("engine lock").webhooks.clone()
    }

    fn supervisor(&self) -> Result<Arc<SyncSupervisor>, EngineError> {
        if self.inner.cancel.is_cancelled() {
            return Err(EngineError::Stopping);
        }
        let supervisor = self
            .inner
            .up
            .lock()
            .expect("engine lock")
            .supervisor
            .clone();
        supervisor.clone().ok_or_else(|| {
            let reason = match self.state() {
                EngineState::Degraded { reason, .. } => reason,
                EngineState::Watching => "this workstation processes no mail (Monitoring > \
                    Shared database): the Mailroom service reads the mailbox at its next round"
                    .into(),
                _ => "it is starting".into(),
            };
            EngineError::NotRunning(reason)
        })
    }

    /// Stops one mailbox's task (disconnected or removed); its claims are released. A later
    /// start-up round starts it again if it is still enabled and connected.
    pub async fn stop_mailbox(&self, mailbox_id: &str) {
        let supervisor = self
            .inner
            .up
            .lock()
            .expect("engine lock")
            .supervisor
            .clone();
        if let Some(supervisor) = supervisor {
            supervisor.stop_mailbox(mailbox_id).await;
        }
    }

    /// *Import emails*: one pass over the mailbox now.
    pub async fn import_now(&self, mailbox_id: &str) -> Result<ScanReport, EngineError> {
        self.supervisor()?.import_now(mailbox_id).await
    }

    /// *Reprocess*: queues the email again and processes it now (a confirmed PSA write is
    /// never repeated). Works while the engine is not up too: the email waits for it.
    pub async fn reprocess(&self, email_id: i64) -> Result<(), EngineError> {
        match self.supervisor() {
            Ok(supervisor) => supervisor.reprocess(email_id).await,
            Err(_) => Ok(self.inner.core.requeue_email(email_id).await?),
        }
    }

    /// Stops the engine: every mailbox task (attempts in flight are interrupted and their
    /// claims released), the webhook receiver and the supervising task. Waits at most
    /// `stop_timeout`; a second call returns at once.
    pub async fn stop(&self) {
        let Some(task) = self.task.lock().await.take() else {
            return;
        };
        self.inner.publish(EngineState::Stopping);
        self.inner.cancel.cancel();
        let inner = self.inner.clone();
        let pipeline = self.pipeline();
        let stopping = async move {
            let _ = task.await;
            let up = std::mem::take(&mut *inner.up.lock().expect("engine lock"));
            if let Some(webhooks) = &up.webhooks {
                webhooks.shutdown();
            }
            if let Some(supervisor) = &up.supervisor {
                supervisor.shutdown().await;
            }
            // Stopped cleanly: no longer listed among the processes on the database.
            if let Err(e) = inner.core.store().forget_heartbeat(&inner.id).await {
                tracing::info!("the heartbeat was not removed: {e}");
            }
        };
        if tokio::time::timeout(self.inner.options.stop_timeout, stopping)
            .await
            .is_err()
        {
            // A task is stuck (a store call that does not return): release what it claimed
            // directly, bounded too, so that the next start finds no claim of this process.
            let released = match &pipeline {
                Some(p) => tokio::time::timeout(Duration::from_millis(400), p.release_all_claims())
                    .await
                    .ok(),
                None => Some(Ok(0)),
            };
            tracing::warn!(
                ?released,
                "the engine did not stop within {} ms; the claims of its passes were released",
                self.inner.options.stop_timeout.as_millis()
            );
        }
        self.inner.publish(EngineState::Stopped);
    }
}

/// The PSA client's rate-limit window and 429 back-off ([`EngineHandle::psa_usage`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PsaUsage {
    /// Requests sent within the rolling window.
    pub used: u32,
    /// Requests the window allows (HaloPSA's hosted limit: 300 per 5 minutes).
    pub limit: u32,
    pub window_secs: u64,
    /// Whether the PSA answered 429 and requests wait for a probe.
    pub backing_off: bool,
    pub resume_at: Option<chrono::DateTime<chrono::Utc>>,
    /// 429 replies since the engine started.
    pub rate_limited_total: u64,
}
