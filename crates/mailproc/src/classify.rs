//! Loop, auto-reply and bounce protection: decides whether a mail may reach
//! the PSA at all.

use serde::{Deserialize, Serialize};

use crate::parsed::ParsedEmail;

/// Settings for [`classify`]. Serialisable so the engine can persist it per
/// mailbox; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoopPolicy {
    /// Let auto-replies through (HaloPSA's `accept_auto_replies`). Default `false`.
    pub accept_auto_replies: bool,
    /// Skip bounces / delivery status notifications. Default `true`.
    pub skip_bounces: bool,
    /// Treat a subject starting with one of [`LoopPolicy::auto_reply_subject_prefixes`]
    /// as an auto-reply even without headers. Default `true`.
    pub subject_heuristics: bool,
    /// Case-insensitive subject prefixes marking an auto-reply.
    pub auto_reply_subject_prefixes: Vec<String>,
    /// Case-insensitive subject prefixes marking a bounce (used with
    /// [`LoopPolicy::subject_heuristics`]; matters for Graph JSON, which has
    /// no MIME structure).
    pub bounce_subject_prefixes: Vec<String>,
    /// Treat `X-Auto-Response-Suppress` (any value but `None`) as an
    /// auto-reply marker. Default `true`.
    pub x_auto_response_suppress_is_auto: bool,
    /// Treat an empty `Return-Path: <>` (null reverse path) as an
    /// auto-generated message. Default `true`.
    pub null_return_path_is_auto: bool,
    /// Addresses of the app's own mailboxes (lower-case comparison).
    pub own_addresses: Vec<String>,
    /// Excluded senders: exact addresses, `*@domain` (that domain only) or
    /// `*@*.domain` (any subdomain). HaloPSA's *Dynamic Email Exclusions*.
    pub exclusions: Vec<String>,
    /// Header the app stamps on every outgoing mail. Default `X-Mailroom-Loop`.
    pub loop_header: String,
    /// When set, only this value of [`LoopPolicy::loop_header`] counts (e.g.
    /// an installation id); when `None`, any value does.
    pub loop_header_value: Option<String>,
    /// Maximum number of recent mails from the same sender with the same
    /// (cleaned) subject before further ones are skipped as a suspected loop.
    /// `None` disables the guard. Default `Some(10)`.
    pub max_recent_same_subject: Option<u32>,
}

impl Default for LoopPolicy {
    fn default() -> Self {
        Self {
            accept_auto_replies: false,
            skip_bounces: true,
            subject_heuristics: true,
            auto_reply_subject_prefixes: [
                "Automatic reply:",
                "Auto reply:",
                "Auto-reply:",
                "Autoreply:",
                "Auto Response:",
                "Out of Office",
                "Automatische Antwort:",
                "Abwesenheitsnotiz",
                "Réponse automatique",
                "Respuesta automática",
                "Risposta automatica",
                "Automatisch antwoord",
                "Autosvar:",
            ]
            .map(String::from)
            .to_vec(),
            bounce_subject_prefixes: [
                "Undeliverable:",
                "Undelivered Mail Returned to Sender",
                "Delivery Status Notification (Failure)",
                "Mail delivery failed",
                "Delivery has failed",
                "Returned mail:",
                "Failure Notice",
                "Unzustellbar:",
            ]
            .map(String::from)
            .to_vec(),
            x_auto_response_suppress_is_auto: true,
            null_return_path_is_auto: true,
            own_addresses: Vec::new(),
            exclusions: Vec::new(),
            loop_header: "X-Mailroom-Loop".into(),
            loop_header_value: None,
            max_recent_same_subject: Some(10),
        }
    }
}

/// Outcome of [`classify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Classification {
    /// The mail may create or update a ticket.
    Process,
    /// The mail must not reach the PSA.
    Skip(SkipReason),
}

