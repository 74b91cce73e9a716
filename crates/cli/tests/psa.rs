//! `mailroom psa connect | show | check | setup all` as an admin runs them against the
//! sandbox: the connection saved and checked, every integration step ok in `check --json` after
//! `setup all`, a wrong secret
//! named with its fix and a non-zero exit. Needs a keyring (run under `./dev test`).

mod common;

use std::process::{Command, Output};

async fn mailroom(dir: &std::path::Path, args: &[&str], secret: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailroom"));
    command.args(args).env("MAILROOM_DATA_DIR", dir);
    if let Some(secret) = secret {
        command.env("MAILROOM_PSA_CLIENT_SECRET", secret);
    }
    tokio::task::spawn_blocking(move || command.output().expect("run mailroom"))
        .await
        .unwrap()
}

use common::text;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_then_check_every_step_and_name_a_wrong_secret() {
    let sb = common::sandbox_without_mail().await;
    let dir = tempfile::tempdir().unwrap();
    let creds = sb.tenant().psa.clone();
    let connect = |secret: String| {
        let url = sb.psa_url();
        let (client_id, tenant) = (creds.client_id.clone(), creds.tenant.clone());
        let dir = dir.path().to_path_buf();
        async move {
            mailroom(
                &dir,
                &[
                    "psa",
                    "connect",
                    "--url",
                    &url,
                    "--client-id",
                    &client_id,
                    "--tenant",
                    &tenant,
                ],
                Some(&secret),
            )
            .await
        }
    };

    let wrong = connect("not-the-secret".into()).await;
    assert!(!wrong.status.success());
    let said = text(&wrong);
    assert!(said.contains("FAILED Connection"), "{said}");
    assert!(
        said.contains("fix: Check the Client ID and secret"),
        "{said}"
    );

    let right = connect(creds.client_secret.clone()).await;
    assert!(right.status.success(), "{}", text(&right));
    assert!(
        text(&right).contains("ok     Connection: Connected"),
        "{}",
        text(&right)
    );

    let check = mailroom(dir.path(), &["psa", "check", "--json"], None).await;
    // Every step but the ticket tab, which is not set up yet: the exit says so.
    assert!(!check.status.success(), "{}", text(&check));
    let results: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let steps: Vec<(&str, bool)> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["step"].as_str().unwrap(), r["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("connection", true),
            ("agent", true),
            ("scope", true),
            ("tab", false),
            ("resolve", false),
            ("certificate", false),
            ("webhook", false),
            ("test", false)
        ]
    );

    let scope = mailroom(
        dir.path(),
        &[
            "psa",
            "scope",
            "--default-ticket-type",
            "3",
            "--tab-ticket-types",
            "1,4",
        ],
        None,
    )
    .await;
    let said = text(&scope);
    assert!(scope.status.success(), "{said}");
    assert!(
        said.contains("default for tickets from email: Service Request (3)"),
        "{said}"
    );
    assert!(
        said.contains("types that show Mailroom's tab: Incident (1), Problem (4)"),
        "{said}"
    );
    let refused = mailroom(
        dir.path(),
        &["psa", "scope", "--default-ticket-type", "99"],
        None,
    )
    .await;
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("ticket type 99 does not exist"),
        "{}",
        text(&refused)
    );

    let show = mailroom(dir.path(), &["psa", "show"], None).await;
    let shown = text(&show);
    assert!(
        shown.contains(&format!("connection: {}", sb.psa_url())),
        "{shown}"
    );
    assert!(
        shown.contains("ok     Agent, API application and permissions"),
        "{shown}"
    );
    assert!(
        !shown.contains(&creds.client_secret),
        "the secret is never printed"
    );

    // The ticket tab: secret saved, then "Create it for me"; every step is ok.
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailroom"));
    command
        .args(["psa", "tab", "--scheme", "jwt"])
        .env("MAILROOM_DATA_DIR", dir.path())
        .env("MAILROOM_TAB_SECRET", "tab-secret");
    let tab = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        text(&tab).contains("tab URL for HaloPSA: http://127.0.0.1:"),
        "{}",
        text(&tab)
    );
    let setup = mailroom(dir.path(), &["psa", "setup", "tab"], None).await;
    assert!(setup.status.success(), "{}", text(&setup));
    let resolve = mailroom(
        dir.path(),
        &["psa", "setup", "resolve", "--status", "9"],
        None,
    )
    .await;
    assert!(resolve.status.success(), "{}", text(&resolve));
    assert!(
        text(&resolve).contains("ok     Status After Action: Closed"),
        "{}",
        text(&resolve)
    );
    // `setup all`: the certificate, the signed webhook and the end-to-end test (the command
    // runs a receiver on a free port for as long as it runs); then every step checks ok.
    let receiver = mailroom(
        dir.path(),
        &["subscription", "receiver", "--port", "0"],
        None,
    )
    .await;
    assert!(receiver.status.success(), "{}", text(&receiver));
    let all = mailroom(dir.path(), &["psa", "setup", "all"], None).await;
    let said = text(&all);
    assert!(all.status.success(), "{said}");
    assert!(said.contains("ok     Uploaded to HaloPSA"), "{said}");
    assert!(
        said.contains("ok     Signed with Mailroom's certificate"),
        "{said}"
    );
    assert!(
        said.contains("ok     HaloPSA's delivery log: Response 200"),
        "{said}"
    );
    assert!(said.contains("every step is done"), "{said}");
    let check = mailroom(dir.path(), &["psa", "check", "--json"], None).await;
    assert!(check.status.success(), "{}", text(&check));
    let results: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let all_ok: Vec<(&str, bool)> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["step"].as_str().unwrap(), r["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(all_ok.len(), 8, "{all_ok:?}");
    assert!(all_ok.iter().all(|(_, ok)| *ok), "{all_ok:?}");
    let deliveries = mailroom(dir.path(), &["psa", "deliveries"], None).await;
    let listed = text(&deliveries);
    assert!(listed.contains("new ticket logged"), "{listed}");
    assert!(listed.contains(" 200 verified "), "{listed}");

    let unknown = mailroom(dir.path(), &["psa", "check", "--step", "hook"], None).await;
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains(
            "the steps are: connection, agent, scope, tab, resolve, certificate, webhook, test"
        ),
        "{}",
        text(&unknown)
    );

    let core = mailroom_engine::Core::open(dir.path()).await.unwrap();
    let _ = core
        .secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await;
}
