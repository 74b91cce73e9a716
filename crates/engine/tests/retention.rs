//! Retention (issue 14) with a moved clock: attempts and request bodies older than the settings
//! allow go, batch by batch, while the engine's processing goes on; recent ones and every
//! email's own row stay. Needs a Secret Service (the harness's core).

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use mailroom_engine::retention::RetentionSettings;
use mailroom_engine::sync::{SyncOptions, SyncSupervisor};
use mailroom_store::inbound::EmailState;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_details_go_in_batches_while_processing_goes_on_and_recent_ones_stay() {
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    let now = Utc::now();
    // A year-old log of 4,000 entries (three other mailboxes) …
    let old = h
        .store
        .fill_synthetic_log(4000, now - chrono::Duration::days(365))
        .await
        .unwrap();
    assert_eq!(
        h.store.attempts(old.sample_email_id).await.unwrap().len(),
        1
    );
    // … and new mail processed while the pruning runs.
    let delivered: Vec<_> = (0..5)
        .map(|i| {
            h.deliver(mail(
                "pat@fabrikam.test",
                "Pat Smith",
                &format!("Fresh {i}"),
            ))
        })
        .collect();
    let engine = SyncSupervisor::new(
        h.pipeline.clone(),
        SyncOptions {
            interval_override: Some(Duration::from_millis(200)),
            ..Default::default()
        },
    );
    engine.start_mailbox(h.mailbox.clone(), h.graph.clone());
    let cancel = CancellationToken::new();
    let (pruned, ()) = tokio::join!(core.prune(now, &cancel), async {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let emails = h.emails().await;
            if emails.len() == delivered.len() && emails.iter().all(|e| e.state == EmailState::Done)
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the new mail is processed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    engine.shutdown().await;
    let pruned = pruned.unwrap();
    assert!(pruned.attempts > 3000, "{pruned:?}");
    assert!(!pruned.interrupted);
    assert!(h
        .store
        .attempts(old.sample_email_id)
        .await
        .unwrap()
        .is_empty());
    let fresh = h.emails().await;
    let details = h.store.attempts(fresh[0].id).await.unwrap();
    assert_eq!(details.len(), 1);
    assert!(details[0]
        .requests
        .iter()
        .any(|r| r.response_body.is_some()));

    // 31 days on, the new mail's bodies go; its attempts, requests and log stay.
    let later = now + chrono::Duration::days(31);
    let report = core.prune(later, &cancel).await.unwrap();
    assert!(
        report.request_bodies > 0 && report.attempts == 0,
        "{report:?}"
    );
    let details = h.store.attempts(fresh[0].id).await.unwrap();
    assert_eq!(details.len(), 1);
    assert!(!details[0].requests.is_empty() && !details[0].log.is_empty());
    assert!(details[0]
        .requests
        .iter()
        .all(|r| r.request_body.is_none() && r.response_body.is_none()));

    // Shorter settings, and 181 days on: the attempts go too; every email's row stays.
    core.set_retention(RetentionSettings {
        request_bodies_days: 7,
        attempts_days: 90,
    })
    .await
    .unwrap();
    let report = core
        .prune(now + chrono::Duration::days(91), &cancel)
        .await
        .unwrap();
    assert_eq!(report.attempts, delivered.len() as u64, "{report:?}");
    assert!(h.store.attempts(fresh[0].id).await.unwrap().is_empty());
    assert_eq!(h.emails().await.len(), delivered.len());
    assert_eq!(
        h.tickets().len(),
        delivered.len(),
        "one ticket each, none twice"
    );

    // Bad settings are refused with what to do.
    let longer = core
        .set_retention(RetentionSettings {
            request_bodies_days: 200,
            attempts_days: 90,
        })
        .await
        .unwrap_err();
    assert!(
        longer.to_string().contains("cannot be kept longer"),
        "{longer}"
    );
    assert!(core
        .set_retention(RetentionSettings {
            request_bodies_days: 0,
            attempts_days: 90,
        })
        .await
        .is_err());

    // A stop between two batches ends the pass and says so.
    let stopped = CancellationToken::new();
    stopped.cancel();
    assert!(core.prune(now, &stopped).await.unwrap().interrupted);
}
