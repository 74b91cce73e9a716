//! Crash recovery: a real child process runs the engine, is killed with SIGKILL in the middle
//! of a batch, and is started again; every email must end up as exactly one ticket or action.
//!
//! The child is this test binary itself, re-executed with `--ignored --exact crash_child` and
//! `MAILROOM_CRASH_CHILD` describing the sandbox and the database.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mailroom_engine::events::EventBus;
use mailroom_engine::pipeline::{Pipeline, PipelineConfig};
use mailroom_engine::sync::{scan_once, SyncOptions};
use mailroom_graph::{
    AppOnlyTokens, AppRegistration, ClientCredential, Cloud, GraphClient, IdentityClient,
    MailboxRef, Secret,
};
use mailroom_psa::{PsaClient, PsaConfig};
use mailroom_sandbox::{FaultRule, Service};
use mailroom_store::inbound::EmailState;
use mailroom_store::Store;
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Serialize, Deserialize)]
struct ChildSpec {
    db: String,
    mailbox_id: String,
    authority_url: String,
    graph_url: String,
    psa_url: String,
    tenant_id: String,
    daemon_client_id: String,
    daemon_secret: String,
    psa_client_id: String,
    psa_secret: String,
    psa_tenant: String,
    lease_secs: u64,
}

const CHILD_ENV: &str = "MAILROOM_CRASH_CHILD";

/// The engine in the child process: scans until nothing is left to do.
#[test]
#[ignore = "runs only as the child process of killed_mid_batch_and_restarted_every_email_yields_exactly_one_ticket_or_action"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let spec: ChildSpec = serde_json::from_str(&spec).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let clock = mailroom_clock::system();
        // As `mailroom run` and the app do: the data directory's lock first; holding it proves
        // no other process works on the store, so claims left by a killed one are released now.
        let dir = std::path::Path::new(&spec.db).parent().unwrap();
        let lock = mailroom_store::DataDirLock::acquire(dir, "crash child").unwrap();
        let store = Store::open(&spec.db).await.unwrap();
        let released = store.release_all_claims(&lock, clock.now()).await.unwrap();
        eprintln!("child start: {released} claim(s) released");
        let mailbox = store.mailbox(&spec.mailbox_id).await.unwrap();
        let mut config =
            PsaConfig::new(&spec.psa_url, &spec.psa_client_id, spec.psa_secret.as_str());
        config.tenant = Some(spec.psa_tenant.clone());
        let psa = PsaClient::new(config, clock.clone()).unwrap();
        let app = AppRegistration {
            cloud: Cloud::Custom {
                authority_url: Url::parse(&spec.authority_url).unwrap(),
                graph_url: Url::parse(&spec.graph_url).unwrap(),
            },
            tenant: spec.tenant_id.clone(),
            client_id: spec.daemon_client_id.clone(),
            credential: ClientCredential::Secret(Secret::new(spec.daemon_secret.clone())),
        };
        let graph = GraphClient::new(
            Url::parse(&spec.graph_url).unwrap(),
            Arc::new(AppOnlyTokens::new(IdentityClient::new(clock.clone()), app)),
            MailboxRef::User(SUPPORT.into()),
        )
        .with_immutable_ids(true);
        let pipeline = Arc::new(Pipeline::new(
            store.clone(),
            psa,
            clock,
            PipelineConfig::default(),
            EventBus::new(),
        ));
        let options = SyncOptions {
            lease: Duration::from_secs(spec.lease_secs),
            batch: 5,
            concurrency: 3,
            ..Default::default()
        };
        loop {
            let report = scan_once(&pipeline, &mailbox, &graph, &options, &Default::default())
                .await
                .unwrap();
            eprintln!("child scan: {report:?}");
            if store.unfinished_count(Some(&mailbox.id)).await.unwrap() == 0 {
                break;
            }
        }
    });
}

fn spawn_child(spec: &ChildSpec) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, serde_json::to_string(spec).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child starts")
}

/// What the child needs to run the engine on `db` against `sb`.
fn child_spec(sb: &mailroom_sandbox::Sandbox, db: &std::path::Path, mailbox_id: &str) -> ChildSpec {
    let t = sb.tenant();
    ChildSpec {
        db: db.display().to_string(),
        mailbox_id: mailbox_id.to_string(),
        authority_url: sb.authority_url(),
        graph_url: sb.graph_url(),
        psa_url: sb.psa_url(),
        tenant_id: t.tenant_id.clone(),
        daemon_client_id: t.daemon_app.client_id.clone(),
        daemon_secret: t.daemon_app.client_secret.clone().unwrap(),
        psa_client_id: t.psa.client_id.clone(),
        psa_secret: t.psa.client_secret.clone(),
        psa_tenant: t.psa.tenant.clone(),
        lease_secs: 300,
    }
}

/// Each delivered email has exactly one ticket or action (by Message-ID) in the sandbox PSA.
/// A data directory (kept alive by the returned `TempDir`) whose database holds the Support
/// mailbox of `sb`, closed so that a child process can open it.
async fn data_dir_with_support(
    sb: &mailroom_sandbox::Sandbox,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    mailroom_store::Mailbox,
) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mailroom.db");
    let store = Store::open(&db).await.unwrap();
    let mailbox = add_mailbox(&store, sb, "Support", SUPPORT, default_settings()).await;
    store.close().await;
    (dir, db, mailbox)
}

