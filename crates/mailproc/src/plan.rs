//! [`plan`]: the single entry point that turns a parsed mail plus mailbox
//! settings, a directory snapshot and the engine's thread index into a
//! [`Plan`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::attach::{plan_attachments, AttachmentDecision, AttachmentPlan, AttachmentPolicy};
use crate::classify::{classify_with_history, Classification, LoopPolicy, SkipReason};
use crate::content::{
    escape_html, is_bidi_control, sanitize_html, text_to_html, trim_quoted_html, trim_quoted_text,
    HtmlOptions, QuoteTrimming,
};
use crate::parsed::ParsedEmail;
use crate::sender::{match_sender, Directory, SenderMatch, SenderPolicy};
use crate::thread::{
    clean_subject, conversation_key, find_ticket_id, message_id_keys, reply_keys, thread_keys,
    ThreadTag,
};

/// Per-mailbox settings for [`plan`]. Serialisable; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MailboxSettings {
    /// Subject tag.
    pub tag: ThreadTag,
    /// Loop / auto-reply / bounce protection.
    pub loop_policy: LoopPolicy,
    /// Sender matching.
    pub sender_policy: SenderPolicy,
    /// Attachment limits.
    pub attachments: AttachmentPolicy,
    /// HTML sanitising.
    pub html: HtmlOptions,
    /// Quoted-history trimming for ticket updates (action notes).
    pub quote_trimming: QuoteTrimming,
    /// Also trim quoted history from new-ticket details. Default `false`
    /// (a forwarded mail's "quote" is usually the content).
    pub trim_new_tickets: bool,
    /// Ticket type for new tickets (`None` = PSA default).
    pub tickettype_id: Option<i64>,
    /// Allow mail that matches no ticket to create one. Default `true`.
    pub allow_new_tickets: bool,
    /// Thread by In-Reply-To / References through the [`ThreadIndex`]. Default `true`.
    pub thread_by_headers: bool,
    /// Thread by Graph conversationId through the [`ThreadIndex`]. Default `true`.
    pub thread_by_conversation: bool,
    /// Skip a mail whose Message-ID the index already maps to a ticket. Default `true`.
    pub skip_duplicates: bool,
    /// Maximum ticket summary length in characters. Default 250.
    pub max_summary_chars: usize,
}

impl Default for MailboxSettings {
    fn default() -> Self {
        Self {
            tag: ThreadTag::default(),
            loop_policy: LoopPolicy::default(),
            sender_policy: SenderPolicy::default(),
            attachments: AttachmentPolicy::default(),
            html: HtmlOptions::default(),
            quote_trimming: QuoteTrimming::default(),
            trim_new_tickets: false,
            tickettype_id: None,
            allow_new_tickets: true,
            thread_by_headers: true,
            thread_by_conversation: true,
            skip_duplicates: true,
            max_summary_chars: 250,
        }
    }
}

/// The engine's persisted knowledge: which ticket a thread key (see
/// [`crate::thread_keys`]) belongs to.
pub trait ThreadIndex {
    /// The ticket that holds a mail with this key, if any.
    fn ticket_for_key(&self, key: &str) -> Option<i64>;
}

impl ThreadIndex for HashMap<String, i64> {
    fn ticket_for_key(&self, key: &str) -> Option<i64> {
        self.get(key).copied()
    }
}

impl ThreadIndex for BTreeMap<String, i64> {
    fn ticket_for_key(&self, key: &str) -> Option<i64> {
        self.get(key).copied()
    }
}

/// An index that knows nothing (every mail without a subject tag is new).
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyIndex;

impl ThreadIndex for EmptyIndex {
    fn ticket_for_key(&self, _key: &str) -> Option<i64> {
        None
    }
}

/// Adapts a closure `Fn(&str) -> Option<i64>` into a [`ThreadIndex`].
pub struct FnIndex<F>(pub F);

impl<F: Fn(&str) -> Option<i64>> ThreadIndex for FnIndex<F> {
    fn ticket_for_key(&self, key: &str) -> Option<i64> {
        (self.0)(key)
    }
}

/// Everything [`plan`] needs besides the mail.
pub struct Context<'a> {
    /// Mailbox settings.
    pub settings: &'a MailboxSettings,
    /// PSA directory snapshot.
    pub directory: &'a Directory,
    /// Thread key → ticket lookup.
    pub index: &'a dyn ThreadIndex,
    /// Recent mails (excluding this one) from the same sender with the same
    /// cleaned subject, for the loop rate guard.
    pub recent_same_subject: u32,
}

