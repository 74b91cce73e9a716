//! Retry policy against a scripted HaloPSA-shaped server on 127.0.0.1: 5xx back-off, bounded
//! attempts, no blind retry of a POST after a 500, authinfo fallback to `{instance}/auth`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use mailroom_clock::ManualClock;
use mailroom_psa::*;
use serde_json::json;

#[derive(Debug)]
struct ClockSleeper(Arc<ManualClock>, Mutex<Vec<Duration>>);

impl Sleeper for ClockSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.0
            .advance(chrono::Duration::from_std(duration).unwrap());
        self.1.lock().unwrap().push(duration);
        Box::pin(async {})
    }
}

type Hits = Arc<Mutex<HashMap<String, u32>>>;

fn hit(hits: &Hits, key: &str) -> u32 {
    let mut map = hits.lock().unwrap();
    let n = map.entry(key.to_string()).or_default();
    *n += 1;
    *n
}

async fn token(State(hits): State<Hits>, uri: Uri) -> Response {
    hit(&hits, uri.path());
    Json(json!({"access_token": "t-1", "token_type": "Bearer", "expires_in": 3600, "scope": "all"}))
        .into_response()
}

async fn statuses(State(hits): State<Hits>) -> Response {
    if hit(&hits, "status") <= 2 {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    } else {
        Json(json!([{"id": 1, "name": "New"}])).into_response()
    }
}

async fn tickets(State(hits): State<Hits>) -> Response {
    hit(&hits, "tickets");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"ClassName": "System.NullReferenceException", "Message": "Object reference not set"})),
    )
        .into_response()
}

async fn users(State(hits): State<Hits>) -> Response {
    if hit(&hits, "users") == 1 {
        (StatusCode::BAD_GATEWAY, "Bad Gateway").into_response()
    } else {
        Json(json!({"id": 5, "name": "Dana", "site_id": 11.0})).into_response()
    }
}

