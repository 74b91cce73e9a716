//! Batched PSA writes (issue 15): emails processed at the same time share one `POST /Tickets`;
//! every email gets exactly one ticket whatever HaloPSA answers — every record or only the
//! first — and a record HaloPSA refuses fails alone, whether HaloPSA refuses the whole request
//! or saves the records before it. A lone email is sent at once.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mailroom_psa::Method;
use mailroom_sandbox::Service;
use mailroom_store::inbound::{EmailState, LogStatus};

/// Senders the PSA does not know go to its default user (no user is created per email).
fn batch_settings() -> serde_json::Value {
    serde_json::json!({"sender_policy": {
        "unknown_sender": "use_default_user", "default_user_id": 101, "default_site_id": 10}})
}

fn ticket_posts(h: &Harness) -> u64 {
    h.sb.faults().count(Service::Psa, "POST", "/api/Tickets")
}

/// Delivers `n` new emails from different senders (different conversations).
fn deliver_many(
    h: &Harness,
    n: usize,
    subject: &str,
) -> Vec<mailroom_graph_sandbox::DeliveredMessage> {
    (0..n)
        .map(|i| {
            h.deliver(mail(
                &format!("caller{i}@contoso-partner.test"),
                &format!("Caller {i}"),
                &format!("{subject} {i}"),
            ))
        })
        .collect()
}

/// Every delivered email is processed with exactly one ticket carrying its Message-ID.
async fn each_has_one_ticket(h: &Harness, delivered: &[mailroom_graph_sandbox::DeliveredMessage]) {
    for d in delivered {
        assert_eq!(
            h.ticket_by_message_id(&d.internet_message_id).len(),
            1,
            "{}",
            d.internet_message_id
        );
        let email = h.email_for(d).await;
        assert_eq!(email.status, LogStatus::Processed, "{email:?}");
    }
}

#[tokio::test]
async fn emails_processed_together_share_one_post_and_each_gets_one_ticket() {
    let h = harness(batch_settings()).await;
    let delivered = deliver_many(&h, 6, "Laptop will not boot");
    let before = ticket_posts(&h);
    let report = h.scan().await;
    assert_eq!(report.processed, 6, "{report:?}");
    each_has_one_ticket(&h, &delivered).await;
    let posts = ticket_posts(&h) - before;
    assert!(posts < 6, "{posts} POST /Tickets for 6 emails");
    assert!(
        h.pipeline.ticket_batch_sizes().keys().any(|size| *size > 1),
        "{:?}",
        h.pipeline.ticket_batch_sizes()
    );
    // Each email's own attempt records the shared request and says so.
    let email = h.email_for(&delivered[0]).await;
    let attempt = &h.store.attempts(email.id).await.unwrap()[0];
    assert!(
        attempt
            .requests
            .iter()
            .any(|r| r.method == "POST" && r.url.ends_with("/api/Tickets")),
        "{:#?}",
        attempt.requests
    );
}

#[tokio::test]
async fn a_lone_email_is_sent_at_once() {
    let h = harness(batch_settings()).await;
    let d = h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Just one"));
    let started = Instant::now();
    h.scan().await;
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(h.ticket_by_message_id(&d.internet_message_id).len(), 1);
    assert_eq!(h.pipeline.ticket_batch_sizes().get(&1), Some(&1));
}

#[tokio::test]
async fn an_answer_with_only_the_first_ticket_is_completed_by_lookups() {
    let h = harness(batch_settings()).await;
    h.sb.halo().update_behaviour(|b| {
        b.post_answer = mailroom_halo_sandbox::PostAnswer::FirstRecord;
    });
    let delivered = deliver_many(&h, 5, "Monitor flickers");
    let report = h.scan().await;
    assert_eq!(report.processed, 5, "{report:?}");
    each_has_one_ticket(&h, &delivered).await;
    assert_eq!(h.tickets().len(), 5, "no ticket twice");
}

