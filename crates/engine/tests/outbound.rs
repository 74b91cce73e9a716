//! Agents' replies sent from the connected mailbox (issue 12): an agent's email action on a
//! ticket that came in by email becomes exactly one email from that mailbox, threaded to the
//! customer's message, with the ticket tag; the customer's answer lands on the same ticket. A
//! send interrupted after the draft was made, or after Graph sent it but before Mailroom noted
//! it, is finished on the next attempt without a second copy. Needs a Secret Service.

mod common;

use common::*;
use mailroom_engine::outbound::agent_replies::ActionOutcome;
use mailroom_store::outbound::OutboundStatus;

#[tokio::test]
async fn an_agents_email_action_is_sent_once_threaded_and_the_answer_lands_on_the_ticket() {
    let h = harness(default_settings()).await;
    let original = h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Printer jammed"));
    h.scan().await;
    let ticket_id = h.ticket_by_message_id(&original.internet_message_id)[0]["id"]
        .as_i64()
        .unwrap();
    let core = core_for(&h).await;

    let action_id = agent_emails(&h, ticket_id, "We replaced the drum; please try again.").await;
    let queued = core.queue_agent_replies().await.unwrap();
    assert_eq!(queued.len(), 1);
    let ActionOutcome::Queued(id) = queued[0].1 else {
        panic!("{queued:?}")
    };
    // A replayed webhook (the same action again) and a second round add nothing.
    assert!(core.queue_agent_replies().await.unwrap().is_empty());
    assert_eq!(core.send_due_outbound(chrono::Utc::now()).await.unwrap(), 1);
    assert_eq!(core.send_due_outbound(chrono::Utc::now()).await.unwrap(), 0);

    let email = core.store().outbound(id).await.unwrap().unwrap();
    assert_eq!(email.status, OutboundStatus::Sent);
    assert_eq!(email.action_id, Some(action_id));
    let sent = h.sb.graph().sent_mail(SUPPORT);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let reply = &sent[0];
    assert_eq!(reply.to, ["pat@fabrikam.test"]);
    assert!(
        reply.subject.contains(&format!("[ID:{ticket_id}]")),
        "{}",
        reply.subject
    );
    assert!(reply.body.contains("We replaced the drum"));
    assert_eq!(reply.internet_message_id, email.internet_message_id);
    assert_eq!(
        reply
            .in_reply_to
            .as_deref()
            .map(|r| r.trim_matches(['<', '>'])),
        Some(original.internet_message_id.trim_matches(['<', '>'])),
        "threaded to the customer's message"
    );
    let attempts = core.store().outbound_attempts(id).await.unwrap();
    let log = serde_json::to_string(&attempts).unwrap();
    assert!(log.contains("Created a reply draft threaded"), "{log}");

    // The customer answers the agent's email: it lands on the same ticket.
    let mut answer = mail(
        "pat@fabrikam.test",
        "Pat Smith",
        &format!("RE: {}", reply.subject),
    );
    answer.in_reply_to = Some(reply.internet_message_id.clone());
    let answer = h.deliver(answer);
    h.scan().await;
    let answered = h.email_for(&answer).await;
    assert_eq!(answered.ticket_id, Some(ticket_id));
    assert_eq!(answered.outcome.as_deref(), Some("action_added"));
}

