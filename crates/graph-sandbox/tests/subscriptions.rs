//! Subscriptions against a real local webhook receiver: validation handshake, expiry cap,
//! renew/reauthorize/delete, notification delivery, retries, drops and lifecycle events.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::Duration;
use common::*;
use mailroom_graph_sandbox::{
    InboundMail, LifecycleEvent, NotificationKind, NotificationOutcome, PublisherOptions,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Echo,
    WrongEcho,
    Status500,
    Slow,
}

#[derive(Clone)]
struct Shared {
    mode: Arc<Mutex<Mode>>,
    fail_next: Arc<Mutex<u32>>,
    slow_next: Arc<Mutex<u32>>,
    validations: Arc<Mutex<Vec<(String, String)>>>,
    tx: mpsc::UnboundedSender<(String, Value)>,
}

struct Receiver {
    addr: SocketAddr,
    shared: Shared,
    rx: mpsc::UnboundedReceiver<(String, Value)>,
}

async fn hook(
    State(s): State<Shared>,
    Path(p): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    if let Some(token) = q.get("validationToken") {
        s.validations
            .lock()
            .unwrap()
            .push((p.clone(), token.clone()));
        let mode = *s.mode.lock().unwrap();
        return match mode {
            Mode::Echo => ([("content-type", "text/plain")], token.clone()).into_response(),
            Mode::WrongEcho => {
                ([("content-type", "text/plain")], format!("{token}x")).into_response()
            }
            Mode::Status500 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            Mode::Slow => {
                tokio::time::sleep(StdDuration::from_secs(5)).await;
                token.clone().into_response()
            }
        };
    }
    let slow = {
        let mut n = s.slow_next.lock().unwrap();
        let slow = *n > 0;
        *n = n.saturating_sub(1);
        slow
    };
    if slow {
        // Slower than the publisher's timeout: Graph counts this as a failed delivery.
        tokio::time::sleep(StdDuration::from_secs(3)).await;
        return StatusCode::ACCEPTED.into_response();
    }
    {
        let mut f = s.fail_next.lock().unwrap();
        if *f > 0 {
            *f -= 1;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let _ = s.tx.send((p, serde_json::from_str(&body).unwrap()));
    StatusCode::ACCEPTED.into_response()
}

async fn receiver() -> Receiver {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Shared {
        mode: Arc::new(Mutex::new(Mode::Echo)),
        fail_next: Arc::new(Mutex::new(0)),
        slow_next: Arc::new(Mutex::new(0)),
        validations: Arc::new(Mutex::new(Vec::new())),
        tx,
    };
    let app = Router::new()
        .route("/{p}", post(hook))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { addr, shared, rx }
}

impl Receiver {
    fn url(&self, p: &str) -> String {
        format!("http://{}/{p}", self.addr)
    }
    async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(StdDuration::from_secs(20), self.rx.recv())
            .await
            .expect("a notification")
            .unwrap()
    }
}

fn sub_body(r: &Receiver, minutes: i64) -> Value {
    json!({
        "changeType": "created",
        "notificationUrl": r.url("notify?tenant=contoso"),
        "lifecycleNotificationUrl": r.url("lifecycle"),
        "resource": format!("users/{}/mailFolders('Inbox')/messages", mailroom_graph_sandbox::seed::SUPPORT_USER_ID),
        "expirationDateTime": (common::start_time() + Duration::minutes(minutes)).to_rfc3339(),
        "clientState": "s3cret",
    })
}

fn mail(subject: &str) -> InboundMail {
    InboundMail {
        to: SUPPORT.into(),
        from: "dana@northwind.test".into(),
        subject: subject.into(),
        body_text: Some("text".into()),
        ..Default::default()
    }
}

async fn wait_settled(e: &Env, n: usize) -> Vec<mailroom_graph_sandbox::NotificationRecord> {
    loop {
        let log = e.sb.notification_log();
        if log.len() >= n
            && log
                .iter()
                .all(|r| r.outcome != NotificationOutcome::Pending)
        {
            return log;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn handshake_then_crud() {
    let e = env().await;
    let r = receiver().await;
    let created = e.post("daemon", "subscriptions", sub_body(&r, 60)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let v = r.shared.validations.lock().unwrap().clone();
    assert_eq!(v.len(), 2, "both URLs are validated");
    assert!(v.iter().any(|(p, _)| p == "notify") && v.iter().any(|(p, _)| p == "lifecycle"));
    assert!(v[0]
        .1
        .starts_with("Validation: Testing client application reachability"));
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["clientState"], "s3cret");
    assert_eq!(
        created.body["applicationId"],
        mailroom_graph_sandbox::seed::DAEMON_APP_ID
    );

    let list = e.get("daemon", "subscriptions").await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 1);
    let new_exp = (common::start_time() + Duration::minutes(3000)).to_rfc3339();
    let renewed = e
        .patch(
            "daemon",
            &format!("subscriptions/{id}"),
            json!({"expirationDateTime": new_exp}),
        )
        .await;
    assert_eq!(renewed.status, 200);
    assert_eq!(
        e.sb.subscriptions()[0].expiration,
        common::start_time() + Duration::minutes(3000)
    );
    let re = e
        .send(
            e.http
                .post(e.url(&format!("subscriptions/{id}/reauthorize")))
                .bearer_auth("daemon"),
        )
        .await;
    assert_eq!(re.status, 204);
    assert_eq!(
        e.delete("daemon", &format!("subscriptions/{id}"))
            .await
            .status,
        204
    );
    assert_eq!(
        e.get("daemon", &format!("subscriptions/{id}")).await.status,
        404
    );
    assert!(e.sb.subscriptions().is_empty());
}

#[tokio::test]
async fn handshake_failures() {
    let e = env().await;
    let r = receiver().await;
    *r.shared.mode.lock().unwrap() = Mode::WrongEcho;
    let resp = e.post("daemon", "subscriptions", sub_body(&r, 60)).await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.code(), "ValidationError");
    assert!(resp
        .message()
        .contains("Response must exactly match validationToken"));
    *r.shared.mode.lock().unwrap() = Mode::Status500;
    let resp = e.post("daemon", "subscriptions", sub_body(&r, 60)).await;
    assert!(resp.message().contains("must respond with 200 OK"));
    *r.shared.mode.lock().unwrap() = Mode::Slow;
    e.sb.set_publisher_options(PublisherOptions {
        validation_timeout: StdDuration::from_millis(100),
        ..Default::default()
    });
    let resp = e.post("daemon", "subscriptions", sub_body(&r, 60)).await;
    assert_eq!(resp.message(), "Subscription validation request timed out.");
    let mut body = sub_body(&r, 60);
    body["notificationUrl"] = json!("http://hooks.example.test/notify");
    assert_eq!(e.post("daemon", "subscriptions", body).await.status, 400);
    assert!(e.sb.subscriptions().is_empty());
}

/// Issue 24 #5: Graph requires HTTPS for notification URLs — a loopback receiver included,
/// unless the sandbox was asked to deliver to one (the stand-in for a tunnel).
#[tokio::test]
async fn notification_urls_must_be_https_unless_loopback_delivery_is_asked_for() {
    let e = env().await;
    let r = receiver().await;
    e.sb.set_behaviour(mailroom_graph_sandbox::GraphBehaviour::default());
    for (field, url) in [
        ("notificationUrl", r.url("notify")),
        ("lifecycleNotificationUrl", r.url("lifecycle")),
    ] {
        let mut body = sub_body(&r, 60);
        body[field] = json!(url);
        let other = if field == "notificationUrl" {
            "lifecycleNotificationUrl"
        } else {
            "notificationUrl"
        };
        body[other] = json!("https://hooks.example.test/other");
        let resp = e.post("daemon", "subscriptions", body).await;
        assert_eq!(resp.status, 400, "{field}");
        assert_eq!(resp.code(), "InvalidRequest");
        assert_eq!(
            resp.message(),
            format!("The {field} must use the HTTPS protocol.")
        );
    }
    assert!(
        r.shared.validations.lock().unwrap().is_empty(),
        "refused before validation"
    );

    e.sb.set_behaviour(mailroom_graph_sandbox::GraphBehaviour {
        loopback_http_notification_urls: true,
        ..Default::default()
    });
    let resp = e.post("daemon", "subscriptions", sub_body(&r, 60)).await;
    assert_eq!(resp.status, 201, "{:?}", resp.body);
    assert_eq!(e.sb.subscriptions().len(), 1);
}

#[tokio::test]
async fn expiration_cap_is_an_extension_error() {
    let e = env().await;
    let r = receiver().await;
    let resp = e.post("daemon", "subscriptions", sub_body(&r, 4231)).await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.code(), "ExtensionError");
    assert_eq!(
        resp.message(),
        "Subscription expiration can only be 4230 minutes in the future."
    );
    e.sb.set_publisher_options(PublisherOptions {
        max_expiration_minutes: 10070,
        ..Default::default()
    });
    let resp = e.post("daemon", "subscriptions", sub_body(&r, 10080)).await;
    assert_eq!(
        resp.message(),
        "Subscription expiration can only be 10070 minutes in the future."
    );
    let ok = e.post("daemon", "subscriptions", sub_body(&r, 10070)).await;
    assert_eq!(ok.status, 201);
    let id = ok.body["id"].as_str().unwrap();
    let far = (common::start_time() + Duration::minutes(20000)).to_rfc3339();
    let resp = e
        .patch(
            "daemon",
            &format!("subscriptions/{id}"),
            json!({"expirationDateTime": far}),
        )
        .await;
    assert_eq!(resp.code(), "ExtensionError");
    // Expired subscriptions disappear.
    e.advance(Duration::minutes(10071));
    assert!(e.sb.subscriptions().is_empty());
}

#[tokio::test]
async fn subscription_access_rules() {
    let e = env().await;
    let r = receiver().await;
    let mut b = sub_body(&r, 60);
    b["resource"] = json!("users/megan@contoso.test/mailFolders('Inbox')/messages");
    // An application access policy keeps the daemon app to the support mailboxes.
    e.sb.try_add_access_policy(mailroom_graph_sandbox::ApplicationAccessPolicy {
        app_id: mailroom_graph_sandbox::seed::DAEMON_APP_ID.into(),
        access_right: mailroom_graph_sandbox::AccessRight::RestrictAccess,
        mailboxes: vec!["support@contoso.test".into(), HELPDESK.into()],
    })
    .unwrap();
    let resp = e.post("daemon", "subscriptions", b.clone()).await;
    assert_eq!(
        (resp.status, resp.message()),
        (403, "Access to OData is disabled.")
    );
    // Delegated .Shared permissions do not support subscriptions on another mailbox.
    b["resource"] = json!(format!("users/{HELPDESK}/mailFolders('Inbox')/messages"));
    assert_eq!(
        e.post("megan", "subscriptions", b.clone()).await.status,
        403
    );
    b["resource"] = json!("me/mailFolders('Inbox')/messages");
    assert_eq!(e.post("megan", "subscriptions", b).await.status, 201);
}

#[tokio::test]
async fn notifications_are_delivered_with_client_state() {
    let e = env().await;
    let mut r = receiver().await;
    let created = e.post("daemon", "subscriptions", sub_body(&r, 60)).await;
    let sub_id = created.body["id"].as_str().unwrap().to_owned();
    let d = e.sb.deliver(mail("Hello webhook")).unwrap();
    let (path, body) = r.next().await;
    assert_eq!(path, "notify");
    let n = &body["value"][0];
    assert_eq!(n["subscriptionId"], sub_id.as_str());
    assert_eq!(n["clientState"], "s3cret");
    assert_eq!(n["changeType"], "created");
    assert_eq!(n["tenantId"], mailroom_graph_sandbox::seed::TENANT_ID);
    assert_eq!(n["resourceData"]["id"], d.id.as_str());
    assert_eq!(n["resourceData"]["@odata.type"], "#Microsoft.Graph.Message");
    assert!(n["resourceData"]["@odata.etag"]
        .as_str()
        .unwrap()
        .starts_with("W/"));
    assert!(n["subscriptionExpirationDateTime"].is_string());
    // The resource path can be fetched as-is.
    let resource = n["resource"].as_str().unwrap();
    let got = e.get("daemon", resource).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["subject"], "Hello webhook");
    // Mail to another mailbox does not notify this subscription.
    e.sb.deliver(InboundMail {
        to: HELPDESK.into(),
        ..mail("elsewhere")
    })
    .unwrap();
    e.sb.deliver(mail("second")).unwrap();
    let (_, body) = r.next().await;
    let id = body["value"][0]["resourceData"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        e.sb.messages(SUPPORT)
            .into_iter()
            .find(|m| m.id == id)
            .unwrap()
            .subject,
        "second"
    );
}

