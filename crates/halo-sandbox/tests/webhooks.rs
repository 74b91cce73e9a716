//! Outbound webhooks delivered to a local axum receiver, signed with an uploaded PFX.

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use base64::Engine as _;
use common::Harness;
use reqwest::StatusCode;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::{json, Value};

type Captured = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receiver() -> (String, Captured) {
    let captured: Captured = Arc::default();
    let sink = captured.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((headers, body));
                "received"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), captured)
}

fn verifier() -> rsa::pkcs1v15::VerifyingKey<sha2::Sha256> {
    let pem = include_str!("fixtures/webhook-signing.cert.pem");
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let key = rsa::RsaPublicKey::from_public_key_der(cert.public_key().raw).unwrap();
    rsa::pkcs1v15::VerifyingKey::new(key)
}

#[tokio::test]
async fn signed_deliveries_for_ticket_and_action_events_are_recorded() {
    let (url, captured) = receiver().await;
    let h = Harness::start().await;
    let token = h.token().await;

    // Upload the PFX as an attachment, then register it as a certificate.
    let pfx = include_bytes!("fixtures/webhook-signing.pfx");
    let (status, att) = h
        .post(
            &token,
            "Attachment",
            json!([{"filename": "webhook-signing.pfx",
                    "data_base64": base64::engine::general_purpose::STANDARD.encode(pfx)}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{att}");
    let (status, bad) = h
        .post(
            &token,
            "Certificate",
            json!([{"name": "Wrong", "attachment_id": att["id"], "new_password": "nope"}]),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let (status, cert) = h
        .post(
            &token,
            "Certificate",
            json!([{"name": "Mailroom", "attachment_id": att["id"],
                    "new_password": "sandbox-pfx-password"}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cert}");
    assert!(cert["subject"]
        .as_str()
        .unwrap()
        .contains("Mailroom Sandbox Webhook Signing"));
    assert_eq!(cert["thumbprint"].as_str().unwrap().len(), 40);
    assert!(cert.get("new_password").is_none());

    let (status, webhook) = h
        .post(
            &token,
            "Webhook",
            json!([{"name": "Mailroom", "url": url, "type": 0, "method": 0,
                    "authentication_type": 4, "certificate_id": cert["id"],
                    "events": [{"eventno": 3}, {"eventno": 31}]}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{webhook}");
    assert_eq!(webhook["certificate_name"], "Mailroom");
    let webhook_id = webhook["id"].as_str().unwrap().to_string();
    let (status, _) = h
        .post(
            &token,
            "Notification",
            json!([{"webhook_id": webhook_id, "type": -2, "delivery_method": 6,
                    "eventno": 76, "conditions": []}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    h.post(
        &token,
        "Tickets",
        json!([{"summary": "Hooked", "client_id": 1}]),
    )
    .await;
    h.post(
        &token,
        "Actions",
        json!([{"ticket_id": 1000, "outcome_id": 8, "note": "closing"}]),
    )
    .await;
    h.sandbox.flush_webhooks().await;

    let got = captured.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    let verifier = verifier();
    let mut events = Vec::new();
    for (headers, body) in &got {
        let sig = base64::engine::general_purpose::STANDARD
            .decode(headers["x-halo-signature"].as_bytes())
            .unwrap();
        let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap();
        verifier
            .verify(body, &sig)
            .expect("signature verifies with the certificate");
        assert_eq!(
            headers["x-halo-certificate-thumbprint"].to_str().unwrap(),
            cert["thumbprint"].as_str().unwrap()
        );
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(payload["webhook_id"], webhook_id.as_str());
        assert_eq!(payload["object_id"], 1000);
        assert_eq!(payload["ticket"]["id"], 1000);
        for key in [
            "id",
            "notification_id",
            "escmsg_id",
            "event",
            "message",
            "agent_id",
            "timestamp",
        ] {
            assert!(payload.get(key).is_some(), "{key} missing in {payload}");
        }
        events.push(payload["event"].as_str().unwrap().to_string());
    }
    events.sort();
    assert_eq!(
        events,
        ["action added", "new ticket logged", "ticket status changed"]
    );

    // A tampered body no longer verifies.
    let (headers, body) = &got[0];
    let sig = base64::engine::general_purpose::STANDARD
        .decode(headers["x-halo-signature"].as_bytes())
        .unwrap();
    let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap();
    let mut tampered = body.to_vec();
    tampered.push(b' ');
    assert!(verifier.verify(&tampered, &sig).is_err());

    let deliveries = h.sandbox.webhook_deliveries();
    assert_eq!(deliveries.len(), 3);
    assert!(deliveries
        .iter()
        .all(|d| d.succeeded() && d.response_body == "received"));
    let (_, log) = h
        .get(&token, &format!("WebhookEvent?webhook_id={webhook_id}"))
        .await;
    assert_eq!(log["record_count"], 3);
    let first = &log["webhookevents"][0];
    assert_eq!(first["responsestatus"], 200);
    assert!(first["requestheaders"]
        .as_str()
        .unwrap()
        .contains("X-Halo-Signature"));
    assert_eq!(first["error"], false);
}

#[tokio::test]
async fn basic_auth_event_only_and_unreachable_receivers() {
    let (url, captured) = receiver().await;
    let h = Harness::start().await;
    let token = h.token().await;
    h.post(
        &token,
        "Webhook",
        json!([{"name": "Basic", "url": url, "authentication_type": 1,
                "basic_username": "halo", "basic_password": "s3cret", "payload_type": 2,
                "events": [{"eventno": 3}]}]),
    )
    .await;
    // A port that was just released: nothing listens there any more.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/gone", dead.local_addr().unwrap());
    drop(dead);
    h.post(
        &token,
        "Webhook",
        json!([{"name": "Dead", "url": dead_url, "events": [{"eventno": 3}]}]),
    )
    .await;
    let (_, hooks) = h.get(&token, "Webhook").await;
    assert!(hooks
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w.get("basic_password").is_none()));

    h.post(&token, "Tickets", json!({"summary": "Hi", "client_id": 2}))
        .await;
    h.sandbox.flush_webhooks().await;
    let got = captured.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("halo:s3cret")
    );
    assert_eq!(headers["authorization"], expected.as_str());
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert!(payload.get("ticket").is_none(), "event-only payload");
    assert_eq!(payload["event"], "new ticket logged");

    let deliveries = h.sandbox.webhook_deliveries();
    assert_eq!(deliveries.len(), 2);
    let failed = deliveries.iter().find(|d| !d.succeeded()).unwrap();
    assert!(failed
        .error
        .as_deref()
        .unwrap()
        .contains("could not be reached"));
    let ok = deliveries.iter().find(|d| d.succeeded()).unwrap();
    assert!(ok
        .request_headers
        .iter()
        .any(|(k, v)| k == "Authorization" && v == "Basic <redacted>"));
}
