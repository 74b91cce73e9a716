//! Webhooks on several workers sharing one PostgreSQL database (issue 16): behind a load
//! balancer, Graph's and HaloPSA's posts reach whichever worker is up.
//!
//! - A Graph notification is accepted by a worker other than the one that created the
//!   subscription, and by one that remembered an older subscription that another worker has
//!   since recreated; each email is still exactly one ticket.
//! - The same signed HaloPSA delivery posted to two workers at once is applied once and
//!   acknowledged as a replay by the other; none is answered 503.
//!
//! No keyring: the workers' secrets are sealed in the database.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mailroom_engine::events::EventBus;
use mailroom_engine::pipeline::Pipeline;
use mailroom_engine::sync::{SyncOptions, SyncSupervisor};
use mailroom_engine::webhooks::{WebhookOptions, Webhooks};
use mailroom_engine::Core;
use mailroom_secrets::sealed::{SealingKey, SealingKeys};

/// One worker: its core on the shared database, a pipeline, and a receiver.
struct Worker {
    _dir: tempfile::TempDir,
    _core: Core,
    supervisor: Arc<SyncSupervisor>,
    hooks: Webhooks,
}

async fn connect(url: &str, key: &SealingKey) -> (tempfile::TempDir, Core) {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::connect_sealed(
        url,
        dir.path(),
        SealingKeys {
            current: key.clone(),
            previous: None,
        },
    )
    .await
    .unwrap();
    (dir, core)
}

/// A worker on the shared database, receiving for `mailbox` (already set up there).
async fn worker(url: &str, key: &SealingKey, mailbox: &mailroom_engine::Mailbox) -> Worker {
    let (dir, core) = connect(url, key).await;
    let pipeline = Pipeline::from_core(&core, EventBus::new()).await.unwrap();
    let supervisor = Arc::new(SyncSupervisor::new(
        Arc::new(pipeline),
        SyncOptions {
            default_interval: Duration::from_secs(24 * 3600),
            ..Default::default()
        },
    ));
    let hooks = Webhooks::start(
        quiet(),
        core.store().clone(),
        core.secrets().clone(),
        mailroom_clock::system(),
        Some(supervisor.clone()),
    )
    .await
    .unwrap();
    let graph = core.graph_client_for(mailbox).await.unwrap();
    hooks.add_mailbox(mailbox.clone(), graph).await;
    Worker {
        _dir: dir,
        _core: core,
        supervisor,
        hooks,
    }
}

impl Worker {
    async fn stop(self) {
        self.hooks.shutdown();
        self.supervisor.shutdown().await;
    }
}

fn quiet() -> WebhookOptions {
    WebhookOptions {
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        fallback_interval: Duration::from_secs(24 * 3600),
        renew_check_every: Duration::from_secs(24 * 3600),
        ..Default::default()
    }
}

fn tickets_for(sb: &mailroom_sandbox::Sandbox, mid: &str) -> usize {
    let mid = mid.trim_matches(['<', '>']);
    sb.halo()
        .tickets()
        .iter()
        .filter(|t| t.to_string().contains(mid))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_notifications_are_accepted_by_any_worker() {
    let sb = sandbox().await;
    let cluster = mailroom_pg_test::TestPostgres::shared().expect("a throwaway PostgreSQL");
    let url = cluster.new_database().unwrap();
    let key = SealingKey::generate().unwrap();

    // The mailbox and the PSA connection, set up once on the shared database.
    let (_setup_dir, setup) = connect(&url, &key).await;
    let t = sb.tenant();
    let mailbox = app_only_support(&setup, &sb).await;
    connect_psa(&setup, &sb).await;
    let mailbox = setup.store().mailbox(&mailbox.id).await.unwrap();
    let a = worker(&url, &key, &mailbox).await;
    let b = worker(&url, &key, &mailbox).await;
    let id = mailbox.id.clone();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // Worker A creates the subscription: Graph posts to A.
    a.hooks.create_subscription(&id).await.unwrap();
    let first = sb
        .graph()
        .deliver(mail("pat@fabrikam.test", "Pat Smith", "Printer on fire"));
    let first = first.unwrap();
    until("the first email's ticket", || async {
        tickets_for(&sb, &first.internet_message_id) == 1
    })
    .await;

    // Worker B recreates it (an admin's *Recreate subscription* reached B): Graph now posts to
    // B, with a new clientState. A still remembers the old subscription.
    b.hooks.create_subscription(&id).await.unwrap();
    let subscription = sb.graph().subscriptions().remove(0);
    assert_eq!(subscription.notification_url, b.hooks.notification_url(&id));

    // The load balancer hands a notification of the new subscription to A: accepted (not
    // dropped as a forgery), and the email is one ticket though B is told too.
    let stored_before = a.hooks.notifications(&id).await.unwrap().len();
    let second = sb
        .graph()
        .deliver(mail("kim@fabrikam.test", "Kim Lee", "VPN drops"))
        .unwrap();
    let resource = format!("Users/{}/Messages/{}", second.mailbox_id, second.id);
    let body = serde_json::json!({"value": [{
        "subscriptionId": subscription.id,
        "changeType": "created",
        "resource": resource,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "@odata.id": resource, "id": second.id},
        "clientState": subscription.client_state,
        "tenantId": t.tenant_id,
    }]});
    let answer = http
        .post(a.hooks.notification_url(&id))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    until("A stored the notification it was handed", || async {
        a.hooks.notifications(&id).await.unwrap().len() >= stored_before + 2
    })
    .await;
    let rejected = a
        .hooks
        .events(&id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.as_str() == "rejected")
        .count();
    assert_eq!(rejected, 0, "no notification was refused as a forgery");
    until("the second email's ticket", || async {
        tickets_for(&sb, &second.internet_message_id) == 1
    })
    .await;
    // Both workers were told; every email is still one ticket.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tickets_for(&sb, &first.internet_message_id), 1);
    assert_eq!(tickets_for(&sb, &second.internet_message_id), 1);
    a.stop().await;
    b.stop().await;
}