#[tokio::test]
async fn failed_notifications_are_retried() {
    let e = env().await;
    let mut r = receiver().await;
    e.post("daemon", "subscriptions", sub_body(&r, 60)).await;
    e.sb.set_publisher_options(PublisherOptions {
        initial_backoff: StdDuration::from_millis(20),
        ..Default::default()
    });
    *r.shared.fail_next.lock().unwrap() = 2;
    let d = e.sb.deliver(mail("retry me")).unwrap();
    let (_, body) = r.next().await;
    assert_eq!(body["value"][0]["resourceData"]["id"], d.id.as_str());
    let log = wait_settled(&e, 1).await;
    assert_eq!(log[0].attempts, 3);
    assert_eq!(
        log[0].failures,
        vec!["HTTP 503".to_owned(), "HTTP 503".to_owned()]
    );
    assert_eq!(log[0].outcome, NotificationOutcome::Delivered(202));
}

#[tokio::test]
async fn notifications_give_up_after_the_retry_window() {
    let e = env().await;
    let r = receiver().await;
    e.post("daemon", "subscriptions", sub_body(&r, 60)).await;
    e.sb.set_publisher_options(PublisherOptions {
        retry_window: Duration::zero(),
        ..Default::default()
    });
    *r.shared.fail_next.lock().unwrap() = 100;
    e.sb.deliver(mail("lost")).unwrap();
    let log = wait_settled(&e, 1).await;
    assert_eq!(log[0].outcome, NotificationOutcome::GaveUp);
    assert_eq!(log[0].attempts, 1);
}

