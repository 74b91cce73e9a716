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
    let set = mailroom(dir, &["mailbox", "canary", "Support", "megan@contoso.test"]).await;
    assert!(set.status.success(), "{}", text(&set));
    let shown = mailroom(dir, &["mailbox", "canary", "Support"]).await;
    assert!(
        text(&shown).contains("canary of Support: megan@contoso.test"),
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
    assert_eq!(check["state"], "ok", "{check}");
    common::forget_secrets(&core, &mailbox);
}
