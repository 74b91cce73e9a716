//! `mailroom run` as a user runs it: a configured data directory (mailbox connected app-only,
//! PSA connection, secrets in the keyring), a real process, mail delivered to the sandbox,
//! Ctrl-C (SIGINT) to stop. Needs a keyring (run under `./dev test`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

mod common;

use mailroom_graph_sandbox::InboundMail;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_processes_mail_until_ctrl_c() {
    let sb = common::sandbox_without_mail().await;
    let (dir, core, mailbox) = common::configured_data_dir(&sb).await;
    let delivered = sb
        .graph()
        .deliver(InboundMail {
            to: "support@contoso.test".into(),
            from: "pat@fabrikam.test".into(),
            from_name: Some("Pat Smith".into()),
            subject: "Processed by mailroom run".into(),
            body_html: Some("<p>Hello</p>".into()),
            ..Default::default()
        })
        .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["run", "--interval", "1"])
        .env("MAILROOM_DATA_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("mailroom run starts");
    let stdout = child.stdout.take().unwrap();
    let pid = child.id();
    let data_dir = dir.path().to_path_buf();
    let (lines, second) = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut second = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if second.is_none() && line.contains("Support: syncing") {
                // Issue 9 #15: a second engine on the same data directory is refused, naming
                // the first; it must not start a second sync loop beside it.
                second = Some(
                    Command::new(env!("CARGO_BIN_EXE_mailroom"))
                        .args(["run", "--interval", "1"])
                        .env("MAILROOM_DATA_DIR", &data_dir)
                        .output()
                        .expect("the second mailroom run starts"),
                );
            }
            let done = line.contains("Processed by mailroom run") && line.contains("Processed");
            seen.push(line);
            if done {
                // Ctrl-C.
                Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status()
                    .unwrap();
            }
        }
        (seen, second)
    })
    .await
    .unwrap();
    let status = child.wait().unwrap();
    let text = lines.join("\n");
    let second = second.expect("the first run reported syncing");
    let second_err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{second_err}");
    assert!(
        second_err.contains("already running") && second_err.contains(&format!("process {pid}")),
        "the refusal names the running process: {second_err}"
    );
    assert!(status.success(), "{text}");
    assert!(text.contains("Support: syncing"), "{text}");
    assert!(text.contains("Webhook receiver on 127.0.0.1:"), "{text}");
    assert!(text.contains("Stopping"), "{text}");
    let tickets: Vec<_> = sb
        .halo()
        .tickets()
        .into_iter()
        .filter(|t| t["email_message_id"] == delivered.internet_message_id.as_str())
        .collect();
    assert_eq!(tickets.len(), 1, "{text}");
    assert!(
        text.contains(&format!("ticket {}", tickets[0]["id"])),
        "{text}"
    );
    common::forget_secrets(&core, &mailbox).await;
}

/// Issue 22: Ctrl-C while the PSA refuses every request (the client is in its 429 back-off,
/// which may last two minutes per call) ends `mailroom run` within 2 s, and the email it was
/// working on is not left claimed: the next start processes it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_psa_back_off_exits_within_2s_and_leaves_no_claim() {
    use mailroom_sandbox::{FaultRule, Service};
    use std::time::{Duration, Instant};

    let sb = common::sandbox_without_mail().await;
    let (dir, core, mailbox) = common::configured_data_dir(&sb).await;
    sb.faults()
        .add(FaultRule::psa_rate_limited("*", 100_000))
        .unwrap();
    sb.graph()
        .deliver(InboundMail {
            to: "support@contoso.test".into(),
            from: "pat@fabrikam.test".into(),
            from_name: Some("Pat Smith".into()),
            subject: "Stuck behind a 429".into(),
            body_html: Some("<p>Hello</p>".into()),
            ..Default::default()
        })
        .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["run", "--interval", "1"])
        .env("MAILROOM_DATA_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("mailroom run starts");
    let stdout = child.stdout.take().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while sb.faults().total(Service::Psa) < 2 {
        assert!(Instant::now() < deadline, "the PSA was never called");
        assert!(child.try_wait().unwrap().is_none(), "mailroom run exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let interrupted_at = Instant::now();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let took = interrupted_at.elapsed();
    let text = output.await.unwrap().join("\n");
    eprintln!("{text}\nexited {} ms after Ctrl-C", took.as_millis());
    assert!(status.success(), "{text}");
    assert!(took < Duration::from_secs(2), "exited after {took:?}");
    assert!(text.contains("Stopped in"), "{text}");

    let emails = core
        .store()
        .inbound_log(&mailroom_store::inbound::LogQuery::default())
        .await
        .unwrap();
    assert_eq!(emails.len(), 1);
    assert_ne!(
        emails[0].state,
        mailroom_store::inbound::EmailState::Claimed,
        "the email was released"
    );
    common::forget_secrets(&core, &mailbox).await;
}
