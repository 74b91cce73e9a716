//! `mailroom contacts` as an admin runs it against the sandbox: mappings shown and changed (a
//! field mapped twice refused with a non-zero exit), the default site set (an unknown site
//! named with the list), a dry run that writes nothing, an import printing its counts as JSON,
//! and a second import creating nothing. Needs a keyring (run under `./dev test`).

mod common;

use common::{mailroom, text};
use std::process::Output;

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(out));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_settings_dry_run_and_an_import_that_a_second_run_leaves_alone() {
    let sb = common::sandbox_without_mail().await;
    let (dir, core, mailbox) = common::configured_data_dir(&sb).await;
    let dir = dir.path();

    let show = json(&mailroom(dir, &["contacts", "mappings", "show", "--json"]).await);
    assert!(show["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["outlook"] == "emailAddresses[0]" && m["psa"] == "emailaddress"));
    let twice = mailroom(
        dir,
        &["contacts", "mappings", "set", "--add", "companyName=title"],
    )
    .await;
    assert!(twice.status.success(), "{}", text(&twice));
    let twice = mailroom(
        dir,
        &[
            "contacts",
            "mappings",
            "set",
            "displayName=name",
            "emailAddresses[0]=emailaddress",
            "jobTitle=title",
            "companyName=title",
        ],
    )
    .await;
    assert!(!twice.status.success());
    assert!(
        text(&twice).contains("'Job title' is mapped twice"),
        "{}",
        text(&twice)
    );
    let reset = mailroom(dir, &["contacts", "mappings", "set", "--defaults"]).await;
    assert!(reset.status.success(), "{}", text(&reset));

    let unknown = mailroom(dir, &["contacts", "settings", "--default-site", "999"]).await;
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("HaloPSA has no site 999"),
        "{}",
        text(&unknown)
    );
    let set = json(
        &mailroom(
            dir,
            &["contacts", "settings", "--default-site", "12", "--json"],
        )
        .await,
    );
    assert_eq!(set["default_site_id"], 12);

    let before = sb.halo().users().len();
    let dry = json(
        &mailroom(
            dir,
            &[
                "contacts",
                "import",
                "--mailbox",
                "support",
                "--dry-run",
                "--json",
            ],
        )
        .await,
    );
    assert!(
        dry["counts"]["create"].as_u64().unwrap() > 200,
        "{}",
        dry["counts"]
    );
    assert_eq!(sb.halo().users().len(), before, "a dry run writes nothing");

    let first = json(
        &mailroom(
            dir,
            &["contacts", "import", "--mailbox", "Support", "--json"],
        )
        .await,
    );
    assert_eq!(first["state"], "finished");
    assert_eq!(first["counts"]["created"], dry["counts"]["create"]);
    let second = json(
        &mailroom(
            dir,
            &["contacts", "import", "--mailbox", "Support", "--json"],
        )
        .await,
    );
    assert_eq!(second["counts"]["created"], 0);
    assert_eq!(second["counts"]["failed"], 0);

    let runs = mailroom(dir, &["contacts", "runs"]).await;
    assert!(text(&runs).contains("created 0"), "{}", text(&runs));
    let skipped = mailroom(
        dir,
        &[
            "contacts",
            "show",
            &first["id"].to_string(),
            "--outcome",
            "skipped",
        ],
    )
    .await;
    assert!(
        text(&skipped).contains("No email address"),
        "{}",
        text(&skipped)
    );
    common::forget_secrets(&core, &mailbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contacts_benchmark_reports_its_figures_and_no_user_twice() {
    let dir = tempfile::tempdir().unwrap();
    let out = mailroom(
        dir.path(),
        &[
            "bench",
            "contacts",
            "--contacts",
            "60",
            "--latency-ms",
            "1",
            "--json",
        ],
    )
    .await;
    let report = json(&out);
    assert_eq!(report["contacts"], 60);
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["second"]["created"], 0);
    assert!(report["first"]["created"].as_i64().unwrap() > 40);
    assert!(
        report["first"]["psa_requests_per_contact"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(report["first"]["contacts_per_second"].as_f64().unwrap() > 0.0);
}
