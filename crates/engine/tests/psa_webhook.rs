//! HaloPSA's webhook to Mailroom's receiver (issue 11 #6): a delivery signed with Mailroom's
//! certificate is stored and applied before it is answered; a forgery, a replay, another
//! certificate's signature, an unsigned or stale delivery and a malformed body are each refused
//! (or, for a replay, acknowledged without being applied) with the reason stored; a burst of
//! 1,000 deliveries is answered and stored. Needs a Secret Service (the certificate's key).

use std::sync::Arc;

use base64::Engine as _;
use mailroom_engine::psa_webhook::{
    Encoding, Padding, PsaWebhookSettings, SignatureScheme, PSA_WEBHOOK_PATH,
};
use mailroom_engine::webhooks::{WebhookOptions, Webhooks};
use mailroom_engine::Core;
use mailroom_graph::CertificateCredential;
use mailroom_secrets::Secrets;
use mailroom_store::psa_webhooks::Verification;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256};

struct Rig {
    _dir: tempfile::TempDir,
    core: Core,
    _hooks: Webhooks,
    url: String,
    http: reqwest::Client,
    key: Arc<RsaKeyPair>,
    thumbprint: String,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets::with_service(format!("mailroom-test-{}", uuid::Uuid::new_v4()));
    let core = Core::open_with_secrets(dir.path(), secrets).await.unwrap();
    let generated = core.generate_webhook_certificate().await.unwrap();
    let cred = CertificateCredential::from_pfx(&generated.pfx, &generated.password).unwrap();
    let key = RsaKeyPair::from_pkcs8(cred.private_key_pkcs8().expose()).unwrap();
    let hooks = Webhooks::start(
        WebhookOptions::default(),
        core.store().clone(),
        core.secrets().clone(),
        mailroom_clock::system(),
        None,
    )
    .await
    .expect("receiver starts");
    Rig {
        url: format!("http://{}{PSA_WEBHOOK_PATH}", hooks.local_addr()),
        _dir: dir,
        core,
        _hooks: hooks,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        key: Arc::new(key),
        thumbprint: cred.thumbprint_sha1_hex(),
    }
}

fn sign(key: &RsaKeyPair, body: &[u8], pss: bool) -> Vec<u8> {
    let mut sig = vec![0; key.public().modulus_len()];
    let padding: &'static dyn ring::signature::RsaEncoding = if pss {
        &RSA_PSS_SHA256
    } else {
        &RSA_PKCS1_SHA256
    };
    key.sign(padding, &ring::rand::SystemRandom::new(), body, &mut sig)
        .unwrap();
    sig
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A payload as HaloPSA sends it (reference §4.2), for `ticket` with `status_id`.
fn payload(id: &str, ticket: i64, status_id: i64, at: chrono::DateTime<chrono::Utc>) -> String {
    serde_json::json!({
        "id": id,
        "webhook_id": "53232637-7724-4a19-b126-3c7267a292aa",
        "notification_id": 41,
        "escmsg_id": uuid::Uuid::new_v4().to_string(),
        "event": "ticket status changed",
        "message": format!("The status has been changed for Ticket ID: {ticket:07}."),
        "object_id": ticket,
        "agent_id": 3,
        // Seven fractional digits, as HaloPSA writes them.
        "timestamp": format!("{}.{:07}Z", at.format("%Y-%m-%dT%H:%M:%S"), at.timestamp_subsec_nanos() / 100),
        "ticket": {"id": ticket, "summary": "Printer", "status_id": status_id, "tickettype_id": 25,
                   "client_id": 1, "site_id": 95, "customfields": [], "hasbeenclosed": status_id == 9},
    })
    .to_string()
}

