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

#[test]
fn sandbox_prints_where_to_point_the_app_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader, Read, Write};
    // Four consecutive free ports, found by binding them.
    let start = 40000 + (std::process::id() % 5000) as u16 * 4;
    let base = (0..200u16)
        .map(|i| start + i * 4)
        .find(|&p| (0..4).all(|k| std::net::TcpListener::bind(("127.0.0.1", p + k)).is_ok()))
        .expect("four free ports");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["sandbox", "--port", &base.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the sandbox");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut summary = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        summary.push_str(&line);
        summary.push('\n');
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    let tenant = "6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab";
    let openid = format!("http://127.0.0.1:{base}/{tenant}/v2.0/.well-known/openid-configuration");
    assert!(summary.contains(&openid), "{summary}");
    assert!(
        summary.contains(&format!("http://127.0.0.1:{}/v1.0", base + 1)),
        "{summary}"
    );
    assert!(summary.contains("Mailroom Daemon"), "{summary}");

    // The advertised OpenID configuration is really served.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", base)).unwrap();
    write!(
        stream,
        "GET /{tenant}/v2.0/.well-known/openid-configuration HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("token_endpoint"), "{response}");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "the sandbox stops cleanly on Ctrl-C: {exit:?}"
    );
}

#[test]
fn the_backlog_benchmark_reports_no_duplicates_and_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let out = mailroom(
        dir.path(),
        &[
            "bench",
            "backlog",
            "--emails",
            "6",
            "--latency-ms",
            "1",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["emails"], 6);
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["lost"], 0);
    assert_eq!(
        report["tickets"].as_u64().unwrap() + report["actions"].as_u64().unwrap(),
        6,
        "every email became exactly one ticket or action"
    );
    assert!(report["ceiling_emails_per_second"].as_f64().unwrap() > 0.0);
    // The delta round reads the messages: per email, Graph sees only its move.
    assert_eq!(report["processed_mail"], "move");
    let graph_routes = report["graph_routes_per_email"].as_array().unwrap();
    let per_email = |route: &str| {
        graph_routes
            .iter()
            .find(|r| r[0].as_str().is_some_and(|r| r.ends_with(route)))
            .and_then(|r| r[1].as_f64())
    };
    assert_eq!(
        per_email("/messages/{id}/move"),
        Some(1.0),
        "{graph_routes:?}"
    );
    assert!(
        !graph_routes
            .iter()
            .any(|r| r[0].as_str().unwrap().starts_with("GET")
                && r[0].as_str().unwrap().ends_with("/messages/{id}")),
        "{graph_routes:?}"
    );
}

#[test]
fn the_log_benchmark_times_every_query_the_log_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = mailroom(
        dir.path(),
        &["bench", "log", "--rows", "3000", "--runs", "2", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["rows"], 3000);
    assert!(report["file_bytes"].as_u64().unwrap() > 0);
    let queries = report["queries"].as_array().unwrap();
    let named = |name: &str| {
        queries
            .iter()
            .find(|q| q["query"] == name)
            .unwrap_or_else(|| panic!("{name} is timed: {queries:?}"))
    };
    for name in [
        "first page",
        "status failed",
        "mailbox 3",
        "search common word",
        "deep page (9/10 down)",
        "counts, one mailbox",
    ] {
        let q = named(name);
        assert!(q["p99_ms"].as_f64().unwrap() >= q["p50_ms"].as_f64().unwrap());
    }
    assert_eq!(named("first page")["rows"], 100);
    assert_eq!(named("search rare word")["rows"], 12);
}

#[test]
fn retention_shows_and_changes_what_is_kept_and_refuses_bodies_kept_longer_than_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let shown = mailroom(dir.path(), &["retention", "--json"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["settings"]["request_bodies_days"], 30);
    assert_eq!(shown["settings"]["attempts_days"], 180);
    assert!(shown["size"]["bytes"].as_u64().unwrap() > 0);

    let longer = mailroom(dir.path(), &["retention", "--request-bodies-days", "200"]);
    assert!(!longer.status.success());
    assert!(
        String::from_utf8_lossy(&longer.stderr).contains("cannot be kept longer"),
        "{}",
        String::from_utf8_lossy(&longer.stderr)
    );

    let set = mailroom(
        dir.path(),
        &[
            "retention",
            "--request-bodies-days",
            "7",
            "--attempts-days",
            "90",
            "--prune-now",
        ],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let text = String::from_utf8_lossy(&set.stdout);
    assert!(text.contains("Request bodies kept 7 days"), "{text}");
    assert!(text.contains("Pruned 0 attempt(s)"), "{text}");
}

#[test]
fn psa_batching_shows_the_defaults_saves_a_change_and_refuses_nonsense() {
    let dir = tempfile::tempdir().unwrap();
    let text = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let shown = text(mailroom(dir.path(), &["psa", "batching"]));
    assert!(shown.contains("Up to 20 record(s) per request"), "{shown}");
    assert!(shown.contains("at most 250 ms"), "{shown}");
    let saved = text(mailroom(
        dir.path(),
        &["psa", "batching", "--records", "5", "--wait-ms", "100"],
    ));
    assert!(saved.contains("Saved"), "{saved}");
    let refused = mailroom(dir.path(), &["psa", "batching", "--records", "0"]);
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("1 to 100 records"), "{error}");
    let again = text(mailroom(dir.path(), &["psa", "batching"]));
    assert!(
        again.contains("Up to 5 record(s)") && again.contains("100 ms"),
        "{again}"
    );
}
