//! The CLI as a user runs it: a real process over a real data directory.

use std::process::Command;

fn mailroom(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(args)
        .env("MAILROOM_DATA_DIR", data_dir)
        .output()
        .expect("run mailroom")
}

#[test]
fn version_names_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let out = mailroom(dir.path(), &["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("mailroom {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn mailbox_list_on_a_fresh_data_dir_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = mailroom(dir.path(), &["mailbox", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("No mailboxes yet"), "{text}");
    assert!(
        dir.path().join("mailroom.db").exists(),
        "the store is created on first use"
    );
    let json = mailroom(dir.path(), &["mailbox", "list", "--json"]);
    assert_eq!(String::from_utf8(json.stdout).unwrap().trim(), "[]");
}