/// How an update was matched to its ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", content = "key", rename_all = "snake_case")]
pub enum ThreadedBy {
    /// The ticket id tag in the subject.
    SubjectTag,
    /// An In-Reply-To / References id (the key that matched).
    Header(String),
    /// The Graph conversationId.
    Conversation,
}

/// The decision for one mail. The engine executes it against the PSA and
/// then records `thread_keys` for the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "plan", rename_all = "snake_case")]
pub enum Plan {
    /// Do nothing in the PSA (log the reason).
    Skip {
        /// Why.
        reason: SkipReason,
    },
    /// Create a ticket.
    NewTicket {
        /// Ticket summary (cleaned subject).
        summary: String,
        /// Sanitised HTML details; `cid:` references remain only for
        /// attachments planned [`AttachmentDecision::Inline`].
        details_html: String,
        /// Who the ticket is for.
        user: SenderMatch,
        /// Ticket type (`None` = PSA default).
        tickettype_id: Option<i64>,
        /// Attachment decisions.
        attachments: Vec<AttachmentPlan>,
        /// Keys to record for the new ticket.
        thread_keys: Vec<String>,
    },
    /// Add an action (note) to an existing ticket.
    UpdateTicket {
        /// The ticket.
        ticket_id: i64,
        /// How it was matched.
        how: ThreadedBy,
        /// Sanitised HTML note (quoted history trimmed per settings).
        note_html: String,
        /// The sender as matched in the directory (never causes a skip for
        /// updates; `Reject` means "post without a user").
        sender: SenderMatch,
        /// Attachment decisions.
        attachments: Vec<AttachmentPlan>,
        /// Keys to record for the ticket.
        thread_keys: Vec<String>,
    },
}

impl Plan {
    /// Short machine label: `skip:<code>`, `new_ticket`, `update_ticket`.
    pub fn label(&self) -> String {
        match self {
            Plan::Skip { reason } => format!("skip:{}", reason.code()),
            Plan::NewTicket { .. } => "new_ticket".into(),
            Plan::UpdateTicket { .. } => "update_ticket".into(),
        }
    }
}

/// Decides what to do with `email`.
///
/// Order: loop/auto-reply/bounce classification → duplicate Message-ID →
/// subject tag → In-Reply-To/References → conversationId → new ticket
/// (subject to `allow_new_tickets` and sender matching).
pub fn plan(email: &ParsedEmail, ctx: &Context<'_>) -> Plan {
    let s = ctx.settings;
    if let Classification::Skip(reason) =
        classify_with_history(email, &s.loop_policy, ctx.recent_same_subject)
    {
        return Plan::Skip { reason };
    }
    let Some(from) = &email.from else {
        return Plan::Skip {
            reason: SkipReason::NoSender,
        };
    };
    if s.skip_duplicates {
        if let Some(mid) = &email.message_id {
            if let Some(ticket_id) = message_id_keys(mid)
                .iter()
                .find_map(|k| ctx.index.ticket_for_key(k))
            {
                return Plan::Skip {
                    reason: SkipReason::Duplicate { ticket_id },
                };
            }
        }
    }

    let keys = thread_keys(email);
    let threaded = find_ticket_id(&email.subject, &s.tag)
        .map(|id| (id, ThreadedBy::SubjectTag))
        .or_else(|| {
            s.thread_by_headers
                .then(|| {
                    reply_keys(email).into_iter().find_map(|k| {
                        ctx.index
                            .ticket_for_key(&k)
                            .map(|id| (id, ThreadedBy::Header(k)))
                    })
                })
                .flatten()
        })
        .or_else(|| {
            let conv = email
                .conversation_id
                .as_ref()
                .filter(|_| s.thread_by_conversation)?;
            ctx.index
                .ticket_for_key(&conversation_key(conv))
                .map(|id| (id, ThreadedBy::Conversation))
        });

    let sender = match_sender(from, ctx.directory, &s.sender_policy);

    if let Some((ticket_id, how)) = threaded {
        let (note_html, attachments) = body_and_attachments(email, s, true);
        return Plan::UpdateTicket {
            ticket_id,
            how,
            note_html,
            sender,
            attachments,
            thread_keys: keys,
        };
    }

    if !s.allow_new_tickets {
        return Plan::Skip {
            reason: SkipReason::NewTicketsDisabled,
        };
    }
    if let SenderMatch::Reject { reason } = &sender {
        return Plan::Skip {
            reason: SkipReason::SenderRejected {
                address: from.address.clone(),
                detail: reason.clone(),
            },
        };
    }
    let (details_html, attachments) = body_and_attachments(email, s, s.trim_new_tickets);
    Plan::NewTicket {
        summary: summary(&email.subject, s.max_summary_chars),
        details_html,
        user: sender,
        tickettype_id: s.tickettype_id,
        attachments,
        thread_keys: keys,
    }
}

