//! The sync loop: one task per mailbox under a [`SyncSupervisor`].
//!
//! Each task waits on a ticker (`--interval`, else the mailbox's `scan_interval_secs`, else
//! 60 s), a command
//! channel ([`MailboxCommand`]) and a cancellation token. A scan ([`scan_once`]):
//! 1. runs a delta round on the inbox from the stored deltaLink (an idle interval costs one
//!    request; a 410 `SyncStateNotFound` clears the link and resyncs from scratch — sightings
//!    de-duplicate, so nothing is processed twice);
//! 2. records every message of a page as a sighting **before** storing the page's nextLink as
//!    the round's cursor (a crash between the two re-reads the page instead of losing mail; a
//!    throttled page k costs page k only, the next round resumes there), and stores the final
//!    deltaLink when the round completes;
//! 3. claims due emails (new ones, retries whose time has come, claims older than the lease left
//!    by a dead process) and processes them, several at a time: emails of one conversation run
//!    in order, different conversations concurrently; the Graph client's per-mailbox throttle
//!    keeps at most 4 requests in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailroom_graph::{DeltaCursor, GraphClient, GraphError, GraphErrorKind};
use mailroom_store::inbound::InboundEmail;
use mailroom_store::Mailbox;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::engine::EngineError;
use crate::events::{EngineEvent, SyncState, SyncStatus};
use crate::pipeline::{sighting, AttemptOutcome, Pipeline, ProcessingSettings};

/// Tuning of the sync loop.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Scan interval of a mailbox whose settings set none (60 s by default).
    pub default_interval: Duration,
    /// Scan interval that wins over every polling mailbox's stored setting (`mailroom run
    /// --interval N`). `None`: each mailbox uses its own setting.
    pub interval_override: Option<Duration>,
    /// A claim older than this is considered abandoned (its process died).
    pub lease: Duration,
    /// Emails claimed per round.
    pub batch: i64,
    /// Conversations processed at the same time per mailbox (the Graph client still keeps at
    /// most 4 requests in flight; more conversations keep those slots busy while others wait
    /// for the PSA, and let new tickets and replies gather into batched PSA writes).
    pub concurrency: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            default_interval: Duration::from_secs(60),
            interval_override: None,
            lease: Duration::from_secs(300),
            batch: 50,
            concurrency: 24,
        }
    }
}

/// The scan interval of a polling mailbox: the override of `options` when set (it wins over
/// the stored setting), else the mailbox's `scan_interval_secs`, else `default_interval`.
pub fn scan_interval(options: &SyncOptions, mailbox: &Mailbox) -> Duration {
    if let Some(every) = options.interval_override {
        return every.max(Duration::from_secs(1));
    }
    ProcessingSettings::of(mailbox)
        .ok()
        .and_then(|s| s.scan_interval_secs)
        .map(|secs| Duration::from_secs(secs.max(1)))
        .unwrap_or(options.default_interval)
}

/// What one scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    /// Messages the delta round returned.
    pub seen: usize,
    /// Of those, first sightings.
    pub new: usize,
    /// Whether the stored delta state had expired (410) and a full resync ran.
    pub resynced: bool,
    /// Attempts by result.
    pub processed: usize,
    pub skipped: usize,
    pub retrying: usize,
    pub failed: usize,
    /// Attempts stopped by a shutdown (their emails were released).
    pub interrupted: usize,
}

/// Why a scan could not run.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Graph refused access to the mailbox.
    #[error("Mailroom may not read this mailbox: {0}. For a shared mailbox, the signed-in user needs Full Access on it and the app the delegated permissions Mail.ReadWrite.Shared and Mail.Send.Shared; for application access, check Mail.ReadWrite (application) with admin consent and any application access policy.")]
    Permission(GraphError),
    /// The mailbox could not be reached or read.
    #[error("{0}")]
    Graph(GraphError),
    /// The local database failed.
    #[error("the local database failed: {0}")]
    Store(#[from] mailroom_store::StoreError),
}

