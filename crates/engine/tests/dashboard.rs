//! The home dashboard (issue 14): each mailbox's last 24 hours match the log's counts, the
//! charts' buckets add up, and the oldest unfinished email is found. Needs a Secret Service
//! (the harness's core).

mod common;

use chrono::Utc;
use common::*;
use mailroom_store::inbound::LogStatus;

#[tokio::test]
async fn the_cards_and_charts_match_the_log() {
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    let now = Utc::now();
    // 600 entries over the last five hours, in three other mailboxes.
    let built = h.store.fill_synthetic_log(600, now).await.unwrap();
    // The first mailbox receives mail through a Graph subscription.
    let expires = now + chrono::Duration::days(3);
    h.store
        .put_webhook_subscription(
            &built.mailbox_ids[0],
            "sub-1",
            "users/x/messages",
            expires,
            now,
        )
        .await
        .unwrap();
    let dashboard = core.dashboard_at(now).await.unwrap();
    assert_eq!(dashboard.hourly.len(), 24);
    assert_eq!(dashboard.daily.len(), 30);
    for id in &built.mailbox_ids {
        let card = dashboard.mailboxes.iter().find(|c| &c.id == id).unwrap();
        let counts = h.store.status_counts(Some(id)).await.unwrap();
        let of = |s: LogStatus| counts.iter().find(|(x, _)| *x == s).map_or(0, |(_, n)| *n);
        assert_eq!(
            card.last_24h.processed,
            of(LogStatus::Processed),
            "{card:?}"
        );
        assert_eq!(card.last_24h.failed, of(LogStatus::Failed), "{card:?}");
        assert_eq!(card.last_24h.pending, of(LogStatus::Pending), "{card:?}");
        assert_eq!(
            card.total, card.last_24h,
            "every entry is from the last five hours"
        );
        if of(LogStatus::Pending) + of(LogStatus::Retrying) > 0 {
            assert!(card.oldest_unfinished_at.unwrap() <= now);
        }
    }
    let in_hours: i64 = dashboard.hourly.iter().map(|b| b.counts.total()).sum();
    assert_eq!(in_hours, 600);
    let today = dashboard.daily.last().unwrap();
    let in_days: i64 = dashboard.daily.iter().map(|b| b.counts.total()).sum();
    assert_eq!(in_days, 600);
    assert!(today.start <= now);
    // The harness's own mailbox has a card with nothing in it.
    let support = dashboard
        .mailboxes
        .iter()
        .find(|c| c.name == "Support")
        .unwrap();
    assert_eq!(support.last_24h.processed, 0);
    assert_eq!(support.oldest_unfinished_at, None);
    assert!(dashboard.store.bytes > 0);
    let subscriptions: Vec<_> = dashboard
        .mailboxes
        .iter()
        .map(|c| c.subscription_expires_at.map(|at| at.timestamp()))
        .collect();
    assert_eq!(
        subscriptions.iter().flatten().collect::<Vec<_>>(),
        vec![&expires.timestamp()],
        "only the subscribed mailbox names its expiry"
    );

    // The requests chart: each attempt made one Graph read and one PSA write; the PSA
    // answered 503 to the failed and retrying ones.
    assert_eq!(dashboard.requests.len(), 24);
    let (mut attempted, mut failing) = (0, 0);
    for id in &built.mailbox_ids {
        for (status, n) in h.store.status_counts(Some(id)).await.unwrap() {
            if status != LogStatus::Pending {
                attempted += n;
            }
            if matches!(status, LogStatus::Failed | LogStatus::Retrying) {
                failing += n;
            }
        }
    }
    let sum = |f: fn(&mailroom_engine::dashboard::RequestBucket) -> i64| {
        dashboard.requests.iter().map(f).sum::<i64>()
    };
    assert_eq!(sum(|b| b.graph), attempted);
    assert_eq!(sum(|b| b.psa), attempted);
    assert_eq!(sum(|b| b.failed), failing);
    assert_eq!(
        sum(|b| b.psa_failed),
        failing,
        "only the PSA's writes failed"
    );
    assert_eq!(sum(|b| b.throttled), 0);
}

#[tokio::test]
async fn export_csv_writes_every_page_under_the_filter() {
    use mailroom_store::inbound::LogQuery;
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    let built = h.store.fill_synthetic_log(1200, Utc::now()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.csv");
    let rows = core
        .export_inbound_csv(&LogQuery::default(), &all)
        .await
        .unwrap();
    assert_eq!(rows, 1200);
    let text = std::fs::read_to_string(&all).unwrap();
    assert_eq!(text.lines().count(), 1201, "a header and every entry");
    // It reads back as one record per entry.
    let mut reader = csv::Reader::from_path(&all).unwrap();
    assert_eq!(reader.records().count(), 1200);

    let second = built.mailbox_ids[1].clone();
    let filtered = dir.path().join("failed.csv");
    let rows = core
        .export_inbound_csv(
            &LogQuery {
                mailbox_id: Some(second.clone()),
                status: Some(LogStatus::Failed),
                ..Default::default()
            },
            &filtered,
        )
        .await
        .unwrap();
    let counts = h.store.status_counts(Some(&second)).await.unwrap();
    let failed = counts
        .iter()
        .find(|(s, _)| *s == LogStatus::Failed)
        .map_or(0, |(_, n)| *n);
    assert_eq!(rows as i64, failed);
    let text = std::fs::read_to_string(&filtered).unwrap();
    assert!(text
        .lines()
        .skip(1)
        .all(|l| l.contains(",Sales,") && l.contains(",failed,")));

    // A place that cannot be written is said so.
    let nowhere = dir.path().join("missing").join("x.csv");
    let err = core
        .export_inbound_csv(&LogQuery::default(), &nowhere)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Could not write"), "{err}");
}