impl Rig {
    async fn post(&self, body: &str, headers: &[(&str, String)]) -> (u16, String) {
        let mut req = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn post_signed(&self, body: &str) -> (u16, String) {
        let sig = b64(&sign(&self.key, body.as_bytes(), false));
        self.post(
            body,
            &[
                ("X-Halo-Signature", sig),
                ("X-Halo-Certificate-Thumbprint", self.thumbprint.clone()),
            ],
        )
        .await
    }

    async fn newest(&self) -> mailroom_store::psa_webhooks::PsaDelivery {
        self.core
            .psa_webhook_deliveries(1, None)
            .await
            .unwrap()
            .remove(0)
    }
}

#[tokio::test]
async fn a_signed_delivery_is_stored_and_applied_and_its_replay_is_not_applied_again() {
    let r = rig().await;
    let now = chrono::Utc::now();
    let body = payload("8e25bc7b-e07e-4102-9398-5d6647e1e79d", 4242, 9, now);
    assert_eq!(r.post_signed(&body).await, (200, "received".into()));
    let stored = r.newest().await;
    assert_eq!(stored.verification, Verification::Verified);
    assert_eq!(stored.ticket_id, Some(4242));
    assert_eq!(stored.event.as_deref(), Some("ticket status changed"));
    assert!(
        stored
            .detail
            .contains("x-halo-signature verified (RSA PKCS#1 v1.5 SHA-256, base64)"),
        "{}",
        stored.detail
    );
    assert_eq!(stored.body, body);
    let ticket = r
        .core
        .store()
        .psa_ticket_state(4242)
        .await
        .unwrap()
        .unwrap();
    assert!(ticket.closed);
    assert_eq!((ticket.client_id, ticket.site_id), (Some(1), Some(95)));

    // The same delivery again (a resend, or someone replaying a captured one): acknowledged,
    // stored as a replay, not applied — the index keeps the first's state even though a newer
    // delivery reopened the ticket in between.
    let reopened = payload(
        "0f0f0f0f-0000-4000-8000-000000000001",
        4242,
        2,
        now + chrono::Duration::seconds(5),
    );
    assert_eq!(r.post_signed(&reopened).await.0, 200);
    assert_eq!(r.post_signed(&body).await, (200, "already received".into()));
    let replay = r.newest().await;
    assert_eq!(replay.verification, Verification::Replay);
    assert!(
        replay.detail.contains("already received as delivery #"),
        "{}",
        replay.detail
    );
    let ticket = r
        .core
        .store()
        .psa_ticket_state(4242)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ticket.status_id, Some(2));
    assert!(!ticket.closed);
}