#[tokio::test]
async fn dropped_notifications_are_recovered_by_delta() {
    let e = env().await;
    let mut r = receiver().await;
    e.post("daemon", "subscriptions", sub_body(&r, 60)).await;
    let base = e
        .collect(
            "daemon",
            &format!("users/{SUPPORT}/mailFolders/inbox/messages/delta"),
        )
        .await;
    assert!(!base.is_empty());
    let first = e
        .get(
            "daemon",
            &format!("users/{SUPPORT}/mailFolders/inbox/messages/delta"),
        )
        .await;
    let mut next = first.body["@odata.nextLink"].as_str().map(str::to_owned);
    let mut link = first.body["@odata.deltaLink"].as_str().map(str::to_owned);
    while let Some(n) = next {
        let p = e.get("daemon", &n).await;
        next = p.body["@odata.nextLink"].as_str().map(str::to_owned);
        link = p.body["@odata.deltaLink"].as_str().map(str::to_owned);
    }
    e.sb.set_publisher_options(PublisherOptions {
        drop_next: 1,
        emit_missed_on_drop: true,
        ..Default::default()
    });
    let a = e.sb.deliver(mail("dropped")).unwrap();
    let b = e.sb.deliver(mail("delivered")).unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(r.next().await);
    }
    let notify: Vec<&Value> = got
        .iter()
        .filter(|(p, _)| p == "notify")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(notify.len(), 1);
    assert_eq!(notify[0]["value"][0]["resourceData"]["id"], b.id.as_str());
    let missed: Vec<&Value> = got
        .iter()
        .filter(|(p, _)| p == "lifecycle")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(missed[0]["value"][0]["lifecycleEvent"], "missed");
    assert!(e
        .sb
        .notification_log()
        .iter()
        .any(|r| r.outcome == NotificationOutcome::Dropped
            && r.kind == NotificationKind::Change("created".into())));
    let delta = e.get("daemon", &link.unwrap()).await;
    let ids: Vec<&str> = delta.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&a.id.as_str()) && ids.contains(&b.id.as_str()));
}

