//! Outgoing mail, sent exactly once: an agent's reply from the PSA (`agent_replies`), later
//! notifications. Each email is an intent in the store (`outbound_emails`) with the Internet
//! Message-ID Mailroom chose; sending it is:
//!
//! 1. look the Message-ID up in Sent Items — found: it was sent (a crash or a lost answer
//!    after the send), done;
//! 2. the draft: the kept draft id, else a draft found in Drafts under the Message-ID, else a
//!    new one — a reply draft threaded to the customer's message (`createReply`, then the body,
//!    recipients and Message-ID set while it is a draft), or a new message created with the
//!    Message-ID; its id is stored before anything is sent;
//! 3. send the draft; a draft that vanished (deleted by hand) is made again.
//!
//! Graph has no idempotency key for sending; with the Message-ID looked up first and the
//! draft kept, no step repeated after a crash sends a second copy. Throttling, 5xx and network
//! failures retry with back-off; a permission refusal (no `Mail.Send`, no send-as right) fails
//! at once with the fix.

pub mod agent_replies;

use std::time::Duration;

use chrono::{DateTime, Utc};
use mailroom_graph::{
    GraphClient, GraphError, GraphErrorKind, ItemBody, OutgoingAttachment, OutgoingMessage,
};
use mailroom_store::inbound::LogLine;
use mailroom_store::outbound::{OutboundEmail, OutboundStatus};
use serde_json::json;

use crate::{Core, CoreError};

/// Back-off of a transient failure: 30 s, doubling, at most an hour.
fn backoff(attempt: i64) -> Duration {
    let secs = 30u64.saturating_mul(1 << attempt.clamp(1, 8).saturating_sub(1) as u32);
    Duration::from_secs(secs.min(3600))
}

