//! Hostile input (issue 9): sender addresses that are no addr-spec, bidi controls in subjects,
//! and what a ticket body says about images and attachments that were not uploaded.

use mailroom_mailproc::*;

fn ctx_plan(e: &ParsedEmail) -> Plan {
    plan(
        e,
        &Context {
            settings: &MailboxSettings::default(),
            directory: &Directory {
                users: Vec::new(),
                sites: vec![DirectorySite {
                    id: 10,
                    name: "Fabrikam".into(),
                    client_id: 1,
                    emaildomain: "fabrikam.test".into(),
                    inactive: false,
                }],
            },
            index: &EmptyIndex,
            recent_same_subject: 0,
        },
    )
}

fn skip_code(p: &Plan) -> Option<&'static str> {
    match p {
        Plan::Skip { reason } => Some(reason.code()),
        _ => None,
    }
}

fn graph_from(address: &str) -> ParsedEmail {
    let g: GraphMessage = serde_json::from_value(serde_json::json!({
        "id": "m1",
        "subject": "Hello",
        "from": {"emailAddress": {"name": "Pat", "address": address}},
        "body": {"contentType": "text", "content": "hi"},
        "internetMessageId": "<m1@fabrikam.test>"
    }))
    .unwrap();
    ParsedEmail::from_graph(&g).unwrap()
}

#[test]
fn a_from_with_crlf_and_a_bcc_is_skipped_as_invalid_sender_not_a_new_user() {
    let e = graph_from("pat@fabrikam.test\r\nBcc: victim@northwind.test");
    let p = ctx_plan(&e);
    assert_eq!(skip_code(&p), Some("invalid_sender"), "{p:#?}");
    let Plan::Skip { reason } = p else {
        unreachable!()
    };
    let text = reason.describe();
    assert!(
        !text.contains('\r') && !text.contains('\n'),
        "the detail shows the address escaped: {text:?}"
    );
    assert!(text.contains("\\r\\n"), "{text}");
}

#[test]
fn a_decoded_mime_from_with_crlf_is_skipped_as_invalid_sender() {
    // The encoded word decodes to an address with CR LF and a Bcc header in it.
    let raw = concat!(
        "From: =?utf-8?B?cGF0QGZhYnJpa2FtLnRlc3QNCkJjYzogdmljdGltQG5vcnRod2luZC50ZXN0?=\r\n",
        "To: support@contoso.test\r\n",
        "Subject: Hello\r\n",
        "Message-ID: <m2@fabrikam.test>\r\n",
        "\r\n",
        "hi\r\n"
    );
    let e = ParsedEmail::from_mime(raw.as_bytes()).unwrap();
    let p = ctx_plan(&e);
    assert!(
        matches!(skip_code(&p), Some("invalid_sender") | Some("no_sender")),
        "{:?} → {p:#?}",
        e.from
    );
    // Whatever the parser made of it, no ticket or user is planned for it.
    assert!(!matches!(p, Plan::NewTicket { .. }));
}

#[test]
fn only_valid_addr_specs_pass() {
    for bad in [
        "pat smith@fabrikam.test",
        "pat@fabrikam.test\nBcc: x@y.test",
        "pat@@fabrikam.test",
        "Pat <pat@fabrikam.test>",
        "pat@fabrikam..test",
        "p\u{202E}at@fabrikam.test",
        "@fabrikam.test",
    ] {
        let e = graph_from(bad);
        let p = ctx_plan(&e);
        assert!(
            matches!(skip_code(&p), Some("invalid_sender") | Some("no_sender")),
            "{bad:?} must not be accepted: {p:#?}"
        );
    }
    for good in [
        "pat@fabrikam.test",
        "Pat.Smith+tickets@Fabrikam.Test",
        "o'brien@fabrikam.test",
    ] {
        let e = graph_from(good);
        let p = ctx_plan(&e);
        assert!(matches!(p, Plan::NewTicket { .. }), "{good:?}: {p:#?}");
    }
}

#[test]
fn bidi_controls_are_stripped_from_ticket_summaries() {
    let mut e = graph_from("pat@fabrikam.test");
    e.subject = "Invoice \u{202E}fdp.exe\u{202C} \u{2066}x\u{2069} \u{200E}\u{200F}done".into();
    let Plan::NewTicket { summary, .. } = ctx_plan(&e) else {
        panic!("a new ticket")
    };
    assert_eq!(summary, "Invoice fdp.exe x done");
    for c in summary.chars() {
        assert!(!is_bidi_control(c), "{summary:?}");
    }
    assert_eq!(
        mailroom_mailproc::summary("RE: a\u{202A}b\u{202B}c\u{202D}d", 250),
        "abcd"
    );
}

