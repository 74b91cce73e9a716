//! Rule-by-rule tests of the public API.

use std::collections::HashMap;

use mailroom_mailproc::*;

fn mail(from: &str, subject: &str, headers: &[(&str, &str)]) -> ParsedEmail {
    ParsedEmail {
        from: Mailbox::new(from, None),
        subject: subject.into(),
        headers: Headers::new(
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        ),
        text_body: Some("hello".into()),
        ..Default::default()
    }
}

fn skip_code(c: Classification) -> Option<&'static str> {
    match c {
        Classification::Process => None,
        Classification::Skip(r) => Some(r.code()),
    }
}

// ---------- threading ----------

#[test]
fn ticket_tag_variants() {
    let t = ThreadTag::default();
    for (s, want) in [
        ("[ID:1234] Printer", Some(1234)),
        ("[ID: 0001234] Printer", Some(1234)),
        ("RE: FW: Printer [ID:1234]", Some(1234)),
        ("Re: [id:  42 ] x", Some(42)),
        ("[ID:#77]", Some(77)),
        ("[ID:0]", None),
        ("[ID:] nothing", None),
        ("[ID:12a]", None),
        ("ID:1234 no brackets", None),
        ("[ID:99999999999999999999]", None),
        ("Printer", None),
        ("[ID:abc] then [ID:9]", Some(9)),
    ] {
        assert_eq!(find_ticket_id(s, &t), want, "{s}");
    }
    let custom = ThreadTag {
        start: "<<T#".into(),
        end: ">>".into(),
        pad_width: 6,
        space_after_start: true,
    };
    assert_eq!(custom.format(42), "<<T# 000042>>");
    assert_eq!(custom.find("RE: <<t#000042>> hi"), Some(42));
    assert_eq!(custom.find("[ID:42]"), None);
    assert_eq!(format_tag(1234, &t), "[ID:1234]");
    assert_eq!(t.find(&format!("Re: {}", t.format(5))), Some(5));
}

#[test]
fn clean_subject_strips_reply_prefixes() {
    for (s, want) in [
        ("RE: FW: Printer", "Printer"),
        ("Re:Re: AW: SV: Antw: VS: WG: x", "x"),
        ("RE[2]: Fwd: hello", "hello"),
        ("  Fwd :  spaced ", "spaced"),
        ("Regarding: not a prefix", "Regarding: not a prefix"),
        ("Report", "Report"),
        ("RE: ", ""),
    ] {
        assert_eq!(clean_subject(s), want, "{s}");
    }
    assert_eq!(summary("RE: ", 250), "(no subject)");
    assert_eq!(summary("abcdefghij", 5), "abcd…");
    assert_eq!(summary("a   b\tc", 0), "a b c");
}

#[test]
fn message_ids_and_keys() {
    assert_eq!(
        parse_message_ids("<a@b> <c@d>,<e@f>"),
        ["a@b", "c@d", "e@f"]
    );
    assert_eq!(parse_message_ids("a@b  c@d"), ["a@b", "c@d"]);
    assert_eq!(parse_message_ids("<broken@x"), ["broken@x"]);
    let e = ParsedEmail {
        message_id: Some("me@x".into()),
        in_reply_to: vec!["p@x".into()],
        references: vec!["root@x".into(), "p@x".into(), "me@x".into()],
        conversation_id: Some("CONV".into()),
        ..Default::default()
    };
    assert_eq!(reply_keys(&e), ["p@x", "<p@x>", "root@x", "<root@x>"]);
    assert_eq!(own_keys(&e), ["me@x", "<me@x>", "conversation:CONV"]);
    assert_eq!(
        thread_keys(&e),
        [
            "me@x",
            "<me@x>",
            "p@x",
            "<p@x>",
            "root@x",
            "<root@x>",
            "conversation:CONV"
        ]
    );
}

// ---------- classification ----------

