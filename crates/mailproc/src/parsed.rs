//! The normalised email model ([`ParsedEmail`]) and its two constructors:
//! raw MIME ([`ParsedEmail::from_mime`]) and Microsoft Graph message JSON
//! ([`ParsedEmail::from_graph`]).

use base64::Engine as _;
use chrono::{DateTime, Utc};
use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};

use crate::error::MailError;

/// One mailbox (address plus optional display name). The address is trimmed
/// and lower-cased; the name is trimmed and `None` when empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    /// Lower-cased address, e.g. `pat@fabrikam.test`.
    pub address: String,
    /// Display name, e.g. `Pat Smith`.
    pub name: Option<String>,
}

impl Mailbox {
    /// Builds a normalised mailbox; returns `None` when the address is empty
    /// or has no `@`.
    pub fn new(address: &str, name: Option<&str>) -> Option<Self> {
        let address = address
            .trim()
            .trim_matches(|c| c == '<' || c == '>')
            .trim()
            .to_lowercase();
        if address.is_empty() || !address.contains('@') {
            return None;
        }
        let name = name
            .map(|n| n.trim().trim_matches('"').trim().to_string())
            .filter(|n| !n.is_empty());
        Some(Self { address, name })
    }

    /// Whether the address is a valid RFC 5322 `addr-spec` (`local@domain`, no display name,
    /// no whitespace, CR/LF or other control characters, no bidirectional-text controls),
    /// as checked by the `email_address` crate. A `From` that is not is never used as a PSA
    /// user's address.
    pub fn is_valid_addr_spec(&self) -> bool {
        !self
            .address
            .chars()
            .any(|c| c.is_control() || crate::content::is_bidi_control(c))
            && email_address::EmailAddress::parse_with_options(
                &self.address,
                email_address::Options::default().without_display_text(),
            )
            .is_ok()
    }

    /// The part after the last `@` (already lower-case).
    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    /// The part before the last `@`.
    pub fn local_part(&self) -> &str {
        self.address
            .rsplit_once('@')
            .map(|(l, _)| l)
            .unwrap_or(&self.address)
    }
}

/// Header list with case-insensitive lookup. Values are unfolded and, where
/// the MIME parser could decode them (RFC 2047 encoded words), decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// Builds from `(name, value)` pairs in message order.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// First value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of `name` (case-insensitive), in message order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present (case-insensitive).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// All headers in message order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of header fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One attachment (or inline part) of an email.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// File name; synthesised (`attachment-N.ext`) when the mail has none.
    pub name: String,
    /// Lower-cased MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// Size in bytes (decoded content when known, else the size Graph reports).
    pub size: u64,
    /// Content-ID without angle brackets, when present.
    pub content_id: Option<String>,
    /// Whether the part is marked inline (Content-Disposition: inline, or Graph `isInline`).
    pub inline: bool,
    /// Decoded bytes, when available (always for MIME; for Graph only when
    /// `contentBytes` was fetched).
    pub bytes: Option<Vec<u8>>,
    /// Graph attachment id, when the message came from Graph.
    pub graph_id: Option<String>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("size", &self.size)
            .field("content_id", &self.content_id)
            .field("inline", &self.inline)
            .field("bytes", &self.bytes.as_ref().map(|b| b.len()))
            .field("graph_id", &self.graph_id)
            .finish()
    }
}

impl Attachment {
    /// Lower-cased extension of [`Attachment::name`] (text after the last dot).
    pub fn extension(&self) -> Option<String> {
        let (stem, ext) = self.name.trim().rsplit_once('.')?;
        if stem.is_empty() && ext.is_empty() {
            return None;
        }
        let ext = ext.trim().to_lowercase();
        (!ext.is_empty()).then_some(ext)
    }

    /// Whether the MIME type is `image/*`.
    pub fn is_image(&self) -> bool {
        self.content_type.starts_with("image/")
    }
}