/// Why a mail is not turned into ticket activity. Every variant has a stable
/// machine code ([`SkipReason::code`]) and an admin-readable text
/// ([`SkipReason::describe`], also its `Display`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum SkipReason {
    /// An automatic reply (out of office, auto-responder, list mail).
    AutoReply {
        /// Which header or heuristic matched.
        evidence: String,
    },
    /// A bounce / delivery status notification.
    Bounce {
        /// Which header, part or sender matched.
        evidence: String,
    },
    /// Sent by one of the app's own mailboxes.
    OwnMailbox {
        /// The sender.
        address: String,
    },
    /// The sender is on the exclusion list.
    ExcludedSender {
        /// The sender.
        address: String,
        /// The exclusion entry that matched.
        pattern: String,
    },
    /// The mail carries the app's own loop header.
    LoopHeader {
        /// Header name.
        header: String,
    },
    /// Too many recent mails from this sender with this subject.
    LoopSuspected {
        /// The sender.
        address: String,
        /// Recent count the engine reported.
        count: u32,
        /// Configured threshold.
        threshold: u32,
    },
    /// The mail has no usable From address.
    NoSender,
    /// The From address (after decoding) is not a valid `addr-spec` (e.g. it carries CR/LF
    /// and further header text, whitespace or control characters).
    InvalidSender {
        /// The address as received (shown escaped).
        address: String,
    },
    /// The sender is unknown and the mailbox rejects unknown senders (or the
    /// unknown-sender settings are incomplete).
    SenderRejected {
        /// The sender.
        address: String,
        /// Why.
        detail: String,
    },
    /// The mailbox does not allow new tickets by email and the mail matched
    /// no existing ticket.
    NewTicketsDisabled,
    /// The same Message-ID is already on a ticket.
    Duplicate {
        /// The ticket that already holds it.
        ticket_id: i64,
    },
}

