//! Webhook mode against the sandbox's publisher: subscription + handshake, mail → ticket with no
//! scheduled scan, forged and malformed notifications, lifecycle events, renewal near expiry
//! (the sandbox clock is the engine's clock), dropped notifications recovered by the fallback scan.
//! Needs a Secret Service (the clientState is a keyring secret).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mailroom_engine::sync::{SyncOptions, SyncSupervisor};
use mailroom_engine::webhooks::{SubscriptionEventKind, WebhookOptions, Webhooks};
use mailroom_graph_sandbox::{
    LifecycleEvent, NotificationKind, NotificationOutcome, PublisherOptions,
};
use mailroom_secrets::Secrets;
use serde_json::json;

struct Hooks {
    h: Harness,
    supervisor: Arc<SyncSupervisor>,
    hooks: Webhooks,
    http: reqwest::Client,
}

async fn setup(options: WebhookOptions) -> Hooks {
    let h = harness(default_settings()).await;
    let supervisor = Arc::new(SyncSupervisor::new(
        h.pipeline.clone(),
        SyncOptions {
            default_interval: Duration::from_secs(24 * 3600),
            ..Default::default()
        },
    ));
    let secrets = Secrets::with_service(format!("mailroom-test-{}", uuid::Uuid::new_v4()));
    let hooks = Webhooks::start(
        options,
        h.store.clone(),
        secrets,
        h.sb.clock(),
        Some(supervisor.clone()),
    )
    .await
    .expect("receiver starts");
    hooks.add_mailbox(h.mailbox.clone(), h.graph.clone()).await;
    // The task's first scan (empty inbox) is over before the test delivers mail, so a ticket
    // can only come from a notification (or, where a test wants it, the fallback scan).
    until("the first scan", || async {
        supervisor
            .statuses()
            .iter()
            .any(|s| s.last_sync_at.is_some())
    })
    .await;
    Hooks {
        h,
        supervisor,
        hooks,
        http: reqwest::Client::new(),
    }
}

fn quiet() -> WebhookOptions {
    WebhookOptions {
        // Any free port: several tests run at once.
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        fallback_interval: Duration::from_secs(24 * 3600),
        renew_check_every: Duration::from_secs(24 * 3600),
        ..Default::default()
    }
}

impl Hooks {
    async fn event_kinds(&self) -> Vec<String> {
        self.hooks
            .events(&self.h.mailbox.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind.as_str().to_string())
            .collect()
    }

    async fn wait_event(&self, kind: &str) {
        until(kind, || async {
            self.event_kinds().await.iter().any(|k| k == kind)
        })
        .await;
    }

