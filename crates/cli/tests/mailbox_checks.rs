//! `mailroom mailbox canary` and the blast-radius check in `mailroom mailbox test --json`
//! (issue 25), against the sandbox. Needs a keyring (run under `./dev test`).

mod common;

use common::{mailroom, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_canary_is_tried_by_the_connection_test() {
    let sb = common::sandbox_without_mail().await;
    let (dir, core, mailbox) = common::configured_data_dir(&sb).await;
    let dir = dir.path();
    let bad = mailroom(dir, &["mailbox", "canary", "Support", "not-an-address"]).await;
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("is not an email address"),
        "{}",
        text(&bad)
    );
    let set = mailroom(dir, &["mailbox", "canary", "Support", "diego@contoso.test"]).await;
    assert!(set.status.success(), "{}", text(&set));
    let shown = mailroom(dir, &["mailbox", "canary", "Support"]).await;
    assert!(
        text(&shown).contains("canary of Support: diego@contoso.test"),
        "{}",
        text(&shown)
    );
    let test = mailroom(dir, &["mailbox", "test", "Support", "--json"]).await;
    assert!(test.status.success(), "{}", text(&test));
    let report: serde_json::Value = serde_json::from_slice(&test.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "blast_radius")
        .unwrap()
        .clone();
    // The seeded tenant, like a new one, restricts nothing: red, with the remedies.
    assert_eq!(check["state"], "failed", "{check}");
    assert!(
        check["fix"]
            .as_str()
            .unwrap()
            .contains("New-ApplicationAccessPolicy"),
        "{check}"
    );

    // Check now: recorded with its time; red, so a scheduled run can alert on the exit code.
    let check = mailroom(dir, &["mailbox", "check", "Support", "--json"]).await;
    assert!(!check.status.success(), "{}", text(&check));
    let found: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(found["checked_at"].is_string(), "{found}");
    assert!(found["next_check_at"].is_string(), "{found}");
    let blast = found["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "blast_radius")
        .unwrap();
    assert_eq!(blast["state"], "failed", "{found}");
    common::forget_secrets(&core, &mailbox).await;
}