#[test]
fn auto_reply_headers() {
    let p = LoopPolicy::default();
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
    let cases: &[Case] = &[
        (&[("Auto-Submitted", "auto-replied")], Some("auto_reply")),
        (
            &[("Auto-Submitted", "auto-generated; type=x")],
            Some("auto_reply"),
        ),
        (&[("auto-submitted", "No")], None),
        (&[("X-Auto-Response-Suppress", "All")], Some("auto_reply")),
        (&[("X-Auto-Response-Suppress", "None")], None),
        (&[("Precedence", "bulk")], Some("auto_reply")),
        (&[("Precedence", "junk")], Some("auto_reply")),
        (&[("Precedence", "list")], Some("auto_reply")),
        (&[("Precedence", "auto_reply")], Some("auto_reply")),
        (&[("Precedence", "first-class")], None),
        (&[("X-Autoreply", "yes")], Some("auto_reply")),
        (&[("X-Autorespond", "anything")], Some("auto_reply")),
        (&[("Return-Path", "<>")], Some("auto_reply")),
        (&[("Return-Path", "<pat@fabrikam.test>")], None),
        (&[("X-Failed-Recipients", "x@y")], Some("bounce")),
        (
            &[(
                "Content-Type",
                "multipart/report; report-type=disposition-notification; boundary=x",
            )],
            Some("auto_reply"),
        ),
        (
            &[(
                "Content-Type",
                "multipart/report; report-type=\"delivery-status\"; boundary=x",
            )],
            Some("bounce"),
        ),
    ];
    for (h, want) in cases {
        let e = mail("pat@fabrikam.test", "Hello", h);
        assert_eq!(skip_code(classify(&e, &p)), *want, "{h:?}");
    }
    let mut off = p.clone();
    off.x_auto_response_suppress_is_auto = false;
    off.null_return_path_is_auto = false;
    assert_eq!(
        classify(
            &mail(
                "a@b.test",
                "x",
                &[("X-Auto-Response-Suppress", "All"), ("Return-Path", "<>")]
            ),
            &off
        ),
        Classification::Process
    );
}

#[test]
fn subject_heuristics_are_configurable() {
    let p = LoopPolicy::default();
    for s in [
        "Automatic reply: VPN",
        "Out of Office: back Monday",
        "AUTOMATISCHE ANTWORT: x",
    ] {
        assert_eq!(
            skip_code(classify(&mail("a@b.test", s, &[]), &p)),
            Some("auto_reply"),
            "{s}"
        );
    }
    for s in [
        "Undeliverable: x",
        "Mail delivery failed: returning message",
    ] {
        assert_eq!(
            skip_code(classify(&mail("a@b.test", s, &[]), &p)),
            Some("bounce"),
            "{s}"
        );
    }
    assert_eq!(
        classify(&mail("a@b.test", "Printer out of office", &[]), &p),
        Classification::Process
    );
    let mut off = p.clone();
    off.subject_heuristics = false;
    assert_eq!(
        classify(&mail("a@b.test", "Automatic reply: VPN", &[]), &off),
        Classification::Process
    );
    let mut accept = p.clone();
    accept.accept_auto_replies = true;
    assert_eq!(
        classify(
            &mail(
                "a@b.test",
                "Automatic reply: VPN",
                &[("Auto-Submitted", "auto-replied")]
            ),
            &accept
        ),
        Classification::Process
    );
}

#[test]
fn bounce_senders() {
    let p = LoopPolicy::default();
    for from in [
        "MAILER-DAEMON@mx.fabrikam.test",
        "postmaster@contoso.test",
        "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.test",
    ] {
        assert_eq!(
            skip_code(classify(&mail(from, "hi", &[]), &p)),
            Some("bounce"),
            "{from}"
        );
    }
    assert_eq!(
        classify(&mail("microsoftexchange.fan@contoso.test", "hi", &[]), &p),
        Classification::Process
    );
    let mut keep = p.clone();
    keep.skip_bounces = false;
    assert_eq!(
        classify(&mail("postmaster@contoso.test", "hi", &[]), &keep),
        Classification::Process
    );
}

#[test]
fn own_mailboxes_exclusions_and_loop_header() {
    let p = LoopPolicy {
        own_addresses: vec!["Support@Contoso.test".into()],
        exclusions: vec![
            "noreply@vendor.test".into(),
            "*@spam.test".into(),
            "*@*.alerts.test".into(),
            "  ".into(),
        ],
        ..LoopPolicy::default()
    };
    let code = |from: &str, h: &[(&str, &str)]| skip_code(classify(&mail(from, "x", h), &p));
    assert_eq!(code("support@contoso.test", &[]), Some("own_mailbox"));
    assert_eq!(code("NoReply@Vendor.test", &[]), Some("excluded_sender"));
    assert_eq!(code("anyone@spam.test", &[]), Some("excluded_sender"));
    assert_eq!(code("anyone@sub.spam.test", &[]), None);
    assert_eq!(code("x@eu.alerts.test", &[]), Some("excluded_sender"));
    assert_eq!(code("x@alerts.test", &[]), None);
    assert_eq!(
        code("pat@fabrikam.test", &[("x-mailroom-loop", "1")]),
        Some("loop_header")
    );
    assert_eq!(code("pat@fabrikam.test", &[]), None);
    let none = ParsedEmail::default();
    assert_eq!(skip_code(classify(&none, &p)), Some("no_sender"));
    assert!(exclusion_matches("@spam.test", "a@spam.test"));
}

