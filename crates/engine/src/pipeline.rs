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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use mailroom_clock::SharedClock;
use mailroom_graph::{GraphClient, GraphError, GraphErrorKind, Message};
use mailroom_http::Backoff;
use mailroom_mailproc::{
    plan, rewrite_cid_references, AttachmentDecision, AttachmentPlan, Context, Directory,
    DirectorySite, DirectoryUser, GraphAttachment, GraphMessage, MailboxSettings, ParsedEmail,
    Plan, SenderMatch,
};
use mailroom_psa::{
    canonical_message_id, normalize_message_id, ErrorKind as PsaKind, NewAction, NewAttachment,
    NewTicket, NewUser, PsaClient, PsaError, Update,
};
use mailroom_store::inbound::{AttemptTrigger, EmailState, InboundEmail, LogLine, PsaWriteKind};
use mailroom_store::{Mailbox, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::events::{EngineEvent, EventBus};
use tokio_util::sync::CancellationToken;

/// What happens to an email in the mailbox once it is processed (or skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProcessedMail {
    /// Move it to [`ProcessingSettings::processed_folder`] (HaloPSA's own default moves
    /// processed mail out of the inbox, to Deleted Items).
    #[default]
    Move,
    /// Mark it read and leave it in the inbox.
    MarkRead,
    /// Leave it untouched.
    Leave,
}

/// Per-mailbox processing settings: the planning rules of `mailroom-mailproc` plus what the
/// engine does around them. Stored as the mailbox's settings JSON; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessingSettings {
    /// Threading, loop protection, sender matching, attachments, HTML.
    #[serde(flatten)]
    pub rules: MailboxSettings,
    /// What to do with processed mail.
    pub processed_mail: ProcessedMail,
    /// Destination of [`ProcessedMail::Move`]: a well-known folder name (`deleteditems`,
    /// `archive`, …) or the display name of a top-level folder (created when missing).
    pub processed_folder: String,
    /// Outcome (HaloPSA `Outcome` id) of actions added for replies, picked from the PSA's
    /// list. `None`: the default found by name ([`crate::outcomes::DEFAULT_OUTCOME_NAMES`]);
    /// if the PSA has none of those, replies fail with `outcome_not_configured`.
    pub action_outcome_id: Option<i64>,
    /// Its name, for display (and, without an id, matched against the PSA's outcomes).
    pub action_outcome: String,
    /// Seconds between scans of this mailbox. `None` (the default): the engine's interval
    /// (`mailroom run --interval`, else 60 s). A value set here wins over the engine's default
    /// but not over an explicit `--interval`.
    pub scan_interval_secs: Option<u64>,
    /// How a reply whose In-Reply-To / References the local thread index does not know is
    /// looked up in the PSA (mail the PSA itself sent: its actions' `email_message_id`).
    /// HaloPSA documents no `email_message_id` filter, hence a strategy; default: ticket
    /// search over actions, verified on the candidates' actions.
    pub psa_thread_lookup: mailroom_psa::ActionLookup,
    /// Whether the end user sees the action added for a reply. Default: what the chosen
    /// outcome says (HaloPSA's `hidefromuser`), so a private-note outcome stays private.
    pub reply_visibility: ReplyVisibility,
}

/// Who sees the action added for an inbound reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyVisibility {
    /// As the outcome's `hidefromuser` says.
    #[default]
    FollowOutcome,
    /// Always visible to the end user (in the portal and ticket emails).
    Visible,
    /// Always hidden from the end user (agents only).
    Hidden,
}

impl ReplyVisibility {
    /// `hiddenfromuser` of the action, for an outcome that is `private` or not.
    pub fn hidden(self, outcome_private: bool) -> bool {
        match self {
            ReplyVisibility::FollowOutcome => outcome_private,
            ReplyVisibility::Visible => false,
            ReplyVisibility::Hidden => true,
        }
    }
}

impl Default for ProcessingSettings {
    fn default() -> Self {
        ProcessingSettings {
            rules: MailboxSettings::default(),
            processed_mail: ProcessedMail::Move,
            processed_folder: "deleteditems".into(),
            action_outcome_id: None,
            action_outcome: String::new(),
            scan_interval_secs: None,
            psa_thread_lookup: mailroom_psa::ActionLookup::default(),
            reply_visibility: ReplyVisibility::default(),
        }
    }
}

const WELL_KNOWN_FOLDERS: &[&str] = &[
    "inbox",
    "deleteditems",
    "archive",
    "junkemail",
    "drafts",
    "sentitems",
    "outbox",
];

impl ProcessingSettings {
    /// Reads the settings of a mailbox (missing fields take their defaults).
    pub fn of(mailbox: &Mailbox) -> Result<Self, String> {
        if mailbox.settings.is_null() {
            return Ok(Self::default());
        }
        serde_json::from_value(mailbox.settings.clone()).map_err(|e| {
            format!(
                "the processing settings of '{}' are invalid: {e}",
                mailbox.name
            )
        })
    }
}

/// Tuning of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Attempts before an email is marked failed.
    pub max_attempts: u32,
    /// Delays between attempts: the first (`first`) doubled per attempt up to `max`, with
    /// jitter (up to one delay extra, still capped). A `Retry-After` from the PSA or Graph is
    /// the floor and may exceed `max`.
    pub retry: Backoff,
    /// How long PSA sites and looked-up users are cached.
    pub directory_ttl: Duration,
    /// Window of the loop guard (mails of a sender with the same subject).
    pub loop_window: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_attempts: 8,
            retry: Backoff::new(Duration::from_secs(5), Duration::from_secs(3600)),
            directory_ttl: Duration::from_secs(600),
            loop_window: Duration::from_secs(3600),
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// A ticket was created or an action added (or found from an earlier attempt).
    Processed {
        ticket_id: i64,
        action_id: Option<i64>,
    },
    /// Not turned into a ticket.
    Skipped { reason: String, detail: String },
    /// Will be tried again at `next_attempt_at`.
    Retrying {
        code: String,
        message: String,
        next_attempt_at: DateTime<Utc>,
    },
    /// Given up (until reprocessed).
    Failed { code: String, message: String },
    /// Mailroom stopped during the attempt; the email is processed again after the claim is
    /// released (by the stopping worker, or at the next start).
    Interrupted,
}