#[tokio::test]
async fn a_send_interrupted_after_the_draft_or_after_graph_sent_it_finishes_without_a_second_copy()
{
    let h = harness(default_settings()).await;
    let original = h.deliver(mail("pat@fabrikam.test", "Pat Smith", "VPN"));
    h.scan().await;
    let ticket_id = h.ticket_by_message_id(&original.internet_message_id)[0]["id"]
        .as_i64()
        .unwrap();
    let core = core_for(&h).await;

    // 1. Stopped after Graph sent it, before Mailroom noted it: the draft was made and sent
    //    (here by hand, as the interrupted attempt did); the store still says drafted.
    agent_emails(&h, ticket_id, "First answer").await;
    let ActionOutcome::Queued(first) = core.queue_agent_replies().await.unwrap()[0].1 else {
        panic!()
    };
    let email = core.store().outbound(first).await.unwrap().unwrap();
    let draft = h
        .graph
        .create_draft(
            &mailroom_graph::OutgoingMessage {
                subject: email.subject.clone(),
                body: mailroom_graph::ItemBody {
                    content_type: "HTML".into(),
                    content: email.body_html.clone(),
                },
                to: email.to.clone(),
                ..Default::default()
            },
            Some(&email.internet_message_id),
        )
        .await
        .unwrap();
    core.store()
        .outbound_drafted(first, &draft.id, chrono::Utc::now())
        .await
        .unwrap();
    h.graph.send_draft(&draft.id).await.unwrap();
    assert_eq!(h.sb.graph().sent_mail(SUPPORT).len(), 1);
    let after = core.send_outbound(first, "retry").await.unwrap();
    assert_eq!(after.status, OutboundStatus::Sent);
    assert_eq!(
        h.sb.graph().sent_mail(SUPPORT).len(),
        1,
        "not sent a second time"
    );
    let log = serde_json::to_string(&core.store().outbound_attempts(first).await.unwrap()).unwrap();
    assert!(
        log.contains("it was sent before; not sending again"),
        "{log}"
    );

    // 2. Stopped after the draft was made, before its id was kept — and before the second of
    //    its two files was attached: the draft is found in Drafts by its Message-ID, gets the
    //    file it lacks, and is sent — once, each file once, and no draft is left behind.
    let action_id = agent_emails(&h, ticket_id, "Second answer").await;
    let psa = psa_for(&h.sb);
    for (name, len) in [("a.txt", 10usize), ("b.txt", 20)] {
        let mut file = mailroom_psa::NewAttachment::from_bytes(
            name,
            Some("text/plain".into()),
            &vec![b'x'; len],
        );
        file.ticket_id = Some(ticket_id);
        file.action_id = Some(action_id);
        psa.upload_attachment(&file).await.unwrap();
    }
    let ActionOutcome::Queued(second) = core.queue_agent_replies().await.unwrap()[0].1 else {
        panic!()
    };
    let email = core.store().outbound(second).await.unwrap().unwrap();
    let left = h
        .graph
        .create_draft(
            &mailroom_graph::OutgoingMessage {
                subject: email.subject.clone(),
                body: mailroom_graph::ItemBody {
                    content_type: "HTML".into(),
                    content: email.body_html.clone(),
                },
                to: email.to.clone(),
                ..Default::default()
            },
            Some(&email.internet_message_id),
        )
        .await
        .unwrap();
    h.graph
        .add_attachment(
            &left.id,
            &mailroom_graph::OutgoingAttachment {
                name: "a.txt".into(),
                content_type: "text/plain".into(),
                bytes: vec![b'x'; 10],
                content_id: None,
            },
        )
        .await
        .unwrap();
    let after = core.send_outbound(second, "retry").await.unwrap();
    assert_eq!(after.status, OutboundStatus::Sent);
    let sent = h.sb.graph().sent_mail(SUPPORT);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    let names: Vec<&str> = sent[1]
        .attachments
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["a.txt", "b.txt"]);
    assert!(h
        .graph
        .find_by_internet_message_id("drafts", &email.internet_message_id)
        .await
        .unwrap()
        .is_none());
    let log =
        serde_json::to_string(&core.store().outbound_attempts(second).await.unwrap()).unwrap();
    assert!(log.contains("Found its draft in Drafts"), "{log}");
    assert!(
        log.contains("Attached 1 file(s) the draft did not have yet"),
        "{log}"
    );
}