#[test]
fn rate_guard() {
    let p = LoopPolicy {
        max_recent_same_subject: Some(3),
        ..LoopPolicy::default()
    };
    let e = mail("pat@fabrikam.test", "Alert", &[]);
    assert_eq!(classify_with_history(&e, &p, 2), Classification::Process);
    match classify_with_history(&e, &p, 3) {
        Classification::Skip(r) => {
            assert_eq!(r.code(), "loop_suspected");
            assert!(r.describe().contains("limit of 3"), "{r}");
        }
        other => panic!("{other:?}"),
    }
    let off = LoopPolicy {
        max_recent_same_subject: None,
        ..LoopPolicy::default()
    };
    assert_eq!(
        classify_with_history(&e, &off, 1000),
        Classification::Process
    );
}

#[test]
fn skip_reason_codes_are_stable_and_unique() {
    let all = [
        SkipReason::AutoReply {
            evidence: "e".into(),
        },
        SkipReason::Bounce {
            evidence: "e".into(),
        },
        SkipReason::OwnMailbox {
            address: "a".into(),
        },
        SkipReason::ExcludedSender {
            address: "a".into(),
            pattern: "p".into(),
        },
        SkipReason::LoopHeader { header: "h".into() },
        SkipReason::LoopSuspected {
            address: "a".into(),
            count: 1,
            threshold: 1,
        },
        SkipReason::NoSender,
        SkipReason::InvalidSender {
            address: "a".into(),
        },
        SkipReason::SenderRejected {
            address: "a".into(),
            detail: "d".into(),
        },
        SkipReason::NewTicketsDisabled,
        SkipReason::Duplicate { ticket_id: 1 },
    ];
    let codes: std::collections::HashSet<_> = all.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), all.len());
    for r in &all {
        assert!(!r.describe().is_empty());
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["code"], r.code());
    }
}

// ---------- sender matching ----------

fn dir() -> Directory {
    Directory {
        users: vec![
            DirectoryUser {
                id: 5,
                name: "Old Pat".into(),
                email: "pat@fabrikam.test".into(),
                other_emails: vec![],
                site_id: 1,
                client_id: 1,
                inactive: true,
            },
            DirectoryUser {
                id: 9,
                name: "Pat".into(),
                email: "PAT@fabrikam.test".into(),
                other_emails: vec![],
                site_id: 1,
                client_id: 1,
                inactive: false,
            },
            DirectoryUser {
                id: 7,
                name: "Lee".into(),
                email: "lee@fabrikam.test".into(),
                other_emails: vec!["lee.chen@fabrikam.co.test".into()],
                site_id: 1,
                client_id: 1,
                inactive: false,
            },
        ],
        sites: vec![
            DirectorySite {
                id: 1,
                name: "Fabrikam HQ".into(),
                client_id: 1,
                emaildomain: "fabrikam.test; @fabrikam.co.test, fab.test".into(),
                inactive: false,
            },
            DirectorySite {
                id: 2,
                name: "Fabrikam EU".into(),
                client_id: 1,
                emaildomain: "eu.fabrikam.test".into(),
                inactive: false,
            },
            DirectorySite {
                id: 3,
                name: "Closed".into(),
                client_id: 4,
                emaildomain: "closed.test".into(),
                inactive: true,
            },
            DirectorySite {
                id: 10,
                name: "Default Site".into(),
                client_id: 3,
                emaildomain: "".into(),
                inactive: false,
            },
        ],
    }
}

fn mb(a: &str, n: Option<&str>) -> Mailbox {
    Mailbox::new(a, n).unwrap()
}

