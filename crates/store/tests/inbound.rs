//! The inbound tables at their boundary: de-duplication, claims and leases, retries, PSA write
//! intents, thread keys, the log's filters/search/paging, and attempt details.

use chrono::{DateTime, Duration, TimeZone, Utc};
use mailroom_store::inbound::{
    AttemptTrigger, EmailState, LogLine, LogQuery, LogStatus, PsaWriteKind, Sighting,
};
use mailroom_store::{Backend, Cloud, CredentialKind, MailboxMethod, NewMailbox, Store};
use mailroom_trace::{HttpExchange, RawExchange, Service};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).unwrap()
}

/// Runs the test `async fn $name(backend: Backend)` on SQLite and on PostgreSQL (a database of
/// its own on the test process's throwaway cluster): `$name::sqlite`, `$name::postgres`.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(mailroom_store::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(mailroom_store::Backend::Postgres).await
            }
        }
    };
}

/// A store with one mailbox, and a temporary directory (the SQLite file's, and a data
/// directory for the lock).
async fn store_with_mailbox(backend: Backend) -> (tempfile::TempDir, Store, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = match backend {
        Backend::Sqlite => Store::open(dir.path().join("t.db")).await.unwrap(),
        Backend::Postgres => {
            let cluster = mailroom_pg_test::TestPostgres::shared().expect("a throwaway PostgreSQL");
            Store::connect(&cluster.new_database().unwrap())
                .await
                .unwrap()
        }
    };
    let mailbox = store
        .add_mailbox(&NewMailbox {
            name: "Support".into(),
            method: MailboxMethod::Scan,
            cloud: Cloud::Custom,
            authority_url: Some("http://127.0.0.1:1".into()),
            graph_url: Some("http://127.0.0.1:2".into()),
            tenant_id: "t".into(),
            client_id: "c".into(),
            credential_kind: CredentialKind::Public,
            shared_mailbox: None,
            mailbox_address: None,
        })
        .await
        .unwrap();
    (dir, store, mailbox.id)
}

fn sighting(mailbox: &str, n: i64, mid: Option<&str>) -> Sighting {
    Sighting {
        mailbox_id: mailbox.into(),
        graph_message_id: format!("AAMk-{n}"),
        internet_message_id: mid.map(String::from),
        conversation_id: Some(format!("conv-{n}")),
        received_at: t0() + Duration::minutes(n),
        from_address: format!("sender{n}@fabrikam.test"),
        from_name: format!("Sender {n}"),
        subject: format!("Printer {n} is jammed"),
    }
}

on_both!(the_same_email_seen_twice_is_one_row);
async fn the_same_email_seen_twice_is_one_row(backend: Backend) {
    let (_d, store, mbx) = store_with_mailbox(backend).await;
    let (a, new_a) = store
        .record_sighting(&sighting(&mbx, 1, Some("<x1@fabrikam.test>")), t0())
        .await
        .unwrap();
    // A notification and a scan, with and without angle brackets, and a new Graph id.
    let mut again = sighting(&mbx, 1, Some("X1@fabrikam.test"));
    again.graph_message_id = "AAMk-moved".into();
    let (b, new_b) = store.record_sighting(&again, t0()).await.unwrap();
    assert!(new_a && !new_b);
    assert_eq!(a, b);
    assert_eq!(
        store.inbound_email(a).await.unwrap().graph_message_id,
        "AAMk-moved"
    );
    // Without a Message-ID the Graph id is the identity.
    let (c, _) = store
        .record_sighting(&sighting(&mbx, 2, None), t0())
        .await
        .unwrap();
    let (d, new_d) = store
        .record_sighting(&sighting(&mbx, 2, None), t0())
        .await
        .unwrap();
    assert_eq!((c, new_d), (d, false));
}

on_both!(claims_respect_leases_and_retry_times);
async fn claims_respect_leases_and_retry_times(backend: Backend) {
    let (_d, store, mbx) = store_with_mailbox(backend).await;
    let (a, _) = store
        .record_sighting(&sighting(&mbx, 1, Some("<a@x>")), t0())
        .await
        .unwrap();
    let (b, _) = store
        .record_sighting(&sighting(&mbx, 2, Some("<b@x>")), t0())
        .await
        .unwrap();
    let lease = Duration::minutes(5);
    let first = store.claim_due(&mbx, "w1", t0(), lease, 10).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![a, b],
        "oldest first"
    );
    assert!(
        store
            .claim_due(&mbx, "w2", t0(), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed rows are not claimed twice"
    );

    store
        .mark_retrying(
            a,
            t0() + Duration::minutes(2),
            "psa_unavailable",
            "503",
            t0(),
        )
        .await
        .unwrap();
    assert!(store
        .claim_due(&mbx, "w2", t0() + Duration::minutes(1), lease, 10)
        .await
        .unwrap()
        .is_empty());
    let retry = store
        .claim_due(&mbx, "w2", t0() + Duration::minutes(2), lease, 10)
        .await
        .unwrap();
    assert_eq!(retry.iter().map(|e| e.id).collect::<Vec<_>>(), vec![a]);

    // b's claimer died: after the lease, its claim is taken over.
    let recovered = store
        .claim_due(&mbx, "w3", t0() + Duration::minutes(6), lease, 10)
        .await
        .unwrap();
    let ids: Vec<i64> = recovered.iter().map(|e| e.id).collect();
    assert!(ids.contains(&b), "{ids:?}");
}