/// The normalised form of one fetched email; the input to every decision in
/// this crate.
///
/// Message ids (`message_id`, `in_reply_to`, `references`) are stored without
/// angle brackets; [`crate::thread_keys`] produces both spellings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ParsedEmail {
    /// Graph message id (`id`), when from Graph.
    pub graph_id: Option<String>,
    /// Message-ID / `internetMessageId`, without angle brackets.
    pub message_id: Option<String>,
    /// In-Reply-To ids, without angle brackets.
    pub in_reply_to: Vec<String>,
    /// References ids (oldest first), without angle brackets.
    pub references: Vec<String>,
    /// Graph `conversationId`.
    pub conversation_id: Option<String>,
    /// Decoded subject ("" when absent).
    pub subject: String,
    /// Sender (From).
    pub from: Option<Mailbox>,
    /// To recipients.
    pub to: Vec<Mailbox>,
    /// Cc recipients.
    pub cc: Vec<Mailbox>,
    /// Date header or Graph `receivedDateTime`.
    pub date: Option<DateTime<Utc>>,
    /// HTML body (not yet sanitised).
    pub html_body: Option<String>,
    /// Plain-text body.
    pub text_body: Option<String>,
    /// All top-level headers.
    pub headers: Headers,
    /// Attachments and inline parts.
    pub attachments: Vec<Attachment>,
    /// Lower-cased MIME types of every part (`multipart/report`,
    /// `message/delivery-status`, …); empty for Graph JSON.
    pub part_types: Vec<String>,
    /// Non-fatal problems noticed while parsing (e.g. a missing closing
    /// MIME boundary, which suggests truncation).
    pub warnings: Vec<String>,
}

/// Header names whose presence marks the start of a real RFC 5322 message.
const KNOWN_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "received",
    "mime-version",
    "content-type",
    "return-path",
    "sender",
    "reply-to",
    "in-reply-to",
    "references",
    "delivered-to",
];

impl ParsedEmail {
    /// Parses raw RFC 5322 / MIME bytes (Graph `$value`).
    ///
    /// Never panics: empty input, input without any recognisable header and
    /// input the MIME parser rejects produce a [`MailError`]. A truncated
    /// multipart message still parses (with what is there) and records a
    /// warning.
    pub fn from_mime(bytes: &[u8]) -> Result<Self, MailError> {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(MailError::Empty);
        }
        let message =
            MessageParser::default()
                .parse(bytes)
                .ok_or_else(|| MailError::Malformed {
                    detail: "the parser found no message in the input".into(),
                })?;
        let root = message.root_part();
        let has_known = root
            .headers
            .iter()
            .any(|h| KNOWN_HEADERS.contains(&h.name.as_str().to_ascii_lowercase().as_str()));
        if !has_known {
            return Err(MailError::NotAnEmail {
                inspected: bytes.len().min(64 * 1024),
            });
        }

        let raw_message: &[u8] = message.raw_message.as_ref();
        let mut pairs = Vec::new();
        for header in &root.headers {
            let value = match &header.value {
                HeaderValue::Text(t) => t.to_string(),
                _ => {
                    let (a, b) = (header.offset_start as usize, header.offset_end as usize);
                    let raw = raw_message.get(a..b.max(a)).unwrap_or_default();
                    unfold(&String::from_utf8_lossy(raw))
                }
            };
            pairs.push((header.name.as_str().to_string(), value));
        }
        let headers = Headers::new(pairs);

        let ids = |v: &HeaderValue| -> Vec<String> {
            match v {
                HeaderValue::Text(t) => parse_message_ids(t),
                HeaderValue::TextList(l) => l.iter().flat_map(|t| parse_message_ids(t)).collect(),
                _ => Vec::new(),
            }
        };
        let message_id = message
            .message_id()
            .and_then(|m| parse_message_ids(m).into_iter().next());
        let in_reply_to = ids(message.in_reply_to());
        let references = ids(message.references());

