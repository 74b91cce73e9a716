//! Issue 9 item 5: a throttled delta page costs that page only. Each page's sightings and its
//! nextLink are stored; the next round resumes at the page that failed.

mod common;

use common::*;
use mailroom_engine::sync::{intake, ScanReport};
use mailroom_graph::ThrottleConfig;
use mailroom_sandbox::faults::{FaultRule, Service};

const DELTA: &str = "*/mailFolders/*/messages/delta";

/// Graph's routes are one catch-all template, so delta requests are counted by a zero-latency
/// rule on their path (added before the fault, so failed requests count too).
fn delta_requests(h: &Harness, counter: u64) -> u64 {
    h.sb.faults()
        .rules()
        .into_iter()
        .find(|r| r.id == counter)
        .map(|r| r.applied)
        .unwrap()
}

#[tokio::test]
async fn a_failed_page_k_keeps_pages_before_it_and_the_next_round_resumes_at_k() {
    let mut h = harness(default_settings()).await;
    // One attempt per request: the fault is not retried away inside the client.
    h.graph = h
        .graph
        .clone()
        .with_delta_page_size(3)
        .with_throttle_config(ThrottleConfig {
            max_attempts: 1,
            ..ThrottleConfig::default()
        });
    for i in 0..10 {
        h.deliver(mail(
            &format!("user{i}@fabrikam.test"),
            "User",
            &format!("Problem {i}"),
        ));
    }
    let counter =
        h.sb.faults()
            .add(FaultRule::latency(Service::Graph, DELTA, 0))
            .unwrap();
    // 10 messages in pages of 3: 4 pages. Page 3 (k = 3) fails with 503.
    h.sb.faults()
        .add(FaultRule::fail_next(Service::Graph, DELTA, 1, 503).after(2))
        .unwrap();
    let mut first = ScanReport::default();
    let err = intake(&h.pipeline, &h.mailbox, &h.graph, &mut first).await;
    assert!(err.is_err(), "page 3 failed, so the round fails");
    assert_eq!(
        delta_requests(&h, counter),
        3,
        "pages 1, 2 and the failed 3"
    );
    assert_eq!(first.new, 6, "pages 1 and 2 were sighted: {first:?}");
    assert_eq!(h.emails().await.len(), 6);
    let cursor = h
        .store
        .delta_round_cursor(&h.mailbox.id, "inbox")
        .await
        .unwrap()
        .expect("the round's cursor is stored");
    assert_eq!(cursor.pages, 2);
    assert!(
        cursor.next_link.contains("skiptoken"),
        "{}",
        cursor.next_link
    );
    assert_eq!(
        h.store.delta_link(&h.mailbox.id).await.unwrap(),
        None,
        "no deltaLink until the round completes"
    );

    // The next round starts at page 3: two requests (pages 3 and 4), not four.
    let mut second = ScanReport::default();
    intake(&h.pipeline, &h.mailbox, &h.graph, &mut second)
        .await
        .expect("second round");
    assert_eq!(delta_requests(&h, counter) - 3, 2, "resumed at page 3");
    assert_eq!(second.seen, 4);
    assert_eq!(second.new, 4);
    assert_eq!(h.emails().await.len(), 10);
    assert_eq!(
        h.store
            .delta_round_cursor(&h.mailbox.id, "inbox")
            .await
            .unwrap(),
        None,
        "a completed round clears its cursor"
    );
    let link = h.store.delta_link(&h.mailbox.id).await.unwrap().unwrap();
    assert!(link.contains("deltatoken"), "{link}");

    // An idle round: one request from the deltaLink, nothing new.
    let mut idle = ScanReport::default();
    intake(&h.pipeline, &h.mailbox, &h.graph, &mut idle)
        .await
        .unwrap();
    assert_eq!(delta_requests(&h, counter) - 5, 1);
    assert_eq!(idle.new, 0);

    // Everything sighted is processed exactly once.
    h.scan().await;
    assert_eq!(h.tickets().len(), 10);
}