// ---------- item 13: what the ticket body says about images and files left out ----------

fn with_body(html: &str, attachments: Vec<Attachment>) -> ParsedEmail {
    let mut e = graph_from("pat@fabrikam.test");
    e.html_body = Some(html.into());
    e.text_body = None;
    e.attachments = attachments;
    e
}

fn att(name: &str, ct: &str, size: u64, cid: Option<&str>) -> Attachment {
    Attachment {
        name: name.into(),
        content_type: ct.into(),
        size,
        content_id: cid.map(String::from),
        inline: cid.is_some(),
        bytes: Some(vec![1; size as usize]),
        graph_id: None,
    }
}

fn details(p: Plan) -> String {
    match p {
        Plan::NewTicket { details_html, .. } => details_html,
        other => panic!("a new ticket: {other:#?}"),
    }
}

#[test]
fn a_skipped_inline_image_leaves_no_img_without_src() {
    // A 100-byte signature logo is skipped (small_inline_image); a cid with no part at all
    // has nothing to point at; a second skipped image carries alternative text.
    let e = with_body(
        r#"<p>Hello</p><img src="cid:logo" width="20"><img alt="Chart &amp; &quot;Q3&quot; <b>" src="cid:sig"><img src="cid:missing" /><p>Bye</p>"#,
        vec![
            att("logo.png", "image/png", 100, Some("logo")),
            att("sig.png", "image/png", 100, Some("sig")),
        ],
    );
    let html = details(ctx_plan(&e));
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("<p>Hello</p>") && html.contains("<p>Bye</p>"),
        "{html}"
    );
    assert!(
        html.contains("[Chart &amp; &quot;Q3&quot; &lt;b&gt;]"),
        "alt text kept, escaped: {html}"
    );
}

#[test]
fn images_keep_their_element_only_with_a_source() {
    let mut s = MailboxSettings::default();
    s.html.block_remote_images = true;
    let html = sanitize_html(
        r#"<img src="https://t.example/x.png" alt=""><img src="data:text/html;base64,AAAA"><img src="data:image/png;base64,AAAA" alt="ok">"#,
        &s.html,
    );
    assert_eq!(html.matches("<img").count(), 1, "{html}");
    assert!(
        html.contains(r#"src="data:image/png;base64,AAAA""#),
        "{html}"
    );
    // Kept inline images are untouched.
    let e = with_body(
        r#"<p>Shot:</p><img src="cid:shot" alt="screen">"#,
        vec![att("shot.png", "image/png", 5000, Some("shot"))],
    );
    let html = details(ctx_plan(&e));
    assert!(
        html.contains(r#"<img src="cid:shot" alt="screen">"#),
        "{html}"
    );
}

#[test]
fn files_over_the_limits_are_named_in_the_ticket_with_size_and_limit() {
    let mut s = MailboxSettings::default();
    s.attachments.max_bytes = 2000;
    s.attachments.max_total = 3000;
    let e = with_body(
        "<p>See attached</p>",
        vec![
            att("big.zip", "application/zip", 5000, None),
            att("a.pdf", "application/pdf", 1800, None),
            att("b.pdf", "application/pdf", 1800, None),
            att("run.exe", "application/octet-stream", 10, None),
        ],
    );
    let p = plan(
        &e,
        &Context {
            settings: &s,
            directory: &Directory {
                users: Vec::new(),
                sites: vec![DirectorySite {
                    id: 10,
                    name: "Fabrikam".into(),
                    client_id: 1,
                    emaildomain: "fabrikam.test".into(),
                    inactive: false,
                }],
            },
            index: &EmptyIndex,
            recent_same_subject: 0,
        },
    );
    let html = details(p);
    assert!(html.starts_with("<p>See attached</p>"), "{html}");
    assert!(
        html.contains(
            "big.zip: 5,000 bytes (4.9 KiB) exceeds the per-file limit of 2,000 bytes (2.0 KiB)"
        ),
        "{html}"
    );
    assert!(
        html.contains("b.pdf: adding 1,800 bytes (1.8 KiB) would exceed the per-mail limit of 3,000 bytes (2.9 KiB)"),
        "{html}"
    );
    assert!(html.contains("run.exe"), "{html}");
    assert!(!html.contains("a.pdf:"), "a.pdf was attached: {html}");
    // Nothing to report: no note.
    let e = with_body("<p>x</p>", vec![att("a.pdf", "application/pdf", 10, None)]);
    assert_eq!(details(ctx_plan(&e)), "<p>x</p>");
}