/// Pat's user is deleted in HaloPSA after Mailroom cached it: a ticket for Pat is refused
/// (400 "User 100 does not exist") inside a batch with four others.
async fn refused_record_fails_alone(whole_batch: bool) {
    let h = harness(batch_settings()).await;
    h.sb.halo()
        .update_behaviour(|b| b.reject_whole_batch = whole_batch);
    let first = h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Warm-up"));
    h.scan().await;
    assert_eq!(h.ticket_by_message_id(&first.internet_message_id).len(), 1);
    psa_for(&h.sb)
        .call(Method::DELETE, "Users/100", &[], None)
        .await
        .expect("user 100 deleted");

    let mut delivered = deliver_many(&h, 4, "Keyboard missing keys");
    let pats = h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Second request"));
    delivered.insert(2, pats.clone());
    let report = h.scan().await;
    assert_eq!((report.processed, report.failed), (4, 1), "{report:?}");
    let email = h.email_for(&pats).await;
    assert_eq!(email.state, EmailState::Failed);
    assert!(
        email
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("User 100 does not exist")),
        "{email:?}"
    );
    assert!(h.ticket_by_message_id(&pats.internet_message_id).is_empty());
    delivered.remove(2);
    each_has_one_ticket(&h, &delivered).await;
    assert_eq!(h.tickets().len(), 5, "the warm-up and four: none twice");
}

#[tokio::test]
async fn a_refused_record_fails_alone_when_the_whole_batch_is_refused() {
    refused_record_fails_alone(true).await;
}

#[tokio::test]
async fn a_refused_record_fails_alone_when_the_records_before_it_were_saved() {
    refused_record_fails_alone(false).await;
}

#[tokio::test]
async fn replies_share_one_post_of_actions_and_a_conversation_keeps_its_order() {
    let h = harness(batch_settings()).await;
    let originals = deliver_many(&h, 3, "Printer jams");
    h.scan().await;
    each_has_one_ticket(&h, &originals).await;
    let before = h.sb.faults().count(Service::Psa, "POST", "/api/Actions");

    let reply = |to: &mailroom_graph_sandbox::DeliveredMessage, i: usize, subject: &str| {
        let mut m = mail(
            &format!("caller{i}@contoso-partner.test"),
            &format!("Caller {i}"),
            subject,
        );
        m.in_reply_to = Some(to.internet_message_id.clone());
        h.deliver(m)
    };
    let a2 = reply(&originals[0], 0, "RE: Printer jams 0");
    let b2 = reply(&originals[1], 1, "RE: Printer jams 1");
    let c2 = reply(&originals[2], 2, "RE: Printer jams 2");
    let a3 = reply(&a2, 0, "RE: RE: Printer jams 0");
    let report = h.scan().await;
    assert_eq!(report.processed, 4, "{report:?}");
    let posts = h.sb.faults().count(Service::Psa, "POST", "/api/Actions") - before;
    assert!(posts < 4, "{posts} POST /Actions for 4 replies");
    assert!(
        h.pipeline.action_batch_sizes().keys().any(|size| *size > 1),
        "{:?}",
        h.pipeline.action_batch_sizes()
    );
    // Every reply is one action on its ticket; A's two replies in the order received.
    let ticket_of = |d: &mailroom_graph_sandbox::DeliveredMessage| {
        h.ticket_by_message_id(&d.internet_message_id)[0]["id"]
            .as_i64()
            .unwrap()
    };
    let action_id = |ticket: i64, d: &mailroom_graph_sandbox::DeliveredMessage| {
        let mine: Vec<i64> = h
            .actions_of(ticket)
            .iter()
            .filter(|a| {
                a["email_message_id"]
                    .as_str()
                    .map(|m| m.trim_matches(['<', '>']))
                    == Some(d.internet_message_id.trim_matches(['<', '>']))
            })
            .map(|a| a["id"].as_i64().unwrap())
            .collect();
        assert_eq!(mine.len(), 1, "{}", d.internet_message_id);
        mine[0]
    };
    let a = ticket_of(&originals[0]);
    assert!(
        action_id(a, &a2) < action_id(a, &a3),
        "A's replies keep their order"
    );
    action_id(ticket_of(&originals[1]), &b2);
    action_id(ticket_of(&originals[2]), &c2);
    for d in [&a2, &b2, &c2, &a3] {
        let email = h.email_for(d).await;
        assert_eq!(email.outcome.as_deref(), Some("action_added"), "{email:?}");
    }
}