on_both!(psa_intents_survive_and_are_confirmed);
async fn psa_intents_survive_and_are_confirmed(backend: Backend) {
    let (_d, store, mbx) = store_with_mailbox(backend).await;
    let (a, _) = store
        .record_sighting(&sighting(&mbx, 1, Some("<a@x>")), t0())
        .await
        .unwrap();
    assert_eq!(store.psa_write(a).await.unwrap(), None);
    store
        .record_psa_intent(a, PsaWriteKind::Ticket, "<first@x>", None, t0())
        .await
        .unwrap();
    // An unconfirmed intent is replaced when the next attempt plans differently.
    store
        .record_psa_intent(a, PsaWriteKind::Action, "<a@x>", Some(1000), t0())
        .await
        .unwrap();
    let intent = store.psa_write(a).await.unwrap().unwrap();
    assert!(!intent.confirmed);
    assert_eq!(
        (intent.kind.as_str(), intent.message_key.as_str()),
        ("action", "<a@x>")
    );
    store.confirm_psa_write(a, 7, 1000, t0()).await.unwrap();
    // A confirmed write is never replaced: the PSA already holds it.
    store
        .record_psa_intent(a, PsaWriteKind::Ticket, "<other@x>", None, t0())
        .await
        .unwrap();
    let done = store.psa_write(a).await.unwrap().unwrap();
    assert!(done.confirmed);
    assert_eq!(done.object_id, Some(7));
    assert_eq!(done.message_key, "<a@x>");
}

on_both!(thread_keys_map_replies_to_tickets);
async fn thread_keys_map_replies_to_tickets(backend: Backend) {
    let (_d, store, mbx) = store_with_mailbox(backend).await;
    store
        .add_thread_keys(&mbx, &["a@x".into(), "conversation:c1".into()], 1001, t0())
        .await
        .unwrap();
    store
        .add_thread_keys(&mbx, &["a@x".into()], 2002, t0())
        .await
        .unwrap();
    assert_eq!(
        store.ticket_for_thread_key(&mbx, "a@x").await.unwrap(),
        Some(1001),
        "first ticket keeps the key"
    );
    assert_eq!(
        store
            .ticket_for_thread_key(&mbx, "conversation:c1")
            .await
            .unwrap(),
        Some(1001)
    );
    assert_eq!(
        store.ticket_for_thread_key(&mbx, "nope").await.unwrap(),
        None
    );
}

