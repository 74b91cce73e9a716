//! Threading: the subject tag (`[ID:1234]`), header keys (Message-ID,
//! In-Reply-To, References) and the Graph conversation id.

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::parsed::ParsedEmail;

/// The subject tag that carries a ticket id, HaloPSA's *Email Start Tag* /
/// *Email End Tag* (default `[ID:` and `]`).
///
/// Halo's exact outgoing format (spacing, zero padding) is unconfirmed, so
/// [`ThreadTag::pad_width`] and [`ThreadTag::space_after_start`] control
/// [`format_tag`]; [`find_ticket_id`] accepts every variant regardless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThreadTag {
    /// Text before the id (matched case-insensitively).
    pub start: String,
    /// Text after the id (matched case-insensitively).
    pub end: String,
    /// Zero-pad the id to this many digits when formatting (0 = no padding).
    pub pad_width: usize,
    /// Put a space between `start` and the id when formatting.
    pub space_after_start: bool,
}

impl Default for ThreadTag {
    fn default() -> Self {
        Self {
            start: "[ID:".into(),
            end: "]".into(),
            pad_width: 0,
            space_after_start: false,
        }
    }
}

impl ThreadTag {
    /// Shorthand for [`find_ticket_id`].
    pub fn find(&self, subject: &str) -> Option<i64> {
        find_ticket_id(subject, self)
    }

    /// Shorthand for [`format_tag`].
    pub fn format(&self, id: i64) -> String {
        format_tag(id, self)
    }

    fn regex(&self) -> Option<Regex> {
        let start = self.start.trim();
        let end = self.end.trim();
        if start.is_empty() {
            return None;
        }
        let end_pat = if end.is_empty() {
            r"\b".to_string()
        } else {
            regex::escape(end)
        };
        RegexBuilder::new(&format!(
            r"{}\s*#?\s*(\d{{1,18}})\s*{}",
            regex::escape(start),
            end_pat
        ))
        .case_insensitive(true)
        .build()
        .ok()
    }
}

/// Finds the ticket id in a subject: the first `start` + digits + `end`
/// occurrence, tolerating spaces around the id, a `#`, zero padding and any
/// reply/forward prefixes. Returns `None` when there is no tag or the id is 0.
///
/// ```
/// use mailroom_mailproc::{find_ticket_id, ThreadTag};
/// let tag = ThreadTag::default();
/// assert_eq!(find_ticket_id("RE: FW: Printer [ID: 0001234]", &tag), Some(1234));
/// assert_eq!(find_ticket_id("Printer", &tag), None);
/// ```
pub fn find_ticket_id(subject: &str, tag: &ThreadTag) -> Option<i64> {
    let re = tag.regex()?;
    let found = re.captures_iter(subject).find_map(|c| {
        let id: i64 = c.get(1)?.as_str().parse().ok()?;
        (id > 0).then_some(id)
    });
    found
}

/// Formats the tag for an outgoing subject, e.g. `[ID:1234]`.
pub fn format_tag(id: i64, tag: &ThreadTag) -> String {
    let space = if tag.space_after_start { " " } else { "" };
    format!(
        "{}{}{:0width$}{}",
        tag.start,
        space,
        id,
        tag.end,
        width = tag.pad_width
    )
}

/// Removes every reply/forward prefix (`RE:`, `FW:`, `FWD:`, `AW:`, `WG:`,
/// `SV:`, `VS:`, `Antw:`, `TR:`, `RIF:`, `R:`, `Odp:`, optionally with a
/// counter like `RE[2]:`) from the start of a subject, plus surrounding
/// whitespace. Used for ticket summaries.
///
/// ```
/// use mailroom_mailproc::clean_subject;
/// assert_eq!(clean_subject("RE: AW: Fwd:  VPN down"), "VPN down");
/// ```
pub fn clean_subject(subject: &str) -> String {
    static_prefix_regex()
        .replace(subject.trim(), "")
        .trim()
        .to_string()
}

fn static_prefix_regex() -> &'static Regex {
    use std::sync::OnceLock;
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        RegexBuilder::new(
            r"^(?:\s*(?:re|fw|fwd|aw|wg|sv|vs|antw|antwort|tr|rif|r|odp|enc|res)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
        )
        .case_insensitive(true)
        .build()
        .expect("static regex")
    })
}

/// Prefix for the conversation key in [`thread_keys`].
pub const CONVERSATION_KEY_PREFIX: &str = "conversation:";

/// Both spellings of a message id: `id@host` and `<id@host>`.
pub fn message_id_keys(id: &str) -> [String; 2] {
    let bare = id.trim().trim_matches(|c| c == '<' || c == '>').trim();
    [bare.to_string(), format!("<{bare}>")]
}

/// The key under which a Graph conversation id is stored (`conversation:<id>`).
pub fn conversation_key(conversation_id: &str) -> String {
    format!("{CONVERSATION_KEY_PREFIX}{}", conversation_id.trim())
}

/// Every thread key of `email`, without duplicates: its own Message-ID,
/// In-Reply-To, References (newest first), each bare and in angle brackets,
/// then `conversation:<conversationId>`.
///
/// The engine stores these keys for every mail attached to a ticket and
/// looks them up (through [`crate::ThreadIndex`]) for later mail.
pub fn thread_keys(email: &ParsedEmail) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(id) = &email.message_id {
        out.extend(message_id_keys(id));
    }
    for k in reply_keys(email) {
        if !out.contains(&k) {
            out.push(k);
        }
    }
    if let Some(c) = &email.conversation_id {
        let k = conversation_key(c);
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Keys identifying this message itself (its Message-ID, both spellings, and
/// its conversation key): what the engine should record once the mail is on
/// a ticket.
pub fn own_keys(email: &ParsedEmail) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(id) = &email.message_id {
        out.extend(message_id_keys(id));
    }
    if let Some(c) = &email.conversation_id {
        out.push(conversation_key(c));
    }
    out
}

/// Keys of the messages this one replies to: In-Reply-To first, then
/// References newest-first, each bare and in angle brackets, deduplicated.
pub fn reply_keys(email: &ParsedEmail) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let own = email
        .message_id
        .as_deref()
        .map(|m| message_id_keys(m)[0].clone());
    for id in email
        .in_reply_to
        .iter()
        .chain(email.references.iter().rev())
    {
        let keys = message_id_keys(id);
        if keys[0].is_empty() || Some(&keys[0]) == own.as_ref() {
            continue;
        }
        for k in keys {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out
}
