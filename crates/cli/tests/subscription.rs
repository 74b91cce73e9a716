//! `mailroom subscription create|show|cancel` against the sandbox: the command runs the
//! receiver long enough for Graph's validation handshake, stores the subscription, shows it
//! and cancels it at Graph. Needs a keyring (run under `./dev test`).

use std::process::Command;

mod common;

use mailroom_engine::webhooks::WebhookSettings;
use mailroom_engine::Core;

fn mailroom(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(args)
        .env("MAILROOM_DATA_DIR", dir)
        .output()
        .expect("mailroom runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_show_cancel() {
    let sb = common::sandbox_without_mail().await;
    let dir = tempfile::tempdir().unwrap();
    let core = Core::open(dir.path()).await.unwrap();
    common::connected_app_only_mailbox(&core, &sb, "Helpdesk", "helpdesk@contoso.test").await;
    core.set_webhook_settings(&WebhookSettings {
        port: Some(0),
        max_lifetime_minutes: Some(10_080),
        ..Default::default()
    })
    .await
    .unwrap();

    let (ok, text) = mailroom(dir.path(), &["subscription", "create", "Helpdesk"]);
    assert!(ok, "{text}");
    let subs = sb.graph().subscriptions();
    assert_eq!(subs.len(), 1, "{text}");
    assert!(text.contains(&subs[0].id), "{text}");
    assert!(
        subs[0].resource.contains("helpdesk@contoso.test"),
        "{:?}",
        subs[0]
    );

    let (ok, text) = mailroom(dir.path(), &["subscription", "show", "Helpdesk", "--json"]);
    assert!(ok, "{text}");
    let shown: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        shown["subscription"]["subscription_id"],
        subs[0].id.as_str()
    );
    assert_eq!(shown["subscription"]["renewals"], 0);
    assert_eq!(shown["events"][0]["kind"], "created");
    // 10,080 minutes asked; the sandbox allows 4,230 (ExtensionError), so the expiry is clamped.
    let minutes = (subs[0].expiration - mailroom_clock::Clock::now(&*sb.clock())).num_minutes();
    assert!((4200..=4230).contains(&minutes), "{minutes}");

    let (ok, text) = mailroom(dir.path(), &["subscription", "cancel", "Helpdesk"]);
    assert!(ok, "{text}");
    assert!(sb.graph().subscriptions().is_empty());
    let (ok, text) = mailroom(dir.path(), &["subscription", "show", "Helpdesk"]);
    assert!(ok, "{text}");
    assert!(text.contains("no subscription"), "{text}");
    let (ok, text) = mailroom(dir.path(), &["subscription", "cancel", "Helpdesk"]);
    assert!(!ok);
    assert!(text.contains("no subscription"), "{text}");
}

#[test]
fn receiver_settings_are_shown_changed_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
            .args(args)
            .env("MAILROOM_DATA_DIR", dir.path())
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    };
    let shown = run(&["subscription", "receiver"]);
    assert!(shown.status.success());
    assert!(String::from_utf8_lossy(&shown.stdout).contains("127.0.0.1:47130"));
    let set = run(&[
        "subscription",
        "receiver",
        "--port",
        "48000",
        "--public-url",
        "https://hooks.example.com/mailroom",
    ]);
    assert!(set.status.success());
    let again = String::from_utf8_lossy(&run(&["subscription", "receiver"]).stdout).to_string();
    assert!(again.contains("127.0.0.1:48000"), "{again}");
    assert!(
        again.contains("https://hooks.example.com/mailroom"),
        "{again}"
    );
    let insecure = run(&[
        "subscription",
        "receiver",
        "--public-url",
        "http://hooks.example.com",
    ]);
    assert!(!insecure.status.success());
    assert!(String::from_utf8_lossy(&insecure.stderr).contains("must be an https:// URL"));
    let bad_bind = run(&["subscription", "receiver", "--bind", "not-an-ip"]);
    assert!(!bad_bind.status.success());
    assert!(String::from_utf8_lossy(&bad_bind.stderr).contains("is not an IP address"));

    // Issue 23 #1: the Webhooks fallback scan interval is settable from the CLI.
    let before = String::from_utf8_lossy(&run(&["subscription", "receiver"]).stdout).to_string();
    assert!(before.contains("fallback scan     every 900 s"), "{before}");
    assert!(
        run(&["subscription", "receiver", "--fallback-interval", "120"])
            .status
            .success()
    );
    let after = String::from_utf8_lossy(&run(&["subscription", "receiver"]).stdout).to_string();
    assert!(after.contains("fallback scan     every 120 s"), "{after}");
    assert!(
        after.contains("127.0.0.1:48000"),
        "other settings kept: {after}"
    );
    let zero = run(&["subscription", "receiver", "--fallback-interval", "0"]);
    assert!(!zero.status.success());
}
