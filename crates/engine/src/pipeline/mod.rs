//! The mail-to-ticket pipeline: one claimed email → one processing attempt.
//!
//! An attempt fetches the message (headers, body, attachments) from Graph, parses it
//! ([`ParsedEmail::from_graph`]), plans it ([`mailroom_mailproc::plan`]) with the mailbox's
//! [`ProcessingSettings`], a cached PSA directory and the store's thread index, executes the plan
//! against the PSA, records thread keys, then updates the mailbox (move / mark read / leave) and
//! marks the email done. Every HTTP exchange of the attempt is recorded (through
//! `mailroom_trace::with_sink`) and every step writes a line to the attempt's processing log.
//!
//! Exactly once: before a PSA write, a `psa_writes` intent is stored; after it, the write is
//! confirmed. An attempt that finds an unconfirmed intent (a crash or a timeout between the two)
//! first looks the object up in the PSA by the email's Message-ID (tickets:
//! `find_tickets_by_message_id`; actions: the ticket's actions' `email_message_id`) and only
//! writes when nothing is found. A confirmed write is never repeated (reprocessing only finishes
//! the mailbox update).
//!
//! Failures are classified: throttling, 5xx and transport failures are transient (retried with
//! exponential back-off plus jitter, at least the server's `Retry-After`, up to
//! [`PipelineConfig::max_attempts`]); permissions, validation and missing objects are permanent
//! (failed at once with an actionable message; the admin can *Reprocess*).

mod attempt;
mod batch;
mod close_request;
mod directory;
mod post_actions;
mod prefetch;
mod psa_writes;
mod settings;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use mailroom_clock::SharedClock;
use mailroom_graph::Message;
use mailroom_psa::PsaClient;
use mailroom_store::{Mailbox, Store, StoreError};

use crate::events::{EngineEvent, EventBus};
use directory::DirectoryCache;

pub use attempt::{AttemptOutcome, WRITE_GRACE};
pub use batch::BatchConfig;
pub use settings::{PipelineConfig, ProcessedMail, ProcessingSettings, ReplyVisibility};

/// The pipeline shared by all mailbox tasks.
pub struct Pipeline {
    store: Store,
    psa: PsaClient,
    clock: SharedClock,
    config: PipelineConfig,
    events: EventBus,
    directory: tokio::sync::Mutex<DirectoryCache>,
    outcomes: tokio::sync::Mutex<Option<(DateTime<Utc>, Vec<mailroom_psa::Outcome>)>>,
    /// Claim tokens of the processing passes running now (see [`Pipeline::release_all_claims`]).
    active_claims: Mutex<HashSet<String>>,
    folders: Mutex<HashMap<(String, String), String>>,
    reprocess: Mutex<HashSet<i64>>,
    /// The attempts in flight that may still write to the PSA (batch leaders wait for them).
    slots: batch::WriteSlots,
    /// New tickets of attempts running at the same time, sent in one POST.
    tickets: batch::Batcher<mailroom_psa::NewTicket>,
    /// Actions (replies) of attempts running at the same time, sent in one POST.
    actions: batch::Batcher<mailroom_psa::NewAction>,
    /// Conversations claimed and not started yet, which batch leaders wait for too.
    backlog: Arc<batch::Backlog>,
    /// The attempts in flight that may still create a user (user batch leaders wait for them).
    user_slots: batch::WriteSlots,
    /// Users created for the new senders of attempts running at the same time, in one POST.
    users: batch::Batcher<mailroom_psa::NewUser>,
    /// One creation at a time per new sender's address (lower-cased): two emails from the
    /// same new sender never create two users.
    user_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Messages the delta round read, for the attempts that process them.
    prefetched: prefetch::Prefetched,
    /// This process among the workers sharing the store (`host:pid:random`): the holder of
    /// the leases it takes.
    worker_id: String,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `host:pid:random`: names this process in the leases it holds (a log or the database shows
/// which machine and process), unique even when a pid is reused.
pub(crate) fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}

/// Addresses of a mailbox record (what loop protection treats as "our own").
pub fn mailbox_addresses(mailbox: &Mailbox) -> Vec<String> {
    [
        &mailbox.connected_account,
        &mailbox.mailbox_address,
        &mailbox.shared_mailbox,
    ]
    .into_iter()
    .flatten()
    .map(|a| a.trim().to_lowercase())
    .filter(|a| a.contains('@'))
    .collect()
}

impl Pipeline {
    /// A pipeline writing to `psa`, with time from `clock`.
    pub fn new(
        store: Store,
        psa: PsaClient,
        clock: SharedClock,
        config: PipelineConfig,
        events: EventBus,
    ) -> Self {
        let slots = batch::WriteSlots::default();
        let user_slots = batch::WriteSlots::default();
        let backlog = Arc::new(batch::Backlog::default());
        Pipeline {
            users: user_slots.batcher(config.batch, backlog.clone()),
            tickets: slots.batcher(config.batch, backlog.clone()),
            actions: slots.batcher(config.batch, backlog.clone()),
            backlog,
            user_slots,
            user_locks: Default::default(),
            slots,
            store,
            psa,
            clock,
            config,
            events,
            directory: Default::default(),
            outcomes: Default::default(),
            folders: Default::default(),
            reprocess: Default::default(),
            active_claims: Default::default(),
            prefetched: prefetch::Prefetched::new(prefetch::DEFAULT_BUDGET_BYTES),
            worker_id: worker_id(),
        }
    }

