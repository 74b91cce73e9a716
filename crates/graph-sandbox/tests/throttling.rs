//! Per app+mailbox throttling: 4 concurrent requests, the 10-minute request window, and
//! injected 503/504 faults.

mod common;

use chrono::Duration;
use common::*;
use mailroom_graph_sandbox::seed::DAEMON_APP_ID;
use mailroom_graph_sandbox::{Fault, MailboxLimits};

#[tokio::test]
async fn fifth_concurrent_request_is_throttled() {
    let e = env().await;
    e.sb.hold_requests(true);
    let mut held = Vec::new();
    for _ in 0..4 {
        let http = e.http.clone();
        let url = e.url(&format!(
            "users/{SUPPORT}/mailFolders/inbox/messages?$top=1"
        ));
        held.push(tokio::spawn(async move {
            http.get(url)
                .bearer_auth("daemon")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    while e.sb.in_flight(DAEMON_APP_ID, SUPPORT) < 4 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let fifth = e
        .get("daemon", &format!("users/{SUPPORT}/messages?$top=1"))
        .await;
    assert_eq!(fifth.status, 429);
    assert_eq!(fifth.code(), "ApplicationThrottled");
    assert_eq!(
        fifth.message(),
        "Application is over its MailboxConcurrency limit."
    );
    // The limit is per app+mailbox: the same app is still admitted on another mailbox.
    let other = {
        let http = e.http.clone();
        let url = e.url(&format!("users/{HELPDESK}/messages?$top=1"));
        tokio::spawn(async move {
            http.get(url)
                .bearer_auth("daemon")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    while e.sb.in_flight(DAEMON_APP_ID, HELPDESK) < 1 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    e.sb.hold_requests(false);
    for h in held {
        assert_eq!(h.await.unwrap(), 200);
    }
    assert_eq!(other.await.unwrap(), 200);
    assert_eq!(e.sb.in_flight(DAEMON_APP_ID, SUPPORT), 0);
    assert_eq!(
        e.get("daemon", &format!("users/{SUPPORT}/messages?$top=1"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn request_window_gives_fractional_retry_after() {
    let e = env().await;
    e.sb.set_mailbox_limits(MailboxLimits {
        window_requests: 3,
        ..Default::default()
    });
    for _ in 0..3 {
        assert_eq!(
            e.get("daemon", &format!("users/{SUPPORT}/messages?$top=1"))
                .await
                .status,
            200
        );
    }
    let r = e
        .get("daemon", &format!("users/{SUPPORT}/messages?$top=1"))
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.code(), "TooManyRequests");
    let retry: f64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0.0 && retry <= 600.0);
    // Other mailboxes have their own budget.
    assert_eq!(
        e.get("daemon", &format!("users/{HELPDESK}/messages?$top=1"))
            .await
            .status,
        200
    );
    e.advance(Duration::minutes(11));
    assert_eq!(
        e.get("daemon", &format!("users/{SUPPORT}/messages?$top=1"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn injected_faults() {
    let e = env().await;
    e.sb.push_fault(Fault {
        status: 503,
        retry_after: Some(2.5),
        path_contains: Some("/messages".into()),
    });
    assert_eq!(e.get("support", "me/mailFolders/inbox").await.status, 200);
    let r = e.get("support", "me/messages").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after").as_deref(), Some("2.5"));
    assert_eq!(e.get("support", "me/messages").await.status, 200);
    e.sb.push_fault(Fault {
        status: 504,
        retry_after: None,
        path_contains: None,
    });
    assert_eq!(e.get("support", "me").await.status, 504);
}
