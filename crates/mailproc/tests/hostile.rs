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
