//! Issue 16's chaos test: three `mailroom serve` workers share one throwaway PostgreSQL
//! database while PSA 429 windows and Graph 429/503 on delta pages are injected and one worker
//! is SIGKILLed twice (started again each time): every email is exactly one ticket or action,
//! none is left unfinished. (`mailroom bench workers` is the run; this test scales it down.)

use std::process::Command;

#[test]
fn three_workers_under_faults_and_kills_process_every_email_exactly_once() {
    let out = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args([
            "bench",
            "workers",
            "--workers",
            "3",
            "--emails",
            "300",
            "--kills",
            "2",
            "--faults",
            "--burst-every-secs",
            "2",
            "--burst-ms",
            "1500",
            "--latency-ms",
            "20",
            "--claim-lease-secs",
            "4",
            "--timeout-secs",
            "300",
            "--json",
        ])
        .output()
        .expect("mailroom bench workers runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON report")).unwrap();
    assert_eq!(report["workers"], 3);
    assert_eq!(report["kills"], 2);
    assert_eq!(
        (&report["lost"], &report["duplicates"], &report["stuck"]),
        (&0.into(), &0.into(), &0.into()),
        "{report}"
    );
    // Every fifth email is a reply: an action on its original's ticket, whichever worker
    // processed either and whichever was killed in between.
    assert_eq!(
        (&report["tickets"], &report["actions"]),
        (&240.into(), &60.into()),
        "{report}"
    );
    assert!(
        report["psa_429_served"].as_u64().unwrap() > 0
            && report["graph_faults_served"].as_u64().unwrap() > 0,
        "the faults were served: {report}"
    );
}