#[test]
fn existing_users_prefer_active_and_alternate_addresses() {
    let p = SenderPolicy::default();
    assert_eq!(
        match_sender(&mb("Pat@Fabrikam.test", None), &dir(), &p),
        SenderMatch::ExistingUser {
            user_id: 9,
            site_id: 1,
            client_id: 1
        }
    );
    assert!(matches!(
        match_sender(&mb("lee.chen@fabrikam.co.test", None), &dir(), &p),
        SenderMatch::ExistingUser { user_id: 7, .. }
    ));
}

#[test]
fn unknown_senders_per_policy() {
    let d = dir();
    let mut p = SenderPolicy::default();
    // Matching site, several domains in one field.
    for (addr, site) in [
        ("new@fab.test", 1),
        ("new@fabrikam.co.test", 1),
        ("new@eu.fabrikam.test", 2),
    ] {
        match match_sender(&mb(addr, Some("Dana Whitley")), &d, &p) {
            SenderMatch::NewUserOnSite {
                site_id,
                client_id,
                name,
                email,
            } => {
                assert_eq!((site_id, client_id, email.as_str()), (site, 1, addr));
                assert_eq!(
                    (name.first.as_str(), name.last.as_str()),
                    ("Dana", "Whitley")
                );
            }
            other => panic!("{addr}: {other:?}"),
        }
    }
    // Subdomains only when enabled; the longest matching domain wins.
    assert!(matches!(
        match_sender(&mb("x@mail.fabrikam.test", None), &d, &p),
        SenderMatch::Reject { .. }
    ));
    p.match_subdomains = true;
    assert!(matches!(
        match_sender(&mb("x@mail.fabrikam.test", None), &d, &p),
        SenderMatch::NewUserOnSite { site_id: 1, .. }
    ));
    assert!(matches!(
        match_sender(&mb("x@a.eu.fabrikam.test", None), &d, &p),
        SenderMatch::NewUserOnSite { site_id: 2, .. }
    ));
    // Inactive site ignored; falls back to the default site.
    assert!(matches!(
        match_sender(&mb("x@closed.test", None), &d, &p),
        SenderMatch::Reject { .. }
    ));
    p.default_site_id = Some(10);
    assert!(matches!(
        match_sender(&mb("x@closed.test", None), &d, &p),
        SenderMatch::NewUserOnDefaultSite {
            site_id: 10,
            client_id: Some(3),
            ..
        }
    ));
    // Always default site.
    p.unknown_sender = UnknownSender::CreateUserOnDefaultSite;
    assert!(matches!(
        match_sender(&mb("x@fab.test", None), &d, &p),
        SenderMatch::NewUserOnDefaultSite { site_id: 10, .. }
    ));
    // Default user.
    p.unknown_sender = UnknownSender::UseDefaultUser;
    assert!(matches!(
        match_sender(&mb("x@fab.test", None), &d, &p),
        SenderMatch::Reject { .. }
    ));
    p.default_user_id = Some(7);
    assert_eq!(
        match_sender(&mb("x@fab.test", None), &d, &p),
        SenderMatch::DefaultUser {
            user_id: 7,
            site_id: 1,
            client_id: 1
        }
    );
    p.default_user_id = Some(999);
    match match_sender(&mb("x@fab.test", None), &d, &p) {
        SenderMatch::Reject { reason } => assert!(reason.contains("999"), "{reason}"),
        other => panic!("{other:?}"),
    }
    p.unknown_sender = UnknownSender::Reject;
    assert!(matches!(
        match_sender(&mb("x@fab.test", None), &d, &p),
        SenderMatch::Reject { .. }
    ));
    // Known users are accepted even under Reject.
    assert!(matches!(
        match_sender(&mb("lee@fabrikam.test", None), &d, &p),
        SenderMatch::ExistingUser { .. }
    ));
}

#[test]
fn name_splitting() {
    let s = |n: Option<&str>, a: &str| {
        let p = split_name(n, a);
        (p.display, p.first, p.last)
    };
    assert_eq!(
        s(Some("Pat Smith"), "x@y"),
        ("Pat Smith".into(), "Pat".into(), "Smith".into())
    );
    assert_eq!(
        s(Some("Smith, Pat"), "x@y"),
        ("Pat Smith".into(), "Pat".into(), "Smith".into())
    );
    assert_eq!(
        s(Some("\"Pat van der Berg\""), "x@y"),
        (
            "Pat van der Berg".into(),
            "Pat".into(),
            "van der Berg".into()
        )
    );
    assert_eq!(
        s(Some("Pat Smith (Fabrikam)"), "x@y"),
        ("Pat Smith".into(), "Pat".into(), "Smith".into())
    );
    assert_eq!(
        s(Some("[EXTERNAL] Lee Chen"), "x@y"),
        ("Lee Chen".into(), "Lee".into(), "Chen".into())
    );
    assert_eq!(
        s(Some("Cher"), "x@y"),
        ("Cher".into(), "Cher".into(), "".into())
    );
    assert_eq!(
        s(None, "dana.whitley@northwind.test"),
        ("Dana Whitley".into(), "Dana".into(), "Whitley".into())
    );
    assert_eq!(
        s(Some("sam@outlook.test"), "sam@outlook.test"),
        ("Sam".into(), "Sam".into(), "".into())
    );
}

