//! JSON batching: limits, dependsOn sequencing, 424, mixed sequencing, per-item 429.

mod common;

use common::*;
use mailroom_graph_sandbox::MailboxLimits;
use serde_json::{json, Value};

fn get(id: &str, url: &str) -> Value {
    json!({"id": id, "method": "GET", "url": url})
}

#[tokio::test]
async fn limits_and_shape() {
    let e = env().await;
    let many: Vec<Value> = (1..=21)
        .map(|i| get(&i.to_string(), "/me/mailFolders/inbox"))
        .collect();
    let r = e.post("support", "$batch", json!({"requests": many})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let twenty: Vec<Value> = (1..=20)
        .map(|i| get(&i.to_string(), "/me/mailFolders/inbox?$select=displayName"))
        .collect();
    let r = e
        .post("support", "$batch", json!({"requests": twenty}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let responses = r.body["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 20);
    assert!(responses
        .iter()
        .all(|x| x["status"] == 200 && x["body"]["displayName"] == "Inbox"));
    let dup = e
        .post(
            "support",
            "$batch",
            json!({"requests": [get("1", "/me"), get("1", "/me")]}),
        )
        .await;
    assert_eq!(dup.status, 400);
    let no_ct = e.post("support", "$batch", json!({"requests": [{"id": "1", "method": "PATCH", "url": "/me/messages/x", "body": {"isRead": true}}]})).await;
    assert_eq!(no_ct.status, 400);
    let unauth = e
        .send(
            e.http
                .post(e.url("$batch"))
                .json(&json!({"requests": [get("1", "/me")]})),
        )
        .await;
    assert_eq!(unauth.status, 401);
}

#[tokio::test]
async fn depends_on_runs_in_order_and_failures_cascade_as_424() {
    let e = env().await;
    let msg = e
        .get(
            "support",
            "me/mailFolders/inbox/messages?$top=1&$filter=isRead eq false",
        )
        .await;
    let id = msg.body["value"][0]["id"].as_str().unwrap().to_owned();
    let ok = e
        .post("support", "$batch", json!({"requests": [
            {"id": "1", "method": "PATCH", "url": format!("/me/messages/{id}"), "headers": {"Content-Type": "application/json"}, "body": {"isRead": true}},
            {"id": "2", "method": "GET", "url": format!("/me/messages/{id}?$select=isRead"), "dependsOn": ["1"]},
        ]}))
        .await;
    let rs = ok.body["responses"].as_array().unwrap();
    let two = rs.iter().find(|r| r["id"] == "2").unwrap();
    assert_eq!(two["status"], 200);
    assert_eq!(two["body"]["isRead"], true);

    let failing = e
        .post(
            "support",
            "$batch",
            json!({"requests": [
                get("a", "/me/messages/AAMkADdoesnotexistdoesnotexistAAA="),
                {"id": "b", "method": "GET", "url": "/me", "dependsOn": ["a"]},
                {"id": "c", "method": "GET", "url": "/me", "dependsOn": ["b"]},
            ]}),
        )
        .await;
    assert_eq!(failing.status, 200);
    let rs = failing.body["responses"].as_array().unwrap();
    let status = |id: &str| {
        rs.iter().find(|r| r["id"] == id).unwrap()["status"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(status("a"), 404);
    assert_eq!(status("b"), 424);
    assert_eq!(status("c"), 424);

    let mixed = e
        .post(
            "support",
            "$batch",
            json!({"requests": [
                get("1", "/me"), get("2", "/me"),
                {"id": "3", "method": "GET", "url": "/me", "dependsOn": ["1"]},
            ]}),
        )
        .await;
    assert_eq!(mixed.status, 400);
    assert!(mixed
        .message()
        .contains("fully sequential or fully parallel"));
}

#[tokio::test]
async fn throttled_items_carry_retry_after() {
    let e = env().await;
    e.sb.set_mailbox_limits(MailboxLimits {
        window_requests: 3,
        ..Default::default()
    });
    let reqs: Vec<Value> = (1..=6)
        .map(|i| get(&i.to_string(), "/me/mailFolders/inbox/messages?$top=1"))
        .collect();
    let r = e.post("support", "$batch", json!({"requests": reqs})).await;
    assert_eq!(r.status, 200);
    let rs = r.body["responses"].as_array().unwrap();
    let throttled: Vec<&Value> = rs.iter().filter(|x| x["status"] == 429).collect();
    assert_eq!(throttled.len(), 3);
    for t in throttled {
        let ra: f64 = t["headers"]["Retry-After"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ra > 0.0);
        assert_eq!(t["body"]["error"]["code"], "TooManyRequests");
    }
    // The $value of a batched MIME request comes back base64-encoded.
    e.sb.set_mailbox_limits(MailboxLimits::default());
    let id = e.sb.messages(SUPPORT)[0].id.clone();
    let r = e
        .post(
            "support",
            "$batch",
            json!({"requests": [get("m", &format!("/me/messages/{id}/$value"))]}),
        )
        .await;
    let body = r.body["responses"][0]["body"].as_str().unwrap();
    use base64::Engine as _;
    let mime = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    assert!(String::from_utf8(mime).unwrap().contains("Message-ID"));
}
