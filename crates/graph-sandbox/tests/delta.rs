//! Delta query on a folder: paging with odata.maxpagesize, deltaLink rounds, @removed, 410.

mod common;

use chrono::Duration;
use common::*;
use mailroom_graph_sandbox::{GraphBehaviour, InboundMail};
use serde_json::{json, Value};

/// Runs one full delta round from `url`; returns (items, deltaLink).
async fn round(e: &Env, token: &str, url: &str, headers: &[(&str, &str)]) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut next = e.url(url);
    loop {
        let r = e.get_with(token, &next, headers).await;
        assert_eq!(r.status, 200, "{}", r.text);
        items.extend(r.body["value"].as_array().unwrap().iter().cloned());
        if let Some(n) = r.body["@odata.nextLink"].as_str() {
            assert!(n.contains("skiptoken"));
            next = n.to_owned();
        } else {
            return (
                items,
                r.body["@odata.deltaLink"]
                    .as_str()
                    .expect("deltaLink at the end")
                    .to_owned(),
            );
        }
    }
}

fn mail(subject: &str) -> InboundMail {
    InboundMail {
        to: SUPPORT.into(),
        from: "sam@outlook.test".into(),
        subject: subject.into(),
        body_text: Some("hello".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn initial_sync_pages_then_idle_delta_is_empty() {
    let e = env().await;
    let first = e
        .get_with(
            "support",
            "me/mailFolders/inbox/messages/delta?$select=subject,isRead",
            &[("Prefer", "odata.maxpagesize=4")],
        )
        .await;
    assert_eq!(first.body["value"].as_array().unwrap().len(), 4);
    assert!(first
        .header("preference-applied")
        .unwrap()
        .contains("odata.maxpagesize=4"));
    let (items, link) = round(
        &e,
        "support",
        "me/mailFolders/inbox/messages/delta?$select=subject,isRead",
        &[("Prefer", "odata.maxpagesize=4")],
    )
    .await;
    let inbox =
        e.sb.messages(SUPPORT)
            .into_iter()
            .filter(|m| m.folder == "inbox")
            .count();
    assert_eq!(items.len(), inbox);
    assert!(items[0].get("body").is_none(), "$select applies to delta");
    assert!(link.contains("deltatoken"));
    let idle = e.get("support", &link).await;
    assert_eq!(idle.status, 200);
    assert_eq!(idle.body["value"], json!([]));
    assert!(idle.body["@odata.deltaLink"].is_string());
}

#[tokio::test]
async fn delta_reports_new_updated_and_removed_items() {
    let e = env().await;
    let (_, link) = round(
        &e,
        "daemon",
        &format!("users/{SUPPORT}/mailFolders('Inbox')/messages/delta"),
        &[("Prefer", "odata.maxpagesize=50")],
    )
    .await;
    let d = e.sb.deliver(mail("New after sync")).unwrap();
    let r = e.get("daemon", &link).await;
    let v = r.body["value"].as_array().unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["id"], d.id.as_str());
    assert_eq!(v[0]["subject"], "New after sync");
    let link2 = r.body["@odata.deltaLink"].as_str().unwrap().to_owned();

    // Move the message out of the inbox: the inbox delta shows @removed with the old id.
    let moved = e
        .post(
            "daemon",
            &format!("users/{SUPPORT}/messages/{}/move", d.id),
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(moved.status, 201);
    let r = e.get("daemon", &link2).await;
    let v = r.body["value"].as_array().unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["id"], d.id.as_str());
    assert_eq!(v[0]["@removed"]["reason"], "deleted");
    let link3 = r.body["@odata.deltaLink"].as_str().unwrap().to_owned();

    // An update in place shows up as the changed item.
    let other =
        e.sb.messages(SUPPORT)
            .into_iter()
            .find(|m| m.folder == "inbox" && !m.is_read)
            .unwrap();
    e.patch(
        "daemon",
        &format!("users/{SUPPORT}/messages/{}", other.id),
        json!({"isRead": true}),
    )
    .await;
    let r = e.get("daemon", &link3).await;
    let v = r.body["value"].as_array().unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["isRead"], true);
}

#[tokio::test]
async fn unknown_invalidated_and_expired_tokens_are_410() {
    let e = env().await;
    let r = e
        .get(
            "support",
            "me/mailFolders/inbox/messages/delta?$deltatoken=nonsense",
        )
        .await;
    assert_eq!(r.status, 410);
    assert_eq!(r.code(), "SyncStateNotFound");

    let (_, link) = round(
        &e,
        "support",
        "me/mailFolders/inbox/messages/delta",
        &[("Prefer", "odata.maxpagesize=100")],
    )
    .await;
    assert_eq!(e.get("support", &link).await.status, 200);
    e.sb.invalidate_delta_tokens();
    assert_eq!(e.get("support", &link).await.code(), "SyncStateNotFound");

    e.sb.set_behaviour(GraphBehaviour {
        delta_token_ttl: Some(Duration::days(7)),
        ..Default::default()
    });
    let (_, link) = round(
        &e,
        "support",
        "me/mailFolders/inbox/messages/delta",
        &[("Prefer", "odata.maxpagesize=100")],
    )
    .await;
    e.advance(Duration::days(8));
    assert_eq!(e.get("support", &link).await.status, 410);
    // A delta token of one folder is not valid for another.
    let (_, link) = round(
        &e,
        "support",
        "me/mailFolders/inbox/messages/delta",
        &[("Prefer", "odata.maxpagesize=100")],
    )
    .await;
    let other = link.replace("mailFolders/inbox", "mailFolders/archive");
    assert_eq!(e.get("support", &other).await.status, 410);
}

#[tokio::test]
async fn delta_filter_on_received_date_only() {
    let e = env().await;
    let since =
        (start_time() - Duration::hours(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (items, _) = round(
        &e,
        "support",
        &format!("me/mailFolders/inbox/messages/delta?$filter=receivedDateTime ge {since}"),
        &[("Prefer", "odata.maxpagesize=100")],
    )
    .await;
    let expected =
        e.sb.messages(SUPPORT)
            .into_iter()
            .filter(|m| m.folder == "inbox" && m.received >= start_time() - Duration::hours(30))
            .count();
    assert!(expected > 0);
    assert_eq!(items.len(), expected);
    let bad = e
        .get(
            "support",
            "me/mailFolders/inbox/messages/delta?$filter=isRead eq false",
        )
        .await;
    assert_eq!(bad.status, 400);
}