fn exactly_one_each(
    sb: &mailroom_sandbox::Sandbox,
    delivered: &[mailroom_graph_sandbox::DeliveredMessage],
) {
    let tickets = sb.halo().tickets();
    let actions = sb.halo().actions();
    let norm = |s: &str| s.trim_matches(['<', '>']).to_lowercase();
    for d in delivered {
        let mid = norm(&d.internet_message_id);
        let t = tickets
            .iter()
            .filter(|t| t["email_message_id"].as_str().map(norm).as_deref() == Some(&mid))
            .count();
        let a = actions
            .iter()
            .filter(|a| a["email_message_id"].as_str().map(norm).as_deref() == Some(&mid))
            .count();
        assert_eq!(
            t + a,
            1,
            "{} → {t} ticket(s), {a} action(s)",
            d.internet_message_id
        );
    }
    assert_eq!(tickets.len() + actions.len(), delivered.len());
}

/// Issue 15: the kill lands after HaloPSA saved a batch of tickets and before Mailroom read
/// its answer (HaloPSA holds it back): the restart finds each of them by its Message-ID and
/// creates none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_a_batch_was_saved_and_before_its_answer_every_email_has_one_ticket() {
    let sb = sandbox().await;
    sb.faults()
        .add(FaultRule::late_answer(Service::Psa, "/api/Tickets", 30_000))
        .unwrap();
    let (_dir, db, mailbox) = data_dir_with_support(&sb).await;
    let delivered: Vec<_> = (0..8)
        .map(|i| {
            sb.graph()
                .deliver(mail(
                    "pat@fabrikam.test",
                    "Pat Smith",
                    &format!("Batch crash {i}"),
                ))
                .unwrap()
        })
        .collect();
    let spec = child_spec(&sb, &db, &mailbox.id);
    let mut child = spawn_child(&spec);
    let deadline = Instant::now() + Duration::from_secs(120);
    // A batch of several is saved; its answer is held back 30 s.
    while sb.halo().tickets().len() < 2 {
        assert!(Instant::now() < deadline, "no batch was saved within 120 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child ended before the kill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let saved = sb.halo().tickets().len();
    eprintln!("killed with {saved} ticket(s) saved in one batch");
    {
        let store = Store::open(&db).await.unwrap();
        let confirmed = store
            .inbound_log(&mailroom_store::inbound::LogQuery::default())
            .await
            .unwrap()
            .iter()
            .filter(|e| e.ticket_id.is_some())
            .count();
        assert_eq!(confirmed, 0, "nothing was confirmed before the kill");
        store.close().await;
    }
    sb.faults().clear(None);
    let status = tokio::task::spawn_blocking(move || spawn_child(&spec).wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "restarted engine finished cleanly");
    exactly_one_each(&sb, &delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_batch_and_restarted_every_email_yields_exactly_one_ticket_or_action() {
    let sb = sandbox().await;
    // Slow PSA so the kill lands in the middle of the work.
    sb.faults()
        .add(FaultRule::latency(Service::Psa, "/api/*", 60))
        .unwrap();
    let (_dir, db, mailbox) = data_dir_with_support(&sb).await;

    let mut delivered = Vec::new();
    for i in 0..10 {
        delivered.push(
            sb.graph()
                .deliver(mail(
                    "pat@fabrikam.test",
                    "Pat Smith",
                    &format!("Crash test issue {i}"),
                ))
                .unwrap(),
        );
    }
    for i in 0..4 {
        let mut reply = mail("lee@fabrikam.test", "Lee Chen", &format!("Follow-up {i}"));
        reply.in_reply_to = Some(delivered[i].internet_message_id.clone());
        delivered.push(sb.graph().deliver(reply).unwrap());
    }

    let spec = child_spec(&sb, &db, &mailbox.id);

    let mut child = spawn_child(&spec);
    // Wait until the child has written some (but, with the latency, not all) PSA objects. The
    // child is another process, so this polls; the assertions below make sure the kill really
    // landed mid-batch.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let written = sb.halo().tickets().len() + sb.halo().actions().len();
        if written >= 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the child wrote nothing within 120 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited before it was killed: the kill must land mid-batch"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let at_kill = sb.halo().tickets().len() + sb.halo().actions().len();
    eprintln!("killed with {at_kill} PSA object(s) written");
    assert!(
        0 < at_kill && at_kill < delivered.len(),
        "the kill must land mid-batch: {at_kill} of {} written",
        delivered.len()
    );

    // Restart with the usual 5-minute lease: the new process holds the data directory's lock,
    // so it releases the dead one's claims at start and processes that mail at once.
    assert_eq!(spec.lease_secs, 300);
    let restarted = Instant::now();
    let status = tokio::task::spawn_blocking(move || spawn_child(&spec).wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "restarted engine finished cleanly");
    assert!(
        restarted.elapsed() < Duration::from_secs(120),
        "the restart did not wait for the lease"
    );

    {
        let store = Store::open(&db).await.unwrap();
        for e in store
            .inbound_log(&mailroom_store::inbound::LogQuery {
                limit: Some(100),
                ..Default::default()
            })
            .await
            .unwrap()
        {
            eprintln!(
                "{} {:?} {:?} {:?}",
                e.subject, e.state, e.skip_reason, e.skip_detail
            );
            for a in store.attempts(e.id).await.unwrap() {
                for l in a.log {
                    eprintln!("   [{}] {}", a.number, l.message);
                }
            }
        }
    }
    exactly_one_each(&sb, &delivered);

    let store = Store::open(&db).await.unwrap();
    let emails = store
        .inbound_log(&mailroom_store::inbound::LogQuery {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(emails.len(), delivered.len());
    assert!(
        emails.iter().all(|e| e.state == EmailState::Done),
        "{emails:#?}"
    );
}
