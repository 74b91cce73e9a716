//! The sync supervisor: per-mailbox tasks, import now, events, pause, permission problems.

mod common;

use std::time::Duration;

use common::*;
use mailroom_engine::events::{EngineEvent, SyncState};
use mailroom_engine::sync::{MailboxCommand, SyncOptions, SyncSupervisor};
use serde_json::json;

async fn next_matching(
    rx: &mut tokio::sync::broadcast::Receiver<EngineEvent>,
    mut want: impl FnMut(&EngineEvent) -> bool,
) -> EngineEvent {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("an event arrives")
            .expect("channel open");
        if want(&event) {
            return event;
        }
    }
}

#[tokio::test]
async fn import_now_processes_mail_and_publishes_events() {
    let h = harness(default_settings()).await;
    let supervisor = SyncSupervisor::new(
        h.pipeline.clone(),
        SyncOptions {
            default_interval: Duration::from_secs(3600),
            ..Default::default()
        },
    );
    let mut rx = h.pipeline.events().subscribe();
    let d = h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Via the supervisor"));
    supervisor.start_mailbox(h.mailbox.clone(), h.graph.clone());
    let report = supervisor.import_now(&h.mailbox.id).await.expect("import");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(h.ticket_by_message_id(&d.internet_message_id).len(), 1);

    let seen = next_matching(&mut rx, |e| {
        matches!(e, EngineEvent::Email { new: true, .. })
    })
    .await;
    let EngineEvent::Email { email, .. } = seen else {
        unreachable!()
    };
    assert_eq!(
        email.internet_message_id.as_deref(),
        Some(d.internet_message_id.as_str())
    );
    // Each line of the processing log is published as it is written (the live tail), before
    // the attempt finishes, and stored with the attempt.
    let mut steps = Vec::new();
    while let EngineEvent::Step {
        email_id,
        mailbox_id,
        message,
        ..
    } = next_matching(&mut rx, |e| {
        matches!(e, EngineEvent::Step { .. })
            || matches!(e, EngineEvent::AttemptFinished { result, .. } if result == "processed")
    })
    .await
    {
        assert_eq!(
            (email_id, mailbox_id.as_str()),
            (email.id, h.mailbox.id.as_str())
        );
        steps.push(message);
    }
    assert!(steps[0].starts_with("Attempt 1"), "{steps:?}");
    assert!(
        steps.iter().any(|m| m.starts_with("Created ticket")),
        "{steps:?}"
    );
    let stored = h.store.attempts(email.id).await.unwrap();
    let stored: Vec<String> = stored[0].log.iter().map(|l| l.message.clone()).collect();
    assert_eq!(stored, steps, "the tail shows what the attempt stores");
    next_matching(&mut rx, |e| {
        matches!(e, EngineEvent::MailboxSync(s) if s.state == SyncState::Idle && s.last_sync_at.is_some())
    })
    .await;

    // Pause, then a delivered mail waits until resumed.
    assert!(supervisor.send(&h.mailbox.id, MailboxCommand::Pause).await);
    next_matching(
        &mut rx,
        |e| matches!(e, EngineEvent::MailboxSync(s) if s.state == SyncState::Paused),
    )
    .await;
    let later = h.deliver(mail("lee@fabrikam.test", "Lee Chen", "After the pause"));
    // A command that scans an unpaused mailbox, then a second Pause as a barrier: commands are
    // handled in order, so once its Paused event arrives the Reprocess has been handled.
    let first_id = h.email_for(&d).await.id;
    assert!(
        supervisor
            .send(&h.mailbox.id, MailboxCommand::Reprocess(first_id))
            .await
    );
    assert!(supervisor.send(&h.mailbox.id, MailboxCommand::Pause).await);
    next_matching(
        &mut rx,
        |e| matches!(e, EngineEvent::MailboxSync(s) if s.state == SyncState::Paused),
    )
    .await;
    assert!(
        h.ticket_by_message_id(&later.internet_message_id)
            .is_empty(),
        "nothing is processed while paused"
    );
    assert!(
        h.emails()
            .await
            .iter()
            .all(|e| e.internet_message_id.as_deref() != Some(later.internet_message_id.as_str())),
        "nothing is even read while paused"
    );
    assert!(supervisor.send(&h.mailbox.id, MailboxCommand::Resume).await);
    next_matching(&mut rx, |e| {
        matches!(e, EngineEvent::Email { email, .. } if email.internet_message_id.as_deref() == Some(later.internet_message_id.as_str()) && email.ticket_id.is_some())
    })
    .await;
    assert_eq!(h.ticket_by_message_id(&later.internet_message_id).len(), 1);

    supervisor.stop_mailbox(&h.mailbox.id).await;
    assert!(supervisor.import_now(&h.mailbox.id).await.is_err());
    supervisor.shutdown().await;
}

