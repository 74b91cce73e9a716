//! Round trips through the real OS keyring. On Linux these need a running, unlocked Secret
//! Service (the README's test command provides one); without it they fail with the
//! actionable `Unavailable` error rather than passing against a mock.

use mailroom_secrets::{SecretKey, SecretKind, SecretValue, Secrets};

fn secrets() -> Secrets {
    Secrets::with_service(format!("mailroom-test-{}", uuid::Uuid::new_v4()))
}

#[test]
fn stores_reads_and_deletes_through_fresh_entries() {
    let secrets = secrets();
    secrets.self_check().expect("keyring self-check");
    let key = SecretKey::new("mailbox-a", SecretKind::RefreshToken);
    assert_eq!(secrets.get(&key).unwrap(), None);
    secrets
        .set(&key, &SecretValue::new("1.AXkA-first"))
        .unwrap();
    secrets
        .set(&key, &SecretValue::new("1.AXkA-rotated"))
        .unwrap();
    assert_eq!(
        secrets.get(&key).unwrap().unwrap().expose(),
        "1.AXkA-rotated",
        "a rotated refresh token must replace the old one"
    );
    secrets.delete(&key).unwrap();
    assert_eq!(secrets.get(&key).unwrap(), None);
    secrets.delete(&key).expect("deleting twice is fine");
}

#[test]
fn deleting_an_owner_removes_all_its_entries_only() {
    let secrets = secrets();
    let a_secret = SecretKey::new("mailbox-a", SecretKind::ClientSecret);
    let a_cert = SecretKey::new("mailbox-a", SecretKind::Certificate);
    let b_secret = SecretKey::new("mailbox-b", SecretKind::ClientSecret);
    for key in [&a_secret, &a_cert, &b_secret] {
        secrets.set(key, &SecretValue::new("value")).unwrap();
    }
    secrets.delete_owner("mailbox-a").unwrap();
    assert_eq!(secrets.get(&a_secret).unwrap(), None);
    assert_eq!(secrets.get(&a_cert).unwrap(), None);
    assert!(secrets.get(&b_secret).unwrap().is_some());
    secrets.delete_owner("mailbox-b").unwrap();
}

#[test]
fn large_values_fit() {
    // A PEM certificate with its private key is a few kilobytes.
    let secrets = secrets();
    let key = SecretKey::new("mailbox-c", SecretKind::Certificate);
    let pem = "-----BEGIN PRIVATE KEY-----\n".to_string() + &"A".repeat(6000);
    secrets.set(&key, &SecretValue::new(pem.clone())).unwrap();
    assert_eq!(secrets.get(&key).unwrap().unwrap().expose(), pem);
    secrets.delete(&key).unwrap();
}
