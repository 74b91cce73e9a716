//! The client against the HaloPSA sandbox (a stateful emulation served on 127.0.0.1).
//!
//! Time is a frozen `ManualClock`; the client's waits go through a sleeper that advances that
//! clock instead of sleeping, so rate-limit behaviour is asserted on request counts and order.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailroom_clock::{ManualClock, SharedClock};
use mailroom_halo_sandbox::{spawn_local, HaloSandbox, HaloSeed, RateLimit};
use mailroom_psa::*;
use mailroom_trace::{Collector, HttpExchange};
use serde_json::Value;

/// Advances the manual clock by each requested wait and records the waits.
#[derive(Debug)]
struct ClockSleeper {
    clock: Arc<ManualClock>,
    waits: Mutex<Vec<Duration>>,
}

impl Sleeper for ClockSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.clock
            .advance(chrono::Duration::from_std(duration).expect("wait fits"));
        self.waits.lock().unwrap().push(duration);
        Box::pin(tokio::task::yield_now())
    }
}

struct Harness {
    sandbox: HaloSandbox,
    base_url: String,
    clock: Arc<ManualClock>,
    sleeper: Arc<ClockSleeper>,
}

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

impl Harness {
    /// A sandbox and a client sharing one frozen clock.
    async fn new() -> Self {
        let clock = ManualClock::frozen(start());
        Self::with_sandbox_clock(clock.clone(), clock).await
    }

    /// A sandbox on `sandbox_clock`, the client on `client_clock`.
    async fn with_sandbox_clock(
        client_clock: Arc<ManualClock>,
        sandbox_clock: Arc<ManualClock>,
    ) -> Self {
        let sandbox = HaloSandbox::new(HaloSeed::default(), sandbox_clock as SharedClock);
        let (addr, _server) = spawn_local(sandbox.clone()).await.expect("sandbox listens");
        Harness {
            sandbox,
            base_url: format!("http://{addr}"),
            sleeper: Arc::new(ClockSleeper {
                clock: client_clock.clone(),
                waits: Mutex::new(Vec::new()),
            }),
            clock: client_clock,
        }
    }

    fn config(&self) -> PsaConfig {
        let creds = self.sandbox.credentials();
        PsaConfig::new(&self.base_url, creds.client_id, creds.client_secret)
    }

    fn client_with(&self, config: PsaConfig) -> PsaClient {
        PsaClient::with_sleeper(config, self.clock.clone(), self.sleeper.clone())
            .expect("client builds")
    }

    fn client(&self) -> PsaClient {
        self.client_with(self.config())
    }

    fn waits(&self) -> Vec<Duration> {
        self.sleeper.waits.lock().unwrap().clone()
    }
}

/// Runs `f` and returns its output with every exchange the client recorded.
async fn traced<F: Future>(f: F) -> (F::Output, Vec<HttpExchange>) {
    let collector = Collector::new();
    let out = mailroom_trace::with_sink(collector.clone(), f).await;
    (out, collector.drain())
}

fn is_token(x: &HttpExchange) -> bool {
    x.url.contains("/token")
}

fn api_calls(exchanges: &[HttpExchange]) -> Vec<&HttpExchange> {
    exchanges
        .iter()
        .filter(|x| x.url.contains("/api/") && !x.url.contains("/api/authinfo"))
        .collect()
}

