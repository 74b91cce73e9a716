//! `mailroom secrets new-key | status | rotate` and a data directory whose secrets are sealed
//! in its database (a server's set-up): the HaloPSA connection saved with a key file works
//! across runs, is not in the keyring, and survives a key rotation.

mod common;

use std::path::Path;
use std::process::{Command, Output};

async fn mailroom(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailroom"));
    command.args(args).env("MAILROOM_DATA_DIR", dir);
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("run mailroom"))
        .await
        .unwrap()
}

use common::text;

/// Whether `psa check` finds the connection working (it needs the client secret); what it
/// said when not.
async fn connection_ok(dir: &Path, env: &[(&str, &str)]) -> Result<(), String> {
    let check = mailroom(dir, &["psa", "check", "--json"], env).await;
    let Ok(results) = serde_json::from_slice::<serde_json::Value>(&check.stdout) else {
        return Err(text(&check));
    };
    let ok = results
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["step"] == "connection" && r["ok"] == true);
    if ok {
        Ok(())
    } else {
        Err(text(&check))
    }
}

async fn status(dir: &Path, env: &[(&str, &str)]) -> serde_json::Value {
    let out = mailroom(dir, &["secrets", "status", "--json"], env).await;
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_psa_connection_works_across_runs_and_a_key_rotation() {
    let sb = common::sandbox_without_mail().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (old, new) = (keys.path().join("old.key"), keys.path().join("new.key"));

    // new-key: a 32-byte base64 key, owner-only, never overwritten.
    let made = mailroom(
        dir.path(),
        &["secrets", "new-key", "--file", old.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(made.status.success(), "{}", text(&made));
    let written = std::fs::read_to_string(&old).unwrap();
    let key = mailroom_secrets::sealed::SealingKey::from_base64(&written, "the key file")
        .expect("a 32-byte base64 key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&old).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let again = mailroom(
        dir.path(),
        &["secrets", "new-key", "--file", old.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(!again.status.success());
    assert!(
        text(&again).contains("never overwritten"),
        "{}",
        text(&again)
    );
    assert_eq!(std::fs::read_to_string(&old).unwrap(), written);

    // The PSA connection saved with the key file: sealed in the database.
    let with_old = [("MAILROOM_SECRETS_KEY_FILE", old.to_str().unwrap())];
    let creds = sb.tenant().psa.clone();
    let connect_args = [
        "psa",
        "connect",
        "--url",
        &sb.psa_url(),
        "--client-id",
        &creds.client_id,
        "--tenant",
        &creds.tenant,
    ];
    let mut env = with_old.to_vec();
    env.push(("MAILROOM_PSA_CLIENT_SECRET", &creds.client_secret));
    let connected = mailroom(dir.path(), &connect_args, &env).await;
    assert!(connected.status.success(), "{}", text(&connected));
    let sealed = status(dir.path(), &with_old).await;
    assert_eq!(sealed["backend"], "sealed");
    let old_id = sealed["key_id"].as_str().unwrap().to_string();
    assert_eq!(old_id, key.id());
    assert_eq!(sealed["sealed_by_key"], serde_json::json!([[old_id, 1]]));
    // A later run reads it: the connection checks out.
    connection_ok(dir.path(), &with_old).await.unwrap();

    // Without the key the keyring is used, which holds nothing of this directory.
    let keyring = status(dir.path(), &[]).await;
    assert_eq!(keyring["backend"], "keyring");

    // Rotation: the new key with the old one as previous reseals; then the new key alone works.
    let made = mailroom(
        dir.path(),
        &["secrets", "new-key", "--file", new.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(made.status.success(), "{}", text(&made));
    let only_new = [("MAILROOM_SECRETS_KEY_FILE", new.to_str().unwrap())];
    // The new key alone cannot open what the old one sealed, and says what to do.
    let refused = connection_ok(dir.path(), &only_new).await.unwrap_err();
    assert!(
        refused.contains(&format!("sealed with key {old_id}"))
            && refused.contains("MAILROOM_SECRETS_PREVIOUS_KEY"),
        "{refused}"
    );
    let rotating = [
        ("MAILROOM_SECRETS_KEY_FILE", new.to_str().unwrap()),
        ("MAILROOM_SECRETS_PREVIOUS_KEY_FILE", old.to_str().unwrap()),
    ];
    let rotated = mailroom(dir.path(), &["secrets", "rotate"], &rotating).await;
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert!(
        text(&rotated).contains("Resealed 1 secret(s)"),
        "{}",
        text(&rotated)
    );
    let after = status(dir.path(), &only_new).await;
    let new_id = after["key_id"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id);
    assert_eq!(after["sealed_by_key"], serde_json::json!([[new_id, 1]]));
    connection_ok(dir.path(), &only_new).await.unwrap();

    // A key that is not one: refused with what to do.
    let bad = keys.path().join("bad.key");
    std::fs::write(&bad, "c2hvcnQ=\n").unwrap();
    let out = mailroom(
        dir.path(),
        &["secrets", "status"],
        &[("MAILROOM_SECRETS_KEY_FILE", bad.to_str().unwrap())],
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out).contains("5 bytes, not 32"), "{}", text(&out));
}
