//! The desktop app as the console of a shared database (issue 16), on a throwaway PostgreSQL:
//! a shared database is saved only once it was reached with a key that opens its secrets
//! (the password and the key go to the keyring, the URL without its password to
//! `console.json`); the app then opens it and, with processing off, only watches: another
//! worker's emails and problems reach its event bus as they happen. A database that is away
//! at start leaves the app on its own database, saying why.

mod common;

use std::time::Duration;

use chrono::Utc;
use mailroom_engine::console::{self, ConsoleChange, ConsoleSettings, CONSOLE_FILE};
use mailroom_engine::engine::{Engine, EngineOptions, EngineState};
use mailroom_engine::events::{EngineEvent, EventBus};
use mailroom_engine::store_types::{Cloud, CredentialKind, MailboxMethod};
use mailroom_engine::{Core, ErrorCode};
use mailroom_secrets::sealed::{SealingKey, SealingKeys};
use mailroom_secrets::{SecretKey, SecretKind, SecretValue, Secrets};
use mailroom_store::{Backend, DataDirLock, NewMailbox};

fn keyring() -> Secrets {
    Secrets::with_service(format!("mailroom-console-test-{}", uuid::Uuid::new_v4()))
}

/// A shared database with one secret sealed by `key`, as a service worker left it.
async fn service_database(key: &SealingKey) -> (String, Core, tempfile::TempDir) {
    let cluster = mailroom_pg_test::TestPostgres::shared().expect("a throwaway PostgreSQL");
    let url = cluster.new_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let service = Core::connect_sealed(
        &url,
        dir.path(),
        SealingKeys {
            current: key.clone(),
            previous: None,
        },
    )
    .await
    .unwrap();
    service
        .secrets()
        .set(
            &SecretKey::new("default", SecretKind::PsaClientSecret),
            &SecretValue::new("psa-secret"),
        )
        .await
        .unwrap();
    (url, service, dir)
}

#[tokio::test]
async fn a_console_is_saved_only_with_a_key_that_opens_the_shared_secrets() {
    let key = SealingKey::generate().unwrap();
    let (url, _service, _service_dir) = service_database(&key).await;
    let dir = tempfile::tempdir().unwrap();
    let keyring = keyring();

    // Another key: refused, nothing saved.
    let wrong = ConsoleChange {
        database_url: Some(url.clone()),
        password: Some("s3cret".into()),
        secrets_key: Some(SealingKey::generate().unwrap().to_base64().to_string()),
        process_mail: false,
    };
    let error = console::apply(dir.path(), &keyring, &wrong)
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidInput);
    assert!(
        error
            .to_string()
            .contains("does not open 1 of the 1 secrets"),
        "{error}"
    );
    assert!(!dir.path().join(CONSOLE_FILE).exists());

    // No key at all: says what to enter.
    let keyless = ConsoleChange {
        secrets_key: None,
        ..wrong.clone()
    };
    let error = console::check(dir.path(), &keyring, &keyless)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("enter the secrets key"),
        "{error}"
    );

    // The service's key: checked, saved; the password is in the keyring, not the file.
    let right = ConsoleChange {
        secrets_key: Some(key.to_base64().to_string()),
        ..wrong.clone()
    };
    let checked = console::check(dir.path(), &keyring, &right).await.unwrap();
    assert_eq!((checked.secrets, checked.mailboxes), (1, 0));
    assert_eq!(checked.key_id, key.id());
    let (settings, _) = console::apply(dir.path(), &keyring, &right).await.unwrap();
    let file = std::fs::read_to_string(dir.path().join(CONSOLE_FILE)).unwrap();
    assert!(
        !file.contains("s3cret") && !file.contains(&*key.to_base64()),
        "{file}"
    );
    assert_eq!(settings.database_url.as_deref(), Some(url.as_str()));
    assert!(!settings.process_mail);

    // Saved again with the password and key left empty: the saved ones are kept.
    let again = ConsoleChange {
        database_url: Some(url.clone()),
        password: None,
        secrets_key: None,
        process_mail: true,
    };
    let (settings, checked) = console::apply(dir.path(), &keyring, &again).await.unwrap();
    assert!(settings.process_mail);
    assert_eq!(checked.unwrap().key_id, key.id());

    // Back to this workstation's own database.
    let (settings, checked) = console::apply(dir.path(), &keyring, &ConsoleChange::default())
        .await
        .unwrap();
    assert_eq!((settings.database_url, checked), (None, None));
}