#[tokio::test]
async fn probe_authenticates_and_reports_the_grant() {
    let h = Harness::new().await;
    let client = h.client();
    let (report, exchanges) = traced(client.probe()).await;
    let report = report.expect("probe succeeds");
    assert_eq!(report.agent.name.as_deref(), Some("Mailroom API"));
    assert_eq!(report.agent.isapiagent, Some(true));
    let names: Vec<_> = report
        .ticket_types
        .iter()
        .filter_map(|t| t.name.clone())
        .collect();
    assert!(names.contains(&"Incident".to_string()), "{names:?}");
    assert_eq!(report.granted_scopes, vec!["all".to_string()]);
    assert!(
        report.token_url.ends_with("/auth/token?tenant=sandbox"),
        "{}",
        report.token_url
    );

    // authinfo discovery, one token request, /Agent/me, /TicketType — all recorded.
    let urls: Vec<&str> = exchanges.iter().map(|x| x.url.as_str()).collect();
    assert_eq!(exchanges.len(), 4, "{urls:?}");
    assert!(urls[0].ends_with("/api/authinfo"));
    assert!(is_token(&exchanges[1]));
    assert!(urls[2].ends_with("/api/Agent/me"));
    assert!(urls[3].ends_with("/api/TicketType"));
    // The trace never holds the secret or the token.
    let secret = h.sandbox.credentials().client_secret;
    for x in &exchanges {
        let all = format!("{x:?}");
        assert!(
            !all.contains(&secret),
            "secret leaked into the trace: {all}"
        );
        assert!(
            !all.contains("Bearer ey") && !all.contains("Bearer "),
            "token leaked: {all}"
        );
    }
    // A second call reuses the cached token.
    let (_, again) = traced(client.me()).await;
    assert_eq!(again.len(), 1);
}

#[tokio::test]
async fn wrong_credentials_give_specific_errors() {
    let h = Harness::new().await;
    let mut config = h.config();
    config.client_secret = Secret::new("not-the-secret");
    let err = h.client_with(config).me().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized, "{err:?}");
    assert_eq!(err.status, Some(401));
    assert!(
        err.message.contains("client credentials are invalid"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("client ID or client secret"),
        "{}",
        err.message
    );

    let mut config = h.config();
    config.client_id = "somebody-else".into();
    let err = h.client_with(config).probe().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    assert!(err.message.contains("not registered"), "{}", err.message);
}

#[tokio::test]
async fn missing_scope_is_forbidden() {
    let h = Harness::new().await;
    let mut config = h.config();
    config.scopes = "read:tickets".into();
    let client = h.client_with(config);
    assert!(client.ticket_types().await.is_ok());
    let err = client.list_clients().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err:?}");
    assert_eq!(err.status, Some(403));
    assert!(err.message.contains("read:customers"), "{}", err.message);
    assert!(err.message.contains("Permissions"), "{}", err.message);

    let mut config = h.config();
    config.scopes = "frobnicate".into();
    let err = h.client_with(config).me().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err:?}");
    assert!(err.message.contains("scopes"), "{}", err.message);
}

