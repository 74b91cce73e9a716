//! `mailroom serve` as a server runs it: a data directory whose secrets are sealed in its
//! database (no keyring is used), a real process, mail delivered to the sandbox, the
//! operations endpoints read while it runs, JSON logs on standard output, and SIGTERM (what
//! systemd sends) for a graceful stop.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use mailroom_graph_sandbox::InboundMail;
use mailroom_secrets::sealed::{SealingKey, SealingKeys};

/// The message of a JSON log line, if it is one.
fn message(line: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    event["fields"]["message"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_processes_mail_exposes_health_and_metrics_and_stops_on_sigterm() {
    let sb = common::sandbox_without_mail().await;
    let dir = tempfile::tempdir().unwrap();
    let key = SealingKey::generate().unwrap();
    let core = mailroom_engine::Core::open_sealed(
        dir.path(),
        SealingKeys {
            current: key.clone(),
            previous: None,
        },
    )
    .await
    .unwrap();
    common::configure(&core, &sb).await;
    drop(core);
    sb.graph()
        .deliver(InboundMail {
            to: "support@contoso.test".into(),
            from: "pat@fabrikam.test".into(),
            from_name: Some("Pat Smith".into()),
            subject: "Processed by mailroom serve".into(),
            body_html: Some("<p>Hello</p>".into()),
            ..Default::default()
        })
        .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["serve", "--interval", "1", "--ops-addr", "127.0.0.1:0"])
        .env("MAILROOM_DATA_DIR", dir.path())
        .env("MAILROOM_SECRETS_KEY", key.to_base64().as_str())
        // A keyring service nobody has: were the keyring used, nothing would be found.
        .env(
            "MAILROOM_KEYRING_SERVICE",
            format!("mailroom-unused-{}", key.id()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("mailroom serve starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut ops = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Until the endpoints are announced and the email is processed.
    let mut processed = false;
    while !(ops.is_some() && processed) {
        let line = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out: {lines:#?}"))
            .unwrap_or_else(|| panic!("serve ended: {lines:#?}"));
        let said = message(&line).unwrap_or_else(|| panic!("not a JSON log line: {line}"));
        if let Some(rest) = said.strip_prefix("Operations endpoints on http://") {
            ops = rest.split_whitespace().next().map(str::to_string);
        }
        if said.contains("Processed by mailroom serve") && said.contains("Processed") {
            processed = true;
        }
        lines.push(said);
    }
    let ops = ops.unwrap();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let url = format!("http://{ops}{path}");
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await, (200, "ok\n".to_string()));
    let (status, ready) = get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(ready.contains("1 mailbox(es) syncing"), "{ready}");
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("mailroom_up 1"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mailroom_emails_total{")
                && l.contains("mailbox=\"Support\"")
                && l.contains("status=\"processed\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mailroom_queue_depth{") && l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mailroom_requests_total{service=\"psa\"}")),
        "{metrics}"
    );
    assert!(metrics.contains("mailroom_psa_rate_limit 300"), "{metrics}");
    assert!(
        metrics.contains("mailroom_lease_takeovers_total{kind=\"claim\"} 0"),
        "{metrics}"
    );
    // This worker, by its heartbeat: on /metrics and in `mailroom processes`.
    assert!(
        metrics.contains("mailroom_processes{role=\"service\",processing=\"true\"} 1"),
        "{metrics}"
    );
    let listed = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["processes", "--json"])
        .env("MAILROOM_DATA_DIR", dir.path())
        .env("MAILROOM_SECRETS_KEY", key.to_base64().as_str())
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["processing_alive"], 1, "{listed}");
    assert_eq!(listed["processes"][0]["pid"], child.id(), "{listed}");
    assert_eq!(listed["processes"][0]["role"], "service", "{listed}");
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");

    // SIGTERM: a graceful stop, exit 0.
    let stopping = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    while let Ok(line) = rx.try_recv() {
        lines.extend(message(&line));
    }
    reader.join().unwrap();
    while let Ok(line) = rx.try_recv() {
        lines.extend(message(&line));
    }
    assert!(status.success(), "{lines:#?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    assert!(
        lines.iter().any(|l| l.starts_with("Stopped in")),
        "{lines:#?}"
    );
    let tickets: Vec<_> = sb
        .halo()
        .tickets()
        .into_iter()
        .filter(|t| t["summary"] == "Processed by mailroom serve")
        .collect();
    assert_eq!(tickets.len(), 1);
}

/// The systemd unit shipped in `packaging/` starts what this binary is: `mailroom serve`, with
/// environment variables the program reads (a renamed flag or variable fails here).
#[test]
fn the_systemd_unit_starts_serve_with_variables_the_program_reads() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/systemd/mailroom.service"
    ))
    .unwrap();
    let value = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(value("ExecStart"), ["/usr/bin/mailroom serve"]);
    assert_eq!(value("KillSignal"), ["SIGTERM"]);
    let help = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let read_by_program = [
        "MAILROOM_DATA_DIR",
        "MAILROOM_OPS_ADDR",
        mailroom_secrets::sealed::KEY_FILE_ENV,
    ];
    let set: Vec<String> = value("Environment")
        .iter()
        .map(|e| e.split('=').next().unwrap().to_string())
        .collect();
    assert!(!set.is_empty());
    for var in &set {
        assert!(
            read_by_program.contains(&var.as_str()),
            "{var} is not read by mailroom"
        );
        if var != mailroom_secrets::sealed::KEY_FILE_ENV {
            assert!(help.contains(&format!("env: {var}=")), "{var}: {help}");
        }
    }
}