    async fn wait_ticket(&self, mid: &str) {
        until("a ticket", || async {
            self.h.ticket_by_message_id(mid).len() == 1
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_then_mail_becomes_a_ticket_without_a_scan() {
    let t = setup(quiet()).await;
    let id = t.h.mailbox.id.clone();
    let record = t.hooks.create_subscription(&id).await.expect("created");
    let subs = t.h.sb.graph().subscriptions();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].id, record.subscription_id);
    assert_eq!(subs[0].notification_url, t.hooks.notification_url(&id));
    assert_eq!(
        subs[0].lifecycle_notification_url.as_deref(),
        Some(t.hooks.lifecycle_url(&id).as_str())
    );
    assert_eq!(subs[0].change_type, "created");
    assert!(record.resource.ends_with("mailFolders('Inbox')/messages"));
    // Requested at the maximum: the sandbox allows 4,230 minutes.
    let now = mailroom_clock::Clock::now(&*t.h.sb.clock());
    assert!(record.expires_at > now + chrono::Duration::minutes(4200));
    assert_eq!(
        t.hooks.subscription(&id).await.unwrap(),
        Some(record.clone())
    );

    let d =
        t.h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Printer on fire"));
    t.wait_ticket(&d.internet_message_id).await;
    let log = t.h.sb.graph().notification_log();
    assert!(log
        .iter()
        .any(|r| r.kind == NotificationKind::Change("created".into())
            && r.outcome == NotificationOutcome::Delivered(202)));
    let stored = t.hooks.notifications(&id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].subscription_id, record.subscription_id);
    until("notification processed", || async {
        t.hooks.notifications(&id).await.unwrap()[0]
            .processed_at
            .is_some()
    })
    .await;
    let shown = t.hooks.subscription(&id).await.unwrap().unwrap();
    assert!(shown.last_notification_at.is_some());

    t.hooks.cancel_subscription(&id).await.expect("cancelled");
    assert!(t.h.sb.graph().subscriptions().is_empty());
    assert_eq!(t.hooks.subscription(&id).await.unwrap(), None);
    assert_eq!(t.event_kinds().await, vec!["created", "cancelled"]);
    t.hooks.shutdown();
    t.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_forgeries_and_malformed_payloads() {
    let t = setup(WebhookOptions {
        max_body_bytes: 4096,
        ..quiet()
    })
    .await;
    let id = t.h.mailbox.id.clone();
    let record = t.hooks.create_subscription(&id).await.expect("created");

    for url in [t.hooks.notification_url(&id), t.hooks.lifecycle_url(&id)] {
        let r = t
            .http
            .post(format!(
                "{url}?validationToken=Validation%3A%20a%2Bb%3Cscript%3E"
            ))
            .header("content-type", "text/plain; charset=utf-8")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert_eq!(r.text().await.unwrap(), "Validation: a+b<script>");
    }

    // A forged clientState is dropped (Graph practice: still 202) and logged.
    let forged = json!({"value": [{
        "subscriptionId": record.subscription_id,
        "clientState": "guessed",
        "changeType": "created",
        "resource": "Users/x/Messages/y",
    }]});
    let r = t
        .http
        .post(t.hooks.notification_url(&id))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let events = t.hooks.events(&id).await.unwrap();
    let rejected: Vec<_> = events
        .iter()
        .filter(|e| e.kind == SubscriptionEventKind::Rejected)
        .collect();
    assert_eq!(rejected.len(), 1, "{events:?}");
    assert!(
        rejected[0].detail.contains("clientState"),
        "{}",
        rejected[0].detail
    );
    assert!(t.hooks.notifications(&id).await.unwrap().is_empty());

    // An unknown subscription id is dropped too.
    let r = t
        .http
        .post(t.hooks.lifecycle_url(&id))
        .json(&json!({"value": [{"subscriptionId": "other", "clientState": "x", "lifecycleEvent": "missed"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(t.hooks.notifications(&id).await.unwrap().is_empty());

    // Malformed payloads and oversized bodies: 400.
    for body in [
        "not json",
        "{\"value\": 3}",
        "{\"value\": [{\"clientState\": \"x\"}]}",
    ] {
        let r = t
            .http
            .post(t.hooks.notification_url(&id))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
    let r = t
        .http
        .post(t.hooks.notification_url(&id))
        .header("content-type", "application/json")
        .body(vec![b' '; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(t.hooks.notifications(&id).await.unwrap().is_empty());
    t.hooks.shutdown();
    t.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_are_handled() {
    let t = setup(quiet()).await;
    let id = t.h.mailbox.id.clone();
    let first = t.hooks.create_subscription(&id).await.expect("created");
    let graph = t.h.sb.graph();

    // reauthorizationRequired → reauthorize, then renew.
    assert!(graph
        .fire_lifecycle(
            &first.subscription_id,
            LifecycleEvent::ReauthorizationRequired
        )
        .unwrap());
    t.wait_event("renewed").await;
    assert!(t.event_kinds().await.contains(&"reauthorized".to_string()));
    assert!(!graph.subscriptions()[0].needs_reauthorization);
    assert_eq!(
        t.hooks.subscription(&id).await.unwrap().unwrap().renewals,
        1
    );

    // missed → delta resync.
    graph
        .fire_lifecycle(&first.subscription_id, LifecycleEvent::Missed)
        .unwrap();
    t.wait_event("resync").await;

    // subscriptionRemoved → a new subscription, then resync; mail flows through the new one.
    graph
        .fire_lifecycle(&first.subscription_id, LifecycleEvent::SubscriptionRemoved)
        .unwrap();
    t.wait_event("recreated").await;
    let second = t.hooks.subscription(&id).await.unwrap().unwrap();
    assert_ne!(second.subscription_id, first.subscription_id);
    let subs = graph.subscriptions();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].id, second.subscription_id);
    let d =
        t.h.deliver(mail("lee@fabrikam.test", "Lee Chen", "After recreation"));
    t.wait_ticket(&d.internet_message_id).await;
    t.hooks.shutdown();
    t.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_when_the_clock_nears_expiry() {
    let t = setup(quiet()).await;
    let id = t.h.mailbox.id.clone();
    let created = t.hooks.create_subscription(&id).await.expect("created");

    // Not due yet.
    assert!(!t.hooks.renew_if_due(&id).await.unwrap());
    // 50 h later the subscription (70.5 h) is within 2 days of expiry: the periodic check renews.
    t.h.sb.clock().advance(chrono::Duration::hours(50));
    let results = t.hooks.renew_due().await;
    assert_eq!(results.len(), 1);
    assert!(matches!(results[0].1, Ok(true)), "{:?}", results[0].1);
    let renewed = t.hooks.subscription(&id).await.unwrap().unwrap();
    assert_eq!(renewed.renewals, 1);
    assert!(renewed.expires_at > created.expires_at + chrono::Duration::hours(49));
    assert_eq!(
        t.h.sb.graph().subscriptions()[0].expiration,
        renewed.expires_at
    );

    // Again near expiry: processing a notification renews it too.
    t.h.sb.clock().advance(chrono::Duration::hours(50));
    let d =
        t.h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Renew on the way"));
    t.wait_ticket(&d.internet_message_id).await;
    until("renewed by notification processing", || async {
        t.hooks.subscription(&id).await.unwrap().unwrap().renewals == 2
    })
    .await;
    t.hooks.shutdown();
    t.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_notifications_are_recovered_by_the_fallback_scan() {
    let t = setup(WebhookOptions {
        fallback_interval: Duration::from_secs(1),
        ..quiet()
    })
    .await;
    let id = t.h.mailbox.id.clone();
    t.hooks.create_subscription(&id).await.expect("created");
    t.h.sb.graph().set_publisher_options(PublisherOptions {
        drop_next: 1,
        ..Default::default()
    });
    let d =
        t.h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Lost notification"));
    t.wait_ticket(&d.internet_message_id).await;
    let log = t.h.sb.graph().notification_log();
    assert!(log
        .iter()
        .any(|r| r.outcome == NotificationOutcome::Dropped));
    assert!(t.hooks.notifications(&id).await.unwrap().is_empty());
    t.hooks.shutdown();
    t.supervisor.shutdown().await;
}

/// Issue 23 #3: errors name mailboxes by name and address, never by their internal id.
#[tokio::test]
async fn webhook_errors_name_the_mailbox() {
    let t = setup(quiet()).await;
    let other = add_mailbox(
        &t.h.store,
        &t.h.sb,
        "Helpdesk",
        HELPDESK,
        default_settings(),
    )
    .await;
    let err = t
        .hooks
        .create_subscription(&other.id)
        .await
        .expect_err("not registered");
    let text = err.to_string();
    assert!(
        text.contains("Helpdesk <helpdesk@contoso.test>") && !text.contains(&other.id),
        "{text}"
    );
    let err = t
        .hooks
        .cancel_subscription(&t.h.mailbox.id)
        .await
        .expect_err("no subscription yet");
    let text = err.to_string();
    assert!(
        text.contains("Support <support@contoso.test>") && !text.contains(&t.h.mailbox.id),
        "{text}"
    );
    t.hooks.shutdown();
    t.supervisor.shutdown().await;
}

/// Issue 23 #5: the receiver's hardening, each behaviour tested — 1,000 forged items in one
/// POST make one counted rejection row, the validation echo is `nosniff`, a client that sends
/// its head or body too slowly is cut off, and connections past the cap wait for a slot.
#[tokio::test]
async fn the_receiver_counts_forgeries_and_cuts_off_slow_or_excess_clients() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let t = setup(WebhookOptions {
        max_body_bytes: 1024 * 1024,
        // Long enough that the idle clients of the cap check below still hold their slots.
        header_read_timeout: Duration::from_millis(1500),
        body_read_timeout: Duration::from_millis(500),
        max_connections: 2,
        ..quiet()
    })
    .await;
    let id = t.h.mailbox.id.clone();
    let record = t.hooks.create_subscription(&id).await.expect("created");

    // 1,000 forged items, one POST: one `rejected` row counting 1,000.
    let items: Vec<_> = (0..1000)
        .map(|i| {
            json!({
                "subscriptionId": record.subscription_id,
                "clientState": format!("guess-{i}"),
                "changeType": "created",
                "resource": format!("Users/x/Messages/{i}"),
            })
        })
        .collect();
    let r = t
        .http
        .post(t.hooks.notification_url(&id))
        .json(&json!({ "value": items }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let rejected: Vec<_> = t
        .hooks
        .events(&id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == SubscriptionEventKind::Rejected)
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].count, 1000);

    // The validation echo is plain text that browsers must not sniff.
    let echo = t
        .http
        .post(format!(
            "{}?validationToken=abc",
            t.hooks.notification_url(&id)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
    assert_eq!(echo.headers()["x-content-type-options"], "nosniff");
    assert_eq!(echo.text().await.unwrap(), "abc");

    let addr = t.hooks.local_addr();
    let path = format!("/graph/notify/{id}");
    // A head that never ends is cut off after the header timeout.
    let mut slow_head = TcpStream::connect(addr).await.unwrap();
    slow_head
        .write_all(format!("POST {path} HTTP/1.1\r\nHost: a\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    // Closed (EOF) or reset: either way the read ends before the 5 s limit.
    let _ = tokio::time::timeout(Duration::from_secs(5), slow_head.read_to_end(&mut buf))
        .await
        .expect("the server closes a connection whose head never ends");

    // One byte of a declared 100: 408 after the body timeout, and the connection closes.
    let mut slow_body = TcpStream::connect(addr).await.unwrap();
    slow_body
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), slow_body.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes a body that never arrives")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // Past the cap (2 here; 64 by default) a connection waits for a slot: two idle clients
    // hold both, a third request is answered only once one of them goes.
    let hold = |addr| async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\n")
            .await
            .unwrap();
        s
    };
    let first = hold(addr).await;
    let _second = hold(addr).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let third = tokio::spawn({
        let http = t.http.clone();
        let url = format!("{}?validationToken=third", t.hooks.notification_url(&id));
        async move { http.post(url).send().await.map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !third.is_finished(),
        "the third connection waits for a slot"
    );
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("a slot frees up")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    t.hooks.shutdown();
    t.supervisor.shutdown().await;
}

/// Issue 23 #5: a batch the notification queue has no room for is refused with `503` and
/// `Retry-After` (Graph redelivers it), nothing of it is stored, and the drop is counted.
#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_counts_the_drop() {
    let t = setup(WebhookOptions {
        queue_capacity: 2,
        ..quiet()
    })
    .await;
    let id = t.h.mailbox.id.clone();
    let record = t.hooks.create_subscription(&id).await.expect("created");
    let client_state =
        t.h.sb
            .graph()
            .subscriptions()
            .into_iter()
            .find(|s| s.id == record.subscription_id)
            .and_then(|s| s.client_state)
            .expect("the subscription's clientState");
    // Three genuine items: more than the queue can ever hold at once.
    let items: Vec<_> = (0..3)
        .map(|i| {
            json!({
                "subscriptionId": record.subscription_id,
                "clientState": client_state,
                "changeType": "created",
                "resource": format!("Users/x/Messages/{i}"),
            })
        })
        .collect();
    let before = t.hooks.dropped_notifications();
    let r = t
        .http
        .post(t.hooks.notification_url(&id))
        .json(&json!({ "value": items }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(t.hooks.dropped_notifications(), before + 3);
    assert!(
        t.hooks.notifications(&id).await.unwrap().is_empty(),
        "nothing of a refused batch is stored"
    );
    t.hooks.shutdown();
    t.supervisor.shutdown().await;
}

/// A subscription Microsoft 365 removed that cannot be created again is a failed event in the
/// subscription log and an engine event (error notifications tell it as "subscription lost").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_that_cannot_be_recreated_is_published() {
    use mailroom_engine::events::EngineEvent;
    use mailroom_sandbox::faults::{FaultRule, Service};
    let t = setup(quiet()).await;
    let id = t.h.mailbox.id.clone();
    let first = t.hooks.create_subscription(&id).await.expect("created");
    let mut rx = t.h.pipeline.events().subscribe();
    // Graph refuses new subscriptions (e.g. Mail.Read revoked).
    t.h.sb
        .faults()
        .add(FaultRule::fail_next(Service::Graph, "*/subscriptions", 5, 403).with_method("POST"))
        .unwrap();
    t.h.sb
        .graph()
        .fire_lifecycle(&first.subscription_id, LifecycleEvent::SubscriptionRemoved)
        .unwrap();
    t.wait_event("failed").await;
    let detail = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(EngineEvent::SubscriptionFailed { mailbox_id, detail }) = rx.recv().await {
                assert_eq!(mailbox_id, id);
                break detail;
            }
        }
    })
    .await
    .expect("the failure is published");
    assert!(
        detail.starts_with("recreate after Microsoft 365 removed it:"),
        "{detail}"
    );
    assert!(!t.event_kinds().await.contains(&"recreated".to_string()));
    t.hooks.shutdown();
    t.supervisor.shutdown().await;
}