#[tokio::test]
async fn unreachable_host_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let h = Harness::new().await;
    let mut config = PsaConfig::new(format!("http://{addr}"), "id", "secret");
    config.retry.max_attempts = 2;
    let err = h.client_with(config).probe().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transport, "{err:?}");
    assert!(
        err.message.contains("Could not reach HaloPSA"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_web_page_is_not_a_halo_instance() {
    let app = axum::Router::new().fallback(|| async {
        axum::response::Html(
            "<!DOCTYPE html><html><head><title>Welcome to nginx</title></head></html>",
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let h = Harness::new().await;
    let client = h.client_with(PsaConfig::new(format!("http://{addr}"), "id", "secret"));
    let err = client.probe().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Protocol, "{err:?}");
    assert!(
        err.message
            .contains("does not look like a HaloPSA instance"),
        "{}",
        err.message
    );
    let err = client.authinfo().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Protocol);

    // With an explicit auth URL the token endpoint's HTML is caught the same way.
    let mut config = PsaConfig::new(format!("http://{addr}"), "id", "secret");
    config.auth_url = Some(format!("http://{addr}/auth"));
    let err = h.client_with(config).me().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Protocol, "{err:?}");
}

#[tokio::test]
async fn users_are_found_by_exact_email_and_created() {
    let h = Harness::new().await;
    let client = h.client();
    let pat = client
        .find_users_by_email("PAT@fabrikam.test", None)
        .await
        .unwrap();
    assert_eq!(pat.len(), 1);
    assert_eq!(pat[0].id, 100);
    assert_eq!(pat[0].site_id, Some(10)); // emitted as 10.0 by the sandbox
                                          // "fabrikam.test" matches both seeded users in HaloPSA's search, but no exact address.
    assert!(client
        .find_users_by_email("fabrikam.test", None)
        .await
        .unwrap()
        .is_empty());
    assert!(client
        .find_users_by_email("dana@northwind.test", None)
        .await
        .unwrap()
        .is_empty());

    let created = client
        .create_user(&NewUser {
            name: "Dana".into(),
            site_id: 11,
            emailaddress: "dana@northwind.test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(created.id > 0);
    assert_eq!(created.client_id, Some(2));
    let found = client
        .find_users_by_email("dana@northwind.test", Some(2))
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![created.id]
    );
    let stored = h.sandbox.users();
    let dana = stored
        .iter()
        .find(|u| u["emailaddress"] == "dana@northwind.test")
        .expect("user stored");
    assert_eq!(dana["site_id"].as_f64(), Some(11.0));
    assert_eq!(
        client.get_user(created.id).await.unwrap().name.as_deref(),
        Some("Dana")
    );
}

#[tokio::test]
async fn ticket_action_and_attachments_round_trip() {
    let h = Harness::new().await;
    let client = h.client();
    let ticket = client
        .create_ticket(&NewTicket {
            summary: "Printer on fire".into(),
            details_html: "<p>It is <b>very</b> hot.</p>".into(),
            tickettype_id: Some(1),
            client_id: Some(1),
            site_id: Some(10),
            user_id: Some(100),
            priority_id: Some(3),
            email_message_id: Some("<m1@fabrikam.test>".into()),
            emailtolist: Some("support@contoso.test".into()),
            attachments: vec![NewAttachment::from_bytes(
                "log.txt",
                Some("text/plain".into()),
                b"smoke detected",
            )],
            donotapplytemplateintheapi: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(ticket.id >= 1000, "{ticket:?}");
    assert_eq!(ticket.user_id, Some(100));

    let action = client
        .create_action(&NewAction {
            ticket_id: ticket.id,
            outcome_id: Some(7),
            note_html: Some("<p>Any update?</p>".into()),
            emailfrom: Some("pat@fabrikam.test".into()),
            emailsubject: Some("RE: Printer on fire".into()),
            emailbody_html: Some("<p>Any update?</p>".into()),
            email_message_id: Some("<m2@fabrikam.test>".into()),
            hiddenfromuser: false,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(action.ticket_id, ticket.id);
    let upload = client
        .upload_attachment(
            &NewAttachment::from_bytes(
                "photo.png",
                Some("image/png".into()),
                &[0x89, b'P', b'N', b'G'],
            )
            .for_ticket(ticket.id, Some(action.id)),
        )
        .await
        .unwrap();
    assert!(upload.id > 0);

    // Read back through the API …
    let read = client.get_ticket(ticket.id).await.unwrap();
    assert_eq!(read.summary.as_deref(), Some("Printer on fire"));
    assert_eq!(read.email_message_id.as_deref(), Some("<m1@fabrikam.test>"));
    assert_eq!(read.site_id, Some(10));
    let actions = client.list_actions(ticket.id).await.unwrap();
    let ours = actions
        .iter()
        .find(|a| a.id == action.id)
        .expect("action listed");
    assert_eq!(ours.outcome_id, Some(7));
    assert_eq!(ours.emailfrom.as_deref(), Some("pat@fabrikam.test"));
    let attachments = client.list_attachments(ticket.id, None).await.unwrap();
    let mut names: Vec<_> = attachments
        .iter()
        .filter_map(|a| a.filename.clone())
        .collect();
    names.sort();
    assert_eq!(names, vec!["log.txt".to_string(), "photo.png".to_string()]);
    let on_action = client
        .list_attachments(ticket.id, Some(action.id))
        .await
        .unwrap();
    assert_eq!(on_action.len(), 1);

    // … and through the sandbox's inspection API.
    let stored = h.sandbox.tickets();
    let t = stored
        .iter()
        .find(|t| t["id"] == ticket.id)
        .expect("ticket stored");
    assert_eq!(t["details_html"], "<p>It is <b>very</b> hot.</p>");
    let a = h.sandbox.actions();
    assert!(a.iter().any(|x| x["id"] == action.id
        && x["ticket_id"] == ticket.id
        && x["email_message_id"] == "<m2@fabrikam.test>"));
    assert_eq!(
        h.sandbox.attachment_data(upload.id).as_deref(),
        Some(&[0x89, b'P', b'N', b'G'][..])
    );
    let log = h
        .sandbox
        .attachments()
        .into_iter()
        .find(|x| x["filename"] == "log.txt")
        .expect("embedded attachment stored");
    let log_id = log["id"].as_i64().unwrap();
    assert_eq!(
        h.sandbox.attachment_data(log_id).as_deref(),
        Some(&b"smoke detected"[..])
    );

    // Lookup by Message-ID (with or without angle brackets); a near miss finds nothing.
    let by_id = client
        .find_tickets_by_message_id("m1@fabrikam.test")
        .await
        .unwrap();
    assert_eq!(
        by_id.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ticket.id]
    );
    assert!(client
        .find_tickets_by_message_id("<m1@fabrikam.tes>")
        .await
        .unwrap()
        .is_empty());

    // Update by id.
    let mut fields = serde_json::Map::new();
    fields.insert("status_id".into(), Value::from(2));
    let updated = client
        .update_ticket(&Update {
            id: ticket.id,
            fields,
        })
        .await
        .unwrap();
    assert_eq!(updated.id, ticket.id);
    assert_eq!(
        client.get_ticket(ticket.id).await.unwrap().status_id,
        Some(2)
    );
}

#[tokio::test]
async fn an_action_without_outcome_is_a_validation_error() {
    let h = Harness::new().await;
    let client = h.client();
    let ticket = client
        .create_ticket(&NewTicket {
            summary: "x".into(),
            details_html: "y".into(),
            client_id: Some(1),
            site_id: Some(10),
            user_id: Some(100),
            ..Default::default()
        })
        .await
        .unwrap();
    let err = client
        .create_action(&NewAction {
            ticket_id: ticket.id,
            note_html: Some("no outcome".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation, "{err:?}");
    assert_eq!(err.status, Some(400));
    assert!(
        err.message
            .contains("An Outcome must be entered for this Action"),
        "{}",
        err.message
    );

    let err = client.get_ticket(999_999).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
}

#[tokio::test]
async fn paged_lists_walk_every_page() {
    let h = Harness::new().await;
    let mut config = h.config();
    config.page_size = 3;
    let client = h.client_with(config);
    for i in 0..7 {
        client
            .create_ticket(&NewTicket {
                summary: format!("paging {i}"),
                details_html: "d".into(),
                client_id: Some(3),
                site_id: Some(12),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let total = h.sandbox.tickets().len();
    assert!(total >= 7);
    let (tickets, exchanges) = traced(client.list_tickets(&TicketQuery::default())).await;
    let tickets = tickets.unwrap();
    assert_eq!(tickets.len(), total);
    let mut ids: Vec<i64> = tickets.iter().map(|t| t.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), total, "no ticket twice");
    let pages: Vec<&str> = exchanges.iter().map(|x| x.url.as_str()).collect();
    assert_eq!(pages.len(), total.div_ceil(3), "{pages:?}");
    assert!(
        pages[0].contains("pageinate=true")
            && pages[0].contains("page_size=3")
            && pages[0].contains("page_no=1")
    );

    let filtered = client
        .list_tickets(&TicketQuery {
            search: Some("paging 6".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);
    // Lookups and sites.
    let sites = client.list_sites(None).await.unwrap();
    assert!(sites
        .iter()
        .any(|s| s.emaildomain.as_deref() == Some("fabrikam.test") && s.client_id == Some(1)));
    assert_eq!(client.list_clients().await.unwrap().len(), 3);
    assert!(client.statuses().await.unwrap().iter().any(|s| s.id == 9));
    assert!(client
        .priorities()
        .await
        .unwrap()
        .iter()
        .any(|p| p.name.as_deref() == Some("High") && p.id > 0));
    assert!(client
        .outcomes()
        .await
        .unwrap()
        .iter()
        .any(|o| o.outcome.as_deref() == Some("Private Note")));
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_after_a_401() {
    // The sandbox's clock runs ahead of the client's: the client still thinks its token is
    // good, the sandbox answers 401, the client re-authenticates once and succeeds.
    let client_clock = ManualClock::frozen(start());
    let sandbox_clock = ManualClock::frozen(start());
    let h = Harness::with_sandbox_clock(client_clock, sandbox_clock.clone()).await;
    let client = h.client();
    client.me().await.unwrap();
    sandbox_clock.advance(chrono::Duration::hours(2));
    let (agent, exchanges) = traced(client.me()).await;
    assert_eq!(agent.unwrap().id, 1);
    let statuses: Vec<(bool, Option<u16>)> =
        exchanges.iter().map(|x| (is_token(x), x.status)).collect();
    assert_eq!(
        statuses,
        vec![(false, Some(401)), (true, Some(200)), (false, Some(200))]
    );

    // Revoked tokens (secret rotation) are handled the same way.
    h.sandbox.revoke_tokens();
    let (agent, exchanges) = traced(client.me()).await;
    assert!(agent.is_ok());
    assert_eq!(exchanges.iter().filter(|x| is_token(x)).count(), 1);
}

#[tokio::test]
async fn a_token_near_expiry_is_renewed_before_use() {
    let h = Harness::new().await;
    let client = h.client();
    client.me().await.unwrap();
    h.clock.advance(chrono::Duration::seconds(3600 - 59));
    let (_, exchanges) = traced(client.me()).await;
    let kinds: Vec<(bool, Option<u16>)> =
        exchanges.iter().map(|x| (is_token(x), x.status)).collect();
    assert_eq!(
        kinds,
        vec![(true, Some(200)), (false, Some(200))],
        "renewed 60 s early, no 401"
    );
}

#[tokio::test]
async fn the_client_waits_instead_of_exceeding_the_rolling_window() {
    let h = Harness::new().await;
    h.sandbox.set_rate_limit(Some(RateLimit {
        requests: 5,
        window_secs: 60,
    }));
    let mut config = h.config();
    config.rate_limit = RollingWindow {
        requests: 5,
        window: Duration::from_secs(60),
    };
    let client = h.client_with(config);
    let (results, exchanges) = traced(async {
        let mut out = Vec::new();
        for _ in 0..12 {
            out.push(client.ticket_types().await.map(|t| t.len()));
        }
        out
    })
    .await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let api = api_calls(&exchanges);
    assert_eq!(api.len(), 12, "every call made exactly once");
    assert!(
        api.iter().all(|x| x.status == Some(200)),
        "no 429 was provoked"
    );
    // 12 API requests + discovery + token at 5 per window: the client waited at least twice,
    // each time no longer than one window.
    let waits = h.waits();
    assert!(waits.len() >= 2, "{waits:?}");
    assert!(
        waits.iter().all(|w| *w <= Duration::from_secs(60)),
        "{waits:?}"
    );
    // Order: no window of 60 s ever held more than 5 requests.
    let times: Vec<_> = exchanges.iter().map(|x| x.started_at).collect();
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .filter(|u| **u < *t + chrono::Duration::seconds(60))
            .count();
        assert!(
            in_window <= 5,
            "{} requests within 60 s from {t}",
            in_window
        );
    }
}

#[tokio::test]
async fn a_429_from_halo_is_retried_after_the_window() {
    let h = Harness::new().await;
    // Another integration shares the instance: the server allows 3 per minute, the client
    // believes 300.
    h.sandbox.set_rate_limit(Some(RateLimit {
        requests: 3,
        window_secs: 60,
    }));
    let client = h.client();
    let (results, exchanges) = traced(async {
        let mut out = Vec::new();
        for _ in 0..5 {
            out.push(client.statuses().await.map(|s| s.len()));
        }
        out
    })
    .await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let api = api_calls(&exchanges);
    let statuses: Vec<Option<u16>> = api.iter().map(|x| x.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == Some(200)).count(),
        5,
        "{statuses:?}"
    );
    let first_429 = statuses
        .iter()
        .position(|s| *s == Some(429))
        .expect("the server rate-limited");
    // The token request counts in the same window (3 per minute): two API calls, then 429.
    assert_eq!(first_429, 2);
    // Probes back off 1, 2, 4, … s until the server's window frees; no request in between.
    assert!(
        statuses[first_429..]
            .iter()
            .skip_while(|s| **s == Some(429))
            .all(|s| *s == Some(200)),
        "retried after waiting: {statuses:?}"
    );
    assert_eq!(client.throttle_state().episodes_total, 1);
    assert!(!h.waits().is_empty());

    // With Retry-After, the client waits what HaloPSA says.
    h.sandbox.update_behaviour(|b| b.retry_after_header = true);
    for _ in 0..4 {
        client.statuses().await.unwrap();
    }

    // If HaloPSA never lets up, the error says so.
    h.sandbox.set_rate_limit(Some(RateLimit {
        requests: 0,
        window_secs: 60,
    }));
    let err = client.statuses().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err:?}");
    assert!(
        err.message.contains("Rate Limit Reached"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn the_token_endpoint_counts_in_the_rate_limit_window() {
    let h = Harness::new().await;
    assert!(h.sandbox.behaviour().rate_limit_token_endpoint);
    assert!(!h.sandbox.behaviour().retry_after_header);
    // One request per minute: the token request takes the slot, the API call is refused.
    h.sandbox.set_rate_limit(Some(RateLimit {
        requests: 1,
        window_secs: 60,
    }));
    let mut config = h.config();
    config.auth_url = Some(format!("{}/auth", h.base_url));
    let client = h.client_with(config);
    let (result, exchanges) = traced(client.statuses()).await;
    result.unwrap();
    let api = api_calls(&exchanges);
    assert_eq!(api.first().and_then(|x| x.status), Some(429));
    assert_eq!(api.last().and_then(|x| x.status), Some(200));
    // The token endpoint itself is refused once the window is full.
    h.sandbox.set_rate_limit(Some(RateLimit {
        requests: 0,
        window_secs: 60,
    }));
    let fresh = h.client();
    let err = fresh.probe().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err:?}");
}

#[tokio::test]
async fn wizard_resources_webhooks_tabs_certificates() {
    let h = Harness::new().await;
    let client = h.client();
    let info = client.authinfo().await.unwrap();
    assert_eq!(info.tenant_id.as_deref(), Some("sandbox"));
    assert!(info.auth_url.unwrap().ends_with("/auth"));

    let hook = client
        .create_webhook(&NewWebhook::new("Mailroom", "http://127.0.0.1:9/hook"))
        .await
        .unwrap();
    let id = hook.id.clone().expect("webhook id");
    assert!(client
        .webhooks()
        .await
        .unwrap()
        .iter()
        .any(|w| w.id.as_deref() == Some(id.as_str())));
    assert!(client.webhook_events(Some(&id)).await.unwrap().is_empty());
    client.delete_webhook(&id).await.unwrap();
    assert!(!client
        .webhooks()
        .await
        .unwrap()
        .iter()
        .any(|w| w.id.as_deref() == Some(id.as_str())));

    let tab = client
        .create_tab(&NewTab {
            name: "Mailroom".into(),
            url: Some("https://mailroom.invalid/tab".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tab.name.as_deref(), Some("Mailroom"));
    assert!(client
        .tabs()
        .await
        .unwrap()
        .iter()
        .any(|t| t.name.as_deref() == Some("Mailroom")));
    client.certificates().await.unwrap();

    // A PFX is uploaded as an attachment, then registered with its password; HaloPSA's
    // refusal of a broken file comes back as a validation error.
    let (err, exchanges) = traced(client.register_certificate_pfx(
        "Mailroom signing",
        "mailroom.pfx",
        b"not a pkcs12 file",
        &Secret::new("pfx-pass-42"),
    ))
    .await;
    let err = err.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation, "{err:?}");
    assert!(
        err.message.contains("could not be loaded"),
        "{}",
        err.message
    );
    assert_eq!(exchanges.len(), 2);
    assert!(exchanges[0].url.ends_with("/api/Attachment"));
    assert!(exchanges[1].url.ends_with("/api/Certificate"));
    assert!(exchanges
        .iter()
        .all(|x| !format!("{x:?}").contains("pfx-pass-42")));
    assert!(h
        .sandbox
        .attachments()
        .iter()
        .any(|a| a["filename"] == "mailroom.pfx"));
}