        let addr_list = |a: Option<&mail_parser::Address>| -> Vec<Mailbox> {
            a.map(|a| {
                a.iter()
                    .filter_map(|x| Mailbox::new(x.address()?, x.name()))
                    .collect()
            })
            .unwrap_or_default()
        };
        let from = addr_list(message.from()).into_iter().next();
        let to = addr_list(message.to());
        let cc = addr_list(message.cc());
        let date = message
            .date()
            .filter(|d| d.is_valid())
            .and_then(|d| DateTime::<Utc>::from_timestamp(d.to_timestamp(), 0));

        let html_body = if message.html_body_count() > 0
            && message
                .html_part(0)
                .map(|p| p.is_text_html())
                .unwrap_or(false)
        {
            message.body_html(0).map(|s| s.into_owned())
        } else {
            None
        };
        let text_body = message
            .text_part(0)
            .filter(|p| matches!(p.body, PartType::Text(_)))
            .and_then(|_| message.body_text(0).map(|s| s.into_owned()));

        let mut part_types = Vec::new();
        for part in &message.parts {
            if let Some(ct) = part.content_type() {
                let t = match ct.subtype() {
                    Some(st) => format!("{}/{}", ct.ctype(), st),
                    None => ct.ctype().to_string(),
                };
                part_types.push(t.to_lowercase());
            }
        }