on_both!(the_log_filters_searches_and_pages);
async fn the_log_filters_searches_and_pages(backend: Backend) {
    let (_d, store, mbx) = store_with_mailbox(backend).await;
    let mut ids = Vec::new();
    for n in 1..=7 {
        let (id, _) = store
            .record_sighting(&sighting(&mbx, n, Some(&format!("<m{n}@x>"))), t0())
            .await
            .unwrap();
        ids.push(id);
    }
    store.mark_done(ids[0], t0()).await.unwrap();
    store
        .mark_skipped(ids[1], "auto_reply", "Automatic reply", t0())
        .await
        .unwrap();
    store
        .mark_failed(ids[2], "psa_validation", "An Outcome must be entered", t0())
        .await
        .unwrap();

    let page1 = store
        .inbound_log(&LogQuery {
            limit: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page1.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[6], ids[5], ids[4]],
        "newest first"
    );
    let last = page1.last().unwrap();
    let page2 = store
        .inbound_log(&LogQuery {
            limit: Some(3),
            before: Some((last.received_at, last.id)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page2.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[3], ids[2], ids[1]]
    );

    let failed = store
        .inbound_log(&LogQuery {
            status: Some(LogStatus::Failed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].state, EmailState::Failed);
    assert_eq!(failed[0].status, LogStatus::Failed);
    let pending = store
        .inbound_log(&LogQuery {
            status: Some(LogStatus::Pending),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 4);

    let found = store
        .inbound_log(&LogQuery {
            search: Some("printer 5".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.iter().map(|e| e.id).collect::<Vec<_>>(), vec![ids[4]]);
    let by_sender = store
        .inbound_log(&LogQuery {
            search: Some("sender3@fabrikam".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_sender.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[2]]
    );
    let other = store
        .inbound_log(&LogQuery {
            mailbox_id: Some("other".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(other.is_empty());
}

on_both!(attempts_keep_their_requests_and_log);
async fn attempts_keep_their_requests_and_log(backend: Backend) {
    let (_d, store, mbx) = store_with_mailbox(backend).await;
    let (a, _) = store
        .record_sighting(&sighting(&mbx, 1, Some("<a@x>")), t0())
        .await
        .unwrap();
    let attempt = store
        .start_attempt(a, AttemptTrigger::Scan, t0())
        .await
        .unwrap();
    let exchange = HttpExchange::new(
        Service::Psa,
        t0(),
        RawExchange {
            method: "POST",
            url: "http://127.0.0.1:3/api/Tickets",
            request_headers: vec![("Authorization".into(), "Bearer secret-token".into())],
            request_body: Some(r#"[{"summary":"Printer"}]"#),
            status: Some(201),
            response_body: Some(r#"{"id":1001}"#),
            duration_ms: 12,
            ..Default::default()
        },
    );
    let log = vec![LogLine {
        at: t0(),
        level: "info".into(),
        message: "Created ticket 1001".into(),
    }];
    store
        .finish_attempt(
            attempt,
            "processed",
            None,
            std::slice::from_ref(&exchange),
            &log,
            t0(),
        )
        .await
        .unwrap();
    let second = store
        .start_attempt(a, AttemptTrigger::Reprocess, t0())
        .await
        .unwrap();
    store
        .finish_attempt(second, "failed", Some(("psa_down", "503")), &[], &[], t0())
        .await
        .unwrap();

    let attempts = store.attempts(a).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].number, 1);
    assert_eq!(attempts[0].requests, vec![exchange]);
    assert_eq!(attempts[0].requests[0].request_headers[0].1, "[redacted]");
    assert_eq!(attempts[0].log[0].message, "Created ticket 1001");
    assert_eq!(attempts[1].trigger, "reprocess");
    assert_eq!(attempts[1].error_code.as_deref(), Some("psa_down"));
    assert_eq!(store.inbound_email(a).await.unwrap().attempts, 2);
}

on_both!(released_claims_are_claimable_at_once_and_open_attempts_close);
/// Issue 22: a stopping worker releases its claims (the next claim takes them at once, a
/// `claimed` email goes back to where it was claimed from, open attempts close as
/// `interrupted`); a process holding the data directory's lock releases everyone's (SQLite).
async fn released_claims_are_claimable_at_once_and_open_attempts_close(backend: Backend) {
    let (dir, store, mbx) = store_with_mailbox(backend).await;
    let lease = Duration::minutes(5);
    for n in 1..=3 {
        store
            .record_sighting(&sighting(&mbx, n, None), t0())
            .await
            .unwrap();
    }
    let claimed = store
        .claim_due(&mbx, "stopping", t0(), lease, 2)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let attempt = store
        .start_attempt(claimed[0].id, AttemptTrigger::Scan, t0())
        .await
        .unwrap();
    let dead = store
        .claim_due(&mbx, "killed", t0(), lease, 5)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "the third email, claimed by another worker");

    // Within the lease nothing is claimable; the stopping worker releases its two.
    let t1 = t0() + Duration::seconds(1);
    assert!(store
        .claim_due(&mbx, "next", t1, lease, 5)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.release_claims("stopping", t1).await.unwrap(), 2);
    assert_eq!(store.release_claims("stopping", t1).await.unwrap(), 0);
    let first = store.inbound_email(claimed[0].id).await.unwrap();
    assert_eq!(
        first.state,
        EmailState::Seen,
        "back to the state it was claimed from"
    );
    let attempts = store.attempts(claimed[0].id).await.unwrap();
    assert_eq!(attempts[0].id, attempt);
    assert_eq!(attempts[0].result.as_deref(), Some("interrupted"));
    assert!(attempts[0].finished_at.is_some());

    let again = store.claim_due(&mbx, "next", t1, lease, 5).await.unwrap();
    assert_eq!(
        again.iter().map(|e| e.id).collect::<Vec<_>>(),
        claimed.iter().map(|e| e.id).collect::<Vec<_>>(),
        "released claims are taken at once; the killed worker's still waits for its lease"
    );

    // A start that holds the lock releases every claim, the killed worker's included.
    // On PostgreSQL other workers may be alive: only their leases running out frees theirs.
    let lock = mailroom_store::DataDirLock::acquire(dir.path(), "test").unwrap();
    let all_released = match backend {
        Backend::Sqlite => 3,
        Backend::Postgres => 0,
    };
    assert_eq!(
        store.release_all_claims(&lock, t1).await.unwrap(),
        all_released
    );
    let all = store
        .claim_due(&mbx, "after-start", t1, lease, 5)
        .await
        .unwrap();
    assert_eq!(all.len() as u64, all_released);
}

on_both!(concurrent_claimers_never_claim_an_email_twice);
/// Issue 16: workers claiming from one database at once each get different emails (on
/// PostgreSQL the claim skips rows another claim has locked); a claim whose lease ran out is
/// taken over and counted.
async fn concurrent_claimers_never_claim_an_email_twice(backend: Backend) {
    let (_d, store, mbx) = store_with_mailbox(backend).await;
    for n in 1..=120 {
        store
            .record_sighting(&sighting(&mbx, n, None), t0())
            .await
            .unwrap();
    }
    let lease = Duration::minutes(5);
    let mut workers = Vec::new();
    for w in 0..4 {
        let (store, mbx) = (store.clone(), mbx.clone());
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_due(&mbx, &format!("worker-{w}"), t0(), lease, 7)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|e| e.id));
            }
        }));
    }
    let mut all = Vec::new();
    // A worker that got claims (on SQLite one may find everything taken before it starts).
    let mut busy = None;
    for (w, worker) in workers.into_iter().enumerate() {
        let mine = worker.await.unwrap();
        if busy.is_none() && !mine.is_empty() {
            busy = Some(format!("worker-{w}"));
        }
        all.extend(mine);
    }
    let busy = busy.expect("some worker claimed");
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!((claimed, all.len()), (120, 120), "every email claimed once");
    assert_eq!(store.lease_takeovers().await.unwrap().claims, 0);

    // A worker still at work renews its claims: nobody takes them over after the first term.
    let renewed = store
        .renew_claims(&busy, t0() + lease - Duration::seconds(1))
        .await
        .unwrap();
    assert!(renewed > 0);
    let later = t0() + lease + Duration::seconds(1);
    let taken = store
        .claim_due(&mbx, "survivor", later, lease, 500)
        .await
        .unwrap();
    assert_eq!(taken.len() as u64, 120 - renewed);
    assert_eq!(
        store.lease_takeovers().await.unwrap().claims as u64,
        120 - renewed
    );
    store.release_claims("survivor", later).await.unwrap();

    // Every worker died: after the lease, one claim takes all 120.
    let latest = later + lease;
    let taken = store
        .claim_due(&mbx, "survivor", latest, lease, 500)
        .await
        .unwrap();
    assert_eq!(taken.len(), 120);
    // The released ones are taken without a takeover; worker-0's renewed ones are taken over.
    assert_eq!(store.lease_takeovers().await.unwrap().claims, 120);
}

on_both!(a_reply_waits_while_another_worker_processes_its_original);
/// Issue 16: a reply is not claimed while an earlier email of its conversation is new or being
/// worked on (another worker would find no ticket yet and open a second one); once the
/// original is done the reply is claimable.
async fn a_reply_waits_while_another_worker_processes_its_original(backend: Backend) {
    let (_d, store, mbx) = store_with_mailbox(backend).await;
    let lease = Duration::minutes(5);
    let original = sighting(&mbx, 1, None);
    let reply = Sighting {
        conversation_id: original.conversation_id.clone(),
        ..sighting(&mbx, 2, None)
    };
    let (original_id, _) = store.record_sighting(&original, t0()).await.unwrap();
    let claimed = store.claim_due(&mbx, "a", t0(), lease, 1).await.unwrap();
    assert_eq!(claimed[0].id, original_id);
    let (reply_id, _) = store.record_sighting(&reply, t0()).await.unwrap();
    let other = sighting(&mbx, 3, None);
    let (other_id, _) = store.record_sighting(&other, t0()).await.unwrap();

    let b = store.claim_due(&mbx, "b", t0(), lease, 10).await.unwrap();
    assert_eq!(
        b.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![other_id],
        "the reply waits for worker a"
    );
    assert!(
        store
            .claim_due(&mbx, "a", t0(), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "even for worker a: the reply follows its original's write"
    );
    store.release_claims("a", t0()).await.unwrap();
    store.mark_done(original_id, t0()).await.unwrap();
    let b = store.claim_due(&mbx, "b", t0(), lease, 10).await.unwrap();
    assert_eq!(b.iter().map(|e| e.id).collect::<Vec<_>>(), vec![reply_id]);
}
