//! Error notifications (issue 12): a forced failure — the PSA refusing Mailroom's sign-in —
//! is published for the desktop and told to the chosen agent once, in a digest email sent from
//! the chosen mailbox, which the outbound log shows with its attempt. Needs a Secret Service.

mod common;

use std::time::Duration;

use common::*;
use mailroom_engine::engine::{Engine, EngineOptions};
use mailroom_engine::events::{EngineEvent, EventBus};
use mailroom_engine::notifications::{NotificationSettings, NotifiedAgent};
use mailroom_engine::Core;
use mailroom_secrets::{SecretKey, SecretKind, SecretValue, Secrets};
use mailroom_store::outbound::OutboundStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_psa_unreachable_is_told_once_to_the_chosen_agent_and_on_the_desktop() {
    let sb = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets::with_service(format!("mailroom-test-{}", uuid::Uuid::new_v4()));
    let core = Core::open_with_secrets(dir.path(), secrets).await.unwrap();
    let psa = &sb.tenant().psa;
    core.set_psa_connection(
        &sb.psa_url(),
        &psa.client_id,
        SecretValue::new(psa.client_secret.clone()),
        Some(&psa.tenant),
    )
    .await
    .unwrap();
    let mailbox = add_mailbox(core.store(), &sb, "Support", SUPPORT, serde_json::json!({})).await;
    core.secrets()
        .set(
            &SecretKey::new(&mailbox.id, SecretKind::ClientSecret),
            &SecretValue::new(sb.tenant().daemon_app.client_secret.clone().unwrap()),
        )
        .await
        .unwrap();
    // Refused: an agent without an address, and an interval of zero.
    let mut settings = NotificationSettings {
        agents: vec![NotifiedAgent {
            agent_id: 2,
            name: "Lee Lead".into(),
            email: "lee-lead".into(),
        }],
        from_mailbox_id: Some(mailbox.id.clone()),
        ..Default::default()
    };
    assert!(core.set_notification_settings(&settings).await.is_err());
    settings.agents[0].email = "lead@fabrikam.test".into();
    settings.digest_minutes = 0;
    assert!(core.set_notification_settings(&settings).await.is_err());
    settings.digest_minutes = 30;
    core.set_notification_settings(&settings).await.unwrap();

    // Green before it breaks (a step that was never green is not "broken").
    assert!(core.check_integration().await.unwrap()[0].ok);
    let lock = mailroom_store::DataDirLock::acquire(dir.path(), "notifications test").unwrap();
    let events = EventBus::new();
    let mut rx = events.subscribe();
    let engine = Engine::start(
        core.clone(),
        events,
        &lock,
        EngineOptions {
            webhook_any_port: true,
            integration_check_every: Duration::from_millis(300),
            problems_every: Duration::from_millis(200),
            outbound_every: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // The forced failure: the PSA secret rotated away.
    core.secrets()
        .set(
            &SecretKey::new(
                mailroom_engine::psa_connection::PSA_CONNECTION_ID,
                SecretKind::PsaClientSecret,
            ),
            &SecretValue::new("rotated-away"),
        )
        .await
        .unwrap();
    let (title, fix) = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(EngineEvent::NeedsAttention {
                kind, title, fix, ..
            }) = rx.recv().await
            {
                if kind == "psa_unreachable" {
                    break (title, fix);
                }
            }
        }
    })
    .await
    .expect("the problem is published for the desktop");
    assert_eq!(title, "Mailroom cannot reach HaloPSA");
    assert!(fix.contains("Integration"), "{fix}");

    let digest = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let sent = sb.graph().sent_mail(SUPPORT);
            if let Some(m) = sent.into_iter().find(|m| m.to == ["lead@fabrikam.test"]) {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the digest is sent");
    assert_eq!(digest.subject, "Mailroom: 1 problem(s) need attention");
    assert!(
        digest.body.contains("Mailroom cannot reach HaloPSA"),
        "{}",
        digest.body
    );
    assert!(digest.body.contains("Fix:"));

    // Checks keep failing; the problem is told once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let to_lead = sb
        .graph()
        .sent_mail(SUPPORT)
        .into_iter()
        .filter(|m| m.to == ["lead@fabrikam.test"])
        .count();
    assert_eq!(to_lead, 1);
    let outbound = core.store().outbound_list(None, 10, None).await.unwrap();
    assert_eq!(outbound.len(), 1);
    assert_eq!(outbound[0].status, OutboundStatus::Sent);
    assert_eq!(
        core.store()
            .outbound_attempts(outbound[0].id)
            .await
            .unwrap()
            .len(),
        1
    );
    engine.stop().await;
    let _ = core
        .secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await;
    let _ = core.secrets().delete_owner(&mailbox.id).await;
}