        let mut attachments = Vec::new();
        for (n, part) in message.attachments().enumerate() {
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(st) => format!("{}/{}", ct.ctype(), st),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| match part.body {
                    PartType::Message(_) => "message/rfc822".into(),
                    PartType::Text(_) => "text/plain".into(),
                    PartType::Html(_) => "text/html".into(),
                    _ => "application/octet-stream".into(),
                })
                .to_lowercase();
            let content_id = part
                .content_id()
                .map(|c| c.trim().trim_matches(|c| c == '<' || c == '>').to_string())
                .filter(|c| !c.is_empty());
            let disposition_inline = part.content_disposition().map(|d| d.is_inline());
            let inline = match disposition_inline {
                Some(i) => i,
                None => content_id.is_some() || matches!(part.body, PartType::InlineBinary(_)),
            };
            let bytes = part.contents().to_vec();
            let name = part
                .attachment_name()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| synth_name(n + 1, &content_type));
            attachments.push(Attachment {
                name,
                content_type,
                size: bytes.len() as u64,
                content_id,
                inline,
                bytes: Some(bytes),
                graph_id: None,
            });
        }

        let mut warnings = Vec::new();
        if let Some(ct) = root.content_type() {
            if ct.ctype().eq_ignore_ascii_case("multipart") {
                match ct.attribute("boundary") {
                    Some(b) => {
                        let closing = format!("--{b}--");
                        if !contains_bytes(bytes, closing.as_bytes()) {
                            warnings.push(format!(
                                "multipart message has no closing boundary \"{closing}\"; it is probably truncated"
                            ));
                        }
                    }
                    None => warnings.push("multipart message without a boundary parameter".into()),
                }
            }
        }
        if message.parts.iter().any(|p| p.is_encoding_problem) {
            warnings.push(
                "a MIME part could not be decoded cleanly (bad transfer encoding or charset)"
                    .into(),
            );
        }

        Ok(Self {
            graph_id: None,
            message_id,
            in_reply_to,
            references,
            conversation_id: None,
            subject: message
                .subject()
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            from,
            to,
            cc,
            date,
            html_body,
            text_body,
            headers,
            attachments,
            part_types,
            warnings,
        })
    }

    /// Like [`ParsedEmail::from_mime`] but refuses inputs larger than `max_bytes`.
    pub fn from_mime_limited(bytes: &[u8], max_bytes: usize) -> Result<Self, MailError> {
        if bytes.len() > max_bytes {
            return Err(MailError::TooLarge {
                size: bytes.len(),
                limit: max_bytes,
            });
        }
        Self::from_mime(bytes)
    }

    /// Builds from a Graph message resource. In-Reply-To and References are
    /// taken from `internetMessageHeaders` (Graph has no dedicated fields for
    /// them, so select that property when fetching).
    pub fn from_graph(msg: &GraphMessage) -> Result<Self, MailError> {
        let headers = Headers::new(
            msg.internet_message_headers
                .iter()
                .map(|h| (h.name.clone(), unfold(&h.value)))
                .collect(),
        );
        let message_id = msg
            .internet_message_id
            .as_deref()
            .or_else(|| headers.get("message-id"))
            .and_then(|m| parse_message_ids(m).into_iter().next());
        let in_reply_to = headers
            .get_all("in-reply-to")
            .flat_map(parse_message_ids)
            .collect();
        let references = headers
            .get_all("references")
            .flat_map(parse_message_ids)
            .collect();
        let conv = |r: &GraphRecipient| {
            Mailbox::new(
                r.email_address.address.as_deref().unwrap_or(""),
                r.email_address.name.as_deref(),
            )
        };
        let (html_body, text_body) = match &msg.body {
            Some(b) if b.content_type.eq_ignore_ascii_case("html") => {
                (Some(b.content.clone()), None)
            }
            Some(b) => (None, Some(b.content.clone())),
            None => (None, None),
        };
        let date = msg
            .received_date_time
            .as_deref()
            .or(msg.sent_date_time.as_deref())
            .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
            .map(|d| d.with_timezone(&Utc));

        let mut attachments = Vec::new();
        for (n, a) in msg.attachments.iter().enumerate() {
            let bytes = match &a.content_bytes {
                Some(b64) => Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|e| MailError::BadAttachmentEncoding {
                            name: a.name.clone().unwrap_or_default(),
                            detail: e.to_string(),
                        })?,
                ),
                None => None,
            };
            let content_type = a
                .content_type
                .clone()
                .filter(|c| !c.trim().is_empty())
                .unwrap_or_else(|| "application/octet-stream".into())
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_lowercase();
            let name = a
                .name
                .clone()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| synth_name(n + 1, &content_type));
            attachments.push(Attachment {
                name,
                content_type,
                size: bytes
                    .as_ref()
                    .map(|b| b.len() as u64)
                    .unwrap_or(a.size.unwrap_or(0).max(0) as u64),
                content_id: a
                    .content_id
                    .as_deref()
                    .map(|c| c.trim().trim_matches(|c| c == '<' || c == '>').to_string())
                    .filter(|c| !c.is_empty()),
                inline: a.is_inline.unwrap_or(false),
                bytes,
                graph_id: a.id.clone(),
            });
        }
        let mut part_types = Vec::new();
        if let Some(ct) = headers.get("content-type") {
            let mime = ct.split(';').next().unwrap_or("").trim().to_lowercase();
            if !mime.is_empty() {
                part_types.push(mime);
            }
        }
        let mut warnings = Vec::new();
        if msg.has_attachments == Some(true) && msg.attachments.is_empty() {
            warnings.push("hasAttachments is true but no attachments were supplied (fetch them with $expand=attachments or /attachments)".into());
        }

        Ok(Self {
            graph_id: msg.id.clone(),
            message_id,
            in_reply_to,
            references,
            conversation_id: msg.conversation_id.clone().filter(|c| !c.is_empty()),
            subject: msg.subject.clone().unwrap_or_default().trim().to_string(),
            from: msg
                .from
                .as_ref()
                .and_then(conv)
                .or_else(|| msg.sender.as_ref().and_then(conv)),
            to: msg.to_recipients.iter().filter_map(conv).collect(),
            cc: msg.cc_recipients.iter().filter_map(conv).collect(),
            date,
            html_body,
            text_body,
            headers,
            attachments,
            part_types,
            warnings,
        })
    }

    /// The top-level `Content-Type` parameter `name` (e.g. `report-type`),
    /// lower-cased, when present.
    pub fn content_type_param(&self, name: &str) -> Option<String> {
        let ct = self.headers.get("content-type")?;
        ct.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().trim_matches('"').to_lowercase())
        })
    }

    /// The lower-cased top-level MIME type (`multipart/mixed`, …), when known.
    pub fn mime_type(&self) -> Option<String> {
        self.headers
            .get("content-type")
            .map(|ct| ct.split(';').next().unwrap_or("").trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .or_else(|| self.part_types.first().cloned())
    }
}