#[tokio::test]
async fn lifecycle_events() {
    let e = env().await;
    let mut r = receiver().await;
    let created = e.post("daemon", "subscriptions", sub_body(&r, 60)).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(e
        .sb
        .fire_lifecycle(&id, LifecycleEvent::ReauthorizationRequired)
        .unwrap());
    let (path, body) = r.next().await;
    assert_eq!(path, "lifecycle");
    let ev = &body["value"][0];
    assert_eq!(ev["lifecycleEvent"], "reauthorizationRequired");
    assert_eq!(ev["subscriptionId"], id.as_str());
    assert_eq!(ev["clientState"], "s3cret");
    assert_eq!(ev["tenantId"], mailroom_graph_sandbox::seed::TENANT_ID);
    assert!(e.sb.subscriptions()[0].needs_reauthorization);
    e.send(
        e.http
            .post(e.url(&format!("subscriptions/{id}/reauthorize")))
            .bearer_auth("daemon"),
    )
    .await;
    assert!(!e.sb.subscriptions()[0].needs_reauthorization);
    e.sb.fire_lifecycle(&id, LifecycleEvent::Missed).unwrap();
    assert_eq!(r.next().await.1["value"][0]["lifecycleEvent"], "missed");
    e.sb.fire_lifecycle(&id, LifecycleEvent::SubscriptionRemoved)
        .unwrap();
    assert_eq!(
        r.next().await.1["value"][0]["lifecycleEvent"],
        "subscriptionRemoved"
    );
    assert!(e.sb.subscriptions().is_empty());
    assert!(e.sb.fire_lifecycle(&id, LifecycleEvent::Missed).is_err());
}

#[tokio::test]
async fn slow_receivers_time_out_and_are_retried() {
    let e = env().await;
    let mut r = receiver().await;
    e.post("daemon", "subscriptions", sub_body(&r, 60)).await;
    e.sb.set_publisher_options(PublisherOptions {
        timeout: StdDuration::from_millis(200),
        initial_backoff: StdDuration::from_millis(20),
        ..Default::default()
    });
    *r.shared.slow_next.lock().unwrap() = 1;
    let d = e.sb.deliver(mail("slow")).unwrap();
    let (_, body) = r.next().await;
    assert_eq!(body["value"][0]["resourceData"]["id"], d.id.as_str());
    let log = wait_settled(&e, 1).await;
    assert_eq!(log[0].attempts, 2);
    assert_eq!(
        log[0].failures,
        vec!["no response within 200 ms".to_owned()]
    );
}