#[tokio::test]
async fn import_now_reports_permission_problems_plainly() {
    let h = harness(default_settings()).await;
    // An application access policy keeps the daemon app out of alex@.
    restrict_daemon_to_support(&h.sb);
    let alex = add_mailbox(&h.store, &h.sb, "Alex", "alex@contoso.test", json!({})).await;
    let supervisor = SyncSupervisor::new(h.pipeline.clone(), SyncOptions::default());
    supervisor.start_mailbox(alex.clone(), graph_for(&h.sb, "alex@contoso.test"));
    let err = supervisor
        .import_now(&alex.id)
        .await
        .expect_err("access denied");
    assert!(
        matches!(err, mailroom_engine::engine::EngineError::Scan(_)),
        "{err:?}"
    );
    assert_eq!(err.code(), mailroom_engine::ErrorCode::GraphFailed);
    let err = err.to_string();
    assert!(err.contains("may not read this mailbox"), "{err}");
    assert!(
        err.contains("403") || err.contains("ErrorAccessDenied"),
        "{err}"
    );
    let status = supervisor
        .statuses()
        .into_iter()
        .find(|s| s.mailbox_id == alex.id)
        .unwrap();
    assert_eq!(status.state, SyncState::Error);
    supervisor.shutdown().await;
}

/// Issue 23 #1: `mailroom run --interval N` wins over a mailbox's stored interval; a mailbox
/// that stores none uses the engine's default (the stored value no longer defaults to 60 s and
/// so never hides the engine's setting).
#[tokio::test]
async fn interval_override_wins_over_the_stored_scan_interval() {
    let engine_default = SyncOptions {
        default_interval: Duration::from_secs(42),
        ..Default::default()
    };
    let unset = harness(default_settings()).await;
    assert_eq!(
        mailroom_engine::sync::scan_interval(&engine_default, &unset.mailbox),
        Duration::from_secs(42),
        "no stored interval: the engine's"
    );
    let mut settings = default_settings();
    settings["scan_interval_secs"] = json!(120);
    let h = harness(settings).await;
    assert_eq!(
        mailroom_engine::sync::scan_interval(&engine_default, &h.mailbox),
        Duration::from_secs(120)
    );
    let overridden = mailroom_engine::sync::scan_interval(
        &SyncOptions {
            interval_override: Some(Duration::from_secs(5)),
            ..Default::default()
        },
        &h.mailbox,
    );
    assert_eq!(overridden, Duration::from_secs(5));
}

/// Issue 24 #3: the pause holds on the ticker path too — with a 1 s scan interval, a paused
/// mailbox makes no Graph request at all for several intervals, and reads again once resumed.
#[tokio::test]
async fn a_paused_mailbox_is_not_read_at_its_ticks() {
    use mailroom_sandbox::Service;

    let h = harness(default_settings()).await;
    let supervisor = SyncSupervisor::new(
        h.pipeline.clone(),
        SyncOptions {
            interval_override: Some(Duration::from_secs(1)),
            ..Default::default()
        },
    );
    let mut rx = h.pipeline.events().subscribe();
    supervisor.start_mailbox(h.mailbox.clone(), h.graph.clone());
    next_matching(&mut rx, |e| {
        matches!(e, EngineEvent::MailboxSync(s) if s.state == SyncState::Idle && s.last_sync_at.is_some())
    })
    .await;
    assert!(supervisor.send(&h.mailbox.id, MailboxCommand::Pause).await);
    next_matching(
        &mut rx,
        |e| matches!(e, EngineEvent::MailboxSync(s) if s.state == SyncState::Paused),
    )
    .await;
    let later = h.deliver(mail("lee@fabrikam.test", "Lee Chen", "During the pause"));
    let requests = h.sb.faults().total(Service::Graph);
    // Three ticks of the interval pass while paused.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(
        h.sb.faults().total(Service::Graph),
        requests,
        "no Graph request while paused"
    );
    assert!(h
        .ticket_by_message_id(&later.internet_message_id)
        .is_empty());

    assert!(supervisor.send(&h.mailbox.id, MailboxCommand::Resume).await);
    next_matching(&mut rx, |e| {
        matches!(e, EngineEvent::Email { email, .. } if email.internet_message_id.as_deref() == Some(later.internet_message_id.as_str()) && email.ticket_id.is_some())
    })
    .await;
    supervisor.shutdown().await;
}