#[tokio::test]
async fn forged_unsigned_foreign_stale_and_malformed_deliveries_are_refused_with_the_reason() {
    let r = rig().await;
    let now = chrono::Utc::now();
    let body = payload("11111111-1111-4111-8111-111111111111", 7, 9, now);

    // A forgery: a valid signature over another body.
    let other = payload("22222222-2222-4222-8222-222222222222", 7, 2, now);
    let sig = b64(&sign(&r.key, other.as_bytes(), false));
    let (status, answer) = r.post(&body, &[("X-Halo-Signature", sig)]).await;
    assert_eq!(status, 401);
    assert!(
        answer.contains("does not verify with Mailroom's certificate"),
        "{answer}"
    );
    assert_eq!(r.newest().await.verification, Verification::Forged);

    // Unsigned.
    let (status, answer) = r.post(&body, &[]).await;
    assert_eq!(status, 401);
    assert!(answer.contains("No signature header"), "{answer}");
    assert!(
        answer.contains("content-type"),
        "names what arrived: {answer}"
    );
    assert_eq!(r.newest().await.verification, Verification::Unsigned);

    // Signed with another certificate, which its thumbprint header names.
    let stranger = rig().await;
    let sig = b64(&sign(&stranger.key, body.as_bytes(), false));
    let (status, answer) = r
        .post(
            &body,
            &[
                ("X-Halo-Signature", sig),
                ("X-Halo-Certificate-Thumbprint", stranger.thumbprint.clone()),
            ],
        )
        .await;
    assert_eq!(status, 401);
    assert!(answer.contains(&stranger.thumbprint), "{answer}");
    assert!(answer.contains(&r.thumbprint), "{answer}");
    assert_eq!(
        r.newest().await.verification,
        Verification::WrongCertificate
    );

    // Stale: validly signed, but sent two days ago.
    let old = payload(
        "33333333-3333-4333-8333-333333333333",
        7,
        9,
        now - chrono::Duration::days(2),
    );
    let (status, answer) = r.post_signed(&old).await;
    assert_eq!(status, 401);
    assert!(answer.contains("older than the 24 h"), "{answer}");
    assert_eq!(r.newest().await.verification, Verification::Stale);

    // Malformed: signed, but not a payload.
    for bad in ["not json at all", r#"{"hello":"world"}"#] {
        let (status, answer) = r.post_signed(bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(answer.contains("not a HaloPSA webhook payload"), "{answer}");
        assert_eq!(r.newest().await.verification, Verification::Malformed);
    }
    // Nothing of it was applied.
    assert_eq!(r.core.store().psa_ticket_state(7).await.unwrap(), None);
}

#[tokio::test]
async fn a_pinned_scheme_verifies_pss_in_hex_under_another_header_and_refuses_the_rest() {
    let r = rig().await;
    let now = chrono::Utc::now();
    let body = payload("44444444-4444-4444-8444-444444444444", 8, 1, now);
    // Detected without settings: PSS, hex, a header of any name.
    let sig = hex::encode(sign(&r.key, body.as_bytes(), true));
    assert_eq!(r.post(&body, &[("X-Signature", sig.clone())]).await.0, 200);
    assert!(r
        .newest()
        .await
        .detail
        .contains("x-signature verified (RSA-PSS SHA-256, hex)"));

    // Pinned to PKCS#1 v1.5 in base64 under X-Halo-Signature: the PSS/hex one is refused.
    r.core
        .set_psa_webhook_settings(&PsaWebhookSettings {
            signature: SignatureScheme {
                header: Some("X-Halo-Signature".into()),
                padding: Some(Padding::Pkcs1v15Sha256),
                encoding: Some(Encoding::Base64),
            },
            ..Default::default()
        })
        .await
        .unwrap();
    let body = payload("55555555-5555-4555-8555-555555555555", 8, 2, now);
    let sig = hex::encode(sign(&r.key, body.as_bytes(), true));
    let (status, answer) = r.post(&body, &[("X-Signature", sig)]).await;
    assert_eq!(status, 401);
    assert!(answer.contains("No X-Halo-Signature header"), "{answer}");
    assert_eq!(r.post_signed(&body).await.0, 200);
    assert_eq!(
        r.core
            .set_psa_webhook_settings(&PsaWebhookSettings {
                max_age_hours: 0,
                ..Default::default()
            })
            .await
            .unwrap_err()
            .code(),
        mailroom_engine::ErrorCode::InvalidInput
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_a_thousand_deliveries_is_answered_and_stored() {
    let r = Arc::new(rig().await);
    let now = chrono::Utc::now();
    let started = std::time::Instant::now();
    // HaloPSA delivers from a pool of connections, not one connection per delivery: 50 at a
    // time here, all 1,000 queued at once.
    let pool = Arc::new(tokio::sync::Semaphore::new(50));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000i64 {
        let r = r.clone();
        let pool = pool.clone();
        tasks.spawn(async move {
            let _slot = pool.acquire_owned().await.unwrap();
            let body = payload(
                &uuid::Uuid::new_v4().to_string(),
                10_000 + i % 50,
                i % 5,
                now,
            );
            r.post_signed(&body).await.0
        });
    }
    let mut answered = 0;
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
        answered += 1;
    }
    assert_eq!(answered, 1000);
    let counts = r.core.store().psa_delivery_counts().await.unwrap();
    assert_eq!(counts, vec![(Verification::Verified, 1000)]);
    println!(
        "1000 signed deliveries answered and stored in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}
