//! Fault knobs and counters over real listeners.
mod common;
use common::*;
use mailroom_sandbox::{FaultRule, Service};

#[tokio::test]
async fn fail_next_n_counts_and_graph_retry_after() {
    let sb = start().await;
    let url = sb.identity().openid_configuration_url();
    sb.faults()
        .add(FaultRule::fail_next(
            Service::Identity,
            "*/openid-configuration",
            2,
            503,
        ))
        .unwrap();
    let mut statuses = vec![];
    for _ in 0..3 {
        statuses.push(http().get(&url).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, vec![503, 503, 200]);
    assert_eq!(
        sb.faults().count(
            Service::Identity,
            "GET",
            "/{tenant}/v2.0/.well-known/openid-configuration"
        ),
        3
    );
    // Graph-shaped 429 with fractional Retry-After.
    sb.faults()
        .add(FaultRule::fail_next(Service::Graph, "/v1.0/*", 1, 429).with_retry_after(2.128))
        .unwrap();
    let r = http()
        .get(format!("{}/v1.0/me", sb.graph_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2.128");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert!(sb.faults().total(Service::Graph) >= 1);
}

#[tokio::test]
async fn drop_closes_without_response_then_recovers() {
    let sb = start().await;
    let url = sb.identity().openid_configuration_url();
    sb.faults()
        .add(FaultRule::drop_next(Service::Identity, "*", 1))
        .unwrap();
    let err = http().get(&url).send().await;
    assert!(err.is_err(), "connection dropped");
    assert_eq!(http().get(&url).send().await.unwrap().status(), 200);
    assert_eq!(sb.faults().rules()[0].applied, 1);
}

#[tokio::test]
async fn latency_delays_only_matching_requests() {
    let sb = start().await;
    let slow = sb.identity().openid_configuration_url();
    let fast = format!(
        "{}/{}/discovery/v2.0/keys",
        sb.authority_url(),
        sb.tenant().tenant_id
    );
    sb.faults()
        .add(FaultRule::latency(
            Service::Identity,
            "*/openid-configuration",
            1500,
        ))
        .unwrap();
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (o1, o2) = (order.clone(), order.clone());
    let a = tokio::spawn(async move {
        http().get(&slow).send().await.unwrap();
        o1.lock().unwrap().push("slow");
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let b = tokio::spawn(async move {
        http().get(&fast).send().await.unwrap();
        o2.lock().unwrap().push("fast");
    });
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(*order.lock().unwrap(), vec!["fast", "slow"]);
    assert_eq!(sb.faults().rules()[0].applied, 1);
}

#[tokio::test]
async fn expire_tokens_knob_and_control_api() {
    let sb = start().await;
    let tid = sb.tenant().tenant_id.clone();
    let secret = sb.tenant().daemon_app.client_secret.clone().unwrap();
    let (_, body) = token(
        &sb,
        &tid,
        &[
            ("client_id", mailroom_sandbox::identity::DAEMON_APP_ID),
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    let at = body["access_token"].as_str().unwrap().to_string();
    use mailroom_graph_sandbox::auth::TokenValidator;
    assert!(sb.identity().validate(&at).is_ok());
    let r = http()
        .post(format!("{}/faults/expire-tokens", sb.control_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(sb.identity().validate(&at).is_err());
    // faults through the control API
    let r = http().post(format!("{}/faults", sb.control_url()))
        .json(&serde_json::json!({"service": "psa", "path": "/api/*", "count": 1, "action": {"kind": "fail", "status": 500}}))
        .send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = http()
        .get(format!("{}/api/Tickets", sb.psa_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let stats: serde_json::Value = http()
        .get(format!("{}/stats/requests", sb.control_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["service"] == "psa"));
}

#[tokio::test]
async fn psa_429_knob_answers_the_documented_plain_text_on_the_token_endpoint_too() {
    let sb = start().await;
    sb.faults()
        .add(FaultRule::psa_rate_limited("/auth/token", 2))
        .unwrap();
    sb.faults()
        .add(FaultRule::psa_rate_limited("/api/*", 1).with_retry_after(7.0))
        .unwrap();
    for _ in 0..2 {
        let r = http()
            .post(format!("{}/auth/token", sb.psa_url()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert!(
            r.headers().get("retry-after").is_none(),
            "not sent by default"
        );
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert_eq!(
            r.text().await.unwrap(),
            "Rate Limit Reached - 300 Requests per rolling 5 minute window"
        );
    }
    let r = http()
        .post(format!("{}/auth/token", sb.psa_url()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 429, "the knob applied twice only");
    let r = http()
        .get(format!("{}/api/Tickets", sb.psa_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert!(r.text().await.unwrap().starts_with("Rate Limit Reached"));
}