/// A payload as HaloPSA sends it (reference §4.2): `ticket`'s status changed.
fn psa_payload(id: &str, ticket: i64) -> String {
    let at = chrono::Utc::now();
    serde_json::json!({
        "id": id,
        "webhook_id": "53232637-7724-4a19-b126-3c7267a292aa",
        "notification_id": 41,
        "escmsg_id": uuid::Uuid::new_v4().to_string(),
        "event": "ticket status changed",
        "message": format!("The status has been changed for Ticket ID: {ticket:07}."),
        "object_id": ticket,
        "agent_id": 3,
        "timestamp": format!("{}.{:07}Z", at.format("%Y-%m-%dT%H:%M:%S"), at.timestamp_subsec_nanos() / 100),
        "ticket": {"id": ticket, "summary": "Printer", "status_id": 2, "tickettype_id": 25,
                   "client_id": 1, "site_id": 95, "customfields": [], "hasbeenclosed": false},
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psa_delivery_posted_to_two_workers_at_once_is_applied_once() {
    use base64::Engine as _;
    let cluster = mailroom_pg_test::TestPostgres::shared().expect("a throwaway PostgreSQL");
    let url = cluster.new_database().unwrap();
    let key = SealingKey::generate().unwrap();
    let (_dir_a, a) = connect(&url, &key).await;
    let (_dir_b, b) = connect(&url, &key).await;
    // The certificate HaloPSA signs with, made through A; B reads it from the database.
    let generated = a.generate_webhook_certificate().await.unwrap();
    let cred = mailroom_graph::CertificateCredential::from_pfx(&generated.pfx, &generated.password)
        .unwrap();
    let signer =
        ring::signature::RsaKeyPair::from_pkcs8(cred.private_key_pkcs8().expose()).unwrap();
    let mut receivers = Vec::new();
    for core in [&a, &b] {
        receivers.push(
            Webhooks::start(
                quiet(),
                core.store().clone(),
                core.secrets().clone(),
                mailroom_clock::system(),
                None,
            )
            .await
            .unwrap(),
        );
    }
    let urls: Vec<String> = receivers
        .iter()
        .map(|r| {
            format!(
                "http://{}{}",
                r.local_addr(),
                mailroom_engine::psa_webhook::PSA_WEBHOOK_PATH
            )
        })
        .collect();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |url: String, body: String, signature: String| {
        let http = http.clone();
        let thumbprint = cred.thumbprint_sha1_hex();
        async move {
            let resp = http
                .post(url)
                .header("Content-Type", "application/json")
                .header("X-Halo-Signature", signature)
                .header("X-Halo-Certificate-Thumbprint", thumbprint)
                .body(body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };

    const DELIVERIES: usize = 20;
    for n in 0..DELIVERIES {
        let body = psa_payload(&uuid::Uuid::new_v4().to_string(), 5000 + n as i64);
        let mut signature = vec![0; signer.public().modulus_len()];
        signer
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                body.as_bytes(),
                &mut signature,
            )
            .unwrap();
        let signature = base64::engine::general_purpose::STANDARD.encode(signature);
        // HaloPSA retries on another worker while the first still handles it.
        let (to_a, to_b) = tokio::join!(
            post(urls[0].clone(), body.clone(), signature.clone()),
            post(urls[1].clone(), body.clone(), signature)
        );
        let mut answers = [to_a, to_b];
        answers.sort();
        assert_eq!(
            answers,
            [
                (200, "already received".to_string()),
                (200, "received".to_string())
            ],
            "delivery {n}"
        );
    }
    let stored = b.psa_webhook_deliveries(100, None).await.unwrap();
    let count = |v: mailroom_store::psa_webhooks::Verification| {
        stored.iter().filter(|d| d.verification == v).count()
    };
    assert_eq!(
        count(mailroom_store::psa_webhooks::Verification::Verified),
        DELIVERIES
    );
    assert_eq!(
        count(mailroom_store::psa_webhooks::Verification::Replay),
        DELIVERIES
    );
    for r in receivers {
        r.shutdown();
    }
}
