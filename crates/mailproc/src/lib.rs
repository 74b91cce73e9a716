//! # mailroom-mailproc
//!
//! Pure decision logic for Mailroom's mail-to-ticket engine: it turns one
//! fetched email into a [`Plan`] — skip it, create a ticket, or add a note
//! to an existing ticket — which the engine then executes against HaloPSA.
//!
//! Pipeline (each step is also usable on its own):
//! 1. [`ParsedEmail::from_mime`] / [`ParsedEmail::from_graph`] normalise raw
//!    MIME or Graph message JSON ([`GraphMessage`]).
//! 2. [`classify`] rejects auto-replies, bounces, mail from the app's own
//!    mailboxes, excluded senders, mail carrying the app's loop header and
//!    suspected loops ([`SkipReason`] has a stable code and admin text).
//! 3. Threading: the subject tag ([`find_ticket_id`], [`ThreadTag`]), then
//!    In-Reply-To/References and the Graph conversationId looked up in the
//!    engine's [`ThreadIndex`] ([`thread_keys`]).
//! 4. [`match_sender`] maps the sender to a PSA user / site / default.
//! 5. [`sanitize_html`] (ammonia), [`text_to_html`], [`trim_quoted_html`].
//! 6. [`plan_attachments`] applies the [`AttachmentPolicy`].
//! 7. [`plan`] combines all of it.
//!
//! ## Invariants
//! - No I/O: no network, database, filesystem or clock access. Time and
//!   persisted knowledge come in through arguments ([`Context`]).
//! - Never panics on input: malformed MIME yields a [`MailError`].
//! - Deterministic: the same input and settings give the same plan.
//! - Addresses are compared lower-cased; message ids are stored without
//!   angle brackets and looked up in both spellings.
//! - HTML in a plan is always sanitised; the only `cid:` references left are
//!   those of attachments planned [`AttachmentDecision::Inline`].

mod attach;
mod classify;
mod content;
mod error;
mod parsed;
mod plan;
mod sender;
mod thread;

pub use attach::{plan_attachments, AttachmentDecision, AttachmentPlan, AttachmentPolicy};
pub use classify::{
    auto_reply_evidence, bounce_evidence, classify, classify_with_history, exclusion_matches,
    Classification, LoopPolicy, SkipReason,
};
pub use content::{
    escape_html, is_bidi_control, rewrite_cid_references, sanitize_html, sanitize_html_default,
    strip_bidi_controls, text_to_html, trim_quoted_html, trim_quoted_text, HtmlOptions,
    QuoteTrimming,
};
pub use error::MailError;
pub use parsed::{
    parse_message_ids, Attachment, GraphAttachment, GraphBody, GraphEmailAddress, GraphHeader,
    GraphMessage, GraphRecipient, Headers, Mailbox, ParsedEmail,
};
pub use plan::{
    not_attached_note, plan, summary, Context, EmptyIndex, FnIndex, MailboxSettings, Plan,
    ThreadIndex, ThreadedBy,
};
pub use sender::{
    find_site, match_sender, split_name, Directory, DirectorySite, DirectoryUser, PersonName,
    SenderMatch, SenderPolicy, UnknownSender,
};
pub use thread::{
    clean_subject, conversation_key, find_ticket_id, format_tag, message_id_keys, own_keys,
    reply_keys, thread_keys, ThreadTag, CONVERSATION_KEY_PREFIX,
};
