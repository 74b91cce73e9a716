//! One attempt: fetch the message, parse and plan it, execute the plan against the PSA, update
//! the mailbox, and record the outcome with the attempt's requests and processing log; failures
//! are classified for retrying.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use mailroom_clock::SharedClock;
use mailroom_graph::{GraphClient, GraphError, GraphErrorKind, Message};
use mailroom_mailproc::{
    plan, Context, Directory, GraphAttachment, GraphMessage, ParsedEmail, Plan, SenderMatch,
};
use mailroom_psa::{canonical_message_id, normalize_message_id, ErrorKind as PsaKind, PsaError};
use mailroom_store::inbound::{AttemptTrigger, EmailState, InboundEmail, LogLine, PsaWriteKind};
use mailroom_store::{Mailbox, StoreError};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::psa_writes::NewTicketParts;
use super::settings::ProcessingSettings;
use super::{mailbox_addresses, Pipeline};
use crate::events::{EngineEvent, EventBus};

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
pub(super) enum StepError {
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
    pub(super) fn classify(&self) -> (&'static str, bool, Option<Duration>) {
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

/// The processing log of one attempt. Each line is also published as it is written
/// ([`EngineEvent::Step`]), for the UI's live tail; the attempt stores the lines when it ends.
pub(super) struct StepLog {
    clock: SharedClock,
    lines: Mutex<Vec<LogLine>>,
    tap: Option<StepTap>,
    /// The attempt's place among those that may still join a ticket batch (released at its
    /// ticket, or when the attempt ends).
    write_slot: Option<super::batch::WriteSlot>,
    /// The attempt's place among those that may still create a user (released once its plan
    /// needs none, or at its user).
    user_slot: Option<super::batch::WriteSlot>,
}

/// Where a [`StepLog`] publishes its lines, and for which email.
pub(super) struct StepTap {
    pub(super) events: EventBus,
    pub(super) email_id: i64,
    pub(super) mailbox_id: String,
}

impl StepLog {
    pub(super) fn new(clock: SharedClock, tap: Option<StepTap>) -> Self {
        StepLog {
            clock,
            lines: Mutex::new(Vec::new()),
            tap,
            write_slot: None,
            user_slot: None,
        }
    }

    /// The log of an attempt that holds `slot` among the attempts that may join a batch.
    pub(super) fn with_write_slot(mut self, slot: super::batch::WriteSlot) -> Self {
        self.write_slot = Some(slot);
        self
    }

    pub(super) fn write_slot(&self) -> Option<&super::batch::WriteSlot> {
        self.write_slot.as_ref()
    }

    /// The log of an attempt that holds `slot` among the attempts that may create a user.
    pub(super) fn with_user_slot(mut self, slot: super::batch::WriteSlot) -> Self {
        self.user_slot = Some(slot);
        self
    }

    pub(super) fn user_slot(&self) -> Option<&super::batch::WriteSlot> {
        self.user_slot.as_ref()
    }

    /// This attempt creates no user (its plan needs none, or another attempt is creating it).
    pub(super) fn release_user_slot(&self) {
        if let Some(slot) = &self.user_slot {
            slot.release();
        }
    }

    pub(super) fn push(&self, level: &str, message: impl Into<String>) {
        let message = message.into();
        tracing::debug!(level, "{message}");
        let at = self.clock.now();
        if let Some(tap) = &self.tap {
            tap.events.publish(EngineEvent::Step {
                email_id: tap.email_id,
                mailbox_id: tap.mailbox_id.clone(),
                at,
                level: level.into(),
                message: message.clone(),
            });
        }
        self.lines.lock().expect("log lock").push(LogLine {
            at,
            level: level.into(),
            message,
        });
    }

    pub(super) fn info(&self, message: impl Into<String>) {
        self.push("info", message)
    }

    pub(super) fn warn(&self, message: impl Into<String>) {
        self.push("warn", message)
    }

    pub(super) fn take(&self) -> Vec<LogLine> {
        std::mem::take(&mut *self.lines.lock().expect("log lock"))
    }
}

pub(super) fn to_graph_message(
    msg: &Message,
    attachments: &[mailroom_graph::Attachment],
) -> GraphMessage {
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

/// Every field an attempt reads, and the intake (which selects them in the delta round; it
/// skips drafts by `isDraft`).
pub(super) const MESSAGE_FIELDS: &[&str] = &[
    "id",
    "isDraft",
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

pub(super) enum Executed {
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
    pub(super) fn trigger_for(&self, email: &InboundEmail) -> AttemptTrigger {
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

    pub(super) fn retry_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
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
        let log = StepLog::new(
            self.clock.clone(),
            Some(StepTap {
                events: self.events.clone(),
                email_id: email.id,
                mailbox_id: mailbox.id.clone(),
            }),
        )
        .with_write_slot(self.slots.slot())
        .with_user_slot(self.user_slots.slot());
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
            _ = cancel.cancelled() => self.after_cancel(email.id, work.as_mut()).await,
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

    pub(super) async fn finish_interrupted(
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

    /// What is left of a cancelled attempt: its result when it ends while the store is asked
    /// whether its PSA write is on its way, or within [`WRITE_GRACE`] when it is; else nothing.
    ///
    /// `work` keeps being driven while the store is asked. It may hold one of the pool's
    /// connections in the middle of a query; with as many attempts in flight as the pool has
    /// connections, attempts that all stopped driving their work to ask the store would wait
    /// for a connection none of them gives back (until the pool's acquire timeout, 30 s).
    async fn after_cancel<F: std::future::Future>(
        &self,
        email_id: i64,
        mut work: std::pin::Pin<&mut F>,
    ) -> Option<F::Output> {
        let write = tokio::select! {
            biased;
            result = work.as_mut() => return Some(result),
            write = self.store.psa_write(email_id) => write,
        };
        if matches!(write, Ok(Some(w)) if !w.confirmed) {
            tokio::time::timeout(WRITE_GRACE, work).await.ok()
        } else {
            None
        }
    }

    pub(super) async fn run(
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

        // 1. Fetch: the delta round read most messages already (see the `prefetch` module).
        let read = match self.prefetched.take(email.id) {
            Some(m) => {
                log.info(format!(
                    "Read the message in the mailbox's delta round ({})",
                    email.graph_message_id
                ));
                Ok(m)
            }
            None => {
                log.info(format!(
                    "Fetching the message from Graph ({})",
                    email.graph_message_id
                ));
                graph.message(&email.graph_message_id, MESSAGE_FIELDS).await
            }
        };
        let msg = match read {
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
            if let Some((ticket_id, action_id)) = self.reconcile(email, &parsed, w, log).await? {
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
        if rules.tickettype_id.is_none() {
            // The integration's default type (its Scope step), else HaloPSA's own.
            rules.tickettype_id = self
                .store
                .setting::<crate::integration::ScopeSettings>(crate::integration::SCOPE_KEY)
                .await?
                .and_then(|s| s.default_ticket_type_id);
        }
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
        // A ticket HaloPSA's webhook reported deleted no longer takes replies: the thread
        // starts a new ticket instead of failing on the missing one.
        let mut gone = Vec::new();
        for ticket_id in index
            .values()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
        {
            if let Some(state) = self.store.psa_ticket_state(ticket_id).await? {
                if state.deleted {
                    log.info(format!(
                        "Ticket {ticket_id} of this thread was deleted in HaloPSA (its webhook said so at {}); the reply does not go to it",
                        state.updated_at.format("%Y-%m-%d %H:%M UTC")
                    ));
                    gone.push(ticket_id);
                }
            }
        }
        index.retain(|_, ticket| !gone.contains(ticket));
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
        let creates_user = matches!(
            &the_plan,
            Plan::NewTicket {
                user: SenderMatch::NewUserOnSite { .. } | SenderMatch::NewUserOnDefaultSite { .. },
                ..
            }
        );
        if !creates_user {
            log.release_user_slot();
        }

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
                // The thread keys went in with the write's confirmation.
                let _ = thread_keys;
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
                if let Some(state) = self.store.psa_ticket_state(ticket_id).await? {
                    if state.deleted {
                        return Err(StepError::Permanent {
                            code: "ticket_deleted",
                            message: format!(
                                "The email names ticket {ticket_id} (matched by {how:?}), which was deleted in HaloPSA (its webhook said so at {}). Forward the email without the ticket reference to log a new ticket",
                                state.updated_at.format("%Y-%m-%d %H:%M UTC")
                            ),
                        });
                    }
                }
                let action_id = self
                    .new_action(
                        email, &parsed, &settings, log, ticket_id, note_html, &sender, att_plans,
                    )
                    .await?;
                self.close_if_requested(&parsed, ticket_id, &sender, log)
                    .await;
                // The thread keys went in with the write's confirmation.
                let _ = thread_keys;
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
    pub(super) fn message_key(email: &InboundEmail, parsed: &ParsedEmail) -> String {
        match parsed
            .message_id
            .as_deref()
            .or(email.internet_message_id.as_deref())
        {
            Some(id) if !normalize_message_id(id).is_empty() => canonical_message_id(id),
            _ => format!("<{}@graph.mailroom.invalid>", email.graph_message_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::PipelineConfig;

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
