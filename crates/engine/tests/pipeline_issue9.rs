//! Issue 9 defects of the pipeline, each against the in-process sandbox.

mod common;

use common::*;
use mailroom_store::inbound::EmailState;
use serde_json::json;

/// Item 4: a burst of ordinary mails from one sender with one subject, delivered together.
/// The loop guard only looks back from each mail's own arrival, so the first N (its
/// threshold) become tickets and only the rest are skipped as a suspected loop.
#[tokio::test]
async fn a_burst_of_same_subject_mail_makes_the_first_n_tickets_and_skips_the_rest() {
    const THRESHOLD: usize = 10;
    let h = harness(json!({
        "processed_mail": "leave",
        "loop_policy": {"max_recent_same_subject": THRESHOLD}
    }))
    .await;
    let delivered: Vec<_> = (0..50)
        .map(|_| h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Daily report")))
        .collect();
    let report = h.scan().await;
    assert_eq!(report.new, 50, "{report:?}");
    assert_eq!(
        (report.processed, report.skipped),
        (THRESHOLD, 50 - THRESHOLD),
        "{report:?}"
    );
    assert_eq!(h.tickets().len(), THRESHOLD);

    // The first N in arrival order are the tickets; every later one is skipped.
    let mut emails = h.emails().await;
    emails.sort_by_key(|e| (e.received_at, e.id));
    assert_eq!(emails.len(), 50);
    for (i, e) in emails.iter().enumerate() {
        if i < THRESHOLD {
            assert_eq!(e.state, EmailState::Done, "mail {i}: {e:#?}");
            assert!(e.ticket_id.is_some());
        } else {
            assert_eq!(e.state, EmailState::Skipped, "mail {i}: {e:#?}");
            assert_eq!(e.skip_reason.as_deref(), Some("loop_suspected"));
        }
    }
    let _ = delivered;
}