/// Why an attempt did not send.
enum Failure {
    /// Tried again after `retry_after` (at least).
    Transient {
        code: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Given up: the message says what to fix.
    Permanent { code: &'static str, message: String },
}

fn from_graph(e: GraphError, what: &str) -> Failure {
    match e.kind {
        GraphErrorKind::Throttled
        | GraphErrorKind::Server
        | GraphErrorKind::Transport
        | GraphErrorKind::Unauthorized
        | GraphErrorKind::InvalidResponse => Failure::Transient {
            code: "graph_unavailable",
            message: format!("{what}: {e}"),
            retry_after: e.retry_after,
        },
        GraphErrorKind::AccessDenied => Failure::Permanent {
            code: if e.code.as_deref() == Some("ErrorSendAsDenied") {
                "send_as_denied"
            } else {
                "mail_send_denied"
            },
            message: format!(
                "{what}: {e}. Grant the app registration Mail.Send (and admin consent); for a shared mailbox the signed-in account also needs Send As on it. Then Resend."
            ),
        },
        GraphErrorKind::Identity => Failure::Permanent {
            code: "not_connected",
            message: format!("{what}: {e}. Connect the mailbox again on its Incoming tab, then Resend."),
        },
        _ => Failure::Permanent {
            code: "graph_refused",
            message: format!("{what}: {e}"),
        },
    }
}

/// The attempt's processing log.
struct Log {
    lines: std::sync::Mutex<Vec<LogLine>>,
}

impl Log {
    fn info(&self, message: impl Into<String>) {
        self.lines.lock().expect("log lock").push(LogLine {
            at: Utc::now(),
            level: "info".into(),
            message: message.into(),
        });
    }
}

/// How many bytes of files one email carries at most: Exchange Online's default maximum
/// message size (35 MB, tenant-configurable; reference §3.5). A file that would go over it,
/// or over Graph's 150 MB per file, is named in the body instead and stays on the ticket.
const MAX_MESSAGE_FILES: usize = 35 * 1024 * 1024;

/// The email's PSA attachments: the files to attach, and what the body says about those too
/// large to attach.
struct Files {
    attach: Vec<OutgoingAttachment>,
    note: String,
}

fn message_of(email: &OutboundEmail, note: &str) -> OutgoingMessage {
    OutgoingMessage {
        subject: email.subject.clone(),
        body: ItemBody {
            content_type: "HTML".into(),
            content: format!("{}{note}", email.body_html),
        },
        to: email.to.clone(),
        cc: email.cc.clone(),
        ..Default::default()
    }
}

fn recipients(list: &[String]) -> serde_json::Value {
    json!(list
        .iter()
        .map(|a| json!({ "emailAddress": { "address": a } }))
        .collect::<Vec<_>>())
}

/// Makes the draft (reply draft when the email answers a message) with the chosen Message-ID.
async fn make_draft(
    graph: &GraphClient,
    email: &OutboundEmail,
    files: &Files,
    log: &Log,
) -> Result<String, Failure> {
    let id = make_bare_draft(graph, email, &files.note, log).await?;
    for file in &files.attach {
        if file.bytes.len() > mailroom_graph::models::SIMPLE_ATTACHMENT_LIMIT {
            log.info(format!(
                "Uploading {} ({:.1} MB) through an upload session",
                file.name,
                file.bytes.len() as f64 / 1_048_576.0
            ));
        }
        graph
            .attach(&id, file)
            .await
            .map_err(|e| from_graph(e, "Attaching a file failed"))?;
    }
    if !files.attach.is_empty() {
        log.info(format!("Attached {} file(s)", files.attach.len()));
    }
    Ok(id)
}

/// A draft found after a stop may have been left before all its files were attached: the
/// files it lacks (by name and size) are attached now, none twice.
async fn complete_attachments(
    graph: &GraphClient,
    draft_id: &str,
    files: &Files,
    log: &Log,
) -> Result<(), Failure> {
    if files.attach.is_empty() {
        return Ok(());
    }
    let mut present = graph
        .attachment_summaries(draft_id)
        .await
        .map_err(|e| from_graph(e, "Reading the draft's attachments failed"))?;
    let mut added = 0;
    for file in &files.attach {
        let size = file.bytes.len() as u64;
        if let Some(i) = present
            .iter()
            .position(|(name, bytes)| *name == file.name && *bytes == size)
        {
            present.swap_remove(i);
            continue;
        }
        graph
            .attach(draft_id, file)
            .await
            .map_err(|e| from_graph(e, "Attaching a file failed"))?;
        added += 1;
    }
    if added > 0 {
        log.info(format!(
            "Attached {added} file(s) the draft did not have yet"
        ));
    }
    Ok(())
}

async fn make_bare_draft(
    graph: &GraphClient,
    email: &OutboundEmail,
    note: &str,
    log: &Log,
) -> Result<String, Failure> {
    if let Some(original) = &email.reply_to_message_id {
        match graph.create_reply_draft(original).await {
            Ok(draft) => {
                graph
                    .update_draft(
                        &draft.id,
                        json!({
                            "internetMessageId": email.internet_message_id,
                            "subject": email.subject,
                            "body": { "contentType": "HTML", "content": format!("{}{note}", email.body_html) },
                            "toRecipients": recipients(&email.to),
                            "ccRecipients": recipients(&email.cc),
                        }),
                    )
                    .await
                    .map_err(|e| from_graph(e, "Setting up the reply draft failed"))?;
                log.info(format!(
                    "Created a reply draft threaded to the customer's message, Message-ID {}",
                    email.internet_message_id
                ));
                return Ok(draft.id);
            }
            Err(e) if e.kind == GraphErrorKind::NotFound => {
                log.info("The customer's message is no longer in the mailbox; sending a new message with the ticket reference instead");
            }
            Err(e) => return Err(from_graph(e, "Creating the reply draft failed")),
        }
    }
    let draft = graph
        .create_draft(&message_of(email, note), Some(&email.internet_message_id))
        .await
        .map_err(|e| from_graph(e, "Creating the draft failed"))?;
    log.info(format!(
        "Created a draft, Message-ID {}",
        email.internet_message_id
    ));
    Ok(draft.id)
}

impl Core {
    /// Sends outgoing email `id` (see the module): at most once, whatever happened before.
    /// Returns the email as it is afterwards.
    pub async fn send_outbound(&self, id: i64, trigger: &str) -> Result<OutboundEmail, CoreError> {
        let store = self.store();
        let email = store
            .outbound(id)
            .await?
            .ok_or_else(|| CoreError::InvalidInput(format!("there is no outgoing email {id}")))?;
        if matches!(email.status, OutboundStatus::Sent | OutboundStatus::Failed) {
            return Ok(email);
        }
        let now = Utc::now();
        let (attempt, number) = store.outbound_start_attempt(id, trigger, now).await?;
        let log = Log {
            lines: Default::default(),
        };
        let collector = mailroom_trace::Collector::new();
        let result =
            mailroom_trace::with_sink(collector.clone(), self.send_steps(&email, &log)).await;
        let now = Utc::now();
        let (outcome, error) = match &result {
            Ok(()) => {
                store.outbound_sent(id, now).await?;
                ("sent", None)
            }
            Err(Failure::Transient {
                code,
                message,
                retry_after,
            }) => {
                let wait = backoff(number).max(retry_after.unwrap_or_default());
                let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                log.info(format!("Trying again at {}", at.format("%H:%M:%S UTC")));
                store
                    .outbound_failed(id, code, message, Some(at), now)
                    .await?;
                ("retrying", Some((*code, message.as_str())))
            }
            Err(Failure::Permanent { code, message }) => {
                store.outbound_failed(id, code, message, None, now).await?;
                ("failed", Some((*code, message.as_str())))
            }
        };
        let lines = log.lines.lock().expect("log lock").clone();
        store
            .outbound_finish_attempt(attempt, outcome, error, &lines, &collector.drain(), now)
            .await?;
        Ok(store.outbound(id).await?.expect("the email exists"))
    }

    async fn send_steps(&self, email: &OutboundEmail, log: &Log) -> Result<(), Failure> {
        let store = self.store();
        let mailbox = match store.mailbox(&email.mailbox_id).await {
            Ok(m) => m,
            Err(_) => {
                return Err(Failure::Permanent {
                    code: "mailbox_removed",
                    message: format!(
                        "The mailbox it is sent from ({}) was removed from Mailroom",
                        email.mailbox_id
                    ),
                })
            }
        };
        let graph = self
            .graph_client_for(&mailbox)
            .await
            .map_err(|e| Failure::Permanent {
                code: "not_connected",
                message: format!("{} cannot send: {e}", mailbox.name),
            })?;
        log.info(format!("Sending from {}", mailbox.name));
        // 1. Sent before?
        if graph
            .find_by_internet_message_id("sentitems", &email.internet_message_id)
            .await
            .map_err(|e| from_graph(e, "Looking in Sent Items failed"))?
            .is_some()
        {
            log.info(
                "Found in Sent Items under its Message-ID: it was sent before; not sending again",
            );
            return Ok(());
        }
        // 2. The draft.
        let draft_id = match &email.draft_id {
            Some(id) => id.clone(),
            None => {
                let found = graph
                    .find_by_internet_message_id("drafts", &email.internet_message_id)
                    .await
                    .map_err(|e| from_graph(e, "Looking in Drafts failed"))?;
                let id = match found {
                    Some(draft) => {
                        log.info("Found its draft in Drafts (made before a stop)");
                        let files = self.outbound_files(email, log).await?;
                        complete_attachments(&graph, &draft.id, &files, log).await?;
                        draft.id
                    }
                    None => {
                        let files = self.outbound_files(email, log).await?;
                        make_draft(&graph, email, &files, log).await?
                    }
                };
                store
                    .outbound_drafted(email.id, &id, Utc::now())
                    .await
                    .map_err(|e| Failure::Transient {
                        code: "store",
                        message: e.to_string(),
                        retry_after: None,
                    })?;
                id
            }
        };
        // 3. Send.
        match graph.send_draft(&draft_id).await {
            Ok(()) => {
                log.info("Sent");
                Ok(())
            }
            Err(e) if e.kind == GraphErrorKind::NotFound => {
                log.info("The draft is gone from Drafts (deleted by hand?); making it again");
                let files = self.outbound_files(email, log).await?;
                let id = make_draft(&graph, email, &files, log).await?;
                let _ = store.outbound_drafted(email.id, &id, Utc::now()).await;
                graph
                    .send_draft(&id)
                    .await
                    .map_err(|e| from_graph(e, "Sending failed"))?;
                log.info("Sent");
                Ok(())
            }
            Err(e) => Err(from_graph(e, "Sending failed")),
        }
    }

    /// The email's PSA attachments, fetched from the PSA: the files to attach while they fit
    /// in [`MAX_MESSAGE_FILES`], and a line in the body for each that does not (it stays on
    /// the ticket).
    async fn outbound_files(&self, email: &OutboundEmail, log: &Log) -> Result<Files, Failure> {
        let mut files = Files {
            attach: Vec::new(),
            note: String::new(),
        };
        if email.attachment_ids.is_empty() {
            return Ok(files);
        }
        let psa = self.psa_client().await.map_err(|e| Failure::Transient {
            code: "psa_unavailable",
            message: format!("The PSA is needed for the attachments: {e}"),
            retry_after: None,
        })?;
        let mut too_large = Vec::new();
        for id in &email.attachment_ids {
            let (meta, bytes) = psa
                .get_attachment(*id)
                .await
                .map_err(|e| Failure::Transient {
                    code: "psa_unavailable",
                    message: format!("Attachment {id} could not be read from the PSA: {e}"),
                    retry_after: None,
                })?;
            let name = meta
                .filename
                .clone()
                .unwrap_or_else(|| format!("attachment-{id}"));
            let carried: usize = files.attach.iter().map(|f| f.bytes.len()).sum();
            if bytes.len() > mailroom_graph::models::MAX_ATTACHMENT
                || carried + bytes.len() > MAX_MESSAGE_FILES
            {
                log.info(format!(
                    "{name} ({:.1} MB) is too large to attach; the email names it instead",
                    bytes.len() as f64 / 1_048_576.0
                ));
                too_large.push(mailroom_mailproc::escape_html(&name));
                continue;
            }
            files.attach.push(OutgoingAttachment {
                name,
                content_type: meta
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
                bytes,
                content_id: None,
            });
        }
        if !too_large.is_empty() {
            files.note = format!(
                "<p><em>Too large to attach (ask us for them): {}</em></p>",
                too_large.join(", ")
            );
        }
        Ok(files)
    }

    /// Sends every due outgoing email (oldest first); returns how many were handled.
    pub async fn send_due_outbound(&self, now: DateTime<Utc>) -> Result<usize, CoreError> {
        let due = self.store().outbound_due(now, 50).await?;
        for email in &due {
            let trigger = if email.attempts == 0 { "new" } else { "retry" };
            self.send_outbound(email.id, trigger).await?;
        }
        Ok(due.len())
    }

    /// *Resend* of a failed outgoing email: it is tried again now.
    pub async fn resend_outbound(&self, id: i64) -> Result<OutboundEmail, CoreError> {
        if !self.store().outbound_resend(id, Utc::now()).await? {
            let email = self.store().outbound(id).await?.ok_or_else(|| {
                CoreError::InvalidInput(format!("there is no outgoing email {id}"))
            })?;
            if email.status == OutboundStatus::Sent {
                return Err(CoreError::InvalidInput(format!(
                    "outgoing email {id} was sent already; it is not sent twice"
                )));
            }
        }
        self.send_outbound(id, "resend").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_thirty_seconds_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(4), Duration::from_secs(240));
        assert_eq!(backoff(20), Duration::from_secs(3600));
    }
}
