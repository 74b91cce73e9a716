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
        .unwrap();
}