/// New senders of emails processed together get their users in one `POST /Users`; two emails
/// from the same new sender (two conversations) get one user between them.
#[tokio::test]
async fn new_senders_processed_together_share_one_users_post_and_none_is_created_twice() {
    let h = harness(serde_json::json!({"sender_policy": {"default_site_id": 12}})).await;
    let mut delivered = deliver_many(&h, 6, "Printer jams");
    delivered.push(h.deliver(mail(
        "caller0@contoso-partner.test",
        "Caller 0",
        "A second, unrelated question",
    )));
    let users_before = h.sb.halo().users().len();
    let report = h.scan().await;
    assert_eq!(report.processed, 7, "{report:?}");
    each_has_one_ticket(&h, &delivered).await;

    let users = h.sb.halo().users();
    assert_eq!(users.len(), users_before + 6, "one user per new sender");
    for (i, d) in delivered.iter().enumerate() {
        let address = format!("caller{}@contoso-partner.test", i % 6);
        let user = users
            .iter()
            .find(|u| u["emailaddress"] == address.as_str())
            .unwrap_or_else(|| panic!("no user {address}"));
        assert_eq!(user["site_id"].as_f64(), Some(12.0));
        assert_eq!(
            h.ticket_by_message_id(&d.internet_message_id)[0]["user_id"].as_f64(),
            user["id"].as_f64(),
            "{address}"
        );
    }
    let posts = h.sb.faults().count(Service::Psa, "POST", "/api/Users");
    assert!(posts < 6, "{posts} POST /Users for 6 new senders");
    assert!(
        h.pipeline.user_batch_sizes().keys().any(|size| *size > 1),
        "{:?}",
        h.pipeline.user_batch_sizes()
    );
}

/// A user batch HaloPSA answers with its first user only: the others are found by address.
#[tokio::test]
async fn a_users_answer_with_only_the_first_user_is_completed_by_lookups() {
    let h = harness(serde_json::json!({"sender_policy": {"default_site_id": 12}})).await;
    h.sb.halo().update_behaviour(|b| {
        b.post_answer = mailroom_halo_sandbox::PostAnswer::FirstRecord;
    });
    let delivered = deliver_many(&h, 5, "Scanner offline");
    let users_before = h.sb.halo().users().len();
    let report = h.scan().await;
    assert_eq!(report.processed, 5, "{report:?}");
    each_has_one_ticket(&h, &delivered).await;
    assert_eq!(h.sb.halo().users().len(), users_before + 5);
    for d in &delivered {
        assert!(h.ticket_by_message_id(&d.internet_message_id)[0]["user_id"]
            .as_f64()
            .is_some_and(|id| id > 0.0));
    }
}

/// The admin turns batching off while the engine runs: the next emails go one per POST.
#[tokio::test]
async fn batching_changed_while_running_applies_to_the_next_emails() {
    let h = harness(batch_settings()).await;
    h.pipeline
        .set_batching(mailroom_engine::pipeline::BatchConfig {
            max_records: 1,
            ..Default::default()
        });
    let delivered = deliver_many(&h, 4, "Headset crackles");
    let before = ticket_posts(&h);
    let report = h.scan().await;
    assert_eq!(report.processed, 4, "{report:?}");
    each_has_one_ticket(&h, &delivered).await;
    assert_eq!(ticket_posts(&h) - before, 4);
    let sizes = h.pipeline.ticket_batch_sizes();
    assert_eq!(
        sizes.keys().copied().collect::<Vec<_>>(),
        vec![1],
        "{sizes:?}"
    );
}

/// A backlog whose attempts need no request before their write (the delta round read every
/// message) still fills its batches: leaders wait for conversations about to start, not only
/// for attempts already in flight (which queue at their move, after their write).
#[tokio::test]
async fn a_backlog_fills_its_batches() {
    let h = harness(batch_settings()).await;
    // Graph answers in 100 ms, four requests at a time per mailbox.
    h.sb.faults()
        .add(mailroom_sandbox::FaultRule::latency(
            Service::Graph,
            "*",
            100,
        ))
        .unwrap();
    let n = 200;
    let delivered = deliver_many(&h, n, "Backlogged");
    let report = h.scan().await;
    assert_eq!(report.processed, n, "{report:?}");
    each_has_one_ticket(&h, &delivered).await;
    let sizes = h.pipeline.ticket_batch_sizes();
    let batches: u64 = sizes.values().sum();
    let mean = n as f64 / batches as f64;
    assert!(
        mean >= 8.0,
        "{mean:.1} tickets per POST ({batches} POSTs for {n} emails): {sizes:?}"
    );
}