// ---------- content ----------

#[test]
fn sanitiser_rules() {
    let o = HtmlOptions::default();
    let h = sanitize_html(
        r#"<p onclick="x()" style="color:red;position:absolute;behavior:url(x.htc)">a</p>
<img src="data:image/png;base64,AAAA"><img src="data:text/html;base64,AAAA">
<a href="data:text/html,x">d</a><a href="mailto:pat@fabrikam.test">m</a>
<img src="http://img.test/logo.png" width="120"><img src='https://t.test/p.gif' style="width:1px;height:1px">
<iframe src="https://evil.test"></iframe><form><input></form><style>p{}</style>"#,
        &o,
    );
    assert!(h.contains(r#"<p style="color:red">a</p>"#), "{h}");
    assert!(h.contains(r#"src="data:image/png;base64,AAAA""#), "{h}");
    assert!(!h.contains("data:text"), "{h}");
    assert!(h.contains("mailto:pat@fabrikam.test"), "{h}");
    assert!(h.contains("http://img.test/logo.png"), "{h}");
    assert!(!h.contains("t.test"), "{h}");
    for bad in ["iframe", "<form", "<input", "<style", "onclick", "behavior"] {
        assert!(!h.contains(bad), "{bad}: {h}");
    }
    let blocked = sanitize_html(
        r#"<img src="http://img.test/logo.png"><img src="data:image/gif;base64,R0"><img src="https://t.test/p.gif" width=1 height=1>"#,
        &HtmlOptions {
            block_remote_images: true,
            allow_data_images: false,
            strip_tracking_pixels: false,
            ..HtmlOptions::default()
        },
    );
    assert!(
        !blocked.contains("img.test") && !blocked.contains("data:") && !blocked.contains("t.test"),
        "{blocked}"
    );
    // cid rewriting through the map, unmapped kept or dropped.
    let mut o2 = HtmlOptions::default();
    o2.cid_map
        .insert("<A@B>".into(), "https://psa.test/a".into());
    let c = sanitize_html(
        r#"<img src="cid:a@b"><img src="CID:other@b"><a href="cid:a@b">x</a>"#,
        &o2,
    );
    assert!(c.contains(r#"src="https://psa.test/a""#), "{c}");
    assert!(c.contains("cid:other@b"), "{c}");
    assert!(!c.contains(r#"href="cid"#), "{c}");
    o2.keep_unmapped_cids = false;
    let c = sanitize_html(r#"<img src="cid:other@b">"#, &o2);
    assert!(!c.contains("cid:"), "{c}");
}

#[test]
fn text_to_html_escapes() {
    assert_eq!(
        text_to_html("a < b & \"c\"\r\n<script>x</script>\n"),
        "<div>a &lt; b &amp; &quot;c&quot;<br>\n&lt;script&gt;x&lt;/script&gt;</div>"
    );
}

#[test]
fn quote_trimming_markers() {
    let q = QuoteTrimming::default();
    let cases = [
        ("<p>new</p><div>-----Original Message-----<br>From: x</div>", "<p>new</p><div>"),
        ("<p>new</p><div class=\"gmail_quote\"><div>On Mon wrote:</div></div>", "<p>new</p>"),
        ("<p>new</p><blockquote type=\"cite\">old</blockquote>", "<p>new</p>"),
        ("<p>new</p><div id=\"appendonsend\"></div><hr><div>From: x</div>", "<p>new</p>"),
        (
            "<p>new</p><div style=\"border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm\"><p><b>From:</b> x</p></div>",
            "<p>new</p>",
        ),
        ("<p>new</p>\n<div>On Fri, 10 Jan 2025, Pat &lt;pat@x&gt; wrote:</div>", "<p>new</p>\n<div>"),
        // Nothing visible before the marker: keep everything.
        ("<div id=\"divRplyFwdMsg\">From: x</div><p>fwd body</p>", "<div id=\"divRplyFwdMsg\">From: x</div><p>fwd body</p>"),
        ("<p>a</p><hr><p>b</p>", "<p>a</p><hr><p>b</p>"),
    ];
    for (input, want) in cases {
        assert_eq!(trim_quoted_html(input, &q), want, "{input}");
    }
    let hr = QuoteTrimming {
        hr_separator: true,
        ..q.clone()
    };
    assert_eq!(trim_quoted_html("<p>a</p><hr><p>b</p>", &hr), "<p>a</p>");
    let off = QuoteTrimming {
        enabled: false,
        ..q.clone()
    };
    assert_eq!(
        trim_quoted_html("<p>new</p><blockquote type=\"cite\">old</blockquote>", &off),
        "<p>new</p><blockquote type=\"cite\">old</blockquote>"
    );

    let text_cases = [
        ("new\n\n-----Original Message-----\nFrom: x\n", "new"),
        (
            "new\n\nOn Fri, 10 Jan 2025 at 15:00, Pat <p@x> wrote:\n> old\n",
            "new",
        ),
        (
            "new\n________________________________\nFrom: Pat\nSent: Friday\n",
            "new",
        ),
        ("new\nFrom: Pat\nSent: Friday\nold", "new"),
        ("new\n> quoted\n> more\n", "new"),
        ("> inline quote\nmy answer\n", "> inline quote\nmy answer\n"),
        (
            "-----Original Message-----\nonly history",
            "-----Original Message-----\nonly history",
        ),
    ];
    for (input, want) in text_cases {
        assert_eq!(trim_quoted_text(input, &q), want, "{input:?}");
    }
}

// ---------- attachments ----------

fn att(name: &str, ct: &str, size: u64, cid: Option<&str>) -> Attachment {
    Attachment {
        name: name.into(),
        content_type: ct.into(),
        size,
        content_id: cid.map(String::from),
        inline: cid.is_some(),
        bytes: None,
        graph_id: None,
    }
}

#[test]
fn attachment_policy() {
    let p = AttachmentPolicy {
        max_bytes: 1000,
        max_total: 1500,
        skip_inline_images_under_bytes: Some(100),
        blocked_extensions: vec![".EXE".into(), "js".into()],
    };
    let list = [
        att("a.pdf", "application/pdf", 900, None),
        att("big.zip", "application/zip", 1001, None),
        att("invoice.pdf.exe", "application/octet-stream", 10, None),
        att("b.docx", "application/msword", 700, None),
        att("logo.png", "image/png", 50, Some("logo")),
        att("shot.png", "image/png", 500, Some("shot")),
        att("unref.png", "image/png", 50, Some("unref")),
        att("empty.txt", "text/plain", 0, None),
        att("c.txt", "text/plain", 40, None),
    ];
    let plans = plan_attachments(
        &list,
        Some(r#"<img src="cid:LOGO"><img src="cid:shot">"#),
        &p,
    );
    let got: Vec<String> = plans
        .iter()
        .map(|p| match &p.decision {
            AttachmentDecision::Upload => "upload".to_string(),
            AttachmentDecision::Inline { content_id } => format!("inline:{content_id}"),
            AttachmentDecision::Skip { code, .. } => code.clone(),
        })
        .collect();
    assert_eq!(
        got,
        [
            "upload",
            "too_large",
            "blocked_extension",
            "total_exceeded",
            "small_inline_image",
            "inline:shot",
            "upload",
            "empty",
            "upload"
        ]
    );
    assert_eq!(plans[5].index, 5);
    let no_html = plan_attachments(&list[5..6], None, &p);
    assert_eq!(no_html[0].decision, AttachmentDecision::Upload);
}

// ---------- plan ----------

#[test]
fn plan_respects_new_ticket_switch_and_sender_rejection() {
    let d = Directory::default();
    let mut s = MailboxSettings::default();
    s.sender_policy.unknown_sender = UnknownSender::Reject;
    let e = mail("dana@northwind.test", "Help", &[]);
    let ctx = |s: &MailboxSettings| -> Plan {
        plan(
            &e,
            &Context {
                settings: s,
                directory: &d,
                index: &EmptyIndex,
                recent_same_subject: 0,
            },
        )
    };
    assert!(matches!(
        ctx(&s),
        Plan::Skip {
            reason: SkipReason::SenderRejected { .. }
        }
    ));
    s.allow_new_tickets = false;
    assert!(matches!(
        ctx(&s),
        Plan::Skip {
            reason: SkipReason::NewTicketsDisabled
        }
    ));
    // Updates still work for rejected/unknown senders when the tag matches.
    let tagged = mail("dana@northwind.test", "RE: Help [ID:8]", &[]);
    match plan(
        &tagged,
        &Context {
            settings: &s,
            directory: &d,
            index: &EmptyIndex,
            recent_same_subject: 0,
        },
    ) {
        Plan::UpdateTicket {
            ticket_id: 8,
            sender: SenderMatch::Reject { .. },
            note_html,
            ..
        } => {
            assert_eq!(note_html, "<div>hello</div>")
        }
        other => panic!("{other:?}"),
    }
    // The rate guard input flows through the context.
    let p = plan(
        &tagged,
        &Context {
            settings: &s,
            directory: &d,
            index: &EmptyIndex,
            recent_same_subject: 50,
        },
    );
    assert_eq!(p.label(), "skip:loop_suspected");
}

#[test]
fn closure_and_map_indexes() {
    let e = ParsedEmail {
        from: Mailbox::new("pat@fabrikam.test", Some("Pat")),
        subject: "RE: x".into(),
        in_reply_to: vec!["abc@x".into()],
        text_body: Some("t".into()),
        ..Default::default()
    };
    let s = MailboxSettings::default();
    let d = Directory::default();
    let idx = FnIndex(|k: &str| (k == "abc@x").then_some(3));
    assert!(matches!(
        plan(&e, &Context { settings: &s, directory: &d, index: &idx, recent_same_subject: 0 }),
        Plan::UpdateTicket { ticket_id: 3, how: ThreadedBy::Header(ref k), .. } if k == "abc@x"
    ));
    let mut m = std::collections::BTreeMap::new();
    m.insert("<abc@x>".to_string(), 4_i64);
    assert!(matches!(
        plan(
            &e,
            &Context {
                settings: &s,
                directory: &d,
                index: &m,
                recent_same_subject: 0
            }
        ),
        Plan::UpdateTicket { ticket_id: 4, .. }
    ));
    let _unused: HashMap<String, i64> = HashMap::new();
}

#[test]
fn settings_round_trip_through_json_with_defaults() {
    let s: MailboxSettings =
        serde_json::from_str(r#"{"tickettype_id": 3, "tag": {"start": "[T#"}}"#).unwrap();
    assert_eq!(s.tickettype_id, Some(3));
    assert_eq!(s.tag.start, "[T#");
    assert_eq!(s.tag.end, "]");
    assert_eq!(s.loop_policy.loop_header, "X-Mailroom-Loop");
    let back: MailboxSettings = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn headers_are_case_insensitive() {
    let h = Headers::new(vec![
        ("Received".into(), "a".into()),
        ("received".into(), "b".into()),
        ("X-Y".into(), "z".into()),
    ]);
    assert_eq!(h.get("RECEIVED"), Some("a"));
    assert_eq!(h.get_all("Received").collect::<Vec<_>>(), ["a", "b"]);
    assert!(h.contains("x-y"));
    assert_eq!(h.len(), 3);
    assert!(Mailbox::new("  <Pat@X.test> ", Some(" \"Pat\" "))
        .is_some_and(|m| m.address == "pat@x.test" && m.name.as_deref() == Some("Pat")));
    assert!(Mailbox::new("undisclosed", None).is_none());
}

#[test]
fn graph_text_body_and_sender_fallback() {
    let g: GraphMessage = serde_json::from_str(
        r#"{"subject":"Hi","sender":{"emailAddress":{"name":"Sam","address":"Sam@Outlook.test"}},
            "body":{"contentType":"text","content":"a <b>"},"receivedDateTime":"not a date"}"#,
    )
    .unwrap();
    let e = ParsedEmail::from_graph(&g).unwrap();
    assert_eq!(e.from.as_ref().unwrap().address, "sam@outlook.test");
    assert_eq!(e.text_body.as_deref(), Some("a <b>"));
    assert!(e.html_body.is_none());
    assert!(e.date.is_none());
    assert!(e.message_id.is_none());
    assert!(thread_keys(&e).is_empty());
}
