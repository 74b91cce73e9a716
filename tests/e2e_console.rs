//! The desktop app as the console of a shared PostgreSQL database (issue 16), through the real
//! window. A Mailroom worker (this test process: the engine on a throwaway PostgreSQL, writing
//! tickets to a sandbox tenant) already processes the support@ mailbox. The admin points the
//! app at its database under Monitoring > Shared database: a URL that is not one, and a key
//! that does not open the database's secrets, are refused with what to do; the right key is
//! tested and saved (for the next start). After a restart the app shows the worker's mailbox,
//! says it only watches, and an email the worker turns into a ticket appears in its log as
//! processed without a reload, its steps in the live tail. It lists the worker and itself among the processes on the
//! database, and warns once no process handles the mail (the worker stopped).

mod support;

use std::time::Duration;

use mailroom_engine::engine::{Engine, EngineHandle, EngineOptions};
use mailroom_engine::events::EventBus;
use mailroom_engine::mailboxes::MailboxSetup;
use mailroom_engine::store_types::{Cloud, CredentialKind, MailboxMethod};
use mailroom_engine::Core;
use mailroom_sandbox::{Sandbox, SandboxOptions};
use mailroom_secrets::sealed::{SealingKey, SealingKeys};
use mailroom_secrets::SecretValue;
use mailroom_store::DataDirLock;
use support::Session;

const SUPPORT: &str = "support@contoso.test";

/// The service's worker: its data directory, lock, engine, and the support@ mailbox's id.
struct Worker {
    _dir: tempfile::TempDir,
    _lock: DataDirLock,
    engine: EngineHandle,
    mailbox_id: String,
}

/// A worker on `url` with support@ connected app-only and the sandbox's HaloPSA.
async fn worker(url: &str, key: &SealingKey, sb: &Sandbox) -> Worker {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::connect_sealed(
        url,
        dir.path(),
        SealingKeys {
            current: key.clone(),
            previous: None,
        },
    )
    .await
    .unwrap();
    let t = sb.tenant();
    let mailbox = core
        .add_mailbox_with_credentials(
            MailboxSetup {
                name: "Support".into(),
                method: MailboxMethod::Webhook,
                cloud: Cloud::Custom,
                authority_url: Some(sb.authority_url()),
                graph_url: Some(sb.graph_url()),
                tenant_id: t.tenant_id.clone(),
                client_id: t.daemon_app.client_id.clone(),
                credential_kind: CredentialKind::Secret,
                client_secret: Some(SecretValue::new(
                    t.daemon_app.client_secret.clone().unwrap(),
                )),
                shared_mailbox: None,
                mailbox_address: Some(SUPPORT.into()),
            },
            None,
            None,
        )
        .await
        .unwrap();
    core.connect_app_only(&mailbox.id).await.unwrap();
    core.set_psa_connection(
        &sb.psa_url(),
        &t.psa.client_id,
        SecretValue::new(t.psa.client_secret.clone()),
        Some(&t.psa.tenant),
    )
    .await
    .unwrap();
    let lock = DataDirLock::acquire(dir.path(), "worker").unwrap();
    let options = EngineOptions {
        webhook_any_port: true,
        ..Default::default()
    };
    let engine = Engine::start(core, EventBus::new(), &lock, options)
        .await
        .unwrap();
    engine.started().await;
    Worker {
        _dir: dir,
        _lock: lock,
        engine,
        mailbox_id: mailbox.id,
    }
}

