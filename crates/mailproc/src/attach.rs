//! Attachment policy: which parts are uploaded, kept inline or skipped.

use serde::{Deserialize, Serialize};

use crate::parsed::Attachment;

/// Limits and filters for attachments. Defaults: 20 MiB per file, 50 MiB per
/// mail, inline images under 2 KiB (spacers, signature icons) skipped, and
/// common executable / script extensions blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttachmentPolicy {
    /// Largest single file, in bytes.
    pub max_bytes: u64,
    /// Largest total of uploaded files per mail, in bytes (in mail order;
    /// once exceeded, further files are skipped).
    pub max_total: u64,
    /// Skip inline images smaller than this (signature logos, spacers).
    /// `None` keeps all.
    pub skip_inline_images_under_bytes: Option<u64>,
    /// Lower-case extensions (without dot) that are never uploaded.
    pub blocked_extensions: Vec<String>,
}

impl Default for AttachmentPolicy {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            max_total: 50 * 1024 * 1024,
            skip_inline_images_under_bytes: Some(2 * 1024),
            blocked_extensions: [
                "exe", "bat", "cmd", "com", "scr", "pif", "js", "jse", "vbs", "vbe", "wsf", "wsh",
                "msi", "msp", "ps1", "psm1", "jar", "lnk", "hta", "cpl", "reg", "dll", "iso",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// What to do with one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AttachmentDecision {
    /// Upload as a normal ticket/action attachment.
    Upload,
    /// Upload, then point `cid:<content_id>` references in the HTML at it
    /// (see [`crate::rewrite_cid_references`]).
    Inline {
        /// Content-ID without angle brackets.
        content_id: String,
    },
    /// Do not upload.
    Skip {
        /// Stable code: `too_large`, `total_exceeded`, `blocked_extension`,
        /// `small_inline_image`, `empty`.
        code: String,
        /// Admin-readable explanation.
        reason: String,
    },
}

/// One attachment's decision, with enough of the attachment to act on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentPlan {
    /// Index into [`crate::ParsedEmail::attachments`].
    pub index: usize,
    /// File name.
    pub name: String,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Graph attachment id, when known (to fetch bytes later).
    pub graph_id: Option<String>,
    /// The decision.
    pub decision: AttachmentDecision,
}

/// Decides every attachment of a mail. `html_body` (when present) is used to
/// tell inline images that the body references (`cid:`) from parts merely
/// flagged inline; an unreferenced inline part is uploaded as a normal file.
pub fn plan_attachments(
    attachments: &[Attachment],
    html_body: Option<&str>,
    policy: &AttachmentPolicy,
) -> Vec<AttachmentPlan> {
    let html_lower = html_body.map(|h| h.to_ascii_lowercase());
    let mut total: u64 = 0;
    attachments
        .iter()
        .enumerate()
        .map(|(index, a)| {
            let skip = |code: &str, reason: String| AttachmentDecision::Skip {
                code: code.into(),
                reason,
            };
            let referenced_cid = a.content_id.as_ref().filter(|cid| {
                html_lower
                    .as_deref()
                    .map(|h| h.contains(&format!("cid:{}", cid.to_ascii_lowercase())))
                    .unwrap_or(false)
            });
            let decision = if let Some(ext) = a.extension().filter(|e| {
                policy
                    .blocked_extensions
                    .iter()
                    .any(|b| b.trim().trim_start_matches('.').eq_ignore_ascii_case(e))
            }) {
                skip(
                    "blocked_extension",
                    format!(
                        "{}: files ending in .{ext} are blocked by the attachment policy",
                        a.name
                    ),
                )
            } else if a.size == 0 {
                skip("empty", format!("{}: the attachment is empty", a.name))
            } else if a.size > policy.max_bytes {
                skip(
                    "too_large",
                    format!(
                        "{}: {} exceeds the per-file limit of {}",
                        a.name,
                        human_size(a.size),
                        human_size(policy.max_bytes)
                    ),
                )
            } else if referenced_cid.is_some()
                && a.is_image()
                && policy
                    .skip_inline_images_under_bytes
                    .is_some_and(|min| a.size < min)
            {
                skip(
                    "small_inline_image",
                    format!(
                        "{}: inline image of {} bytes treated as a signature/spacer image",
                        a.name, a.size
                    ),
                )
            } else if total.saturating_add(a.size) > policy.max_total {
                skip(
                    "total_exceeded",
                    format!(
                        "{}: adding {} would exceed the per-mail limit of {}",
                        a.name,
                        human_size(a.size),
                        human_size(policy.max_total)
                    ),
                )
            } else {
                total += a.size;
                match referenced_cid {
                    Some(cid) => AttachmentDecision::Inline {
                        content_id: cid.clone(),
                    },
                    None => AttachmentDecision::Upload,
                }
            };
            AttachmentPlan {
                index,
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                size: a.size,
                graph_id: a.graph_id.clone(),
                decision,
            }
        })
        .collect()
}

/// `1234567` → `"1,234,567 bytes (1.2 MiB)"`: exact, and readable.
pub(crate) fn human_size(bytes: u64) -> String {
    let digits = bytes.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let unit = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        .into_iter()
        .find(|(u, _)| bytes >= *u);
    match unit {
        Some((u, name)) => format!("{grouped} bytes ({:.1} {name})", bytes as f64 / u as f64),
        None => format!("{grouped} bytes"),
    }
}