    /// Names this pipeline's work with `id` (the engine's, which its heartbeat lists).
    pub(crate) fn with_worker_id(mut self, id: String) -> Self {
        self.worker_id = id;
        self
    }

    /// This process among the workers sharing the store.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// A processing pass's claimed `conversations`, started `concurrency` at a time (see
    /// [`batch::Backlog`]).
    pub(crate) fn backlog_pass(
        &self,
        conversations: usize,
        concurrency: usize,
    ) -> batch::BacklogPass {
        self.backlog.pass(conversations, concurrency)
    }

    /// The message fields the intake selects in the delta round: everything an attempt reads.
    pub(crate) fn delta_fields() -> &'static [&'static str] {
        attempt::MESSAGE_FIELDS
    }

    /// Keeps `msg`, read in the delta round, for the attempt that processes email `id` (see
    /// the `prefetch` module).
    pub(crate) fn offer_read_message(&self, id: i64, msg: &mailroom_graph::Message) {
        self.prefetched.offer(id, msg);
    }

    /// Registers a processing pass's claim token (until [`Pipeline::claims_done`]).
    pub(crate) fn claims_taken(&self, token: &str) {
        self.active_claims
            .lock()
            .expect("claims lock")
            .insert(token.to_string());
    }

    /// The pass with `token` has released or finished its claims.
    pub(crate) fn claims_done(&self, token: &str) {
        self.active_claims
            .lock()
            .expect("claims lock")
            .remove(token);
    }