async fn fill(s: &Session, css: &str, value: &str) {
    let input = s.find(css).await;
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

async fn open_shared_database(s: &Session) {
    s.client
        .execute("location.hash = '#/monitoring'; return true;", vec![])
        .await
        .unwrap();
    s.find("#shared-database #database-now").await;
    s.client
        .execute(
            "document.getElementById('shared-database').scrollIntoView({ block: 'start' }); return true;",
            vec![],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_is_the_console_of_a_shared_database() {
    let cluster = mailroom_pg_test::TestPostgres::shared().expect("a throwaway PostgreSQL");
    let url = cluster.new_database().unwrap();
    let key = SealingKey::generate().unwrap();
    let sb = Sandbox::start(SandboxOptions {
        loopback_webhooks: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let worker = worker(&url, &key, &sb).await;

    let s = Session::start()
        .await
        .run_and_restart("console-settings", async |s| {
            open_shared_database(s).await;
            assert_eq!(
                s.find("#database-now")
                    .await
                    .attr("data-database")
                    .await
                    .unwrap()
                    .as_deref(),
                Some("own")
            );
            s.find("#database-shared").await.click().await.unwrap();

            // Not a URL: refused, with how to write one.
            fill(s, "#database-url", "db.example.com").await;
            s.find("#database-save").await.click().await.unwrap();
            s.wait_text("#database-failed", "postgres://user@host:5432/database")
                .await;

            // Another key than the worker's: the database's secrets stay shut.
            fill(s, "#database-url", &url).await;
            let other = SealingKey::generate().unwrap();
            fill(s, "#database-key", &other.to_base64()).await;
            s.find("#database-test").await.click().await.unwrap();
            s.wait_text_for("#database-failed", "does not open", Duration::from_secs(20))
                .await;

            // The worker's key: reached, one mailbox, its secrets open.
            fill(s, "#database-key", &key.to_base64()).await;
            s.find("#database-test").await.click().await.unwrap();
            let checked = s
                .wait_text_for("#database-checked", "1 mailbox", Duration::from_secs(20))
                .await;
            assert!(checked.contains(key.id()), "{checked}");
            s.find("#database-save").await.click().await.unwrap();
            s.wait_text_for(
                "#database-restart",
                "open it again",
                Duration::from_secs(20),
            )
            .await;
            // The key went to the keyring: the field is empty and says it is kept.
            let placeholder = s
                .find("#database-key")
                .await
                .attr("placeholder")
                .await
                .unwrap();
            assert!(placeholder.unwrap_or_default().contains("keyring"));
            s.screenshot("console-settings").await;
        })
        .await;

    s.run("console-watching", async |s| {
        // The worker's mailbox, from the shared database.
        s.find("[data-mailbox='Support']").await;
        open_shared_database(s).await;
        assert_eq!(
            s.find("#database-now").await.attr("data-database").await.unwrap().as_deref(),
            Some("shared")
        );
        s.wait_text("#engine-status", "processes no mail").await;
        // Each mailbox's last scan, as the worker recorded it.
        s.wait_text(
            &format!("#engine-status [data-mailbox-status='{}']", worker.mailbox_id),
            "last scan by a worker",
        )
        .await;
        assert!(s.client.find(fantoccini::Locator::Css("#database-restart")).await.is_err());

        // The worker turns an email into a ticket; the console's log shows it as it happens.
        let subject = "VPN drops every ten minutes";
        let delivered = reqwest::Client::new()
            .post(format!("{}/mail/deliver", sb.control_url()))
            .json(&serde_json::json!({
                "to": SUPPORT,
                "from": "kim@fabrikam.test",
                "from_name": "Kim Lee",
                "subject": subject,
                "body_text": "Since this morning.",
            }))
            .send()
            .await
            .unwrap();
        assert!(delivered.status().is_success());
        s.client
            .execute(
                "document.getElementById('monitoring-inbound').scrollIntoView({ block: 'start' }); return true;",
                vec![],
            )
            .await
            .unwrap();
        s.wait_text("#log-footer", "emails").await;
        let script = format!(
            "const row = [...document.querySelectorAll('#monitoring-inbound tr.log-row')] \
               .find((r) => r.querySelector('td[title=\"{subject}\"]')); \
             return row ? row.textContent : '';"
        );
        let before = s.client.execute(&script, vec![]).await.unwrap();
        assert_eq!(before, serde_json::json!(""), "not read before the worker's round");
        worker.engine.import_now(&worker.mailbox_id).await.unwrap();
        // The row appears (the worker saw the email) and turns processed, without a reload.
        let start = std::time::Instant::now();
        let row = loop {
            let row = s.client.execute(&script, vec![]).await.unwrap();
            let row = row.as_str().unwrap_or_default().to_string();
            if row.contains("processed") {
                break row;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the worker's email shows as processed in the console's log; last: `{row}`"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(row.contains("Kim Lee") && row.contains("Ticket"), "{row}");
        // The worker's processing steps reach the live tail when its attempt ends.
        s.wait_text_for("#monitoring-inbound #live-tail-lines", subject, Duration::from_secs(10))
            .await;
        s.screenshot("console-watching").await;

        // The processes on the database: the worker processes, this window watches.
        let worker_row = format!("#process-rows tr[data-process='{}']", worker.engine.id());
        s.wait_text(&worker_row, "processes").await;
        let rows = s.client.find_all(fantoccini::Locator::Css("#process-rows tr")).await.unwrap();
        assert_eq!(rows.len(), 2, "the worker and this window");
        s.wait_text("#process-rows", "(this window)").await;
        assert!(s.find("#no-worker").await.attr("hidden").await.unwrap().is_some());
        // The worker stops: the console warns that no process handles the mail.
        worker.engine.stop().await;
        s.wait_text_for("#no-worker", "systemctl start mailroom", Duration::from_secs(15)).await;
        s.client
            .execute(
                "let e = document.getElementById('processes'); \
                 while (e) { e.scrollTop = 0; e = e.parentElement; } \
                 window.scrollTo(0, 0); return true;",
                vec![],
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        s.screenshot("console-no-worker").await;
    })
    .await;
}
