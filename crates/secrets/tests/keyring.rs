//! Round trips through the real OS keyring. On Linux these need a running, unlocked Secret
//! Service (the README's test command provides one); without it they fail with the
//! actionable `Unavailable` error rather than passing against a mock.

use mailroom_secrets::{SecretKey, SecretKind, SecretValue, Secrets};

/// One test at a time talks to the Secret Service: the daemon answers one client at a time,
/// and five tests at once on a loaded machine pushed single calls past D-Bus's 25 s reply
/// timeout ("did not receive a reply").
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A store under a service name of its own, and the turn to use the keyring.
async fn secrets() -> (Secrets, tokio::sync::MutexGuard<'static, ()>) {
    let turn = ONE_AT_A_TIME.lock().await;
    (
        Secrets::with_service(format!("mailroom-test-{}", uuid::Uuid::new_v4())),
        turn,
    )
}

#[tokio::test]
async fn stores_reads_and_deletes_through_fresh_entries() {
    let (secrets, _turn) = secrets().await;
    secrets.self_check().await.expect("keyring self-check");
    let key = SecretKey::new("mailbox-a", SecretKind::RefreshToken);
    assert_eq!(secrets.get(&key).await.unwrap(), None);
    secrets
        .set(&key, &SecretValue::new("1.AXkA-first"))
        .await
        .unwrap();
    secrets
        .set(&key, &SecretValue::new("1.AXkA-rotated"))
        .await
        .unwrap();
    assert_eq!(
        secrets.get(&key).await.unwrap().unwrap().expose(),
        "1.AXkA-rotated",
        "a rotated refresh token must replace the old one"
    );
    secrets.delete(&key).await.unwrap();
    assert_eq!(secrets.get(&key).await.unwrap(), None);
    secrets.delete(&key).await.expect("deleting twice is fine");
}

#[tokio::test]
async fn deleting_an_owner_removes_all_its_entries_only() {
    let (secrets, _turn) = secrets().await;
    let a_secret = SecretKey::new("mailbox-a", SecretKind::ClientSecret);
    let a_cert = SecretKey::new("mailbox-a", SecretKind::Certificate);
    let b_secret = SecretKey::new("mailbox-b", SecretKind::ClientSecret);
    for key in [&a_secret, &a_cert, &b_secret] {
        secrets.set(key, &SecretValue::new("value")).await.unwrap();
    }
    secrets.delete_owner("mailbox-a").await.unwrap();
    assert_eq!(secrets.get(&a_secret).await.unwrap(), None);
    assert_eq!(secrets.get(&a_cert).await.unwrap(), None);
    assert!(secrets.get(&b_secret).await.unwrap().is_some());
    secrets.delete_owner("mailbox-b").await.unwrap();
}

#[tokio::test]
async fn large_values_fit() {
    // A PEM certificate with its private key is a few kilobytes.
    let (secrets, _turn) = secrets().await;
    let key = SecretKey::new("mailbox-c", SecretKind::Certificate);
    let pem = "-----BEGIN PRIVATE KEY-----\n".to_string() + &"A".repeat(6000);
    secrets
        .set(&key, &SecretValue::new(pem.clone()))
        .await
        .unwrap();
    assert_eq!(secrets.get(&key).await.unwrap().unwrap().expose(), pem);
    secrets.delete(&key).await.unwrap();
}

#[tokio::test]
async fn two_stores_keep_apart_the_same_owner_and_kind() {
    // The PSA connection's owner id is the same constant in every data directory: scoping by
    // store id is what keeps the sandbox's secret from replacing (or deleting) the real one.
    let (base, _turn) = secrets().await;
    let real = base.scoped("store-real");
    let sandbox = base.scoped("store-sandbox");
    let key = SecretKey::new("default", SecretKind::PsaClientSecret);
    real.set(&key, &SecretValue::new("production-secret"))
        .await
        .unwrap();
    sandbox
        .set(&key, &SecretValue::new("sandbox-secret"))
        .await
        .unwrap();
    assert_eq!(
        real.get(&key).await.unwrap().unwrap().expose(),
        "production-secret"
    );
    sandbox.delete_owner("default").await.unwrap();
    assert_eq!(sandbox.get(&key).await.unwrap(), None);
    assert_eq!(
        real.get(&key).await.unwrap().unwrap().expose(),
        "production-secret",
        "deleting the sandbox's entries must leave the real store's"
    );
    real.delete_owner("default").await.unwrap();
}

#[tokio::test]
async fn an_unscoped_entry_is_adopted_once_and_never_overwrites() {
    let (base, _turn) = secrets().await;
    let store = base.scoped("store-a");
    let secret = SecretKey::new("mbx-1", SecretKind::ClientSecret);
    let token = SecretKey::new("mbx-1", SecretKind::RefreshToken);
    base.set(&secret, &SecretValue::new("legacy-secret"))
        .await
        .unwrap();
    base.set(&token, &SecretValue::new("legacy-token"))
        .await
        .unwrap();
    // A scoped value written since wins over the legacy one.
    store
        .set(&token, &SecretValue::new("scoped-token"))
        .await
        .unwrap();

    assert_eq!(store.adopt_unscoped("mbx-1").await.unwrap(), 1);
    assert_eq!(
        store.get(&secret).await.unwrap().unwrap().expose(),
        "legacy-secret"
    );
    assert_eq!(
        store.get(&token).await.unwrap().unwrap().expose(),
        "scoped-token"
    );
    assert_eq!(
        base.get(&secret).await.unwrap(),
        None,
        "the legacy entry is gone"
    );
    assert_eq!(base.get(&token).await.unwrap(), None);
    assert_eq!(store.adopt_unscoped("mbx-1").await.unwrap(), 0);
    store.delete_owner("mbx-1").await.unwrap();
}