/// `text` as a sentence that ends with exactly one full stop (or its own ! or ?), so that
/// messages can be chained without "status 500.. Retrying".
pub(crate) fn full_stop(text: &str) -> String {
    let text = text.trim_end();
    let bare = text.trim_end_matches('.');
    if bare.ends_with(['!', '?']) {
        bare.to_string()
    } else {
        format!("{bare}.")
    }
}

/// How long a stopping worker still waits for an attempt whose PSA write is already on its way,
/// so that its outcome is recorded rather than looked up by the next attempt.
pub const WRITE_GRACE: Duration = Duration::from_millis(500);

/// A failure inside an attempt, classified for retrying.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("{0}")]
    Graph(#[from] GraphError),
    #[error("{0}")]
    Psa(#[from] PsaError),
    #[error("the local database failed: {0}")]
    Store(#[from] StoreError),
    #[error("{message}")]
    Permanent { code: &'static str, message: String },
}

impl StepError {
    /// (code, transient, retry-after)
    fn classify(&self) -> (&'static str, bool, Option<Duration>) {
        match self {
            StepError::Graph(e) => {
                let code = match e.kind {
                    GraphErrorKind::Unauthorized => "graph_unauthorized",
                    GraphErrorKind::AccessDenied => "graph_access_denied",
                    GraphErrorKind::NotFound => "graph_not_found",
                    GraphErrorKind::Throttled => "graph_throttled",
                    GraphErrorKind::SyncStateNotFound => "graph_sync_state",
                    GraphErrorKind::Server => "graph_server",
                    GraphErrorKind::BadRequest => "graph_bad_request",
                    GraphErrorKind::Transport => "graph_unreachable",
                    GraphErrorKind::Identity => "graph_sign_in",
                    GraphErrorKind::InvalidResponse => "graph_invalid_response",
                };
                let transient = matches!(
                    e.kind,
                    GraphErrorKind::Throttled
                        | GraphErrorKind::Server
                        | GraphErrorKind::Transport
                        | GraphErrorKind::Identity
                        | GraphErrorKind::InvalidResponse
                        | GraphErrorKind::SyncStateNotFound
                );
                (code, transient, e.retry_after)
            }
            StepError::Psa(e) => {
                let code = match e.kind {
                    PsaKind::Unauthorized => "psa_unauthorized",
                    PsaKind::Forbidden => "psa_forbidden",
                    PsaKind::NotFound => "psa_not_found",
                    PsaKind::Validation => "psa_validation",
                    PsaKind::RateLimited => "psa_rate_limited",
                    PsaKind::Server => "psa_server",
                    PsaKind::Transport => "psa_unreachable",
                    PsaKind::Protocol => "psa_protocol",
                };
                let transient = matches!(
                    e.kind,
                    PsaKind::RateLimited | PsaKind::Server | PsaKind::Transport
                );
                (code, transient, None)
            }
            StepError::Store(_) => ("storage", true, None),
            StepError::Permanent { code, .. } => (code, false, None),
        }
    }
}

/// The processing log of one attempt.
struct StepLog {
    clock: SharedClock,
    lines: Mutex<Vec<LogLine>>,
}

impl StepLog {
    fn new(clock: SharedClock) -> Self {
        StepLog {
            clock,
            lines: Mutex::new(Vec::new()),
        }
    }

    fn push(&self, level: &str, message: impl Into<String>) {
        let message = message.into();
        tracing::debug!(level, "{message}");
        self.lines.lock().expect("log lock").push(LogLine {
            at: self.clock.now(),
            level: level.into(),
            message,
        });
    }

    fn info(&self, message: impl Into<String>) {
        self.push("info", message)
    }

    fn warn(&self, message: impl Into<String>) {
        self.push("warn", message)
    }

    fn take(&self) -> Vec<LogLine> {
        std::mem::take(&mut *self.lines.lock().expect("log lock"))
    }
}

#[derive(Default)]
struct DirectoryCache {
    sites: Option<(DateTime<Utc>, Vec<DirectorySite>)>,
    /// Lower-cased address → (when looked up, the user if any).
    users: HashMap<String, (DateTime<Utc>, Option<DirectoryUser>)>,
    /// Users fetched by id (the configured default user).
    by_id: HashMap<i64, (DateTime<Utc>, DirectoryUser)>,
}

fn directory_user(u: &mailroom_psa::User) -> DirectoryUser {
    DirectoryUser {
        id: u.id,
        name: u.name.clone().unwrap_or_default(),
        email: u.emailaddress.clone().unwrap_or_default(),
        other_emails: [&u.email2, &u.email3]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        site_id: u.site_id.unwrap_or_default(),
        client_id: u.client_id.unwrap_or_default(),
        inactive: u.inactive.unwrap_or(false),
    }
}

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
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn to_graph_message(msg: &Message, attachments: &[mailroom_graph::Attachment]) -> GraphMessage {
    let mut gm: GraphMessage = serde_json::to_value(msg)
        .and_then(serde_json::from_value)
        .unwrap_or_default();
    gm.attachments = attachments
        .iter()
        .filter(|a| {
            a.odata_type
                .eq_ignore_ascii_case("#microsoft.graph.fileAttachment")
        })
        .map(|a| GraphAttachment {
            id: Some(a.id.clone()),
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            is_inline: Some(a.is_inline),
            content_id: a.content_id.clone(),
            content_bytes: Some(base64::engine::general_purpose::STANDARD.encode(&a.bytes)),
        })
        .collect();
    gm
}

/// Prefix of thread keys a ticket's mail only refers to (In-Reply-To / References).
const REF_PREFIX: &str = "ref:";

const MESSAGE_FIELDS: &[&str] = &[
    "id",
    "subject",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "replyTo",
    "receivedDateTime",
    "sentDateTime",
    "body",
    "hasAttachments",
    "isRead",
    "internetMessageId",
    "conversationId",
    "internetMessageHeaders",
];

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

enum Executed {
    Written {
        ticket_id: i64,
        action_id: Option<i64>,
    },
    Skipped {
        reason: String,
        detail: String,
    },
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
        Pipeline {
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
        }
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

    fn trigger_for(&self, email: &InboundEmail) -> AttemptTrigger {
        if self
            .reprocess
            .lock()
            .expect("reprocess lock")
            .remove(&email.id)
        {
            return AttemptTrigger::Reprocess;
        }
        match email.claimed_from {
            Some(EmailState::Retrying) => AttemptTrigger::Retry,
            Some(EmailState::Claimed | EmailState::PsaWritten) => AttemptTrigger::Recovery,
            _ => AttemptTrigger::Scan,
        }
    }

    fn retry_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.config.retry.delay(attempt, retry_after)
    }

    /// Processes one claimed email: one attempt, recorded with its requests and log.
    ///
    /// When `cancel` fires the attempt stops at its next await point — unless its PSA write is
    /// already on its way, which gets [`WRITE_GRACE`] to finish — and is recorded as
    /// interrupted; the caller releases the claim. Stopping anywhere is safe: the PSA write
    /// intent stored before the POST makes the next attempt look the object up first.
    pub async fn process_one(
        &self,
        graph: &GraphClient,
        mailbox: &Mailbox,
        email: &InboundEmail,
        cancel: &CancellationToken,
    ) -> Result<AttemptOutcome, StoreError> {
        let trigger = self.trigger_for(email);
        let attempt_id = self
            .store
            .start_attempt(email.id, trigger, self.clock.now())
            .await?;
        let number = email.attempts + 1;
        let log = StepLog::new(self.clock.clone());
        log.info(format!(
            "Attempt {number} ({}) for \"{}\" from {}",
            serde_json::to_value(trigger)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            email.subject,
            email.from_address
        ));
        let collector = mailroom_trace::Collector::new();
        let mut work = Box::pin(mailroom_trace::with_sink(
            collector.clone(),
            self.run(graph, mailbox, email, &log),
        ));
        let result = tokio::select! {
            biased;
            result = &mut work => Some(result),
            _ = cancel.cancelled() => {
                let write_in_flight = matches!(
                    self.store.psa_write(email.id).await,
                    Ok(Some(w)) if !w.confirmed
                );
                if write_in_flight {
                    tokio::time::timeout(WRITE_GRACE, &mut work).await.ok()
                } else {
                    None
                }
            }
        };
        drop(work);
        let now = self.clock.now();
        let Some(result) = result else {
            log.warn(
                "Stopped: Mailroom is shutting down. The email is released and processed again at the next start.",
            );
            return self
                .finish_interrupted(email.id, attempt_id, collector, &log)
                .await;
        };
        let (outcome, result_label, error) = match result {
            Ok(Executed::Written {
                ticket_id,
                action_id,
            }) => {
                self.store.mark_done(email.id, now).await?;
                log.info("Done.");
                (
                    AttemptOutcome::Processed {
                        ticket_id,
                        action_id,
                    },
                    "processed",
                    None,
                )
            }
            Ok(Executed::Skipped { reason, detail }) => {
                self.store
                    .mark_skipped(email.id, &reason, &detail, now)
                    .await?;
                (AttemptOutcome::Skipped { reason, detail }, "skipped", None)
            }
            Err(e) => {
                let (code, transient, retry_after) = e.classify();
                let message = e.to_string();
                if transient && (number as u32) < self.config.max_attempts {
                    let delay = self.retry_delay(number as u32, retry_after);
                    let next = now
                        + chrono::Duration::from_std(delay)
                            .unwrap_or_else(|_| chrono::Duration::hours(1));
                    log.warn(format!(
                        "{} Retrying in {} s (attempt {number} of {}).",
                        full_stop(&message),
                        delay.as_secs(),
                        self.config.max_attempts
                    ));
                    self.store
                        .mark_retrying(email.id, next, code, &message, now)
                        .await?;
                    (
                        AttemptOutcome::Retrying {
                            code: code.into(),
                            message: message.clone(),
                            next_attempt_at: next,
                        },
                        "failed",
                        Some((code, message)),
                    )
                } else {
                    let message = if transient {
                        format!(
                            "{} Gave up after {number} attempts; use Reprocess once the cause is fixed.",
                            full_stop(&message)
                        )
                    } else {
                        message
                    };
                    log.push("error", full_stop(&message));
                    self.store
                        .mark_failed(email.id, code, &message, now)
                        .await?;
                    (
                        AttemptOutcome::Failed {
                            code: code.into(),
                            message: message.clone(),
                        },
                        "failed",
                        Some((code, message)),
                    )
                }
            }
        };
        let requests = collector.drain();
        let lines = log.take();
        self.store
            .finish_attempt(
                attempt_id,
                result_label,
                error.as_ref().map(|(c, m)| (*c, m.as_str())),
                &requests,
                &lines,
                self.clock.now(),
            )
            .await?;
        self.events.publish(EngineEvent::AttemptFinished {
            email_id: email.id,
            attempt_id,
            result: result_label.into(),
        });
        self.publish_email(email.id, false).await;
        Ok(outcome)
    }

    async fn finish_interrupted(
        &self,
        email_id: i64,
        attempt_id: i64,
        collector: Arc<mailroom_trace::Collector>,
        log: &StepLog,
    ) -> Result<AttemptOutcome, StoreError> {
        let requests = collector.drain();
        let lines = log.take();
        self.store
            .finish_attempt(
                attempt_id,
                "interrupted",
                Some((
                    "interrupted",
                    "Mailroom stopped during this attempt; the email is processed again.",
                )),
                &requests,
                &lines,
                self.clock.now(),
            )
            .await?;
        self.events.publish(EngineEvent::AttemptFinished {
            email_id,
            attempt_id,
            result: "interrupted".into(),
        });
        Ok(AttemptOutcome::Interrupted)
    }

    async fn run(
        &self,
        graph: &GraphClient,
        mailbox: &Mailbox,
        email: &InboundEmail,
        log: &StepLog,
    ) -> Result<Executed, StepError> {
        let settings = ProcessingSettings::of(mailbox).map_err(|message| StepError::Permanent {
            code: "settings_invalid",
            message,
        })?;
        let write = self.store.psa_write(email.id).await?;
        if let Some(w) = write.as_ref().filter(|w| w.confirmed) {
            let ticket_id = w.ticket_id.unwrap_or_default();
            let action_id = (w.kind == PsaWriteKind::Action)
                .then_some(w.object_id)
                .flatten();
            log.info(format!(
                "The PSA write of this email is already confirmed ({} on ticket {ticket_id}); not writing again.",
                w.kind
            ));
            self.update_mailbox(graph, mailbox, email, &settings, log)
                .await?;
            return Ok(Executed::Written {
                ticket_id,
                action_id,
            });
        }

        // 1. Fetch.
        log.info(format!(
            "Fetching the message from Graph ({})",
            email.graph_message_id
        ));
        let msg = match graph.message(&email.graph_message_id, MESSAGE_FIELDS).await {
            Ok(m) => m,
            Err(e) if e.kind == GraphErrorKind::NotFound => {
                log.warn("The message is no longer in the mailbox (deleted or moved before it was processed).");
                if write.is_some() {
                    return Err(StepError::Permanent {
                        code: "message_gone",
                        message: "The message disappeared from the mailbox after a PSA write was started; check the PSA for its ticket and reprocess if needed.".into(),
                    });
                }
                return Ok(Executed::Skipped {
                    reason: "message_gone".into(),
                    detail: "The message was deleted or moved out of the inbox before Mailroom processed it.".into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let html_has_cid = msg
            .body
            .as_ref()
            .is_some_and(|b| b.content.to_ascii_lowercase().contains("cid:"));
        let attachments = if msg.has_attachments == Some(true) || html_has_cid {
            let list = graph.attachments(&msg.id).await?;
            log.info(format!("Fetched {} attachment(s)", list.len()));
            list
        } else {
            Vec::new()
        };
        let parsed =
            ParsedEmail::from_graph(&to_graph_message(&msg, &attachments)).map_err(|e| {
                StepError::Permanent {
                    code: "unreadable",
                    message: format!("The message could not be read: {e}"),
                }
            })?;

        // An earlier attempt recorded a PSA write but never confirmed it: look for it first.
        if let Some(w) = write.as_ref() {
            if let Some((ticket_id, action_id)) = self.reconcile(email, w, log).await? {
                self.record_thread_keys(&mailbox.id, &parsed, ticket_id)
                    .await?;
                self.update_mailbox(graph, mailbox, email, &settings, log)
                    .await?;
                return Ok(Executed::Written {
                    ticket_id,
                    action_id,
                });
            }
        }

        // 2. Plan.
        let mut rules = settings.rules.clone();
        for mb in self.store.mailboxes().await? {
            for address in mailbox_addresses(&mb) {
                if !rules.loop_policy.own_addresses.contains(&address) {
                    rules.loop_policy.own_addresses.push(address);
                }
            }
        }
        let directory = match &parsed.from {
            Some(from) => {
                self.directory_for(&from.address, rules.sender_policy.default_user_id, log)
                    .await?
            }
            None => Directory::default(),
        };
        let mut index = self.thread_index(&mailbox.id, &parsed).await?;
        self.psa_thread_lookup(&mailbox.id, &parsed, &rules, &settings, &mut index, log)
            .await?;
        // The loop guard only looks back from this mail's own arrival: mail that arrived
        // later (a burst delivered together) never counts against the first ones.
        let since = email.received_at
            - chrono::Duration::from_std(self.config.loop_window)
                .unwrap_or_else(|_| chrono::Duration::hours(1));
        let recent = self
            .store
            .count_recent_same_subject(
                &mailbox.id,
                &email.from_address,
                &email.subject,
                since,
                email.received_at,
                email.id,
            )
            .await?;
        let the_plan = {
            let ctx = Context {
                settings: &rules,
                directory: &directory,
                index: &index,
                recent_same_subject: recent.clamp(0, u32::MAX as i64) as u32,
            };
            plan(&parsed, &ctx)
        };
        log.info(format!("Plan: {}", the_plan.label()));

        // 3. Execute.
        let executed = match the_plan {
            Plan::Skip { reason } => {
                log.info(reason.describe());
                Executed::Skipped {
                    reason: reason.code().into(),
                    detail: reason.describe(),
                }
            }
            Plan::NewTicket {
                summary,
                details_html,
                user,
                tickettype_id,
                attachments: att_plans,
                thread_keys,
            } => {
                let (ticket_id, _) = self
                    .new_ticket(
                        email,
                        &parsed,
                        log,
                        NewTicketParts {
                            summary,
                            details_html,
                            user,
                            tickettype_id,
                            attachments: att_plans,
                        },
                    )
                    .await?;
                let _ = thread_keys;
                self.record_thread_keys(&mailbox.id, &parsed, ticket_id)
                    .await?;
                Executed::Written {
                    ticket_id,
                    action_id: None,
                }
            }
            Plan::UpdateTicket {
                ticket_id,
                how,
                note_html,
                sender,
                attachments: att_plans,
                thread_keys,
            } => {
                log.info(format!("Reply to ticket {ticket_id} (matched by {how:?})"));
                let action_id = self
                    .new_action(
                        email, &parsed, &settings, log, ticket_id, note_html, &sender, att_plans,
                    )
                    .await?;
                let _ = thread_keys;
                self.record_thread_keys(&mailbox.id, &parsed, ticket_id)
                    .await?;
                Executed::Written {
                    ticket_id,
                    action_id: Some(action_id),
                }
            }
        };

        // 4. The mailbox.
        self.update_mailbox(graph, mailbox, email, &settings, log)
            .await?;
        Ok(executed)
    }

    /// The Message-ID written to the PSA (canonical `<local@domain>`), or a stable stand-in
    /// built from the Graph id for mail without one.
    fn message_key(email: &InboundEmail, parsed: &ParsedEmail) -> String {
        match parsed
            .message_id
            .as_deref()
            .or(email.internet_message_id.as_deref())
        {
            Some(id) if !normalize_message_id(id).is_empty() => canonical_message_id(id),
            _ => format!("<{}@graph.mailroom.invalid>", email.graph_message_id),
        }
    }

    async fn directory_for(
        &self,
        address: &str,
        default_user_id: Option<i64>,
        log: &StepLog,
    ) -> Result<Directory, StepError> {
        let now = self.clock.now();
        let ttl = chrono::Duration::from_std(self.config.directory_ttl)
            .unwrap_or_else(|_| chrono::Duration::minutes(10));
        let key = address.trim().to_lowercase();
        let mut cache = self.directory.lock().await;
        let sites_fresh = cache.sites.as_ref().is_some_and(|(at, _)| now - *at < ttl);
        if !sites_fresh {
            let sites = self.psa.list_sites(None).await?;
            log.info(format!("Loaded {} PSA site(s) into the cache", sites.len()));
            cache.sites = Some((
                now,
                sites
                    .into_iter()
                    .map(|s| DirectorySite {
                        id: s.id,
                        name: s.name.unwrap_or_default(),
                        client_id: s.client_id.unwrap_or_default(),
                        emaildomain: s.emaildomain.unwrap_or_default(),
                        inactive: s.inactive.unwrap_or(false),
                    })
                    .collect(),
            ));
        }
        let user_fresh = cache.users.get(&key).is_some_and(|(at, _)| now - *at < ttl);
        if !user_fresh {
            let found = self.psa.find_users_by_email(&key, None).await?;
            let user = found
                .iter()
                .find(|u| !u.inactive.unwrap_or(false))
                .or(found.first())
                .map(directory_user);
            log.info(match &user {
                Some(u) => format!("Sender {key} is PSA user {} ({})", u.id, u.name),
                None => format!("Sender {key} is not a PSA user yet"),
            });
            cache.users.insert(key.clone(), (now, user));
        }
        if let Some(id) = default_user_id {
            let fresh = cache.by_id.get(&id).is_some_and(|(at, _)| now - *at < ttl);
            if !fresh {
                match self.psa.get_user(id).await {
                    Ok(u) => {
                        cache.by_id.insert(id, (now, directory_user(&u)));
                    }
                    Err(e) if e.kind == PsaKind::NotFound => {
                        log.warn(format!(
                            "The configured default user {id} does not exist in the PSA"
                        ));
                        cache.by_id.remove(&id);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let mut users: Vec<DirectoryUser> = cache
            .users
            .get(&key)
            .and_then(|(_, u)| u.clone())
            .into_iter()
            .collect();
        if let Some((_, u)) = default_user_id.and_then(|id| cache.by_id.get(&id)) {
            if !users.iter().any(|x| x.id == u.id) {
                users.push(u.clone());
            }
        }
        Ok(Directory {
            users,
            sites: cache
                .sites
                .as_ref()
                .map(|(_, s)| s.clone())
                .unwrap_or_default(),
        })
    }

    /// Resolves the sender to `(user_id, site_id, client_id)`, creating the user when the plan
    /// says so.
    async fn resolve_user(
        &self,
        sender: &SenderMatch,
        log: &StepLog,
    ) -> Result<(Option<i64>, Option<i64>, Option<i64>), StepError> {
        Ok(match sender {
            SenderMatch::ExistingUser {
                user_id,
                site_id,
                client_id,
            }
            | SenderMatch::DefaultUser {
                user_id,
                site_id,
                client_id,
            } => (Some(*user_id), Some(*site_id), Some(*client_id)),
            SenderMatch::NewUserOnSite {
                site_id,
                name,
                email,
                ..
            }
            | SenderMatch::NewUserOnDefaultSite {
                site_id,
                name,
                email,
                ..
            } => {
                // Looked up again right before creating: another mailbox may have created it.
                let existing = self.psa.find_users_by_email(email, None).await?;
                let user = match existing.into_iter().next() {
                    Some(u) => {
                        log.info(format!("User {email} already exists in the PSA ({})", u.id));
                        u
                    }
                    None => {
                        let u = self
                            .psa
                            .create_user(&NewUser {
                                name: name.display.clone(),
                                site_id: *site_id,
                                emailaddress: email.clone(),
                                firstname: Some(name.first.clone()).filter(|s| !s.is_empty()),
                                surname: Some(name.last.clone()).filter(|s| !s.is_empty()),
                                extra: Default::default(),
                            })
                            .await?;
                        log.info(format!(
                            "Created PSA user {} \"{}\" <{email}> on site {site_id}",
                            u.id, name.display
                        ));
                        u
                    }
                };
                let dir_user = DirectoryUser {
                    id: user.id,
                    name: user.name.clone().unwrap_or_default(),
                    email: email.clone(),
                    other_emails: Vec::new(),
                    site_id: user.site_id.unwrap_or(*site_id),
                    client_id: user.client_id.unwrap_or_default(),
                    inactive: false,
                };
                self.directory
                    .lock()
                    .await
                    .users
                    .insert(email.to_lowercase(), (self.clock.now(), Some(dir_user)));
                (
                    Some(user.id),
                    Some(user.site_id.unwrap_or(*site_id)),
                    user.client_id,
                )
            }
            SenderMatch::Reject { reason } => {
                log.info(format!("Sender not matched to a user: {reason}"));
                (None, None, None)
            }
        })
    }

    fn attachments_to_send(
        parsed: &ParsedEmail,
        plans: &[AttachmentPlan],
        log: &StepLog,
    ) -> (Vec<NewAttachment>, Vec<(String, String)>) {
        let mut out = Vec::new();
        let mut inline = Vec::new();
        for p in plans {
            let Some(a) = parsed.attachments.get(p.index) else {
                continue;
            };
            match &p.decision {
                AttachmentDecision::Skip { code, reason } => {
                    log.info(format!(
                        "Attachment {} not uploaded ({code}): {reason}",
                        a.name
                    ));
                }
                AttachmentDecision::Upload | AttachmentDecision::Inline { .. } => {
                    let Some(bytes) = a.bytes.as_deref() else {
                        log.warn(format!(
                            "Attachment {} has no content; not uploaded",
                            a.name
                        ));
                        continue;
                    };
                    let mut na =
                        NewAttachment::from_bytes(&a.name, Some(a.content_type.clone()), bytes);
                    na.isimage = Some(a.is_image());
                    if let AttachmentDecision::Inline { content_id } = &p.decision {
                        inline.push((content_id.clone(), a.name.clone()));
                    }
                    log.info(format!(
                        "Attachment {} ({} bytes{}) will be uploaded",
                        a.name,
                        bytes.len(),
                        if matches!(p.decision, AttachmentDecision::Inline { .. }) {
                            ", inline"
                        } else {
                            ""
                        }
                    ));
                    out.push(na);
                }
            }
        }
        (out, inline)
    }

    fn attachment_url(&self, a: &mailroom_psa::Attachment) -> String {
        a.link.clone().filter(|l| !l.is_empty()).unwrap_or_else(|| {
            format!(
                "{}/api/Attachment/image?id={}",
                self.psa.config().base_url.trim_end_matches('/'),
                a.id
            )
        })
    }

    /// cid → URL of the uploaded attachment with that file name.
    fn cid_map(
        &self,
        inline: &[(String, String)],
        uploaded: &[mailroom_psa::Attachment],
    ) -> HashMap<String, String> {
        inline
            .iter()
            .filter_map(|(cid, name)| {
                uploaded
                    .iter()
                    .find(|u| u.filename.as_deref() == Some(name.as_str()))
                    .map(|u| (cid.clone(), self.attachment_url(u)))
            })
            .collect()
    }

    async fn new_ticket(
        &self,
        email: &InboundEmail,
        parsed: &ParsedEmail,
        log: &StepLog,
        parts: NewTicketParts,
    ) -> Result<(i64, ()), StepError> {
        let key = Self::message_key(email, parsed);
        let (user_id, site_id, client_id) = self.resolve_user(&parts.user, log).await?;
        let (attachments, inline) = Self::attachments_to_send(parsed, &parts.attachments, log);
        let ticket = NewTicket {
            summary: parts.summary.clone(),
            details_html: parts.details_html.clone(),
            tickettype_id: parts.tickettype_id,
            client_id,
            site_id,
            user_id,
            email_message_id: Some(key.clone()),
            internet_message_id: Some(key.clone()),
            emailtolist: Some(
                parsed
                    .to
                    .iter()
                    .map(|m| m.address.clone())
                    .collect::<Vec<_>>()
                    .join(";"),
            )
            .filter(|s| !s.is_empty()),
            emailcclist: Some(
                parsed
                    .cc
                    .iter()
                    .map(|m| m.address.clone())
                    .collect::<Vec<_>>()
                    .join(";"),
            )
            .filter(|s| !s.is_empty()),
            attachments,
            ..Default::default()
        };
        self.store
            .record_psa_intent(email.id, PsaWriteKind::Ticket, &key, None, self.clock.now())
            .await?;
        let created = self.psa.create_ticket(&ticket).await?;
        log.info(format!(
            "Created ticket {} \"{}\" (Message-ID {key})",
            created.id, parts.summary
        ));
        self.confirm(email, created.id, created.id, "ticket_created", None)
            .await?;
        if !inline.is_empty() {
            let uploaded = created.attachments.clone().unwrap_or_default();
            let map = self.cid_map(&inline, &uploaded);
            if !map.is_empty() {
                let html = rewrite_cid_references(&parts.details_html, &map);
                let mut fields = serde_json::Map::new();
                fields.insert("details_html".into(), serde_json::Value::String(html));
                self.psa
                    .update_ticket(&Update {
                        id: created.id,
                        fields,
                    })
                    .await?;
                log.info(format!(
                    "Pointed {} inline image(s) in the ticket details at the uploaded attachments",
                    map.len()
                ));
            }
        }
        Ok((created.id, ()))
    }

    async fn confirm(
        &self,
        email: &InboundEmail,
        object_id: i64,
        ticket_id: i64,
        outcome: &str,
        action_id: Option<i64>,
    ) -> Result<(), StepError> {
        let now = self.clock.now();
        self.store
            .confirm_psa_write(email.id, object_id, ticket_id, now)
            .await?;
        self.store
            .mark_psa_written(email.id, outcome, ticket_id, action_id, now)
            .await?;
        Ok(())
    }

    /// Records the keys of a mail now on `ticket_id`: its own Message-ID and conversation as
    /// they are, the ids it replies to / references as `ref:<id>`. Only own keys make a later
    /// mail with that Message-ID a duplicate; both kinds thread replies.
    async fn record_thread_keys(
        &self,
        mailbox_id: &str,
        parsed: &ParsedEmail,
        ticket_id: i64,
    ) -> Result<(), StoreError> {
        let own = mailroom_mailproc::own_keys(parsed);
        let mut keys = own.clone();
        for k in mailroom_mailproc::thread_keys(parsed) {
            if !own.contains(&k) {
                keys.push(format!("{REF_PREFIX}{k}"));
            }
        }
        self.store
            .add_thread_keys(mailbox_id, &keys, ticket_id, self.clock.now())
            .await
    }

    /// The thread index for one mail: its own Message-ID only matches own keys; every other
    /// key also matches `ref:` keys.
    async fn thread_index(
        &self,
        mailbox_id: &str,
        parsed: &ParsedEmail,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let own: Vec<String> = parsed
            .message_id
            .as_deref()
            .map(|m| mailroom_mailproc::message_id_keys(m).to_vec())
            .unwrap_or_default();
        let mut index = HashMap::new();
        for key in mailroom_mailproc::thread_keys(parsed) {
            let mut found = self.store.ticket_for_thread_key(mailbox_id, &key).await?;
            if found.is_none() && !own.contains(&key) {
                found = self
                    .store
                    .ticket_for_thread_key(mailbox_id, &format!("{REF_PREFIX}{key}"))
                    .await?;
            }
            if let Some(ticket) = found {
                index.insert(key, ticket);
            }
        }
        Ok(index)
    }

    /// When a reply names messages (In-Reply-To / References) the local index does not know
    /// and nothing else threads it (no subject tag, no known conversation), asks the PSA
    /// whether one of them is mail it sent from a ticket (an action's `email_message_id`).
    /// A hit goes into `index` under that key, so the plan threads the reply to the ticket.
    async fn psa_thread_lookup(
        &self,
        mailbox_id: &str,
        parsed: &ParsedEmail,
        rules: &MailboxSettings,
        settings: &ProcessingSettings,
        index: &mut HashMap<String, i64>,
        log: &StepLog,
    ) -> Result<(), StepError> {
        if !rules.thread_by_headers
            || settings.psa_thread_lookup == mailroom_psa::ActionLookup::Disabled
            || mailroom_mailproc::find_ticket_id(&parsed.subject, &rules.tag).is_some()
        {
            return Ok(());
        }
        let keys = mailroom_mailproc::reply_keys(parsed);
        let conversation = parsed
            .conversation_id
            .as_deref()
            .filter(|_| rules.thread_by_conversation)
            .map(mailroom_mailproc::conversation_key);
        if keys.is_empty()
            || keys.iter().any(|k| index.contains_key(k))
            || conversation.is_some_and(|c| index.contains_key(&c))
        {
            return Ok(());
        }
        // In-Reply-To first, then the most recent References; a few at most. Mail this mailbox
        // received itself is not mail the PSA sent: asking would cost a PSA request per reply
        // whose original is still waiting its turn (issue 23 #9).
        let mut candidates = Vec::new();
        for key in keys.iter().filter(|k| !k.starts_with('<')) {
            if candidates.len() == 3 {
                break;
            }
            if self.store.received_message_id(mailbox_id, key).await? {
                continue;
            }
            candidates.push(key);
        }
        for key in candidates {
            if let Some(action) = self
                .psa
                .find_action_by_email_message_id(key, &settings.psa_thread_lookup)
                .await?
            {
                log.info(format!(
                    "{key} is mail the PSA sent from ticket {} (action {}); threading the reply to that ticket",
                    action.ticket_id, action.id
                ));
                index.insert(key.clone(), action.ticket_id);
                return Ok(());
            }
        }
        log.info("None of the messages this mail replies to is known here or in the PSA");
        Ok(())
    }

    /// Looks for the object an unconfirmed intent may have created; confirms it when found.
    async fn reconcile(
        &self,
        email: &InboundEmail,
        w: &mailroom_store::inbound::PsaWrite,
        log: &StepLog,
    ) -> Result<Option<(i64, Option<i64>)>, StepError> {
        let key = &w.message_key;
        if w.kind == PsaWriteKind::Ticket {
            log.info(format!(
                "An earlier attempt started creating a ticket; looking it up by Message-ID {key}"
            ));
            if let Some(t) = self
                .psa
                .find_tickets_by_message_id(key)
                .await?
                .into_iter()
                .min_by_key(|t| t.id)
            {
                log.info(format!(
                    "Found ticket {} created by the earlier attempt; not creating another",
                    t.id
                ));
                self.confirm(email, t.id, t.id, "ticket_created", None)
                    .await?;
                return Ok(Some((t.id, None)));
            }
        } else if let Some(ticket_id) = w.ticket_id {
            log.info(format!(
                "An earlier attempt started adding an action; looking for Message-ID {key} on ticket {ticket_id}"
            ));
            let wanted = normalize_message_id(key);
            if let Some(a) = self
                .psa
                .list_actions(ticket_id)
                .await?
                .into_iter()
                .find(|a| {
                    a.email_message_id
                        .as_deref()
                        .is_some_and(|m| normalize_message_id(m) == wanted)
                })
            {
                log.info(format!(
                    "Found action {} added by the earlier attempt; not adding another",
                    a.id
                ));
                self.confirm(email, a.id, ticket_id, "action_added", Some(a.id))
                    .await?;
                return Ok(Some((ticket_id, Some(a.id))));
            }
        }
        log.info("Nothing was written by the earlier attempt; writing now");
        Ok(None)
    }

    /// The outcome for a reply's action, chosen from the PSA's outcome list (cached like the
    /// directory) by the mailbox's setting or the default — never a guessed name.
    async fn reply_outcome(
        &self,
        settings: &ProcessingSettings,
        log: &StepLog,
    ) -> Result<crate::outcomes::OutcomeChoice, StepError> {
        let now = self.clock.now();
        let ttl = chrono::Duration::from_std(self.config.directory_ttl)
            .unwrap_or_else(|_| chrono::Duration::minutes(10));
        let mut cache = self.outcomes.lock().await;
        let fresh = cache.as_ref().is_some_and(|(at, _)| now - *at < ttl);
        if !fresh {
            let list = self.psa.outcomes().await?;
            log.info(format!("Loaded {} PSA outcome(s)", list.len()));
            *cache = Some((now, list));
        }
        let list = cache
            .as_ref()
            .map(|(_, l)| l.as_slice())
            .unwrap_or_default();
        let chosen = crate::outcomes::resolve_outcome(
            list,
            settings.action_outcome_id,
            &settings.action_outcome,
        );
        if chosen.is_err() {
            // Let the next attempt see a changed PSA at once.
            *cache = None;
        }
        let chosen = chosen.map_err(|e| StepError::Permanent {
            code: e.code(),
            message: e.to_string(),
        })?;
        log.info(format!(
            "Outcome for the reply: {} (id {}){}",
            chosen.name,
            chosen.id,
            if settings.action_outcome_id.is_none() {
                " — the default; choose one in the mailbox's processing settings to change it"
            } else {
                ""
            }
        ));
        Ok(chosen)
    }

    #[allow(clippy::too_many_arguments)]
    async fn new_action(
        &self,
        email: &InboundEmail,
        parsed: &ParsedEmail,
        settings: &ProcessingSettings,
        log: &StepLog,
        ticket_id: i64,
        note_html: String,
        sender: &SenderMatch,
        plans: Vec<AttachmentPlan>,
    ) -> Result<i64, StepError> {
        let key = Self::message_key(email, parsed);
        if let SenderMatch::ExistingUser { user_id, .. } = sender {
            log.info(format!("Sender is PSA user {user_id}"));
        }
        let outcome = self.reply_outcome(settings, log).await?;
        let hidden = settings.reply_visibility.hidden(outcome.private);
        log.info(match (hidden, settings.reply_visibility) {
            (true, ReplyVisibility::FollowOutcome) => format!(
                "The action is hidden from the end user (the outcome {} is private)",
                outcome.name
            ),
            (false, ReplyVisibility::FollowOutcome) => format!(
                "The action is visible to the end user (the outcome {} is not private)",
                outcome.name
            ),
            (true, _) => "The action is hidden from the end user (mailbox setting)".into(),
            (false, _) => "The action is visible to the end user (mailbox setting)".into(),
        });
        let (attachments, inline) = Self::attachments_to_send(parsed, &plans, log);
        let action = NewAction {
            ticket_id,
            outcome_id: Some(outcome.id),
            outcome: None,
            note_html: Some(note_html.clone()),
            emailfrom: parsed.from.as_ref().map(|f| f.address.clone()),
            emailto: Some(
                parsed
                    .to
                    .iter()
                    .map(|m| m.address.clone())
                    .collect::<Vec<_>>()
                    .join(";"),
            )
            .filter(|s| !s.is_empty()),
            emailsubject: Some(parsed.subject.clone()),
            email_message_id: Some(key.clone()),
            hiddenfromuser: hidden,
            sendemail: Some(false),
            attachments,
            ..Default::default()
        };
        self.store
            .record_psa_intent(
                email.id,
                PsaWriteKind::Action,
                &key,
                Some(ticket_id),
                self.clock.now(),
            )
            .await?;
        let created = match self.psa.create_action(&action).await {
            Ok(a) => a,
            Err(e) if e.kind == PsaKind::NotFound => {
                return Err(StepError::Permanent {
                    code: "ticket_not_found",
                    message: format!(
                        "Ticket {ticket_id} (from the subject tag or thread) does not exist in the PSA: {e}"
                    ),
                })
            }
            Err(e) => return Err(e.into()),
        };
        log.info(format!(
            "Added action {} to ticket {ticket_id} (Message-ID {key})",
            created.id
        ));
        self.confirm(
            email,
            created.id,
            ticket_id,
            "action_added",
            Some(created.id),
        )
        .await?;
        if !inline.is_empty() {
            let uploaded = created.attachments.clone().unwrap_or_default();
            let map = self.cid_map(&inline, &uploaded);
            if !map.is_empty() {
                let mut fields = serde_json::Map::new();
                fields.insert("ticket_id".into(), ticket_id.into());
                fields.insert(
                    "note_html".into(),
                    rewrite_cid_references(&note_html, &map).into(),
                );
                let _: serde_json::Value = self
                    .psa
                    .post_one(
                        "Actions",
                        &Update {
                            id: created.id,
                            fields,
                        },
                    )
                    .await?;
                log.info(format!(
                    "Pointed {} inline image(s) in the note at the uploaded attachments",
                    map.len()
                ));
            }
        }
        Ok(created.id)
    }

    async fn update_mailbox(
        &self,
        graph: &GraphClient,
        mailbox: &Mailbox,
        email: &InboundEmail,
        settings: &ProcessingSettings,
        log: &StepLog,
    ) -> Result<(), StepError> {
        let id = &email.graph_message_id;
        let result = match settings.processed_mail {
            ProcessedMail::Leave => {
                log.info("Left the message in the inbox (setting: leave)");
                return Ok(());
            }
            ProcessedMail::MarkRead => graph.mark_read(id).await.map(|_| {
                log.info("Marked the message read");
            }),
            ProcessedMail::Move => {
                let folder = self.folder_id(graph, mailbox, settings).await?;
                graph.move_to(id, &folder).await.map(|_| {
                    log.info(format!(
                        "Moved the message to {}",
                        settings.processed_folder
                    ));
                })
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind == GraphErrorKind::NotFound => {
                log.info("The message is no longer in the inbox (already moved or deleted); nothing to update");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn folder_id(
        &self,
        graph: &GraphClient,
        mailbox: &Mailbox,
        settings: &ProcessingSettings,
    ) -> Result<String, StepError> {
        let name = settings.processed_folder.trim();
        let name = if name.is_empty() {
            "deleteditems"
        } else {
            name
        };
        if WELL_KNOWN_FOLDERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Ok(name.to_ascii_lowercase());
        }
        let key = (mailbox.id.clone(), name.to_string());
        if let Some(id) = self.folders.lock().expect("folders lock").get(&key) {
            return Ok(id.clone());
        }
        let id = graph.ensure_folder(name).await?;
        self.folders
            .lock()
            .expect("folders lock")
            .insert(key, id.clone());
        Ok(id)
    }
}

struct NewTicketParts {
    summary: String,
    details_html: String,
    user: SenderMatch,
    tickettype_id: Option<i64>,
    attachments: Vec<AttachmentPlan>,
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
    /// the keyring), the system clock and default tuning.
    pub async fn from_core(core: &crate::Core, events: EventBus) -> Result<Self, crate::CoreError> {
        Ok(Pipeline::new(
            core.store().clone(),
            core.psa_client().await?,
            mailroom_clock::system(),
            PipelineConfig::default(),
            events,
        ))
    }
}

impl crate::Core {
    /// Queues an email for processing again (used when no engine is running; the running
    /// engine's [`crate::sync::SyncSupervisor::reprocess`] also scans at once).
    pub async fn requeue_email(&self, email_id: i64) -> Result<(), crate::CoreError> {
        Ok(self.store().requeue(email_id, Utc::now()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 23 #14: one failure reads as plain sentences, never "500.. Try".
    #[test]
    fn messages_chain_with_one_full_stop() {
        assert_eq!(full_stop("status 500."), "status 500.");
        assert_eq!(full_stop("status 500.."), "status 500.");
        assert_eq!(full_stop("no stop"), "no stop.");
        assert_eq!(full_stop("really?"), "really?");
        let e = mailroom_psa::PsaError::from_response(
            "POST",
            "/api/Tickets",
            500,
            Some("application/json"),
            r#"{"message":"The request failed with status 500."}"#,
        );
        let text = format!("{} Retrying in 5 s.", full_stop(&e.to_string()));
        assert!(!text.contains(".."), "{text}");
        assert!(text.contains("status 500. Try again later"), "{text}");
    }

    #[test]
    /// Issue 23 #8: a PSA 500 used to wait over a minute for its first retry; a transient
    /// failure is now tried again after 5–10 s, doubling from there.
    fn retry_delays_double_with_jitter_up_to_the_cap() {
        let policy = PipelineConfig::default().retry.with_seed(7);
        for _ in 0..50 {
            let first = policy.delay(1, None);
            assert!(
                (Duration::from_secs(5)..=Duration::from_secs(10)).contains(&first),
                "{first:?}"
            );
            assert!(policy.delay(30, None) <= Duration::from_secs(3600));
        }
        let exact = PipelineConfig::default().retry.without_jitter();
        assert_eq!(exact.delay(2, None), Duration::from_secs(10));
        assert_eq!(exact.delay(30, None), Duration::from_secs(3600));
    }

    #[test]
    fn retry_after_is_the_floor_of_a_retry_delay_even_above_the_cap() {
        let policy = PipelineConfig::default().retry;
        // A server asking for longer than the back-off (and its cap) wins.
        let asked = Duration::from_secs(2 * 3600);
        assert_eq!(policy.delay(1, Some(asked)), asked);
        // A shorter Retry-After does not shorten the back-off.
        assert!(policy.delay(3, Some(Duration::from_secs(1))) >= Duration::from_secs(20));
    }
}