impl SkipReason {
    /// Stable machine code (`auto_reply`, `bounce`, `own_mailbox`,
    /// `excluded_sender`, `loop_header`, `loop_suspected`, `no_sender`, `invalid_sender`,
    /// `sender_rejected`, `new_tickets_disabled`, `duplicate`).
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::AutoReply { .. } => "auto_reply",
            SkipReason::Bounce { .. } => "bounce",
            SkipReason::OwnMailbox { .. } => "own_mailbox",
            SkipReason::ExcludedSender { .. } => "excluded_sender",
            SkipReason::LoopHeader { .. } => "loop_header",
            SkipReason::LoopSuspected { .. } => "loop_suspected",
            SkipReason::NoSender => "no_sender",
            SkipReason::InvalidSender { .. } => "invalid_sender",
            SkipReason::SenderRejected { .. } => "sender_rejected",
            SkipReason::NewTicketsDisabled => "new_tickets_disabled",
            SkipReason::Duplicate { .. } => "duplicate",
        }
    }

    /// Admin-readable explanation, including what to change if the skip was
    /// unwanted.
    pub fn describe(&self) -> String {
        match self {
            SkipReason::AutoReply { evidence } => format!(
                "Skipped an automatic reply ({evidence}). Enable \"accept auto-replies\" on the mailbox to let them through."
            ),
            SkipReason::Bounce { evidence } => format!(
                "Skipped a bounce / delivery status notification ({evidence}). Check the original recipient address; bounces never create tickets."
            ),
            SkipReason::OwnMailbox { address } => format!(
                "Skipped mail from {address}, one of this app's own mailboxes, to prevent a mail loop."
            ),
            SkipReason::ExcludedSender { address, pattern } => format!(
                "Skipped mail from {address}: it matches the exclusion \"{pattern}\". Remove the exclusion to accept this sender."
            ),
            SkipReason::LoopHeader { header } => format!(
                "Skipped mail carrying the {header} header: it was sent by this app and came back, which indicates a mail loop (e.g. a forwarding rule)."
            ),
            SkipReason::LoopSuspected { address, count, threshold } => format!(
                "Skipped mail from {address}: {count} recent mails with the same subject exceed the limit of {threshold}; this looks like a mail loop. Check the sender's auto-responder or forwarding rules, or raise the limit."
            ),
            SkipReason::NoSender => "Skipped a mail without a usable From address.".to_string(),
            SkipReason::InvalidSender { address } => format!(
                "Skipped mail whose From address \"{}\" is not a valid email address (it contains characters an address cannot have, e.g. a line break with more header text); no PSA user or ticket was created for it.",
                address.escape_debug()
            ),
            SkipReason::SenderRejected { address, detail } => format!(
                "Skipped mail from {address}: {detail}"
            ),
            SkipReason::NewTicketsDisabled => "Skipped: the mail matched no existing ticket and this mailbox does not allow new tickets by email.".to_string(),
            SkipReason::Duplicate { ticket_id } => format!(
                "Skipped: this exact message (same Message-ID) is already on ticket {ticket_id}."
            ),
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Classifies without rate-guard input (equivalent to
/// `classify_with_history(email, policy, 0)`).
pub fn classify(email: &ParsedEmail, policy: &LoopPolicy) -> Classification {
    classify_with_history(email, policy, 0)
}

/// Classifies `email`. `recent_same_subject` is the engine's count of recent
/// mails (excluding this one) from the same sender with the same cleaned
/// subject; it feeds [`LoopPolicy::max_recent_same_subject`].
///
/// Checks run in this order, first match wins: no sender, invalid sender, own mailbox,
/// exclusion list, loop header, bounce, auto-reply, rate guard.
pub fn classify_with_history(
    email: &ParsedEmail,
    policy: &LoopPolicy,
    recent_same_subject: u32,
) -> Classification {
    match check(email, policy, recent_same_subject) {
        Some(r) => Classification::Skip(r),
        None => Classification::Process,
    }
}

fn check(email: &ParsedEmail, policy: &LoopPolicy, recent: u32) -> Option<SkipReason> {
    let Some(from) = &email.from else {
        return Some(SkipReason::NoSender);
    };
    let address = from.address.clone();
    if !from.is_valid_addr_spec() {
        return Some(SkipReason::InvalidSender { address });
    }

    if policy
        .own_addresses
        .iter()
        .any(|a| a.trim().eq_ignore_ascii_case(&address))
    {
        return Some(SkipReason::OwnMailbox { address });
    }
    if let Some(pattern) = policy
        .exclusions
        .iter()
        .find(|p| exclusion_matches(p, &address))
    {
        return Some(SkipReason::ExcludedSender {
            address,
            pattern: pattern.trim().to_string(),
        });
    }
    let lh = policy.loop_header.trim();
    if !lh.is_empty() {
        let hit = email
            .headers
            .get_all(lh)
            .any(|v| match &policy.loop_header_value {
                Some(want) => v.trim().eq_ignore_ascii_case(want.trim()),
                None => true,
            });
        if hit {
            return Some(SkipReason::LoopHeader {
                header: lh.to_string(),
            });
        }
    }
    if policy.skip_bounces {
        if let Some(evidence) = bounce_evidence(email, policy) {
            return Some(SkipReason::Bounce { evidence });
        }
    }
    if !policy.accept_auto_replies {
        if let Some(evidence) = auto_reply_evidence(email, policy) {
            return Some(SkipReason::AutoReply { evidence });
        }
    }
    if let Some(threshold) = policy.max_recent_same_subject {
        if recent >= threshold {
            return Some(SkipReason::LoopSuspected {
                address,
                count: recent,
                threshold,
            });
        }
    }
    None
}

/// Whether an exclusion entry matches `address`: exact address
/// (case-insensitive), `*@domain` / `@domain` (exact domain) or
/// `*@*.domain` (subdomains of domain, not domain itself).
pub fn exclusion_matches(pattern: &str, address: &str) -> bool {
    let p = pattern.trim().to_lowercase();
    let a = address.trim().to_lowercase();
    if p.is_empty() {
        return false;
    }
    let domain = a.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    if let Some(sub) = p.strip_prefix("*@*.") {
        return domain.ends_with(&format!(".{sub}"));
    }
    if let Some(d) = p.strip_prefix("*@").or_else(|| p.strip_prefix('@')) {
        return domain == d;
    }
    p == a
}

/// Why `email` looks like a bounce, if it does.
pub fn bounce_evidence(email: &ParsedEmail, policy: &LoopPolicy) -> Option<String> {
    let mime = email.mime_type();
    let report_type = email.content_type_param("report-type");
    if mime.as_deref() == Some("multipart/report")
        && report_type.as_deref() == Some("delivery-status")
    {
        return Some("Content-Type multipart/report; report-type=delivery-status".into());
    }
    if email
        .part_types
        .iter()
        .any(|t| t == "message/delivery-status" || t == "message/global-delivery-status")
    {
        return Some("a message/delivery-status part".into());
    }
    if let Some(from) = &email.from {
        let local = from.local_part();
        let exchange_system = local
            .strip_prefix("microsoftexchange")
            .is_some_and(|rest| rest.len() >= 16 && rest.chars().all(|c| c.is_ascii_hexdigit()));
        if local.eq_ignore_ascii_case("mailer-daemon")
            || local.eq_ignore_ascii_case("postmaster")
            || exchange_system
        {
            return Some(format!("sender {}", from.address));
        }
    }
    if email.headers.contains("X-Failed-Recipients") {
        return Some("X-Failed-Recipients header".into());
    }
    if policy.subject_heuristics {
        if let Some(p) = prefix_match(&email.subject, &policy.bounce_subject_prefixes) {
            return Some(format!("subject starts with \"{p}\""));
        }
    }
    None
}

/// Why `email` looks like an automatic reply, if it does.
pub fn auto_reply_evidence(email: &ParsedEmail, policy: &LoopPolicy) -> Option<String> {
    let h = &email.headers;
    if let Some(v) = h.get("Auto-Submitted") {
        let v = v.split(';').next().unwrap_or("").trim();
        if !v.is_empty() && !v.eq_ignore_ascii_case("no") {
            return Some(format!("Auto-Submitted: {v}"));
        }
    }
    if policy.x_auto_response_suppress_is_auto {
        if let Some(v) = h.get("X-Auto-Response-Suppress") {
            if !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("none") {
                return Some(format!("X-Auto-Response-Suppress: {}", v.trim()));
            }
        }
    }
    if let Some(v) = h.get("Precedence") {
        let v = v.trim().to_lowercase();
        if ["bulk", "junk", "list", "auto_reply", "auto-reply"].contains(&v.as_str()) {
            return Some(format!("Precedence: {v}"));
        }
    }
    for name in [
        "X-Autoreply",
        "X-Autorespond",
        "X-Autoresponder",
        "X-Auto-Reply",
    ] {
        if let Some(v) = h.get(name) {
            if !v.trim().eq_ignore_ascii_case("no") {
                return Some(format!("{name} header"));
            }
        }
    }
    if let Some(v) = h.get("X-Loop") {
        if !v.trim().is_empty() {
            return Some("X-Loop header".into());
        }
    }
    if let Some(mime) = email.mime_type() {
        if mime == "multipart/report"
            && email.content_type_param("report-type").as_deref()
                == Some("disposition-notification")
        {
            return Some("read receipt (report-type=disposition-notification)".into());
        }
    }
    if policy.null_return_path_is_auto {
        if let Some(v) = h.get("Return-Path") {
            if v.trim() == "<>" {
                return Some("Return-Path: <> (null reverse path)".into());
            }
        }
    }
    if policy.subject_heuristics {
        if let Some(p) = prefix_match(&email.subject, &policy.auto_reply_subject_prefixes) {
            return Some(format!("subject starts with \"{p}\""));
        }
    }
    None
}

fn prefix_match<'a>(subject: &str, prefixes: &'a [String]) -> Option<&'a str> {
    let s = subject.trim().to_lowercase();
    prefixes
        .iter()
        .map(|p| p.trim())
        .find(|p| !p.is_empty() && s.starts_with(&p.to_lowercase()))
}
