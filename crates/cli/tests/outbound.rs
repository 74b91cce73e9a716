//! `mailroom outbound list | show | resend | default-mailbox` on an empty data directory: each
//! says what there is (nothing) and refuses what does not exist, with a non-zero exit.

use std::process::{Command, Output};

fn mailroom(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(args)
        .env("MAILROOM_DATA_DIR", dir)
        .output()
        .expect("run mailroom")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn an_empty_outbound_log_and_what_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let list = mailroom(dir.path(), &["outbound", "list"]);
    assert!(list.status.success(), "{}", text(&list));
    assert!(text(&list).contains("no outgoing email yet"));
    let json = mailroom(dir.path(), &["outbound", "list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&json.stdout).trim(), "[]");
    let missing = mailroom(dir.path(), &["outbound", "resend", "5"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("there is no outgoing email 5"),
        "{}",
        text(&missing)
    );
    let default = mailroom(dir.path(), &["outbound", "default-mailbox"]);
    assert!(
        text(&default).contains("outgoing default mailbox: none"),
        "{}",
        text(&default)
    );
    let unknown = mailroom(dir.path(), &["outbound", "default-mailbox", "Support"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("no mailbox 'Support'"),
        "{}",
        text(&unknown)
    );
}

#[test]
fn notify_shows_its_settings_and_refuses_a_test_without_agents() {
    let dir = tempfile::tempdir().unwrap();
    let show = mailroom(dir.path(), &["notify", "show"]);
    assert!(show.status.success(), "{}", text(&show));
    assert!(text(&show).contains("sent from: none"), "{}", text(&show));
    assert!(
        text(&show).contains("every:     30 minutes"),
        "{}",
        text(&show)
    );
    let test = mailroom(dir.path(), &["notify", "test"]);
    assert!(!test.status.success());
    assert!(
        text(&test).contains("choose at least one agent"),
        "{}",
        text(&test)
    );
    let bad = mailroom(dir.path(), &["notify", "set", "--every", "0"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("between 1 and 1440"), "{}", text(&bad));

    // Kinds of problems switched off and on by name; an unknown one names the kinds.
    let set = mailroom(
        dir.path(),
        &[
            "notify",
            "set",
            "--off",
            "subscription_lost",
            "--off",
            "email_failed",
            "--expiring-days",
            "7",
        ],
    );
    assert!(set.status.success(), "{}", text(&set));
    let show = mailroom(dir.path(), &["notify", "show"]);
    assert!(
        text(&show).contains(
            "told:      mailbox_disconnected, credential_expiring, psa_unreachable, contacts_failed, mailbox_check_failed (credentials: within 7 days)"
        ),
        "{}",
        text(&show)
    );
    let unknown = mailroom(dir.path(), &["notify", "set", "--on", "tickets"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("no kind of problem 'tickets'; the kinds are: email_failed, mailbox_disconnected, subscription_lost"),
        "{}",
        text(&unknown)
    );
}