#[tokio::test]
async fn a_mailbox_without_mail_send_fails_at_once_with_the_fix_and_resend_tries_again() {
    let h = harness(default_settings()).await;
    let original = h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Scanner"));
    h.scan().await;
    let ticket_id = h.ticket_by_message_id(&original.internet_message_id)[0]["id"]
        .as_i64()
        .unwrap();
    let core = core_for(&h).await;
    agent_emails(&h, ticket_id, "Answer").await;
    let ActionOutcome::Queued(id) = core.queue_agent_replies().await.unwrap()[0].1 else {
        panic!()
    };
    let client_id = h.sb.tenant().daemon_app.client_id.clone();
    h.sb.identity()
        .set_granted_roles(&client_id, &["Mail.ReadWrite"])
        .unwrap();
    let failed = core.send_outbound(id, "new").await.unwrap();
    assert_eq!(failed.status, OutboundStatus::Failed);
    assert_eq!(failed.error_code.as_deref(), Some("mail_send_denied"));
    assert!(failed
        .error_message
        .as_deref()
        .unwrap()
        .contains("Grant the app registration Mail.Send"));
    assert!(h.sb.graph().sent_mail(SUPPORT).is_empty());

    h.sb.identity()
        .set_granted_roles(&client_id, &["Mail.ReadWrite", "Mail.Send"])
        .unwrap();
    let resent = core.resend_outbound(id).await.unwrap();
    assert_eq!(resent.status, OutboundStatus::Sent, "{resent:?}");
    assert_eq!(h.sb.graph().sent_mail(SUPPORT).len(), 1);
    let err = core.resend_outbound(id).await.unwrap_err();
    assert!(err.to_string().contains("not sent twice"), "{err}");
}

/// Files of the action go along: a small one in one request, a 7 MB one through an upload
/// session (three ranges, bytes intact), and one that would take the email over Exchange's
/// default 35 MB is named in the body instead.
#[tokio::test]
async fn the_actions_attachments_go_along_and_one_too_large_is_named() {
    let h = harness(default_settings()).await;
    let original = h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Logs please"));
    h.scan().await;
    let ticket_id = h.ticket_by_message_id(&original.internet_message_id)[0]["id"]
        .as_i64()
        .unwrap();
    let core = core_for(&h).await;
    let action_id = agent_emails(&h, ticket_id, "Here are the files.").await;
    let psa = psa_for(&h.sb);
    let capture: Vec<u8> = (0..7 * 1024 * 1024 + 123)
        .map(|i| (i % 251) as u8)
        .collect();
    let files = [
        ("steps.txt", vec![b'x'; 1200]),
        ("capture.bin", capture.clone()),
        ("dump.bin", vec![b'd'; 29 * 1024 * 1024]),
    ];
    for (name, bytes) in &files {
        let mut file = mailroom_psa::NewAttachment::from_bytes(
            *name,
            Some("application/octet-stream".into()),
            bytes,
        );
        file.ticket_id = Some(ticket_id);
        file.action_id = Some(action_id);
        psa.upload_attachment(&file).await.unwrap();
    }
    let ActionOutcome::Queued(id) = core.queue_agent_replies().await.unwrap()[0].1 else {
        panic!()
    };
    assert_eq!(
        core.store()
            .outbound(id)
            .await
            .unwrap()
            .unwrap()
            .attachment_ids
            .len(),
        3
    );
    let sent = core.send_outbound(id, "new").await.unwrap();
    assert_eq!(sent.status, OutboundStatus::Sent, "{sent:?}");
    let mail = h.sb.graph().sent_mail(SUPPORT).pop().unwrap();
    let names: Vec<&str> = mail.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["steps.txt", "capture.bin"]);
    assert!(
        mail.attachments[1].content == capture,
        "the uploaded bytes are intact"
    );
    assert!(
        mail.body
            .contains("Too large to attach (ask us for them): dump.bin"),
        "{}",
        mail.body
    );
    // The attempt's log says how the large file went.
    let attempts = core.store().outbound_attempts(id).await.unwrap();
    let log = serde_json::to_string(&attempts).unwrap();
    assert!(
        log.contains("Uploading capture.bin (7.0 MB) through an upload session"),
        "{log}"
    );
}