async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<EngineEvent>,
    want: impl Fn(&EngineEvent) -> bool,
) -> EngineEvent {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("the event arrives")
            .expect("channel open");
        if want(&event) {
            return event;
        }
    }
}

#[tokio::test]
async fn a_watching_console_shows_another_workers_emails_and_problems_as_they_happen() {
    let key = SealingKey::generate().unwrap();
    let (url, service, _service_dir) = service_database(&key).await;
    let dir = tempfile::tempdir().unwrap();
    let keyring = keyring();
    let change = ConsoleChange {
        database_url: Some(url.clone()),
        password: None,
        secrets_key: Some(key.to_base64().to_string()),
        process_mail: false,
    };
    console::apply(dir.path(), &keyring, &change).await.unwrap();

    let configured = Core::open_configured(dir.path(), keyring.clone())
        .await
        .unwrap();
    assert!(configured.is_shared() && !configured.process_mail());
    assert_eq!(configured.core.store().backend(), Backend::Postgres);
    // The console opens the service's secrets.
    let psa = configured
        .core
        .secrets()
        .get(&SecretKey::new("default", SecretKind::PsaClientSecret))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(psa.expose(), "psa-secret");

    let lock = DataDirLock::acquire(dir.path(), "console test").unwrap();
    let events = EventBus::new();
    let mut rx = events.subscribe();
    let options = EngineOptions {
        process_mail: configured.process_mail(),
        hear_other_workers: true,
        ..Default::default()
    };
    let engine = Engine::start(configured.core.clone(), events, &lock, options)
        .await
        .unwrap();
    assert_eq!(engine.started().await, EngineState::Watching);
    // Reading a mailbox now is the service's job, and the error says so.
    let error = engine.import_now("any").await.unwrap_err();
    assert!(error.to_string().contains("processes no mail"), "{error}");

    // The listener is up once the engine watches; give it a moment to LISTEN.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mailbox = service
        .store()
        .add_mailbox(&NewMailbox {
            name: "Support".into(),
            method: MailboxMethod::Scan,
            cloud: Cloud::Global,
            authority_url: None,
            graph_url: None,
            tenant_id: "t".into(),
            client_id: "c".into(),
            credential_kind: CredentialKind::Public,
            shared_mailbox: None,
            mailbox_address: None,
        })
        .await
        .unwrap();
    let (email_id, _) = service
        .store()
        .record_sighting(
            &mailroom_store::inbound::Sighting {
                mailbox_id: mailbox.id.clone(),
                graph_message_id: "AAMk-1".into(),
                internet_message_id: Some("<printer@fabrikam.test>".into()),
                conversation_id: None,
                received_at: Utc::now(),
                from_address: "kim@fabrikam.test".into(),
                from_name: "Kim Lee".into(),
                subject: "Printer jammed".into(),
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let EngineEvent::Email { email, new } = next_event(
        &mut rx,
        |e| matches!(e, EngineEvent::Email { email, .. } if email.id == email_id),
    )
    .await
    else {
        unreachable!()
    };
    assert!(new);
    assert_eq!(email.subject, "Printer jammed");

    service
        .store()
        .mark_failed(
            email_id,
            "psa_failed",
            "HaloPSA refused the ticket",
            Utc::now(),
        )
        .await
        .unwrap();
    next_event(&mut rx, |e| {
        matches!(e, EngineEvent::Email { email, new: false } if email.id == email_id
            && email.state == mailroom_store::inbound::EmailState::Failed)
    })
    .await;
    service
        .store()
        .insert_notification(
            "email_failed:1",
            "email_failed",
            Some(&mailbox.id),
            "An email was not turned into a ticket: Printer jammed",
            "HaloPSA refused the ticket",
            "Reprocess it.",
            Utc::now(),
        )
        .await
        .unwrap();
    next_event(&mut rx, |e| {
        matches!(e, EngineEvent::NeedsAttention { title, .. } if title.contains("Printer jammed"))
    })
    .await;
    engine.stop().await;
}

#[tokio::test]
async fn a_shared_database_that_is_away_leaves_the_app_on_its_own_database_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = keyring();
    let settings = ConsoleSettings {
        database_url: Some("postgres://mailroom@127.0.0.1:1/mailroom".into()),
        process_mail: true,
        ..Default::default()
    };
    settings.save(dir.path()).unwrap();
    // The key is in the keyring, as a saved console has it.
    keyring
        .scoped(format!("console-{}", settings.id))
        .set(
            &SecretKey::new("console", SecretKind::SealingKey),
            &SecretValue::new(SealingKey::generate().unwrap().to_base64().as_str()),
        )
        .await
        .unwrap();
    let configured = Core::open_configured(dir.path(), keyring).await.unwrap();
    assert!(!configured.is_shared());
    assert!(
        !configured.process_mail(),
        "nothing is processed on the fallback"
    );
    assert_eq!(configured.core.store().backend(), Backend::Sqlite);
    let why = configured.shared_error.unwrap();
    assert!(
        why.contains("127.0.0.1:1") && why.contains("refused"),
        "{why}"
    );
}

/// A watching console manages the workers' Graph subscriptions: it creates one that points
/// Graph at the public URL (a worker's receiver answers the validation), and a delivered email
/// is then announced to that worker, not to the console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_console_creates_subscriptions_for_the_workers() {
    use mailroom_engine::webhooks::{WebhookSettings, Webhooks};

    let sb = mailroom_sandbox::Sandbox::start(mailroom_sandbox::SandboxOptions {
        loopback_webhooks: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let key = SealingKey::generate().unwrap();
    let (url, service, _service_dir) = service_database(&key).await;
    let mailbox = common::app_only_support(&service, &sb).await;
    // A worker's receiver, reached at the public URL.
    let worker = Webhooks::start(
        mailroom_engine::webhooks::WebhookOptions {
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Default::default()
        },
        service.store().clone(),
        service.secrets().clone(),
        mailroom_clock::system(),
        None,
    )
    .await
    .unwrap();
    let public = format!("http://127.0.0.1:{}/", worker.local_addr().port());

    let dir = tempfile::tempdir().unwrap();
    let keyring = keyring();
    console::apply(
        dir.path(),
        &keyring,
        &ConsoleChange {
            database_url: Some(url),
            password: None,
            secrets_key: Some(key.to_base64().to_string()),
            process_mail: false,
        },
    )
    .await
    .unwrap();
    let configured = Core::open_configured(dir.path(), keyring).await.unwrap();
    let lock = DataDirLock::acquire(dir.path(), "console test").unwrap();
    let options = EngineOptions {
        process_mail: false,
        ..Default::default()
    };
    let engine = Engine::start(configured.core.clone(), EventBus::new(), &lock, options)
        .await
        .unwrap();

    // No public URL yet: the console says what to set.
    let until_webhooks = || async {
        for _ in 0..100 {
            if let Some(w) = engine.webhooks() {
                return Some(w);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    };
    assert!(until_webhooks().await.is_none());
    configured
        .core
        .set_webhook_settings(&WebhookSettings {
            public_base_url: Some(public.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    engine.refresh();
    let webhooks = until_webhooks()
        .await
        .expect("the console manages subscriptions");
    // The mailbox is registered within the round.
    let mut created = None;
    for _ in 0..100 {
        match webhooks.create_subscription(&mailbox.id).await {
            Ok(record) => {
                created = Some(record);
                break;
            }
            Err(mailroom_engine::webhooks::WebhookError::NotRegistered(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    let created = created.expect("the subscription is created");
    let graph_side = sb.graph().subscriptions().remove(0);
    assert_eq!(graph_side.id, created.subscription_id);
    assert!(
        graph_side.notification_url.starts_with(&public),
        "{}",
        graph_side.notification_url
    );
    // Graph tells the worker about new mail.
    sb.graph()
        .deliver(mailroom_graph_sandbox::InboundMail {
            to: "support@contoso.test".into(),
            from: "kim@fabrikam.test".into(),
            subject: "VPN drops".into(),
            ..Default::default()
        })
        .unwrap();
    let mut stored = 0;
    for _ in 0..200 {
        stored = worker.notifications(&mailbox.id).await.unwrap().len();
        if stored > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored, 1, "the worker received Graph's notification");
    engine.stop().await;
    worker.shutdown();
}
