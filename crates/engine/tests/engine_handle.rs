//! Issue 22: the one engine handle. It starts degraded (with a typed reason) when the PSA is not
//! connected, comes up by itself once it is, answers calls with typed errors meanwhile, and
//! stops with every claim released.

mod common;

use std::time::Duration;

use common::*;
use mailroom_engine::engine::{Engine, EngineError, EngineOptions, EngineState};
use mailroom_engine::events::{EngineEvent, EventBus};
use mailroom_engine::mailboxes::MailboxSetup;
use mailroom_engine::store_types::{Cloud, CredentialKind, MailboxMethod};
use mailroom_engine::{Core, ErrorCode};
use mailroom_secrets::{SecretValue, Secrets};
use mailroom_store::inbound::EmailState;
use mailroom_store::DataDirLock;

async fn next_engine_state(
    rx: &mut tokio::sync::broadcast::Receiver<EngineEvent>,
    want: impl Fn(&EngineState) -> bool,
) -> EngineState {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("an engine event arrives")
            .expect("channel open");
        if let EngineEvent::Engine(state) = event {
            if want(&state) {
                return state;
            }
        }
    }
}

/// A data directory of its own, its keyring entries under a throwaway service.
async fn core() -> (tempfile::TempDir, Core) {
    let dir = tempfile::tempdir().unwrap();
    let service = format!("mailroom-engine-test-{}", uuid::Uuid::new_v4());
    let core = Core::open_with_secrets(dir.path(), Secrets::with_service(&service))
        .await
        .unwrap();
    (dir, core)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_degraded_without_a_psa_and_comes_up_once_connected() {
    let sb = sandbox().await;
    let (dir, core) = core().await;
    let mailbox = app_only_support(&core, &sb).await;
    let delivered = sb
        .graph()
        .deliver(mail(
            "pat@fabrikam.test",
            "Pat Smith",
            "Waiting for the PSA",
        ))
        .unwrap();

    let lock = DataDirLock::acquire(dir.path(), "engine test").unwrap();
    let events = EventBus::new();
    let mut rx = events.subscribe();
    let options = EngineOptions {
        webhook_any_port: true,
        ..Default::default()
    };
    let engine = Engine::start(core.clone(), events, &lock, options)
        .await
        .expect("a start without a PSA connection is not an error: the engine degrades");
    let EngineState::Degraded { code, reason, .. } = engine.started().await else {
        panic!("expected degraded, got {:?}", engine.state());
    };
    assert_eq!(code, ErrorCode::NotConfigured, "{reason}");
    assert!(
        reason.contains("PSA") || reason.contains("HaloPSA"),
        "{reason}"
    );
    let err = engine.import_now(&mailbox.id).await.unwrap_err();
    assert!(matches!(err, EngineError::NotRunning(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::NotConfigured);

    connect_psa(&core, &sb).await;
    engine.refresh();
    let running = next_engine_state(&mut rx, |s| matches!(s, EngineState::Running { .. })).await;
    assert_eq!(running, EngineState::Running { mailboxes: 1 });
    let report = engine.import_now(&mailbox.id).await.expect("import");
    eprintln!("{report:?}");
    assert_eq!(
        engine
            .import_now("no-such-mailbox")
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotConnected
    );
    let tickets = sb.halo().tickets();
    assert!(
        tickets
            .iter()
            .any(|t| t["email_message_id"] == delivered.internet_message_id.as_str()),
        "the waiting email became a ticket"
    );

    engine.stop().await;
    assert_eq!(engine.state(), EngineState::Stopped);
    assert!(matches!(
        engine.import_now(&mailbox.id).await.unwrap_err(),
        EngineError::Stopping
    ));
    let emails = core
        .store()
        .inbound_log(&mailroom_store::inbound::LogQuery::default())
        .await
        .unwrap();
    assert!(emails.iter().all(|e| e.state != EmailState::Claimed));
    core.secrets().delete_owner(&mailbox.id).await.unwrap();
    core.secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await
        .unwrap();
}

/// Issue 22 #6: what the app does on exit — `EngineHandle::stop` in the middle of a batch —
/// returns within 2 s and leaves no claim; the next start finishes the backlog exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_engine_mid_batch_leaves_no_claim() {
    use mailroom_sandbox::{FaultRule, Service};

    let sb = sandbox().await;
    let (dir, core) = core().await;
    let mailbox = app_only_support(&core, &sb).await;
    connect_psa(&core, &sb).await;
    let slow = sb
        .faults()
        .add(FaultRule::latency(Service::Psa, "/api/*", 300))
        .unwrap();
    let delivered: Vec<_> = (0..60)
        .map(|i| {
            sb.graph()
                .deliver(mail("pat@fabrikam.test", "Pat Smith", &format!("Exit {i}")))
                .unwrap()
        })
        .collect();
    let options = || EngineOptions {
        webhook_any_port: true,
        ..Default::default()
    };

    let lock = DataDirLock::acquire(dir.path(), "engine test").unwrap();
    let engine = Engine::start(core.clone(), EventBus::new(), &lock, options())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sb.halo().tickets().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "no ticket written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = std::time::Instant::now();
    engine.stop().await;
    let took = stopping.elapsed();
    eprintln!("stopped in {} ms", took.as_millis());
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(
        sb.halo().tickets().len() < delivered.len(),
        "stopped mid-batch"
    );
    let emails = core
        .store()
        .inbound_log(&mailroom_store::inbound::LogQuery::default())
        .await
        .unwrap();
    assert!(
        emails.iter().all(|e| e.state != EmailState::Claimed),
        "no claim is left"
    );

    sb.faults().remove(slow);
    let engine = Engine::start(core.clone(), EventBus::new(), &lock, options())
        .await
        .unwrap();
    while core.store().unfinished_count(None).await.unwrap() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the backlog is finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.stop().await;
    let norm = |s: &str| s.trim_matches(['<', '>']).to_lowercase();
    let tickets = sb.halo().tickets();
    for d in &delivered {
        let n = tickets
            .iter()
            .filter(|t| {
                t["email_message_id"].as_str().map(norm) == Some(norm(&d.internet_message_id))
            })
            .count();
        assert_eq!(n, 1, "{}", d.internet_message_id);
    }
    core.secrets().delete_owner(&mailbox.id).await.unwrap();
    core.secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await
        .unwrap();
}

/// Issue 23 #7: a revoked sign-in is reported once — the mailbox is marked *needs sign-in*,
/// its task stops, and the token endpoint is not asked again — and the mailbox resumes by
/// itself once the admin signs in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_sign_in_is_reported_once_and_resumes_after_a_new_sign_in() {
    use mailroom_engine::events::SyncState;
    use mailroom_engine::sync::SyncOptions;
    use mailroom_sandbox::Service;

    let sb = sandbox().await;
    let (dir, core) = core().await;
    let t = sb.tenant();
    let mailbox = core
        .add_mailbox(MailboxSetup {
            name: "Support".into(),
            method: MailboxMethod::Scan,
            cloud: Cloud::Custom,
            authority_url: Some(sb.authority_url()),
            graph_url: Some(sb.graph_url()),
            tenant_id: t.tenant_id.clone(),
            client_id: t.desktop_app.client_id.clone(),
            credential_kind: CredentialKind::Public,
            client_secret: None,
            shared_mailbox: None,
            mailbox_address: None,
        })
        .await
        .unwrap();
    let sign_in = |core: Core, id: String| async move {
        let (url, authorization) = core.start_authorization(&id).await.unwrap();
        let browser = tokio::spawn(async move {
            mailroom_sandbox::sign_in::complete_sign_in(url.as_str(), SUPPORT)
                .await
                .map(|_| ())
        });
        core.finish_authorization(authorization, Duration::from_secs(30))
            .await
            .unwrap();
        browser.await.unwrap().unwrap();
    };
    sign_in(core.clone(), mailbox.id.clone()).await;
    connect_psa(&core, &sb).await;

    let lock = DataDirLock::acquire(dir.path(), "engine test").unwrap();
    let events = EventBus::new();
    let mut rx = events.subscribe();
    let options = EngineOptions {
        sync: SyncOptions {
            interval_override: Some(Duration::from_secs(1)),
            ..Default::default()
        },
        ..Default::default()
    };
    let engine = Engine::start(core.clone(), events, &lock, options)
        .await
        .unwrap();
    assert_eq!(
        engine.started().await,
        EngineState::Running { mailboxes: 1 }
    );

    // A password reset: the refresh grant is revoked and the access token expires.
    sb.identity().revoke_user_sessions(SUPPORT).unwrap();
    sb.faults().expire_tokens();
    let needs = loop {
        let event = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("the mailbox reports the revoked sign-in")
            .unwrap();
        if let EngineEvent::MailboxSync(s) = event {
            if s.state == SyncState::NeedsSignIn {
                break s;
            }
        }
    };
    let reason = needs.error.unwrap_or_default();
    assert!(reason.contains("Sign in again"), "{reason}");
    let stored = core.store().mailbox(&mailbox.id).await.unwrap();
    assert!(stored.sign_in_required.is_some());

    // No more token requests while it waits (the scan interval is 1 s).
    let asked = sb.faults().total(Service::Identity);
    engine.refresh();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sb.faults().total(Service::Identity),
        asked,
        "the token endpoint is left alone until the admin signs in"
    );
    let report = engine.report();
    assert!(report.mailboxes[0]
        .not_synced
        .as_deref()
        .is_some_and(|why| why.starts_with("sign in again")));

    // The admin signs in again: the mark goes, the mailbox is read again by itself.
    sign_in(core.clone(), mailbox.id.clone()).await;
    assert_eq!(
        core.store()
            .mailbox(&mailbox.id)
            .await
            .unwrap()
            .sign_in_required,
        None
    );
    engine.refresh();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("the mailbox is read again")
            .unwrap();
        if let EngineEvent::MailboxSync(s) = event {
            if s.state == SyncState::Idle && s.last_sync_at.is_some() {
                break;
            }
        }
    }
    engine.stop().await;
    core.secrets().delete_owner(&mailbox.id).await.unwrap();
    core.secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await
        .unwrap();
}