impl From<GraphError> for SyncError {
    fn from(e: GraphError) -> Self {
        match e.kind {
            GraphErrorKind::AccessDenied | GraphErrorKind::Unauthorized => SyncError::Permission(e),
            _ => SyncError::Graph(e),
        }
    }
}

/// The folder the sync loop reads.
const INTAKE_FOLDER: &str = "inbox";

/// Reads the inbox delta into the store (steps 1 and 2 of the module docs), page by page: each
/// page's sightings are stored, then its `@odata.nextLink` as the round's cursor, so a page that
/// fails (throttled, 503, a crash) costs only that page — the next round resumes there. Only the
/// round's final deltaLink replaces the mailbox's stored cursor.
pub async fn intake(
    pipeline: &Pipeline,
    mailbox: &Mailbox,
    graph: &GraphClient,
    report: &mut ScanReport,
) -> Result<(), SyncError> {
    let store = pipeline.store();
    // One delta round per mailbox at a time across every worker sharing the store.
    let lease = delta_lease(mailbox);
    if !take_delta_lease(pipeline, &lease).await? {
        tracing::debug!(mailbox = %mailbox.name, "another worker is reading this mailbox; round skipped");
        return Ok(());
    }
    let renew = async {
        let term = chrono::Duration::from_std(DELTA_LEASE).expect("a short duration");
        loop {
            tokio::time::sleep(DELTA_LEASE / 3).await;
            if let Err(e) = store
                .acquire_lease(&lease, pipeline.worker_id(), pipeline.clock().now(), term)
                .await
            {
                tracing::warn!(mailbox = %mailbox.name, "the delta round's lease was not renewed: {e}");
            }
        }
    };
    let result = tokio::select! {
        result = intake_leased(pipeline, mailbox, graph, report) => result,
        never = renew => never,
    };
    if let Err(e) = store.release_lease(&lease, pipeline.worker_id()).await {
        tracing::warn!(mailbox = %mailbox.name, "the delta round's lease was not released: {e}");
    }
    result
}

/// The work lease of a mailbox's delta round.
fn delta_lease(mailbox: &Mailbox) -> String {
    format!("delta:{}", mailbox.id)
}

/// How long a worker's delta round lease lasts unless renewed; the round renews it every
/// third of that while it runs, so a worker that dies mid-round holds up the mailbox's reading
/// this long at most.
const DELTA_LEASE: Duration = Duration::from_secs(15);