/// Graph `message` resource, restricted to the fields Mailroom uses.
/// Deserialises directly from Graph's JSON (camelCase).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphMessage {
    /// Graph item id.
    pub id: Option<String>,
    /// RFC 5322 Message-ID.
    pub internet_message_id: Option<String>,
    /// Exchange conversation id.
    pub conversation_id: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// From.
    pub from: Option<GraphRecipient>,
    /// Sender (may differ from From for delegates).
    pub sender: Option<GraphRecipient>,
    /// To.
    pub to_recipients: Vec<GraphRecipient>,
    /// Cc.
    pub cc_recipients: Vec<GraphRecipient>,
    /// ISO 8601 receive time.
    pub received_date_time: Option<String>,
    /// ISO 8601 send time.
    pub sent_date_time: Option<String>,
    /// Body.
    pub body: Option<GraphBody>,
    /// Transport headers (only returned when selected).
    pub internet_message_headers: Vec<GraphHeader>,
    /// Whether the message has (non-inline) attachments.
    pub has_attachments: Option<bool>,
    /// Attachments, when expanded or fetched separately.
    pub attachments: Vec<GraphAttachment>,
}

/// Graph `recipient`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphRecipient {
    /// The address.
    pub email_address: GraphEmailAddress,
}

/// Graph `emailAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GraphEmailAddress {
    /// Display name.
    pub name: Option<String>,
    /// SMTP address.
    pub address: Option<String>,
}

/// Graph `itemBody`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphBody {
    /// `html` or `text`.
    pub content_type: String,
    /// The body.
    pub content: String,
}

/// Graph `internetMessageHeader`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GraphHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// Graph `fileAttachment` (other attachment kinds deserialise with no bytes).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphAttachment {
    /// Attachment id.
    pub id: Option<String>,
    /// File name.
    pub name: Option<String>,
    /// MIME type.
    pub content_type: Option<String>,
    /// Size Graph reports (includes some overhead).
    pub size: Option<i64>,
    /// Whether inline.
    pub is_inline: Option<bool>,
    /// Content-ID.
    pub content_id: Option<String>,
    /// Base64 content.
    pub content_bytes: Option<String>,
}

impl std::fmt::Debug for GraphAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphAttachment")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("size", &self.size)
            .field("is_inline", &self.is_inline)
            .field("content_id", &self.content_id)
            .field(
                "content_bytes",
                &self.content_bytes.as_ref().map(|b| b.len()),
            )
            .finish()
    }
}

/// Splits a Message-ID style header into ids without angle brackets.
/// Accepts `<a@b> <c@d>`, `<a@b>,<c@d>` and bare `a@b c@d`.
pub fn parse_message_ids(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    if value.contains('<') {
        let mut rest = value;
        while let Some(start) = rest.find('<') {
            let after = &rest[start + 1..];
            match after.find('>') {
                Some(end) => {
                    let id = after[..end].trim();
                    if !id.is_empty() {
                        out.push(id.to_string());
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    let id = after.trim();
                    if !id.is_empty() {
                        out.push(id.to_string());
                    }
                    break;
                }
            }
        }
    } else {
        out.extend(
            value
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    out
}

fn unfold(raw: &str) -> String {
    let mut s = String::with_capacity(raw.len());
    for line in raw.split('\n') {
        let line = line.trim_end_matches('\r');
        if !s.is_empty() && !line.trim().is_empty() {
            s.push(' ');
        }
        s.push_str(line.trim());
    }
    s.trim().to_string()
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn synth_name(n: usize, content_type: &str) -> String {
    let ext = match content_type {
        "application/pdf" => "pdf",
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpg",
        "image/gif" => "gif",
        "message/rfc822" => "eml",
        "text/plain" => "txt",
        "text/html" => "html",
        "text/calendar" => "ics",
        "message/delivery-status" => "txt",
        _ => "bin",
    };
    format!("attachment-{n}.{ext}")
}