    /// Releases the claims of every pass still running: the last resort of a stop whose tasks
    /// did not end in time, so that even then the next start finds no claim of this process.
    pub async fn release_all_claims(&self) -> Result<u64, StoreError> {
        let tokens: Vec<String> = self
            .active_claims
            .lock()
            .expect("claims lock")
            .drain()
            .collect();
        let mut released = 0;
        for token in tokens {
            released += self.store.release_claims(&token, self.clock.now()).await?;
        }
        Ok(released)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Ticket batches sent so far, by size (size → count).
    pub fn ticket_batch_sizes(&self) -> std::collections::HashMap<usize, u64> {
        self.tickets.sizes()
    }

    /// Action batches sent so far, by size (size → count).
    pub fn action_batch_sizes(&self) -> std::collections::HashMap<usize, u64> {
        self.actions.sizes()
    }

    /// How PSA writes batch from now on (the admin changed the setting while the engine runs).
    pub fn set_batching(&self, batch: BatchConfig) {
        self.tickets.set_config(batch);
        self.actions.set_config(batch);
        self.users.set_config(batch);
    }

    /// User batches sent so far, by size (size → count).
    pub fn user_batch_sizes(&self) -> std::collections::HashMap<usize, u64> {
        self.users.sizes()
    }

    pub fn psa(&self) -> &PsaClient {
        &self.psa
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn events(&self) -> &EventBus {
        &self.events
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Queues an email for processing again (the *Reprocess* button); its next attempt is
    /// labelled `reprocess`. A confirmed PSA write is never repeated.
    pub async fn request_reprocess(&self, email_id: i64) -> Result<(), StoreError> {
        // A reprocess reads the message as it is now.
        self.prefetched.forget(email_id);
        self.store.requeue(email_id, self.clock.now()).await?;
        self.reprocess
            .lock()
            .expect("reprocess lock")
            .insert(email_id);
        self.publish_email(email_id, false).await;
        Ok(())
    }

    pub(crate) async fn publish_email(&self, email_id: i64, new: bool) {
        if let Ok(email) = self.store.inbound_email(email_id).await {
            self.events.publish(EngineEvent::Email {
                email: Box::new(email),
                new,
            });
        }
    }
}

/// Builds the sighting of a Graph message (from a delta page) for the store.
pub fn sighting(
    mailbox_id: &str,
    msg: &Message,
    now: DateTime<Utc>,
) -> mailroom_store::inbound::Sighting {
    let from = msg.from.as_ref().or(msg.sender.as_ref());
    mailroom_store::inbound::Sighting {
        mailbox_id: mailbox_id.to_string(),
        graph_message_id: msg.id.clone(),
        internet_message_id: msg.internet_message_id.clone().filter(|s| !s.is_empty()),
        conversation_id: msg.conversation_id.clone().filter(|s| !s.is_empty()),
        received_at: msg.received_date_time.unwrap_or(now),
        from_address: from
            .and_then(|f| f.email_address.address.clone())
            .unwrap_or_default()
            .to_lowercase(),
        from_name: from
            .and_then(|f| f.email_address.name.clone())
            .unwrap_or_default(),
        subject: msg.subject.clone().unwrap_or_default(),
    }
}

/// Shared handle.
pub type SharedPipeline = Arc<Pipeline>;

impl Pipeline {
    /// The production pipeline of a [`crate::Core`]: its store, its PSA connection (secret from
    /// the keyring), the system clock, the admin's batching of PSA writes, default tuning.
    pub async fn from_core(core: &crate::Core, events: EventBus) -> Result<Self, crate::CoreError> {
        let config = PipelineConfig {
            batch: core.psa_batching().await?.config(),
            ..PipelineConfig::default()
        };
        Ok(Pipeline::new(
            core.store().clone(),
            core.psa_client().await?,
            mailroom_clock::system(),
            config,
            events,
        ))
    }
}

/// Settings key of [`PsaBatching`].
const BATCHING_KEY: &str = "psa_batching";

/// How PSA writes are batched, as the admin sets it (`mailroom psa batching`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PsaBatching {
    /// Most records in one POST (1 sends each on its own).
    pub max_records: u32,
    /// Longest time an email waits for others to share its POST, in milliseconds.
    pub max_wait_ms: u32,
}

impl Default for PsaBatching {
    fn default() -> Self {
        let d = BatchConfig::default();
        PsaBatching {
            max_records: d.max_records as u32,
            max_wait_ms: d.max_wait.as_millis() as u32,
        }
    }
}

impl PsaBatching {
    /// The batcher's configuration.
    pub fn config(self) -> BatchConfig {
        BatchConfig {
            max_records: self.max_records.max(1) as usize,
            max_wait: std::time::Duration::from_millis(self.max_wait_ms.into()),
            ..BatchConfig::default()
        }
    }
}

impl crate::Core {
    /// How PSA writes are batched (the defaults until changed).
    pub async fn psa_batching(&self) -> Result<PsaBatching, crate::CoreError> {
        Ok(self
            .store()
            .setting::<PsaBatching>(BATCHING_KEY)
            .await?
            .unwrap_or_default())
    }

    /// Changes how PSA writes are batched: 1 to 100 records per POST, a wait of 0 to 2,000 ms.
    /// A pipeline reads it when it starts; a running engine applies it at once
    /// ([`crate::engine::EngineHandle::set_psa_batching`]).
    pub async fn set_psa_batching(&self, batching: PsaBatching) -> Result<(), crate::CoreError> {
        if !(1..=100).contains(&batching.max_records) {
            return Err(crate::CoreError::InvalidInput(format!(
                "Send 1 to 100 records per request, not {}.",
                batching.max_records
            )));
        }
        if batching.max_wait_ms > 2_000 {
            return Err(crate::CoreError::InvalidInput(format!(
                "Wait at most 2,000 ms for others to share a request, not {} ms: longer holds every email back.",
                batching.max_wait_ms
            )));
        }
        self.store().set_setting(BATCHING_KEY, &batching).await?;
        Ok(())
    }
}

impl crate::Core {
    /// Queues an email for processing again (used when no engine is running; the running
    /// engine's [`crate::sync::SyncSupervisor::reprocess`] also scans at once).
    pub async fn requeue_email(&self, email_id: i64) -> Result<(), crate::CoreError> {
        Ok(self.store().requeue(email_id, Utc::now()).await?)
    }
}