/// Several workers share a database: a mailbox removed through one process's console stops
/// syncing in every other process at its next start-up round (it was not told).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_removed_by_another_process_stops_at_the_next_round() {
    let sb = sandbox().await;
    let (dir, core) = core().await;
    let mailbox = app_only_support(&core, &sb).await;
    connect_psa(&core, &sb).await;
    let lock = DataDirLock::acquire(dir.path(), "engine test").unwrap();
    let options = EngineOptions {
        webhook_any_port: true,
        ..Default::default()
    };
    let engine = Engine::start(core.clone(), EventBus::new(), &lock, options)
        .await
        .unwrap();
    assert_eq!(
        engine.started().await,
        EngineState::Running { mailboxes: 1 }
    );
    assert!(engine.statuses().iter().any(|s| s.mailbox_id == mailbox.id));

    // Another process removes it: straight from the store, with no call to this engine.
    core.store().delete_mailbox(&mailbox.id).await.unwrap();
    engine.refresh();
    let start = std::time::Instant::now();
    while !engine.statuses().is_empty() || !engine.report().mailboxes.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the removed mailbox still syncs: {:?}",
            engine.statuses()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.stop().await;
}

/// A changed PSA connection (here, or through another worker's console on a shared database)
/// applies at the next start-up round, without a restart: a wrong client secret makes the
/// next email fail to reach HaloPSA, the right one again lets it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_psa_connection_applies_without_a_restart() {
    let sb = sandbox().await;
    let (dir, core) = core().await;
    let mailbox = app_only_support(&core, &sb).await;
    connect_psa(&core, &sb).await;
    let lock = DataDirLock::acquire(dir.path(), "engine test").unwrap();
    let options = EngineOptions {
        webhook_any_port: true,
        ..Default::default()
    };
    let events = EventBus::new();
    let mut rx = events.subscribe();
    let engine = Engine::start(core.clone(), events, &lock, options)
        .await
        .unwrap();
    assert_eq!(
        engine.started().await,
        EngineState::Running { mailboxes: 1 }
    );
    // The first round's `Running`; from here on, each one ends a round this test asked for.
    next_engine_state(&mut rx, |s| matches!(s, EngineState::Running { .. })).await;
    engine.import_now(&mailbox.id).await.unwrap();
    let email = |subject: &'static str| {
        let core = core.clone();
        async move {
            core.store()
                .inbound_log(&mailroom_store::inbound::LogQuery::default())
                .await
                .unwrap()
                .into_iter()
                .find(|e| e.subject == subject)
                .expect("the email is listed")
        }
    };
    // Processes the email (again) and waits until it is done or failed.
    let settle = |id: Option<i64>| {
        let engine = &engine;
        let email = &email;
        let mailbox = &mailbox;
        async move {
            // Settled after a new attempt (a reprocess may answer before it starts).
            let before = match id {
                Some(_) => email("After the change").await.attempts,
                None => 0,
            };
            match id {
                Some(id) => engine.reprocess(id).await.unwrap(),
                None => {
                    engine.import_now(&mailbox.id).await.unwrap();
                }
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let e = email("After the change").await;
                if e.attempts > before && matches!(e.state, EmailState::Done | EmailState::Failed) {
                    return e;
                }
                assert!(std::time::Instant::now() < deadline, "not settled: {e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };

    let receiver = engine.webhooks().expect("the receiver runs").local_addr();

    // Another process saves a wrong secret; this engine is only asked for a round.
    let t = sb.tenant();
    core.set_psa_connection(
        &sb.psa_url(),
        &t.psa.client_id,
        SecretValue::new("not-the-secret"),
        Some(&t.psa.tenant),
    )
    .await
    .unwrap();
    engine.refresh();
    next_engine_state(&mut rx, |s| matches!(s, EngineState::Running { .. })).await;
    sb.graph()
        .deliver(mail("pat@fabrikam.test", "Pat Smith", "After the change"))
        .unwrap();
    let failed = settle(None).await;
    // The receiver kept its address (the PSA's tab and webhook, Graph's subscriptions, point
    // at it); only the pipeline was rebuilt.
    assert_eq!(engine.webhooks().unwrap().local_addr(), receiver);
    assert_eq!(failed.state, EmailState::Failed);
    assert_eq!(
        failed.error_code.as_deref(),
        Some("psa_unauthorized"),
        "{failed:?}"
    );

    // The right secret again: the email goes through.
    connect_psa(&core, &sb).await;
    engine.refresh();
    next_engine_state(&mut rx, |s| matches!(s, EngineState::Running { .. })).await;
    let done = settle(Some(failed.id)).await;
    assert_eq!(done.state, EmailState::Done, "{done:?}");
    engine.stop().await;
}