/// Takes the mailbox's delta lease, waiting while another worker's round runs (so that a
/// round asked for now — a webhook notification — still reads what arrived), up to the
/// lease's term; false if it stayed taken.
async fn take_delta_lease(pipeline: &Pipeline, lease: &str) -> Result<bool, SyncError> {
    let term = chrono::Duration::from_std(DELTA_LEASE).expect("a short duration");
    let give_up = tokio::time::Instant::now() + DELTA_LEASE + Duration::from_secs(5);
    loop {
        let now = pipeline.clock().now();
        if pipeline
            .store()
            .acquire_lease(lease, pipeline.worker_id(), now, term)
            .await?
        {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= give_up {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn intake_leased(
    pipeline: &Pipeline,
    mailbox: &Mailbox,
    graph: &GraphClient,
    report: &mut ScanReport,
) -> Result<(), SyncError> {
    let store = pipeline.store();
    let resume = store.delta_round_cursor(&mailbox.id, INTAKE_FOLDER).await?;
    let mut cursor = match resume {
        Some(round) => {
            tracing::debug!(mailbox = %mailbox.name, pages = round.pages, "resuming an unfinished delta round");
            DeltaCursor::Link(round.next_link)
        }
        None => store
            .delta_link(&mailbox.id)
            .await?
            .map(DeltaCursor::Link)
            .unwrap_or(DeltaCursor::Initial),
    };
    loop {
        let page = match graph
            .delta_selecting(INTAKE_FOLDER, &cursor, Pipeline::delta_fields())
            .await
        {
            Ok(page) => page,
            Err(e) if e.kind == GraphErrorKind::SyncStateNotFound && !report.resynced => {
                tracing::info!(mailbox = %mailbox.name, "delta state expired; full resync");
                store.clear_delta_round(&mailbox.id, INTAKE_FOLDER).await?;
                store.clear_delta_link(&mailbox.id).await?;
                report.resynced = true;
                cursor = DeltaCursor::Initial;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let now = pipeline.clock().now();
        // Oldest first within the page, so that an original is recorded (and processed) before
        // its replies.
        let mut messages: Vec<&mailroom_graph::Message> = page.messages.iter().collect();
        messages.sort_by_key(|m| m.received_date_time);
        for msg in messages {
            if msg.is_draft == Some(true) {
                continue;
            }
            report.seen += 1;
            let (id, new) = store
                .record_sighting(&sighting(&mailbox.id, msg, now), now)
                .await?;
            if new {
                report.new += 1;
                pipeline.offer_read_message(id, msg);
                pipeline.publish_email(id, true).await;
            }
        }
        let DeltaCursor::Link(link) = &page.next else {
            return Ok(());
        };
        if page.round_complete {
            // The deltaLink first: a crash before the round's cursor is cleared re-reads the
            // rest of the old round (sightings de-duplicate) rather than losing it.
            store
                .set_sync_result(&mailbox.id, Some(link), None, pipeline.clock().now())
                .await?;
            store.clear_delta_round(&mailbox.id, INTAKE_FOLDER).await?;
            return Ok(());
        }
        store
            .advance_delta_round(&mailbox.id, INTAKE_FOLDER, link, pipeline.clock().now())
            .await?;
        cursor = page.next;
    }
}

/// Claims and processes due emails until none are left (step 3 of the module docs), or until
/// `cancel` fires: then attempts in flight stop (see [`Pipeline::process_one`]) and every claim
/// this call made is released before it returns, so nothing waits for a lease.
pub async fn process_due(
    pipeline: &Arc<Pipeline>,
    mailbox: &Mailbox,
    graph: &GraphClient,
    options: &SyncOptions,
    report: &mut ScanReport,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    let token = uuid::Uuid::new_v4().to_string();
    pipeline.claims_taken(&token);
    // While the pass works, its claims are renewed (every third of the lease): another
    // worker takes over only the claims of a worker that died or hung.
    let renew = async {
        let every = (options.lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = pipeline
                .store()
                .renew_claims(&token, pipeline.clock().now())
                .await
            {
                tracing::warn!(mailbox = %mailbox.name, "claims not renewed: {e}");
            }
        }
    };
    let result = tokio::select! {
        result = process_claimed(pipeline, mailbox, graph, options, report, cancel, &token) => result,
        never = renew => never,
    };
    if cancel.is_cancelled() || result.is_err() {
        let released = pipeline
            .store()
            .release_claims(&token, pipeline.clock().now())
            .await;
        match released {
            Ok(0) => {}
            Ok(n) => tracing::info!(mailbox = %mailbox.name, released = n, "claims released"),
            Err(e) => tracing::warn!(mailbox = %mailbox.name, "claims not released: {e}"),
        }
    }
    pipeline.claims_done(&token);
    result
}

async fn process_claimed(
    pipeline: &Arc<Pipeline>,
    mailbox: &Mailbox,
    graph: &GraphClient,
    options: &SyncOptions,
    report: &mut ScanReport,
    cancel: &CancellationToken,
    token: &str,
) -> Result<(), SyncError> {
    let lease = chrono::Duration::from_std(options.lease).unwrap_or(chrono::Duration::minutes(5));
    while !cancel.is_cancelled() {
        let claimed = pipeline
            .store()
            .claim_due(
                &mailbox.id,
                token,
                pipeline.clock().now(),
                lease,
                options.batch.max(1),
            )
            .await?;
        if claimed.is_empty() {
            return Ok(());
        }
        // Chains: one per conversation, in received order.
        let mut chains: Vec<Vec<InboundEmail>> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for email in claimed {
            let key = email
                .conversation_id
                .clone()
                .unwrap_or_else(|| format!("email:{}", email.id));
            match by_key.get(&key) {
                Some(&i) => chains[i].push(email),
                None => {
                    by_key.insert(key, chains.len());
                    chains.push(vec![email]);
                }
            }
        }
        use futures_util::StreamExt as _;
        let backlog = pipeline.backlog_pass(chains.len(), options.concurrency.max(1));
        let backlog = &backlog;
        let mut results = futures_util::stream::iter(chains)
            .map(|chain| async move {
                backlog.started();
                let mut outcomes = Vec::new();
                for email in chain {
                    if cancel.is_cancelled() {
                        break;
                    }
                    outcomes.push(pipeline.process_one(graph, mailbox, &email, cancel).await);
                }
                outcomes
            })
            .buffer_unordered(options.concurrency.max(1));
        // An attempt that fails outright (the store refused a write) does not cut the others
        // short: they finish first, so that no PSA write is in flight when this pass's claims
        // are released and another worker may take them.
        let mut first_error = None;
        while let Some(outcomes) = results.next().await {
            for outcome in outcomes {
                match outcome {
                    Ok(AttemptOutcome::Processed { .. }) => report.processed += 1,
                    Ok(AttemptOutcome::Skipped { .. }) => report.skipped += 1,
                    Ok(AttemptOutcome::Retrying { .. }) => report.retrying += 1,
                    Ok(AttemptOutcome::Failed { .. }) => report.failed += 1,
                    Ok(AttemptOutcome::Interrupted) => report.interrupted += 1,
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.into());
        }
    }
    Ok(())
}

/// [`intake`] that stops at `cancel` (a round resumes from its stored cursor next time).
pub async fn intake_until_cancelled(
    pipeline: &Pipeline,
    mailbox: &Mailbox,
    graph: &GraphClient,
    report: &mut ScanReport,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    let result = tokio::select! {
        biased;
        _ = cancel.cancelled() => {
            // The round was dropped mid-way: its lease goes (the next worker takes it at once).
            let lease = delta_lease(mailbox);
            if let Err(e) = pipeline.store().release_lease(&lease, pipeline.worker_id()).await {
                tracing::warn!(mailbox = %mailbox.name, "the delta round's lease was not released: {e}");
            }
            Ok(())
        }
        result = intake(pipeline, mailbox, graph, report) => result,
    };
    if let Err(e) = &result {
        if let Err(store_error) = pipeline
            .store()
            .set_sync_result(
                &mailbox.id,
                None,
                Some(&e.to_string()),
                pipeline.clock().now(),
            )
            .await
        {
            tracing::warn!(mailbox = %mailbox.name, "the scan error was not stored: {store_error}");
        }
    }
    result
}

/// One full pass over a mailbox: intake, then processing of everything due (mail already
/// recorded — retries — is processed even when the intake failed). Stops at `cancel`.
pub async fn scan_once(
    pipeline: &Arc<Pipeline>,
    mailbox: &Mailbox,
    graph: &GraphClient,
    options: &SyncOptions,
    cancel: &CancellationToken,
) -> Result<ScanReport, SyncError> {
    let mut report = ScanReport::default();
    let intake_result = intake_until_cancelled(pipeline, mailbox, graph, &mut report, cancel).await;
    process_due(pipeline, mailbox, graph, options, &mut report, cancel).await?;
    intake_result?;
    Ok(report)
}

/// The reason to sign in again, when `error` is a refused refresh grant (`invalid_grant`:
/// revoked by a password reset or an admin, expired after inactivity, consent withdrawn).
pub fn sign_in_revoked(error: &SyncError) -> Option<String> {
    let (SyncError::Graph(e) | SyncError::Permission(e)) = error else {
        return None;
    };
    let identity = e.identity.as_ref()?;
    let aad = identity.aad()?;
    if aad.error != "invalid_grant" {
        return None;
    }
    let diagnosis = mailroom_graph::diagnose::diagnose(identity);
    Some(format!("{}. {}", diagnosis.cause, diagnosis.fix))
}

/// Commands to a mailbox task.
#[derive(Debug)]
pub enum MailboxCommand {
    /// Scan now; the report (or the error, in plain words) goes to the reply channel.
    ScanNow(Option<oneshot::Sender<Result<ScanReport, String>>>),
    /// Stop scanning until resumed.
    Pause,
    /// Resume scanning.
    Resume,
    /// Queue an email again and scan.
    Reprocess(i64),
    /// End the task.
    Stop,
}

struct Task {
    commands: mpsc::Sender<MailboxCommand>,
    status: Arc<Mutex<SyncStatus>>,
    cancel: CancellationToken,
    done: Option<oneshot::Receiver<()>>,
}

/// Runs one task per mailbox on the caller's tokio runtime (the app's and `mailroom run`'s
/// shared multi-threaded runtime); front ends talk to the tasks through channels.
pub struct SyncSupervisor {
    pipeline: Arc<Pipeline>,
    options: SyncOptions,
    cancel: CancellationToken,
    tasks: Mutex<HashMap<String, Task>>,
}

impl std::fmt::Debug for SyncSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncSupervisor")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SyncSupervisor {
    /// A supervisor with no mailbox yet. Mailbox tasks are spawned on the runtime of the
    /// caller of [`SyncSupervisor::start_mailbox`].
    pub fn new(pipeline: Arc<Pipeline>, options: SyncOptions) -> Self {
        SyncSupervisor {
            pipeline,
            options,
            cancel: CancellationToken::new(),
            tasks: Mutex::new(HashMap::new()),
        }
    }

    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// Starts (or restarts) the task of `mailbox`, reading it through `graph`. Message ids are
    /// requested as ImmutableIds so they survive moves.
    pub fn start_mailbox(&self, mailbox: Mailbox, graph: GraphClient) {
        let interval = scan_interval(&self.options, &mailbox);
        self.start_mailbox_every(mailbox, graph, interval);
    }

    /// Like [`SyncSupervisor::start_mailbox`] with an explicit scan interval (webhook mailboxes
    /// use a low-frequency fallback scan; notifications trigger scans in between).
    pub fn start_mailbox_every(&self, mailbox: Mailbox, graph: GraphClient, interval: Duration) {
        if let Some(old) = self.tasks.lock().expect("tasks lock").remove(&mailbox.id) {
            old.cancel.cancel();
        }
        let graph = graph.with_immutable_ids(true);
        let (tx, rx) = mpsc::channel(32);
        let status = Arc::new(Mutex::new(SyncStatus {
            mailbox_id: mailbox.id.clone(),
            state: SyncState::Idle,
            last_sync_at: None,
            next_scan_at: None,
            error: None,
        }));
        let cancel = self.cancel.child_token();
        let task = MailboxTask {
            pipeline: self.pipeline.clone(),
            options: self.options.clone(),
            mailbox: mailbox.clone(),
            graph,
            interval,
            status: status.clone(),
            cancel: cancel.clone(),
            reading: AtomicBool::new(false),
            processing: AtomicBool::new(false),
        };
        let (done_tx, done_rx) = oneshot::channel();
        tokio::spawn(async move {
            task.run(rx).await;
            let _ = done_tx.send(());
        });
        self.tasks.lock().expect("tasks lock").insert(
            mailbox.id,
            Task {
                commands: tx,
                status,
                cancel,
                done: Some(done_rx),
            },
        );
    }

    /// Whether `mailbox_id` has a running task (one that ended — stopped, or waiting for a new
    /// sign-in — does not count: starting the mailbox again replaces it).
    pub fn has_mailbox(&self, mailbox_id: &str) -> bool {
        self.tasks
            .lock()
            .expect("tasks lock")
            .get(mailbox_id)
            .is_some_and(|t| {
                !matches!(
                    t.status.lock().expect("status lock").state,
                    SyncState::Stopped | SyncState::NeedsSignIn
                )
            })
    }

    fn sender(&self, mailbox_id: &str) -> Option<mpsc::Sender<MailboxCommand>> {
        self.tasks
            .lock()
            .expect("tasks lock")
            .get(mailbox_id)
            .map(|t| t.commands.clone())
    }

    /// Sends a command; false when the mailbox has no running task.
    pub async fn send(&self, mailbox_id: &str, command: MailboxCommand) -> bool {
        match self.sender(mailbox_id) {
            Some(tx) => tx.send(command).await.is_ok(),
            None => false,
        }
    }

    /// *Import emails*: one pass now, with permission problems reported in plain words.
    pub async fn import_now(&self, mailbox_id: &str) -> Result<ScanReport, EngineError> {
        let (tx, rx) = oneshot::channel();
        if !self
            .send(mailbox_id, MailboxCommand::ScanNow(Some(tx)))
            .await
        {
            return Err(EngineError::MailboxNotSynced(mailbox_id.to_string()));
        }
        match rx.await {
            Ok(result) => result.map_err(EngineError::Scan),
            Err(_) => Err(EngineError::Stopping),
        }
    }

    /// *Reprocess*: queues the email again and processes its mailbox's due mail now.
    pub async fn reprocess(&self, email_id: i64) -> Result<(), EngineError> {
        let email = self.pipeline.store().inbound_email(email_id).await?;
        self.pipeline.request_reprocess(email_id).await?;
        self.send(&email.mailbox_id, MailboxCommand::Reprocess(email_id))
            .await;
        Ok(())
    }

    /// Current status of every task.
    pub fn statuses(&self) -> Vec<SyncStatus> {
        self.tasks
            .lock()
            .expect("tasks lock")
            .values()
            .map(|t| t.status.lock().expect("status lock").clone())
            .collect()
    }

    /// Stops one mailbox's task (an attempt in progress finishes first) and waits for it.
    pub async fn stop_mailbox(&self, mailbox_id: &str) {
        let task = self.tasks.lock().expect("tasks lock").remove(mailbox_id);
        if let Some(mut task) = task {
            let _ = task.commands.send(MailboxCommand::Stop).await;
            if let Some(done) = task.done.take() {
                let _ = done.await;
            }
        }
    }

    /// Stops every task (attempts in progress finish first).
    pub async fn shutdown(&self) {
        let tasks: Vec<Task> = self
            .tasks
            .lock()
            .expect("tasks lock")
            .drain()
            .map(|(_, t)| t)
            .collect();
        self.cancel.cancel();
        for mut t in tasks {
            if let Some(done) = t.done.take() {
                let _ = done.await;
            }
        }
    }
}

impl Drop for SyncSupervisor {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

struct MailboxTask {
    pipeline: Arc<Pipeline>,
    options: SyncOptions,
    mailbox: Mailbox,
    graph: GraphClient,
    interval: Duration,
    status: Arc<Mutex<SyncStatus>>,
    cancel: CancellationToken,
    /// Whether a delta round runs now.
    reading: AtomicBool,
    /// Whether a processing pass runs now.
    processing: AtomicBool,
}

/// A request for a processing pass. `reply` is set by *Import emails*, which waits for the pass
/// and gets the intake's figures (or its error) with the pass's.
struct PassRequest {
    intake: Result<ScanReport, String>,
    reply: Option<oneshot::Sender<Result<ScanReport, String>>>,
}

impl PassRequest {
    fn wake() -> Self {
        PassRequest {
            intake: Ok(ScanReport::default()),
            reply: None,
        }
    }
}

impl MailboxTask {
    fn set_status(&self, change: impl FnOnce(&mut SyncStatus)) {
        let snapshot = {
            let mut status = self.status.lock().expect("status lock");
            change(&mut status);
            if !matches!(
                status.state,
                SyncState::Paused | SyncState::Stopped | SyncState::NeedsSignIn
            ) {
                let busy =
                    self.reading.load(Ordering::SeqCst) || self.processing.load(Ordering::SeqCst);
                status.state = match (busy, status.error.is_some()) {
                    (true, _) => SyncState::Scanning,
                    (false, true) => SyncState::Error,
                    (false, false) => SyncState::Idle,
                };
            }
            status.clone()
        };
        self.pipeline
            .events()
            .publish(EngineEvent::MailboxSync(snapshot));
    }

    fn next_at(&self) -> DateTime<Utc> {
        self.pipeline.clock().now()
            + chrono::Duration::from_std(self.interval).unwrap_or(chrono::Duration::minutes(1))
    }

    /// One delta round (intake only; processing is the other loop's).
    async fn read(&self) -> Result<ScanReport, SyncError> {
        self.reading.store(true, Ordering::SeqCst);
        self.set_status(|_| {});
        let mut report = ScanReport::default();
        let result = intake_until_cancelled(
            &self.pipeline,
            &self.mailbox,
            &self.graph,
            &mut report,
            &self.cancel,
        )
        .await;
        self.reading.store(false, Ordering::SeqCst);
        let now = self.pipeline.clock().now();
        let next = self.next_at();
        match &result {
            Ok(()) => {
                if report.new > 0 {
                    tracing::info!(mailbox = %self.mailbox.name, seen = report.seen, new = report.new, "new mail");
                }
                self.set_status(|s| {
                    s.last_sync_at = Some(now);
                    s.next_scan_at = Some(next);
                    s.error = None;
                });
            }
            Err(e) => match sign_in_revoked(e) {
                Some(reason) => self.needs_sign_in(reason).await,
                None => {
                    tracing::warn!(mailbox = %self.mailbox.name, "reading the mailbox failed: {e}");
                    let message = e.to_string();
                    self.set_status(|s| {
                        s.last_sync_at = Some(now);
                        s.next_scan_at = Some(next);
                        s.error = Some(message);
                    });
                }
            },
        }
        result.map(|()| report)
    }

    /// The sign-in was revoked: record it (the mailbox shows red, `mailroom run` says it once),
    /// and end the task, so that the token endpoint is not asked again until the admin signs
    /// in; the engine starts the task again after that.
    async fn needs_sign_in(&self, reason: String) {
        tracing::warn!(
            mailbox = %self.mailbox.name,
            "the sign-in of this mailbox was revoked or has expired; sign in again: {reason}"
        );
        if let Err(e) = self
            .pipeline
            .store()
            .set_mailbox_sign_in_required(&self.mailbox.id, Some(&reason))
            .await
        {
            tracing::warn!(mailbox = %self.mailbox.name, "the sign-in state was not stored: {e}");
        }
        self.set_status(|s| {
            s.state = SyncState::NeedsSignIn;
            s.next_scan_at = None;
            s.error = Some(reason);
        });
        self.cancel.cancel();
    }

    /// One processing pass: everything due, until none is left or the task stops.
    async fn process(&self) -> Result<ScanReport, SyncError> {
        self.processing.store(true, Ordering::SeqCst);
        self.set_status(|_| {});
        let mut report = ScanReport::default();
        let result = process_due(
            &self.pipeline,
            &self.mailbox,
            &self.graph,
            &self.options,
            &mut report,
            &self.cancel,
        )
        .await;
        self.processing.store(false, Ordering::SeqCst);
        match &result {
            Ok(()) => {
                if report.processed + report.skipped + report.failed + report.retrying > 0 {
                    tracing::info!(mailbox = %self.mailbox.name, ?report, "processing pass finished");
                }
                self.set_status(|_| {});
            }
            Err(e) => {
                tracing::warn!(mailbox = %self.mailbox.name, "processing failed: {e}");
                let message = e.to_string();
                self.set_status(|s| s.error = Some(message));
            }
        }
        result.map(|()| report)
    }

    /// Runs the two loops of the mailbox — intake (delta rounds on the ticker, commands) and
    /// processing (claims and attempts) — until the task is stopped. They are separate so that
    /// a PSA back-off episode, which holds the processing loop, never stops new mail from being
    /// sighted and logged as pending.
    async fn run(self, commands: mpsc::Receiver<MailboxCommand>) {
        let (passes_tx, passes_rx) = mpsc::channel(8);
        let (paused_tx, paused_rx) = watch::channel(false);
        tokio::join!(
            self.intake_loop(commands, passes_tx, paused_tx),
            self.processing_loop(passes_rx, paused_rx)
        );
        // A task that ended waiting for a sign-in keeps saying so (and says it only once).
        let waits_for_sign_in =
            self.status.lock().expect("status lock").state == SyncState::NeedsSignIn;
        if !waits_for_sign_in {
            self.set_status(|s| {
                s.state = SyncState::Stopped;
                s.next_scan_at = None;
            });
        }
    }

    async fn intake_loop(
        &self,
        mut commands: mpsc::Receiver<MailboxCommand>,
        passes: mpsc::Sender<PassRequest>,
        paused: watch::Sender<bool>,
    ) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A pass request that finds the queue full is dropped: a pass is pending anyway.
        let wake = |passes: &mpsc::Sender<PassRequest>| {
            let _ = passes.try_send(PassRequest::wake());
        };
        loop {
            let is_paused = *paused.borrow();
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                command = commands.recv() => match command {
                    None | Some(MailboxCommand::Stop) => break,
                    Some(MailboxCommand::Pause) => {
                        paused.send_replace(true);
                        self.set_status(|s| { s.state = SyncState::Paused; s.next_scan_at = None; });
                    }
                    Some(MailboxCommand::Resume) => {
                        paused.send_replace(false);
                        self.set_status(|s| s.state = SyncState::Idle);
                        let _ = self.read().await;
                        wake(&passes);
                        ticker.reset();
                    }
                    Some(MailboxCommand::ScanNow(reply)) => {
                        let intake = self.read().await.map_err(|e| e.to_string());
                        ticker.reset();
                        let request = PassRequest { intake, reply };
                        if let Err(mpsc::error::SendError(request)) = passes.send(request).await {
                            if let Some(reply) = request.reply {
                                let _ = reply.send(Err("the mailbox task is stopping".into()));
                            }
                        }
                    }
                    Some(MailboxCommand::Reprocess(_)) => {
                        // The email is queued again already: a processing pass takes it.
                        if !is_paused {
                            wake(&passes);
                        }
                    }
                },
                _ = ticker.tick(), if !is_paused => {
                    if let Ok(report) = self.read().await {
                        if report.new > 0 {
                            wake(&passes);
                        }
                    }
                }
            }
        }
        // The processing loop stops with the task.
        self.cancel.cancel();
    }

    async fn processing_loop(
        &self,
        mut passes: mpsc::Receiver<PassRequest>,
        mut paused: watch::Receiver<bool>,
    ) {
        // The first pass runs at once: mail left from an earlier run (released claims, retries
        // that came due while stopped) does not wait for new mail.
        let mut due_now = true;
        loop {
            let mut requests = Vec::new();
            if !due_now {
                let wait = self.until_next_pass().await;
                let is_paused = *paused.borrow();
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => break,
                    request = passes.recv() => match request {
                        Some(request) => requests.push(request),
                        None => break,
                    },
                    changed = paused.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        continue;
                    }
                    _ = tokio::time::sleep(wait), if !is_paused => {}
                }
                while let Ok(request) = passes.try_recv() {
                    requests.push(request);
                }
            }
            due_now = false;
            // While paused only *Import emails* (a request with a reply) processes.
            if *paused.borrow() && requests.iter().all(|r| r.reply.is_none()) {
                continue;
            }
            let result = self.process().await.map_err(|e| e.to_string());
            for request in requests {
                if let Some(reply) = request.reply {
                    let combined = match (request.intake, &result) {
                        (Err(e), _) => Err(e),
                        (Ok(_), Err(e)) => Err(e.clone()),
                        (Ok(intake), Ok(pass)) => Ok(ScanReport {
                            processed: pass.processed,
                            skipped: pass.skipped,
                            retrying: pass.retrying,
                            failed: pass.failed,
                            interrupted: pass.interrupted,
                            ..intake
                        }),
                    };
                    let _ = reply.send(combined);
                }
            }
            if self.cancel.is_cancelled() {
                break;
            }
        }
    }

    /// How long the processing loop sleeps: until the mailbox's earliest retry is due (so a
    /// retry runs when the log says it will), at most one scan interval.
    async fn until_next_pass(&self) -> Duration {
        match self.pipeline.store().next_retry_at(&self.mailbox.id).await {
            Ok(Some(at)) => (at - self.pipeline.clock().now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(self.interval),
            Ok(None) => self.interval,
            Err(e) => {
                tracing::warn!(mailbox = %self.mailbox.name, "next retry unknown: {e}");
                self.interval
            }
        }
    }
}