/// Ticket summary from a subject: bidirectional-text controls and other control
/// characters removed, reply/forward prefixes removed, whitespace collapsed, `(no subject)`
/// when empty, truncated to `max` chars (with `…`).
pub fn summary(subject: &str, max: usize) -> String {
    let subject: String = subject
        .chars()
        .filter(|c| !is_bidi_control(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let s = clean_subject(&subject)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let s = if s.is_empty() {
        "(no subject)".to_string()
    } else {
        s
    };
    if max > 0 && s.chars().count() > max {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        s
    }
}

fn body_and_attachments(
    email: &ParsedEmail,
    s: &MailboxSettings,
    trim: bool,
) -> (String, Vec<AttachmentPlan>) {
    let full_html = email.html_body.as_deref();
    let html_src: Option<String> = match full_html {
        Some(h) if trim => Some(trim_quoted_html(h, &s.quote_trimming)),
        Some(h) => Some(h.to_string()),
        None => None,
    };
    let mut plans = plan_attachments(&email.attachments, html_src.as_deref(), &s.attachments);
    // Inline parts only referenced from trimmed-away history are not uploaded.
    if let (Some(full), Some(trimmed)) = (full_html, html_src.as_deref()) {
        let (full_l, trimmed_l) = (full.to_ascii_lowercase(), trimmed.to_ascii_lowercase());
        for p in plans.iter_mut() {
            let a = &email.attachments[p.index];
            if let (AttachmentDecision::Upload, Some(cid)) = (&p.decision, &a.content_id) {
                let needle = format!("cid:{}", cid.to_ascii_lowercase());
                if full_l.contains(&needle) && !trimmed_l.contains(&needle) {
                    p.decision = AttachmentDecision::Skip {
                        code: "in_quoted_history".into(),
                        reason: format!(
                            "{}: inline image only used in the trimmed quoted history",
                            a.name
                        ),
                    };
                }
            }
        }
    }
    let body = match html_src {
        Some(h) => {
            let mut opts = s.html.clone();
            opts.keep_unmapped_cids = false;
            opts.cid_map = plans
                .iter()
                .filter_map(|p| match &p.decision {
                    AttachmentDecision::Inline { content_id } => {
                        Some((content_id.clone(), format!("cid:{content_id}")))
                    }
                    _ => None,
                })
                .collect();
            sanitize_html(&h, &opts).trim().to_string()
        }
        None => {
            let text = email.text_body.as_deref().unwrap_or("");
            let text = if trim {
                trim_quoted_text(text, &s.quote_trimming)
            } else {
                text.to_string()
            };
            text_to_html(&text)
        }
    };
    let body = body + &not_attached_note(&plans);
    (body, plans)
}

/// Skip codes the reader of the ticket must learn about: files the sender attached that are
/// not on the ticket. (Signature images, history-only images and empty parts are not news.)
const REPORTED_SKIPS: &[&str] = &["too_large", "total_exceeded", "blocked_extension"];

/// A short note listing the files that were not attached and why (name, size, limit), to
/// end the ticket details / action note with; empty when every file was attached.
pub fn not_attached_note(plans: &[AttachmentPlan]) -> String {
    let items: Vec<String> = plans
        .iter()
        .filter_map(|p| match &p.decision {
            AttachmentDecision::Skip { code, reason }
                if REPORTED_SKIPS.contains(&code.as_str()) =>
            {
                Some(format!("<li>{}</li>", escape_html(reason)))
            }
            _ => None,
        })
        .collect();
    if items.is_empty() {
        return String::new();
    }
    format!(
        "<hr><p><em>Not attached to this ticket by Mailroom (the original email still has them):</em></p><ul>{}</ul>",
        items.concat()
    )
}
