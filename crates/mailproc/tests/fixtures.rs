//! End-to-end tests over realistic RFC 5322 fixtures in `tests/fixtures/`.

use std::collections::HashMap;

use mailroom_mailproc::*;

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn parse(name: &str) -> ParsedEmail {
    ParsedEmail::from_mime(&load(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The seeded sandbox directory (Fabrikam, Northwind, Unassigned Email).
fn directory() -> Directory {
    Directory {
        users: vec![
            DirectoryUser {
                id: 11,
                name: "Pat Smith".into(),
                email: "pat@fabrikam.test".into(),
                other_emails: vec![],
                site_id: 101,
                client_id: 1,
                inactive: false,
            },
            DirectoryUser {
                id: 12,
                name: "Lee Chen".into(),
                email: "Lee@Fabrikam.test".into(),
                other_emails: vec![],
                site_id: 101,
                client_id: 1,
                inactive: false,
            },
        ],
        sites: vec![
            DirectorySite {
                id: 101,
                name: "Fabrikam HQ".into(),
                client_id: 1,
                emaildomain: "fabrikam.test".into(),
                inactive: false,
            },
            DirectorySite {
                id: 102,
                name: "Northwind Main".into(),
                client_id: 2,
                emaildomain: "northwind.test".into(),
                inactive: false,
            },
            DirectorySite {
                id: 103,
                name: "Default Site".into(),
                client_id: 3,
                emaildomain: String::new(),
                inactive: false,
            },
        ],
    }
}

fn settings() -> MailboxSettings {
    let mut s = MailboxSettings::default();
    s.loop_policy.own_addresses = vec![
        "support@contoso.test".into(),
        "helpdesk@contoso.test".into(),
    ];
    s.sender_policy.default_site_id = Some(103);
    s.tickettype_id = Some(1);
    s
}

fn run(email: &ParsedEmail, s: &MailboxSettings, index: &dyn ThreadIndex) -> Plan {
    let dir = directory();
    plan(
        email,
        &Context {
            settings: s,
            directory: &dir,
            index,
            recent_same_subject: 0,
        },
    )
}

#[test]
fn outlook_html_mail_is_parsed_and_becomes_a_sanitised_new_ticket() {
    let e = parse("outlook_html.eml");
    let from = e.from.clone().unwrap();
    assert_eq!(from.address, "pat@fabrikam.test");
    assert_eq!(from.name.as_deref(), Some("Smith, Pat"));
    assert_eq!(e.subject, "Printer on 2nd floor – paper jam");
    assert_eq!(
        e.message_id.as_deref(),
        Some("DM6PR01MB1234ABCD@DM6PR01MB1234.namprd01.prod.outlook.com")
    );
    assert_eq!(e.to[0].address, "support@contoso.test");
    assert_eq!(e.cc[0].address, "lee@fabrikam.test");
    assert_eq!(e.date.unwrap().to_rfc3339(), "2025-01-06T09:14:01+00:00");
    assert!(e
        .text_body
        .as_deref()
        .unwrap()
        .contains("keeps jamming – tray 2"));
    assert_eq!(
        e.headers.get("thread-topic"),
        Some("Printer on 2nd floor - paper jam")
    );
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    assert_eq!(
        classify(&e, &settings().loop_policy),
        Classification::Process
    );

    match run(&e, &settings(), &EmptyIndex) {
        Plan::NewTicket {
            summary,
            details_html,
            user,
            tickettype_id,
            attachments,
            thread_keys,
        } => {
            assert_eq!(summary, "Printer on 2nd floor – paper jam");
            assert_eq!(
                user,
                SenderMatch::ExistingUser {
                    user_id: 11,
                    site_id: 101,
                    client_id: 1
                }
            );
            assert_eq!(tickettype_id, Some(1));
            assert!(attachments.is_empty());
            assert!(thread_keys.contains(
                &"<DM6PR01MB1234ABCD@DM6PR01MB1234.namprd01.prod.outlook.com>".to_string()
            ));
            let h = details_html;
            for bad in [
                "<script",
                "alert(",
                "onload",
                "onclick",
                "javascript:",
                "MsoNormal {",
                "position",
                "background-image",
                "track.mailer.test",
            ] {
                assert!(!h.contains(bad), "{bad} survived in {h}");
            }
            assert!(h.contains("<b>2nd floor</b>"), "{h}");
            assert!(h.contains("<table"), "{h}");
            assert!(
                h.contains("color:#1F497D") || h.contains("color: #1F497D"),
                "{h}"
            );
            assert!(
                h.contains(r#"href="https://kb.fabrikam.test/printers""#),
                "{h}"
            );
            assert!(h.contains("noopener"), "{h}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn auto_reply_is_skipped_even_though_it_carries_a_ticket_tag() {
    let e = parse("auto_reply.eml");
    let p = run(&e, &settings(), &EmptyIndex);
    match &p {
        Plan::Skip {
            reason: SkipReason::AutoReply { evidence },
        } => assert!(evidence.contains("Auto-Submitted"), "{evidence}"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(p.label(), "skip:auto_reply");
    // Accepting auto-replies lets it update the tagged ticket.
    let mut s = settings();
    s.loop_policy.accept_auto_replies = true;
    assert!(matches!(
        run(&e, &s, &EmptyIndex),
        Plan::UpdateTicket {
            ticket_id: 1042,
            how: ThreadedBy::SubjectTag,
            ..
        }
    ));
}

#[test]
fn exchange_dsn_is_a_bounce() {
    let e = parse("dsn_bounce.eml");
    assert_eq!(e.mime_type().as_deref(), Some("multipart/report"));
    assert_eq!(
        e.content_type_param("report-type").as_deref(),
        Some("delivery-status")
    );
    assert!(
        e.part_types.iter().any(|t| t == "message/delivery-status"),
        "{:?}",
        e.part_types
    );
    match classify(&e, &LoopPolicy::default()) {
        Classification::Skip(r @ SkipReason::Bounce { .. }) => {
            assert_eq!(r.code(), "bounce");
            assert!(r.to_string().contains("delivery-status"), "{r}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Without the report header, the delivery-status part still identifies it.
    let mut e2 = e.clone();
    e2.headers = Headers::new(vec![("From".into(), "postmaster@contoso.test".into())]);
    assert!(matches!(
        bounce_evidence(&e2, &LoopPolicy::default()).as_deref(),
        Some("a message/delivery-status part")
    ));
}

#[test]
fn inline_image_and_pdf_attachments_are_planned() {
    let e = parse("inline_image_pdf.eml");
    let names: Vec<_> = e.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "image001.png",
            "logo.png",
            "invoice-2025-001.pdf",
            "fix.exe"
        ]
    );
    let img = &e.attachments[0];
    assert_eq!(img.content_type, "image/png");
    assert_eq!(
        img.content_id.as_deref(),
        Some("image001.png@01DB6264.2A3F0B40")
    );
    assert!(img.inline);
    assert!(img.bytes.as_ref().unwrap().starts_with(b"\x89PNG"));
    let pdf = &e.attachments[2];
    assert!(!pdf.inline);
    assert!(pdf.bytes.as_ref().unwrap().starts_with(b"%PDF-1.4"));
    assert_eq!(pdf.size, pdf.bytes.as_ref().unwrap().len() as u64);

    match run(&e, &settings(), &EmptyIndex) {
        Plan::NewTicket {
            details_html,
            attachments,
            user,
            ..
        } => {
            assert_eq!(
                user,
                SenderMatch::ExistingUser {
                    user_id: 12,
                    site_id: 101,
                    client_id: 1
                }
            );
            assert_eq!(
                attachments[0].decision,
                AttachmentDecision::Inline {
                    content_id: "image001.png@01DB6264.2A3F0B40".into()
                }
            );
            assert!(
                matches!(&attachments[1].decision, AttachmentDecision::Skip { code, .. } if code == "small_inline_image")
            );
            assert_eq!(attachments[2].decision, AttachmentDecision::Upload);
            assert!(
                matches!(&attachments[3].decision, AttachmentDecision::Skip { code, .. } if code == "blocked_extension")
            );
            assert!(
                details_html.contains(r#"src="cid:image001.png@01DB6264.2A3F0B40""#),
                "{details_html}"
            );
            assert!(!details_html.contains("sig-logo"), "{details_html}");
            // The engine rewrites the kept cid after uploading.
            let mut map = HashMap::new();
            map.insert(
                "image001.png@01DB6264.2A3F0B40".to_string(),
                "https://psa.test/api/Attachment/image?id=5&x=1".to_string(),
            );
            let out = rewrite_cid_references(&details_html, &map);
            assert!(
                out.contains(r#"src="https://psa.test/api/Attachment/image?id=5&amp;x=1""#),
                "{out}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn reply_threads_by_in_reply_to_and_trims_outlook_history() {
    let e = parse("reply_in_reply_to.eml");
    assert_eq!(e.in_reply_to, ["out-1042-1@mailroom.contoso.test"]);
    assert_eq!(
        e.references,
        [
            "DM6PR01MB1234ABCD@DM6PR01MB1234.namprd01.prod.outlook.com",
            "out-1042-1@mailroom.contoso.test"
        ]
    );
    let mut index = HashMap::new();
    index.insert("<out-1042-1@mailroom.contoso.test>".to_string(), 1042_i64);
    match run(&e, &settings(), &index) {
        Plan::UpdateTicket {
            ticket_id,
            how,
            note_html,
            sender,
            thread_keys,
            ..
        } => {
            assert_eq!(ticket_id, 1042);
            assert_eq!(
                how,
                ThreadedBy::Header("<out-1042-1@mailroom.contoso.test>".into())
            );
            assert!(note_html.contains("still jamming"), "{note_html}");
            assert!(!note_html.contains("replaced the toner"), "{note_html}");
            assert!(!note_html.contains("<hr"), "{note_html}");
            assert!(matches!(
                sender,
                SenderMatch::ExistingUser { user_id: 11, .. }
            ));
            assert!(thread_keys.contains(
                &"DM6PR01MB9999EEEE@DM6PR01MB9999.namprd01.prod.outlook.com".to_string()
            ));
        }
        other => panic!("unexpected {other:?}"),
    }
    // With trimming off the history stays.
    let mut s = settings();
    s.quote_trimming.enabled = false;
    match run(&e, &s, &index) {
        Plan::UpdateTicket { note_html, .. } => assert!(note_html.contains("replaced the toner")),
        other => panic!("unexpected {other:?}"),
    }
    // Without header threading and no index hit, it becomes a new ticket.
    let mut s = settings();
    s.thread_by_headers = false;
    assert!(matches!(run(&e, &s, &index), Plan::NewTicket { .. }));
}

#[test]
fn subject_tag_variant_threads_plain_text_reply_and_trims_on_wrote() {
    let e = parse("tagged_gmail_reply.eml");
    assert_eq!(
        find_ticket_id(&e.subject, &ThreadTag::default()),
        Some(1042)
    );
    assert_eq!(clean_subject(&e.subject), "Laptop won't boot [ID: 0001042]");
    match run(&e, &settings(), &EmptyIndex) {
        Plan::UpdateTicket {
            ticket_id,
            how,
            note_html,
            sender,
            ..
        } => {
            assert_eq!(ticket_id, 1042);
            assert_eq!(how, ThreadedBy::SubjectTag);
            assert_eq!(note_html, "<div>Still broken, any news?</div>");
            // Unknown domain: a new user on the default site.
            match sender {
                SenderMatch::NewUserOnDefaultSite {
                    site_id,
                    client_id,
                    name,
                    email,
                } => {
                    assert_eq!((site_id, client_id), (103, Some(3)));
                    assert_eq!(email, "sam@outlook.test");
                    assert_eq!(name.first, "Sam");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn mail_from_own_mailbox_with_loop_header_is_skipped() {
    let e = parse("loop_from_helpdesk.eml");
    let s = settings();
    match run(&e, &s, &EmptyIndex) {
        Plan::Skip { reason } => {
            assert_eq!(reason.code(), "own_mailbox");
            assert!(reason.describe().contains("helpdesk@contoso.test"));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Not listed as own mailbox: the loop header still catches it.
    let mut s2 = settings();
    s2.loop_policy.own_addresses.clear();
    assert!(matches!(
        classify(&e, &s2.loop_policy),
        Classification::Skip(SkipReason::LoopHeader { .. })
    ));
    // A loop header value that does not match (another installation) is ignored.
    s2.loop_policy.loop_header_value = Some("other-install".into());
    assert_eq!(classify(&e, &s2.loop_policy), Classification::Process);
}

#[test]
fn truncated_multipart_parses_with_a_warning() {
    let e = parse("truncated_multipart.eml");
    assert!(
        e.warnings.iter().any(|w| w.contains("truncated")),
        "{:?}",
        e.warnings
    );
    assert_eq!(e.from.unwrap().address, "lee@fabrikam.test");
}

#[test]
fn garbage_is_rejected_with_a_clear_error() {
    let err = ParsedEmail::from_mime(&load("garbage.bin")).unwrap_err();
    assert!(matches!(err, MailError::NotAnEmail { .. }), "{err:?}");
    assert!(err.to_string().contains("not an RFC 5322 email"));
    assert_eq!(ParsedEmail::from_mime(b"").unwrap_err(), MailError::Empty);
    assert_eq!(
        ParsedEmail::from_mime(b" \r\n ").unwrap_err(),
        MailError::Empty
    );
    assert!(matches!(
        ParsedEmail::from_mime_limited(&load("outlook_html.eml"), 100),
        Err(MailError::TooLarge { limit: 100, .. })
    ));
}

#[test]
fn every_prefix_of_every_fixture_parses_or_errors_without_panicking() {
    let names = [
        "outlook_html.eml",
        "auto_reply.eml",
        "dsn_bounce.eml",
        "inline_image_pdf.eml",
        "reply_in_reply_to.eml",
        "tagged_gmail_reply.eml",
        "loop_from_helpdesk.eml",
        "truncated_multipart.eml",
        "garbage.bin",
    ];
    let s = settings();
    for n in names {
        let bytes = load(n);
        let step = (bytes.len() / 80).max(1);
        let mut cut = 0;
        while cut <= bytes.len() {
            for variant in [bytes[..cut].to_vec(), corrupt(&bytes[..cut], cut)] {
                if let Ok(e) = ParsedEmail::from_mime(&variant) {
                    // Whatever parses must also plan without panicking.
                    let _ = run(&e, &s, &EmptyIndex);
                }
            }
            cut += step;
        }
    }
}

/// Deterministically flips bytes to produce broken encodings and boundaries.
fn corrupt(b: &[u8], seed: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    let mut x = seed as u64 * 2_654_435_761 + 1;
    for _ in 0..(v.len() / 40).max(1) {
        if v.is_empty() {
            break;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x as usize) % v.len();
        v[i] = (x >> 24) as u8;
    }
    v
}

#[test]
fn graph_json_message_is_normalised() {
    let json = r##"{
        "id": "AAMkAGI2TG93AAA=",
        "internetMessageId": "<CAH5x9-reply-2@mail.fabrikam.test>",
        "conversationId": "AAQkAGI2TG93conv=",
        "subject": "RE: Error dialog when opening invoices",
        "from": {"emailAddress": {"name": "Lee Chen", "address": "LEE@fabrikam.test"}},
        "toRecipients": [{"emailAddress": {"name": "Contoso Helpdesk", "address": "helpdesk@contoso.test"}}],
        "ccRecipients": [],
        "receivedDateTime": "2025-01-09T09:30:00Z",
        "body": {"contentType": "html", "content": "<p>Another screenshot</p><img src=\"cid:img2\">"},
        "internetMessageHeaders": [
            {"name": "In-Reply-To", "value": "<CAH5x9-inline-1@mail.fabrikam.test>"},
            {"name": "References", "value": "<CAH5x9-inline-1@mail.fabrikam.test>"}
        ],
        "hasAttachments": true,
        "attachments": [{
            "@odata.type": "#microsoft.graph.fileAttachment",
            "id": "att-1", "name": "shot.png", "contentType": "image/png", "size": 4200,
            "isInline": true, "contentId": "img2",
            "contentBytes": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
        }]
    }"##;
    let g: GraphMessage = serde_json::from_str(json).unwrap();
    let e = ParsedEmail::from_graph(&g).unwrap();
    assert_eq!(e.graph_id.as_deref(), Some("AAMkAGI2TG93AAA="));
    assert_eq!(
        e.message_id.as_deref(),
        Some("CAH5x9-reply-2@mail.fabrikam.test")
    );
    assert_eq!(e.from.as_ref().unwrap().address, "lee@fabrikam.test");
    assert_eq!(e.in_reply_to, ["CAH5x9-inline-1@mail.fabrikam.test"]);
    assert_eq!(e.date.unwrap().to_rfc3339(), "2025-01-09T09:30:00+00:00");
    assert_eq!(e.attachments[0].size, 70);
    assert_eq!(e.attachments[0].graph_id.as_deref(), Some("att-1"));
    assert_eq!(
        thread_keys(&e),
        [
            "CAH5x9-reply-2@mail.fabrikam.test",
            "<CAH5x9-reply-2@mail.fabrikam.test>",
            "CAH5x9-inline-1@mail.fabrikam.test",
            "<CAH5x9-inline-1@mail.fabrikam.test>",
            "conversation:AAQkAGI2TG93conv=",
        ]
    );
    // Threads by conversation when the headers are unknown to the index.
    let mut index = HashMap::new();
    index.insert("conversation:AAQkAGI2TG93conv=".to_string(), 77_i64);
    let mut s = settings();
    s.attachments.skip_inline_images_under_bytes = None;
    match run(&e, &s, &index) {
        Plan::UpdateTicket {
            ticket_id: 77,
            how: ThreadedBy::Conversation,
            attachments,
            note_html,
            ..
        } => {
            assert_eq!(
                attachments[0].decision,
                AttachmentDecision::Inline {
                    content_id: "img2".into()
                }
            );
            assert!(note_html.contains("cid:img2"));
        }
        other => panic!("unexpected {other:?}"),
    }
    s.thread_by_conversation = false;
    assert!(matches!(run(&e, &s, &index), Plan::NewTicket { .. }));
    // A duplicate of a message already on a ticket is skipped.
    index.insert("CAH5x9-reply-2@mail.fabrikam.test".into(), 77);
    assert!(matches!(
        run(&e, &s, &index),
        Plan::Skip {
            reason: SkipReason::Duplicate { ticket_id: 77 }
        }
    ));
    // Bad base64 is a clear error.
    let mut bad = g.clone();
    bad.attachments[0].content_bytes = Some("***".into());
    assert!(matches!(
        ParsedEmail::from_graph(&bad),
        Err(MailError::BadAttachmentEncoding { .. })
    ));
}