async fn me(State(hits): State<Hits>) -> Response {
    hit(&hits, "me");
    (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()
}

async fn scripted() -> (String, Hits) {
    let hits: Hits = Arc::default();
    let app = Router::new()
        .route("/auth/token", post(token))
        .route("/api/Status", get(statuses))
        .route("/api/Tickets", post(tickets))
        .route("/api/Users", post(users))
        .route("/api/Agent/me", get(me))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn server_errors_are_retried_with_bounded_attempts() {
    let (base, hits) = scripted().await;
    let start = DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = ManualClock::frozen(start);
    let sleeper = Arc::new(ClockSleeper(clock.clone(), Mutex::new(Vec::new())));
    let mut config = PsaConfig::new(&base, "id", "secret");
    config.retry.max_attempts = 3;
    config.retry.jitter = false;
    let client = PsaClient::with_sleeper(config, clock.clone(), sleeper.clone()).unwrap();

    // 503, 503, 200: succeeds on the third attempt after 1 s and 2 s of back-off.
    let statuses = client.statuses().await.unwrap();
    assert_eq!(statuses[0].name.as_deref(), Some("New"));
    let count = |k: &str| hits.lock().unwrap().get(k).copied().unwrap_or(0);
    assert_eq!(count("status"), 3);
    assert_eq!(
        *sleeper.1.lock().unwrap(),
        vec![Duration::from_secs(1), Duration::from_secs(2)]
    );
    // /api/authinfo is absent (404), so the token came from {instance}/auth/token.
    assert_eq!(count("/auth/token"), 1);

    // A GET that keeps failing stops after max_attempts with a Server error.
    let err = client.me().await.unwrap_err();
    assert_eq!((err.kind, err.status), (ErrorKind::Server, Some(500)));
    assert_eq!(count("me"), 3);
    assert!(err.message.contains("boom"), "{}", err.message);

    // A POST answered with 500 is not repeated (it may have created the ticket) …
    let err = client
        .create_ticket(&NewTicket {
            summary: "s".into(),
            details_html: "d".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Server);
    assert!(
        err.message.contains("Object reference not set"),
        "{}",
        err.message
    );
    assert_eq!(count("tickets"), 1);

    // … but a 502 (the request never reached HaloPSA) is.
    let user = client
        .create_user(&NewUser {
            name: "Dana".into(),
            site_id: 11,
            emailaddress: "dana@northwind.test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((user.id, user.site_id), (5, Some(11)));
    assert_eq!(count("users"), 2);
}

/// A PSA that answers the first `burst` token requests and the first `burst` ticket GETs with
/// HaloPSA's documented plain-text 429 (optionally with `Retry-After`).
async fn bursty(burst: u32, retry_after: Option<&'static str>) -> (String, Hits) {
    async fn limited(retry_after: Option<&'static str>) -> Response {
        let mut resp = (
            StatusCode::TOO_MANY_REQUESTS,
            [("content-type", "text/plain; charset=utf-8")],
            "Rate Limit Reached - 300 Requests per rolling 5 minute window",
        )
            .into_response();
        if let Some(ra) = retry_after {
            resp.headers_mut()
                .insert("retry-after", ra.parse().unwrap());
        }
        resp
    }
    let hits: Hits = Arc::default();
    let h1 = hits.clone();
    let h2 = hits.clone();
    let app = Router::new()
        .route(
            "/auth/token",
            post(move || {
                let hits = h1.clone();
                async move {
                    if hit(&hits, "token") <= burst {
                        return limited(retry_after).await;
                    }
                    Json(json!({"access_token": "t", "token_type": "Bearer", "expires_in": 3600}))
                        .into_response()
                }
            }),
        )
        .route(
            "/api/Tickets",
            get(move || {
                let hits = h2.clone();
                async move {
                    if hit(&hits, "tickets") <= burst {
                        return limited(retry_after).await;
                    }
                    Json(json!({"page_no": 1, "page_size": 100, "record_count": 0, "tickets": []}))
                        .into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

fn burst_client(base: &str) -> (PsaClient, Arc<ManualClock>, Arc<ClockSleeper>) {
    let start = DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = ManualClock::frozen(start);
    let sleeper = Arc::new(ClockSleeper(clock.clone(), Mutex::new(Vec::new())));
    let mut config = PsaConfig::new(base, "id", "secret");
    config.auth_url = Some(format!("{base}/auth"));
    config.retry.jitter = false;
    let client = PsaClient::with_sleeper(config, clock.clone(), sleeper.clone()).unwrap();
    (client, clock, sleeper)
}

#[tokio::test]
async fn a_burst_of_429s_without_retry_after_recovers_within_seconds() {
    // Five 429s on the token endpoint, then five on /api/Tickets, none with Retry-After.
    // Before: the client blocked until its oldest request left its own 5-minute window.
    let (base, hits) = bursty(5, None).await;
    let (client, clock, sleeper) = burst_client(&base);
    let start = mailroom_clock::Clock::now(&*clock);
    let tickets = client.list_tickets(&TicketQuery::default()).await.unwrap();
    assert!(tickets.is_empty());
    let count = |k: &str| hits.lock().unwrap().get(k).copied().unwrap_or(0);
    assert_eq!((count("token"), count("tickets")), (6, 6));
    // Per burst: 1 + 2 + 4 + 8 + 16 s of back-off, one probe per step.
    let waits: Vec<u64> = sleeper
        .1
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.as_secs())
        .collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 1, 2, 4, 8, 16], "{waits:?}");
    let took = mailroom_clock::Clock::now(&*clock) - start;
    assert!(took <= chrono::Duration::seconds(62), "{took}");
    let state = client.throttle_state();
    assert!(!state.backing_off);
    assert_eq!((state.rate_limited_total, state.episodes_total), (10, 2));
    assert_eq!(
        state.last_message.as_deref(),
        Some("Rate Limit Reached - 300 Requests per rolling 5 minute window")
    );
}

#[tokio::test]
async fn retry_after_on_the_token_endpoint_is_honoured() {
    // Before: the token request's Retry-After was discarded.
    let (base, hits) = bursty(1, Some("42")).await;
    let (client, _clock, sleeper) = burst_client(&base);
    client.list_tickets(&TicketQuery::default()).await.unwrap();
    let waits = sleeper.1.lock().unwrap().clone();
    // 42 s after the token's 429 and again after the ticket GET's.
    assert_eq!(
        waits,
        [Duration::from_secs(42), Duration::from_secs(42)],
        "{waits:?}"
    );
    let count = |k: &str| hits.lock().unwrap().get(k).copied().unwrap_or(0);
    assert_eq!((count("token"), count("tickets")), (2, 2));
}

#[tokio::test]
async fn many_callers_send_one_probe_per_back_off_step() {
    let (base, hits) = bursty(3, None).await;
    let (client, _clock, _sleeper) = burst_client(&base);
    // A token first (3 × 429 on the token endpoint).
    client.list_tickets(&TicketQuery::default()).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.list_tickets(&TicketQuery::default()).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let count = |k: &str| hits.lock().unwrap().get(k).copied().unwrap_or(0);
    // The first caller's 3 × 429 + its success; then 20 callers succeed with nothing extra.
    assert_eq!(count("tickets"), 3 + 1 + 20, "no caller hammered the PSA");
    assert_eq!(client.throttle_state().probes_total, 3 + 3);
}

#[test]
fn plain_text_429_bodies_are_rate_limited() {
    let err = PsaError::from_response(
        "GET",
        "/api/Tickets",
        429,
        Some("text/plain; charset=utf-8"),
        "Rate Limit Reached - 300 Requests per rolling 5 minute window",
    );
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert!(
        err.message.contains("Rate Limit Reached"),
        "{}",
        err.message
    );
    let err = PsaError::from_response("POST", "/auth/token", 429, None, "Rate Limit Reached");
    assert_eq!(err.kind, ErrorKind::RateLimited);
}
