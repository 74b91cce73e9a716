//! Building the RFC 5322 / MIME form of messages (with `mail-builder`) and the small text
//! helpers Graph needs (header block, body preview, HTML ↔ text).

use chrono::{DateTime, Utc};
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

use crate::seed::DeliveryReport;
use crate::InboundAttachment;

/// Everything needed to render one message as MIME.
pub(crate) struct MimeSpec<'a> {
    pub from: &'a str,
    pub from_name: Option<&'a str>,
    pub to: &'a [(Option<String>, String)],
    pub cc: &'a [(Option<String>, String)],
    pub subject: &'a str,
    pub text: Option<&'a str>,
    pub html: Option<&'a str>,
    /// Without angle brackets.
    pub message_id: &'a str,
    /// Without angle brackets.
    pub in_reply_to: Option<&'a str>,
    /// Without angle brackets.
    pub references: &'a [String],
    pub date: DateTime<Utc>,
    pub headers: &'a [(String, String)],
    pub attachments: &'a [InboundAttachment],
    pub report: Option<&'a DeliveryReport>,
}

fn addr(name: &Option<String>, address: &str) -> Address<'static> {
    match name {
        Some(n) => Address::new_address(Some(n.clone()), address.to_owned()),
        None => Address::new_address(None::<String>, address.to_owned()),
    }
}

/// Renders `spec` as a complete MIME message.
pub(crate) fn build(spec: &MimeSpec<'_>) -> String {
    let from = addr(&spec.from_name.map(str::to_owned), spec.from);
    let mut b = MessageBuilder::new()
        .from(from)
        .subject(spec.subject.to_owned())
        .message_id(spec.message_id.to_owned())
        .date(mail_builder::headers::date::Date::new(
            spec.date.timestamp(),
        ));
    if !spec.to.is_empty() {
        b = b.to(Address::new_list(
            spec.to.iter().map(|(n, a)| addr(n, a)).collect(),
        ));
    }
    if !spec.cc.is_empty() {
        b = b.cc(Address::new_list(
            spec.cc.iter().map(|(n, a)| addr(n, a)).collect(),
        ));
    }
    if let Some(irt) = spec.in_reply_to {
        b = b.in_reply_to(irt.to_owned());
    }
    if !spec.references.is_empty() {
        b = b.references(MessageId::new_list(spec.references.iter().cloned()));
    }
    for (name, value) in spec.headers {
        b = b.header(name.clone(), Raw::new(value.clone()));
    }
    b.body(body_part(spec))
        .write_to_string()
        .expect("writing MIME to memory cannot fail")
}

fn body_part(spec: &MimeSpec<'_>) -> MimePart<'static> {
    let text = spec.text.map(|t| MimePart::new("text/plain", t.to_owned()));
    let html = spec.html.map(|h| MimePart::new("text/html", h.to_owned()));
    if let Some(report) = spec.report {
        let status = format!(
            "Reporting-MTA: {}\r\n\r\nFinal-Recipient: {}\r\nAction: {}\r\nStatus: {}\r\nDiagnostic-Code: {}\r\n",
            report.reporting_mta, report.final_recipient, report.action, report.status, report.diagnostic
        );
        let mut parts = vec![text.unwrap_or_else(|| MimePart::new("text/plain", String::new()))];
        parts.push(MimePart::new("message/delivery-status", status));
        parts.push(MimePart::new(
            "text/rfc822-headers",
            report.original_headers.clone(),
        ));
        return MimePart::new(
            ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
            parts,
        );
    }
    let mut core = match (text, html) {
        (Some(t), Some(h)) => MimePart::new("multipart/alternative", vec![t, h]),
        (Some(t), None) => t,
        (None, Some(h)) => h,
        (None, None) => MimePart::new("text/plain", String::new()),
    };
    let inline: Vec<MimePart<'static>> = spec
        .attachments
        .iter()
        .filter(|a| a.inline)
        .map(|a| {
            let mut p = MimePart::new(a.content_type.clone(), a.content.clone()).inline();
            if let Some(cid) = &a.content_id {
                p = p.cid(cid.trim_matches(['<', '>']).to_owned());
            }
            p
        })
        .collect();
    if !inline.is_empty() {
        let mut parts = vec![core];
        parts.extend(inline);
        core = MimePart::new("multipart/related", parts);
    }
    let files: Vec<MimePart<'static>> = spec
        .attachments
        .iter()
        .filter(|a| !a.inline)
        .map(|a| {
            MimePart::new(a.content_type.clone(), a.content.clone()).attachment(a.name.clone())
        })
        .collect();
    if files.is_empty() {
        core
    } else {
        let mut parts = vec![core];
        parts.extend(files);
        MimePart::new("multipart/mixed", parts)
    }
}

/// The top-level header fields of a MIME message, unfolded, in order.
pub(crate) fn header_block(mime: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in mime.split("\r\n").flat_map(|l| l.split('\n')) {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// Graph's `bodyPreview`: the first 255 characters of the text, whitespace collapsed.
pub(crate) fn preview(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(255).collect()
}

/// Plain text rendition of an HTML body (what `Prefer: outlook.body-content-type="text"` gives).
pub(crate) fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut chars = html.chars().peekable();
    let mut skip_depth: Option<String> = None;
    while let Some(c) = chars.next() {
        if c == '<' {
            let mut tag = String::new();
            for t in chars.by_ref() {
                if t == '>' {
                    break;
                }
                tag.push(t);
            }
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            let closing = tag.starts_with('/');
            if let Some(skip) = &skip_depth {
                if closing && &name == skip {
                    skip_depth = None;
                }
                continue;
            }
            match name.as_str() {
                "style" | "script" | "head" if !closing => skip_depth = Some(name),
                "br" => out.push_str("\r\n"),
                "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" if closing => out.push_str("\r\n"),
                _ => {}
            }
        } else if skip_depth.is_none() {
            if c == '&' {
                let mut ent = String::new();
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if n == ';' || ent.len() > 8 {
                        break;
                    }
                    ent.push(n);
                }
                out.push_str(match ent.as_str() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" | "#39" => "'",
                    "nbsp" => " ",
                    _ => "",
                });
            } else if c != '\n' && c != '\r' {
                out.push(c);
            }
        }
    }
    out.trim().to_owned()
}

/// Minimal HTML rendition of a text body (Graph's HTML view of a text/plain message).
pub(crate) fn text_to_html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("\r\n", "\n")
        .replace('\n', "<br>\r\n");
    format!(
        "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n<div>{escaped}</div>\r\n</body>\r\n</html>\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_to_text_drops_tags_and_decodes_entities() {
        let t = html_to_text("<html><head><style>p{}</style></head><body><p>A &amp; B</p><p>C<br>D</p></body></html>");
        assert_eq!(t, "A & B\r\nC\r\nD");
    }

    #[test]
    fn header_block_unfolds() {
        let h = header_block("Subject: a\r\n b\r\nX-Y: z\r\n\r\nbody: no");
        assert_eq!(
            h,
            vec![("Subject".into(), "a b".into()), ("X-Y".into(), "z".into())]
        );
    }
}
