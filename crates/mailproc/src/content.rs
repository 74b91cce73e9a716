//! Body handling: HTML sanitising (ammonia), plain text → HTML, inline-image
//! (`cid:`) rewriting and quoted-reply trimming.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

/// Options for [`sanitize_html`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HtmlOptions {
    /// Remove `src` from `<img>` elements that load from http(s). Default `false`.
    pub block_remote_images: bool,
    /// Drop remote 1×1 / 0×0 images (tracking pixels). Default `true`.
    pub strip_tracking_pixels: bool,
    /// Keep `data:image/(png|jpeg|gif|webp|bmp)` image sources. Default `true`.
    pub allow_data_images: bool,
    /// Keep `cid:` image sources that are not in [`HtmlOptions::cid_map`]
    /// (so the engine can rewrite them later with
    /// [`rewrite_cid_references`]); when `false` they are removed. Default `true`.
    pub keep_unmapped_cids: bool,
    /// Content-ID (without `<>`) → replacement URL for `<img src="cid:…">`.
    /// Not persisted; set per message.
    #[serde(skip)]
    pub cid_map: HashMap<String, String>,
}

impl Default for HtmlOptions {
    fn default() -> Self {
        Self {
            block_remote_images: false,
            strip_tracking_pixels: true,
            allow_data_images: true,
            keep_unmapped_cids: true,
            cid_map: HashMap::new(),
        }
    }
}

/// CSS properties kept in `style` attributes; everything else (positioning,
/// `background-image`, `behavior`, …) is dropped.
const SAFE_CSS: &[&str] = &[
    "color",
    "background-color",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "text-align",
    "text-decoration",
    "text-indent",
    "text-transform",
    "line-height",
    "letter-spacing",
    "white-space",
    "vertical-align",
    "border",
    "border-top",
    "border-bottom",
    "border-left",
    "border-right",
    "border-color",
    "border-style",
    "border-width",
    "border-collapse",
    "border-spacing",
    "padding",
    "padding-top",
    "padding-bottom",
    "padding-left",
    "padding-right",
    "margin",
    "margin-top",
    "margin-bottom",
    "margin-left",
    "margin-right",
    "width",
    "height",
    "max-width",
    "min-width",
    "list-style-type",
];

/// Sanitises mail HTML for display in the PSA.
///
/// Keeps basic formatting, lists, tables (with their layout attributes),
/// links (forced `rel="noopener noreferrer"`, `target="_blank"`) and images;
/// removes scripts, `<style>`/`<head>` content, comments, event handlers,
/// `javascript:` and other unsafe URLs, and CSS properties outside a small
/// allow-list. `cid:` image sources are rewritten through
/// [`HtmlOptions::cid_map`].
pub fn sanitize_html(html: &str, opts: &HtmlOptions) -> String {
    let pre = if opts.strip_tracking_pixels {
        strip_tracking_pixels(html)
    } else {
        html.to_string()
    };
    let cid_map: HashMap<String, String> = opts
        .cid_map
        .iter()
        .map(|(k, v)| (normalise_cid(k), v.clone()))
        .collect();
    let block_remote = opts.block_remote_images;
    let allow_data = opts.allow_data_images;
    let keep_unmapped = opts.keep_unmapped_cids;

    let mut b = ammonia::Builder::default();
    b.add_tags(["font", "center", "u", "s", "strike", "big", "small"])
        .add_tag_attributes("font", ["color", "face", "size"])
        .add_tag_attributes(
            "img",
            ["src", "alt", "title", "width", "height", "align", "border"],
        )
        .add_tag_attributes(
            "table",
            [
                "width",
                "border",
                "cellpadding",
                "cellspacing",
                "align",
                "bgcolor",
            ],
        )
        .add_tag_attributes(
            "td",
            ["width", "height", "align", "valign", "bgcolor", "nowrap"],
        )
        .add_tag_attributes(
            "th",
            ["width", "height", "align", "valign", "bgcolor", "nowrap"],
        )
        .add_tag_attributes("tr", ["align", "valign", "bgcolor"])
        .add_tag_attributes("p", ["align"])
        .add_tag_attributes("div", ["align"])
        .add_tag_attributes("a", ["target"])
        .add_generic_attributes(["style", "dir"])
        .filter_style_properties(SAFE_CSS.iter().copied().collect::<HashSet<&str>>())
        .add_url_schemes(["cid", "data"])
        .link_rel(Some("noopener noreferrer"))
        .set_tag_attribute_value("a", "target", "_blank")
        .attribute_filter(move |element, attribute, value| {
            let lower = value.trim().to_ascii_lowercase();
            match (element, attribute) {
                ("img", "src") => {
                    if lower.starts_with("cid:") {
                        let raw_id = value.trim()[4..].trim();
                        return match cid_map.get(&normalise_cid(raw_id)) {
                            Some(url) => Some(url.clone().into()),
                            None if keep_unmapped => Some(format!("cid:{raw_id}").into()),
                            None => None,
                        };
                    }
                    if lower.starts_with("data:") {
                        let ok = allow_data
                            && ["png", "jpeg", "jpg", "gif", "webp", "bmp"]
                                .iter()
                                .any(|t| lower.starts_with(&format!("data:image/{t};")));
                        return ok.then(|| value.into());
                    }
                    if block_remote
                        && (lower.starts_with("http:")
                            || lower.starts_with("https:")
                            || lower.starts_with("//"))
                    {
                        return None;
                    }
                    Some(value.into())
                }
                (_, "href") | (_, "src") | (_, "cite") | (_, "background")
                    if lower.starts_with("data:") || lower.starts_with("cid:") =>
                {
                    None
                }
                _ => Some(value.into()),
            }
        });
    drop_images_without_source(&b.clean(&pre).to_string())
}

