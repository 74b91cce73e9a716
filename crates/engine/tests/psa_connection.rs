//! The PSA connection: record in the store, secret in the keyring, client from both.
//! Needs a keyring (run under `./dev test`, which starts a headless Secret Service).

mod common;

use common::*;
use mailroom_engine::{Core, ErrorCode};
use mailroom_secrets::{SecretKey, SecretKind, SecretValue};

#[tokio::test]
async fn psa_connection_round_trips_and_builds_a_working_client() {
    let sb = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let core = Core::open(dir.path()).await.unwrap();
    let missing = core.psa_client().await.expect_err("not configured yet");
    assert_eq!(missing.code(), ErrorCode::NotConfigured);

    let bad = core
        .set_psa_connection("ftp://example", "id", SecretValue::new("s"), None)
        .await
        .expect_err("bad url");
    assert_eq!(bad.code(), ErrorCode::InvalidInput);

    let creds = &sb.tenant().psa;
    let conn = core
        .set_psa_connection(
            &format!("{}/", sb.psa_url()),
            &creds.client_id,
            SecretValue::new(creds.client_secret.clone()),
            Some(&creds.tenant),
        )
        .await
        .unwrap();
    assert_eq!(conn.base_url, sb.psa_url());
    assert_eq!(conn.tenant.as_deref(), Some(creds.tenant.as_str()));
    // The secret is in the keyring, never in the database.
    let stored = core
        .secrets()
        .get(&SecretKey::new(&conn.id, SecretKind::PsaClientSecret))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.expose(), creds.client_secret);
    let db = std::fs::read(dir.path().join("mailroom.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(&creds.client_secret));

    let client = core.psa_client().await.unwrap();
    let me = client.me().await.unwrap();
    assert_eq!(me.name.as_deref(), Some("Mailroom API"));
    core.secrets()
        .delete(&SecretKey::new(&conn.id, SecretKind::PsaClientSecret))
        .await
        .unwrap();
}

/// Issue 23 #4: *Test connection* for the PSA checks the credentials, the token's scopes, the
/// ticket types and every mailbox's reply outcome, each with a fix when it fails.
#[tokio::test]
async fn the_psa_test_names_each_check_and_its_fix() {
    let sb = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let service = format!("mailroom-test-{}", uuid::Uuid::new_v4());
    let core = Core::open_with_secrets(
        dir.path(),
        mailroom_secrets::Secrets::with_service(&service),
    )
    .await
    .unwrap();
    assert_eq!(
        core.test_psa_connection().await.unwrap_err().code(),
        ErrorCode::NotConfigured
    );
    let creds = &sb.tenant().psa;
    let good = core.store().mailboxes().await.unwrap();
    assert!(good.is_empty());
    add_mailbox(core.store(), &sb, "Support", SUPPORT, default_settings()).await;
    add_mailbox(
        core.store(),
        &sb,
        "Helpdesk",
        HELPDESK,
        serde_json::json!({ "action_outcome_id": 999, "action_outcome": "Gone" }),
    )
    .await;

    // A wrong secret: only the sign-in is checked, and it says what to fix.
    core.set_psa_connection(
        &sb.psa_url(),
        &creds.client_id,
        SecretValue::new("not-the-secret"),
        Some(&creds.tenant),
    )
    .await
    .unwrap();
    let report = core.test_psa_connection().await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.checks.len(), 1, "{report:?}");
    assert_eq!(report.checks[0].id, "sign_in");
    assert!(report.checks[0]
        .fix
        .as_deref()
        .is_some_and(|f| f.contains("Client ID and secret")));

    core.set_psa_connection(
        &sb.psa_url(),
        &creds.client_id,
        SecretValue::new(creds.client_secret.clone()),
        Some(&creds.tenant),
    )
    .await
    .unwrap();
    let report = core.test_psa_connection().await.unwrap();
    let by_id = |id: &str| {
        report
            .checks
            .iter()
            .find(|c| c.id == id || (id == "helpdesk" && c.label.ends_with("Helpdesk")))
            .unwrap_or_else(|| panic!("no check {id}: {report:?}"))
            .clone()
    };
    for id in ["sign_in", "scopes", "ticket_types", "outcomes"] {
        assert!(by_id(id).ok, "{:?}", by_id(id));
    }
    let support = report
        .checks
        .iter()
        .find(|c| c.label.ends_with("Support"))
        .unwrap();
    assert!(
        support.ok && support.detail.contains("(the default)"),
        "{support:?}"
    );
    let helpdesk = by_id("helpdesk");
    assert!(!helpdesk.ok, "{helpdesk:?}");
    assert!(helpdesk.detail.contains("does not exist"), "{helpdesk:?}");
    assert!(helpdesk
        .fix
        .as_deref()
        .unwrap()
        .contains("Incoming tab of Helpdesk"));
    assert!(!report.ok);
    core.secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await
        .unwrap();
}