/// Removes `<img>` elements that lost their `src` while sanitising (an unmapped or skipped
/// `cid:` image, a blocked remote or data image): an image without a source shows as a
/// broken frame in the PSA. One with alternative text leaves that text, in brackets.
/// Works on ammonia's serialisation, where every attribute value is double-quoted and `"`
/// inside values is escaped, so the attribute pattern below is exact.
fn drop_images_without_source(html: &str) -> String {
    static IMG: OnceLock<Regex> = OnceLock::new();
    static ATTR: OnceLock<Regex> = OnceLock::new();
    let img = IMG.get_or_init(|| ci(r#"<img((?:\s+[^\s=/>"]+(?:="[^"]*")?)*)\s*/?>"#));
    let attr = ATTR.get_or_init(|| ci(r#"([^\s=/>"]+)(?:="([^"]*)")?"#));
    img.replace_all(html, |c: &regex::Captures| {
        let mut alt = None;
        let mut has_src = false;
        for a in attr.captures_iter(&c[1]) {
            let name = a[1].to_ascii_lowercase();
            let value = a.get(2).map(|v| v.as_str()).unwrap_or("");
            match name.as_str() {
                "src" if !value.trim().is_empty() => has_src = true,
                "alt" => alt = Some(decode_attr_entities(value)),
                _ => {}
            }
        }
        if has_src {
            return c[0].to_string();
        }
        match alt.map(|a| a.trim().to_string()).filter(|a| !a.is_empty()) {
            Some(a) => format!("[{}]", escape_html(&a)),
            None => String::new(),
        }
    })
    .into_owned()
}

/// Undoes the escaping of an attribute value in serialised HTML (`&amp;`, `&quot;`,
/// `&nbsp;`, `&lt;`, `&gt;`).
fn decode_attr_entities(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Sanitises with [`HtmlOptions::default`].
pub fn sanitize_html_default(html: &str) -> String {
    sanitize_html(html, &HtmlOptions::default())
}

fn normalise_cid(s: &str) -> String {
    s.trim()
        .trim_matches(|c| c == '<' || c == '>')
        .trim()
        .to_ascii_lowercase()
}

fn strip_tracking_pixels(html: &str) -> String {
    static IMG: OnceLock<Regex> = OnceLock::new();
    static W: OnceLock<Regex> = OnceLock::new();
    static H: OnceLock<Regex> = OnceLock::new();
    let img = IMG.get_or_init(|| ci(r"<img\b[^>]*>"));
    let w = W.get_or_init(|| ci(r#"(?:\bwidth\s*=\s*["']?|\bwidth\s*:\s*)[01](?:px)?\b"#));
    let h = H.get_or_init(|| ci(r#"(?:\bheight\s*=\s*["']?|\bheight\s*:\s*)[01](?:px)?\b"#));
    img.replace_all(html, |c: &regex::Captures| {
        let tag = &c[0];
        let remote = tag.to_ascii_lowercase().contains("src=\"http")
            || tag.to_ascii_lowercase().contains("src='http")
            || tag.to_ascii_lowercase().contains("src=http");
        if remote && w.is_match(tag) && h.is_match(tag) {
            String::new()
        } else {
            tag.to_string()
        }
    })
    .into_owned()
}

/// Rewrites `src="cid:…"` in already sanitised HTML (as produced by
/// [`sanitize_html`]) using `map` (Content-ID without `<>` → URL). Unmapped
/// references are left alone. Use after uploading inline attachments.
pub fn rewrite_cid_references(html: &str, map: &HashMap<String, String>) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| ci(r#"src="cid:([^"]*)""#));
    let map: HashMap<String, &String> = map.iter().map(|(k, v)| (normalise_cid(k), v)).collect();
    re.replace_all(html, |c: &regex::Captures| {
        match map.get(&normalise_cid(&decode_min_entities(&c[1]))) {
            Some(url) => format!("src=\"{}\"", escape_html(url)),
            None => c[0].to_string(),
        }
    })
    .into_owned()
}

fn decode_min_entities(s: &str) -> String {
    s.replace("&amp;", "&")
}

/// Whether `c` is a bidirectional-text control character (U+200E/U+200F marks,
/// U+202A–U+202E embeddings/overrides, U+2066–U+2069 isolates), which can make text display
/// differently from what it is (e.g. a reversed file extension).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` without bidirectional-text controls ([`is_bidi_control`]).
pub fn strip_bidi_controls(text: &str) -> String {
    text.chars().filter(|c| !is_bidi_control(*c)).collect()
}

/// Escapes `& < > " '` for HTML text and attribute values (the `html-escape` crate; every
/// product crate escapes through it).
pub fn escape_html(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

/// Converts a plain-text body to safe HTML: escaped, line breaks kept as
/// `<br>`, wrapped in a `<div>`.
pub fn text_to_html(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let body = text
        .trim_end()
        .split('\n')
        .map(escape_html)
        .collect::<Vec<_>>()
        .join("<br>\n");
    format!("<div>{body}</div>")
}

/// Which quoted-history markers [`trim_quoted_html`] / [`trim_quoted_text`]
/// cut at. The body is cut at the earliest enabled marker; if nothing
/// visible would remain the body is returned unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuoteTrimming {
    /// Master switch. Default `true`.
    pub enabled: bool,
    /// `-----Original Message-----` (and localised variants). Default `true`.
    pub original_message: bool,
    /// `On … wrote:` lines. Default `true`.
    pub on_wrote: bool,
    /// Outlook's `<div id="divRplyFwdMsg">` (with the `<hr>` before it),
    /// `<div id="appendonsend">`, and the desktop client's border-top
    /// "From:" block; in text, the `From:`/`Sent:` header block. Default `true`.
    pub outlook: bool,
    /// Gmail's `<div class="gmail_quote">`. Default `true`.
    pub gmail_quote: bool,
    /// `<blockquote type="cite">` (Apple Mail, Thunderbird). Default `true`.
    pub blockquote_cite: bool,
    /// Any `<hr>`. Default `false` (too aggressive for general use).
    pub hr_separator: bool,
}

impl Default for QuoteTrimming {
    fn default() -> Self {
        Self {
            enabled: true,
            original_message: true,
            on_wrote: true,
            outlook: true,
            gmail_quote: true,
            blockquote_cite: true,
            hr_separator: false,
        }
    }
}

fn ci(p: &str) -> Regex {
    RegexBuilder::new(p)
        .case_insensitive(true)
        .build()
        .expect("static regex")
}

struct HtmlMarkers {
    original: Regex,
    on_wrote: Regex,
    outlook: Regex,
    gmail: Regex,
    cite: Regex,
    hr: Regex,
    tags: Regex,
}

fn html_markers() -> &'static HtmlMarkers {
    static M: OnceLock<HtmlMarkers> = OnceLock::new();
    M.get_or_init(|| HtmlMarkers {
        original: ci(r"-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Oorspronkelijk bericht|Mensaje original)\s*-{2,}"),
        on_wrote: ci(r"(?:^|>|\n)(\s*On\s[^<>\n]{1,300}?(?:<[^>]*>[^<>\n]{0,300}?){0,6}\swrote:)"),
        outlook: ci(
            r#"(?:<hr[^>]*>\s*)?<div[^>]*\bid\s*=\s*["']?(?:divRplyFwdMsg|appendonsend)\b|<div[^>]*style\s*=\s*["'][^"']*border-top\s*:\s*solid\s+#[0-9a-f]{6}\s+1(?:\.0)?pt"#,
        ),
        gmail: ci(r#"<div[^>]*class\s*=\s*["'][^"']*\bgmail_quote\b"#),
        cite: ci(r#"<blockquote[^>]*type\s*=\s*["']?cite"#),
        hr: ci(r"<hr\b"),
        tags: ci(r"<[^>]*>|&nbsp;|&#160;"),
    })
}

/// Cuts quoted reply history from an HTML body (before sanitising; the
/// sanitiser closes any elements left open by the cut).
pub fn trim_quoted_html(html: &str, q: &QuoteTrimming) -> String {
    if !q.enabled {
        return html.to_string();
    }
    let m = html_markers();
    let mut cut: Option<usize> = None;
    let mut consider = |pos: Option<usize>| {
        if let Some(p) = pos {
            cut = Some(cut.map_or(p, |c| c.min(p)));
        }
    };
    if q.original_message {
        consider(m.original.find(html).map(|x| x.start()));
    }
    if q.on_wrote {
        consider(
            m.on_wrote
                .captures(html)
                .and_then(|c| c.get(1))
                .map(|x| x.start()),
        );
    }
    if q.outlook {
        consider(m.outlook.find(html).map(|x| x.start()));
    }
    if q.gmail_quote {
        consider(m.gmail.find(html).map(|x| x.start()));
    }
    if q.blockquote_cite {
        consider(m.cite.find(html).map(|x| x.start()));
    }
    if q.hr_separator {
        consider(m.hr.find(html).map(|x| x.start()));
    }
    match cut {
        Some(p) => {
            let head = &html[..p];
            let visible = m.tags.replace_all(head, " ");
            if visible.trim().is_empty() {
                html.to_string()
            } else {
                head.to_string()
            }
        }
        None => html.to_string(),
    }
}

/// Cuts quoted reply history from a plain-text body.
pub fn trim_quoted_text(text: &str, q: &QuoteTrimming) -> String {
    if !q.enabled {
        return text.to_string();
    }
    static ORIG: OnceLock<Regex> = OnceLock::new();
    static WROTE: OnceLock<Regex> = OnceLock::new();
    static OUTLOOK: OnceLock<Regex> = OnceLock::new();
    static QUOTED: OnceLock<Regex> = OnceLock::new();
    let orig = ORIG.get_or_init(|| ci(r"(?m)^[ \t]*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Oorspronkelijk bericht|Mensaje original)\s*-{2,}"));
    let wrote = WROTE
        .get_or_init(|| ci(r"(?m)^[ \t]*On\s[^\n]{1,300}(?:\r?\n[^\n]{0,120})?\swrote:[ \t]*\r?$"));
    let outlook = OUTLOOK.get_or_init(|| {
        ci(r"(?m)^(?:[ \t]*_{10,}[ \t]*\r?\n)?[ \t]*From:[^\n]*\r?\n[ \t]*(?:Sent|Date):")
    });
    let quoted = QUOTED.get_or_init(|| ci(r"(?m)^>"));
    let mut cut: Option<usize> = None;
    let mut consider = |pos: Option<usize>| {
        if let Some(p) = pos {
            cut = Some(cut.map_or(p, |c| c.min(p)));
        }
    };
    if q.original_message {
        consider(orig.find(text).map(|x| x.start()));
    }
    if q.on_wrote {
        consider(wrote.find(text).map(|x| x.start()));
    }
    if q.outlook {
        consider(outlook.find(text).map(|x| x.start()));
    }
    if q.blockquote_cite {
        // A trailing block of "> " lines with nothing after it.
        if let Some(first) = quoted.find(text).map(|x| x.start()) {
            let tail_all_quoted = text[first..]
                .lines()
                .all(|l| l.trim_start().starts_with('>') || l.trim().is_empty());
            if tail_all_quoted {
                consider(Some(first));
            }
        }
    }
    match cut {
        Some(p) if !text[..p].trim().is_empty() => text[..p].trim_end().to_string(),
        _ => text.to_string(),
    }
}
