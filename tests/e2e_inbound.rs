//! Mail to tickets through the real window, on the sandbox tenant: the demo mailboxes are
//! connected and processing, a delivered email becomes a ticket in the sandbox PSA and shows in
//! the inbound log with its attempts, and a forced PSA failure shows a retry, then success.

mod support;

use std::time::{Duration, Instant};

use support::Session;

const SUBJECT: &str = "Shared calendar stopped syncing on my phone";

/// The status the log shows for the row with `subject`, if the row is there.
async fn row_status(s: &Session, subject: &str) -> Option<String> {
    let script = "const rows = [...document.querySelectorAll('#log-rows tr')]; \
                  const row = rows.find(r => r.textContent.includes(arguments[0])); \
                  if (!row) return null; \
                  const st = row.querySelector('[data-status]'); \
                  return st ? st.dataset.status : null;";
    s.client
        .execute(script, vec![subject.into()])
        .await
        .ok()
        .and_then(|v| v.as_str().map(String::from))
}

async fn wait_status(s: &Session, subject: &str, wanted: &str) {
    let start = Instant::now();
    loop {
        let status = row_status(s, subject).await;
        if status.as_deref() == Some(wanted) {
            return;
        }
        if start.elapsed() > Duration::from_secs(45) {
            panic!("`{subject}` never reached `{wanted}` (last: {status:?})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the seeded mail is all handled: no row is pending any more.
async fn wait_until_settled(s: &Session) {
    let script = "const st = [...document.querySelectorAll('#log-rows [data-status]')].map(e => e.dataset.status); \
                  return st.length > 0 && !st.includes('pending');";
    let start = Instant::now();
    while !s
        .client
        .execute(script, vec![])
        .await
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the seeded mail never settled"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The number the counts line shows for `status` (0 when it shows none).
async fn count(s: &Session, status: &str) -> u64 {
    let script =
        "const el = document.querySelector(`#log-counts [data-count=\"${arguments[0]}\"]`); \
                  return el ? el.textContent : '';";
    let text = s.client.execute(script, vec![status.into()]).await.unwrap();
    text.as_str()
        .and_then(|t| t.rsplit(": ").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The count for `status` once it has stayed the same for a second.
async fn stable_count(s: &Session, status: &str) -> u64 {
    let mut last = count(s, status).await;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        let now = count(s, status).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the counts line never settled for {status}");
}

async fn wait_count(s: &Session, status: &str, wanted: u64) {
    for _ in 0..300 {
        if count(s, status).await == wanted {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the counts line never showed {status}: {wanted} (shows {})",
        count(s, status).await
    );
}

#[tokio::test]
async fn delivered_mail_becomes_a_ticket_and_a_psa_failure_is_retried() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("inbound_sandbox", async |s| {
            let control = s.control_url().await;
            let http = reqwest::Client::new();

            s.find("[data-mailbox='Support']").await.click().await.unwrap();
            s.wait_text("#incoming-panel, .mailbox", "support@contoso.test").await;
            s.find("#tab-log").await.click().await.unwrap();
            // The seeded inbox is processed on its own: the log fills with processed mail.
            s.wait_text("#log-rows", "processed").await;
            wait_until_settled(s).await;
            // Helpdesk's seeded mail too (Monitoring lists every mailbox's): the one failing
            // ticket creation below must be the test email's, not a Helpdesk ticket's.
            s.find("#nav-monitoring").await.click().await.unwrap();
            s.wait_text("#log-rows", "processed").await;
            wait_until_settled(s).await;
            s.find("[data-mailbox='Support']").await.click().await.unwrap();
            s.find("#tab-log").await.click().await.unwrap();
            s.wait_text("#log-rows", "processed").await;

            // The next ticket creation fails with a server error.
            let fault = serde_json::json!({
                "service": "psa", "method": "POST", "path": "/api/Tickets", "count": 1,
                "action": { "kind": "fail", "status": 500 }
            });
            let added = http.post(format!("{control}/faults")).json(&fault).send().await.unwrap();
            assert!(added.status().is_success(), "{:?}", added.text().await);

            // The baseline once the counts line has settled (it reconciles with the store after
            // each burst of events).
            let processed_before = stable_count(s, "processed").await;
            s.find("#sandbox-send-test").await.click().await.unwrap();
            s.find("#import-now").await.click().await.unwrap();
            wait_status(s, SUBJECT, "retrying").await;
            // Issue 23 #13: the counts line follows the rows live (no filter change needed).
            wait_count(s, "retrying", 1).await;

            // The details show the failed attempt with its requests; Reprocess succeeds.
            let script = "const row = [...document.querySelectorAll('#log-rows tr')].find(r => r.textContent.includes(arguments[0])); row.click();";
            s.client.execute(script, vec![SUBJECT.into()]).await.unwrap();
            s.wait_text("#log-details", "Attempt 1").await;
            s.wait_text("#log-details", "POST").await;
            s.client
                .execute("document.getElementById('reprocess').scrollIntoView();", vec![])
                .await
                .unwrap();
            s.find("#reprocess").await.click().await.unwrap();
            wait_status(s, SUBJECT, "processed").await;
            wait_count(s, "processed", processed_before + 1).await;
            wait_count(s, "retrying", 0).await;

            let tickets: Vec<serde_json::Value> = http
                .get(format!("{control}/psa/tickets"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let matching: Vec<_> = tickets.iter().filter(|t| t["summary"] == SUBJECT).collect();
            assert_eq!(matching.len(), 1, "exactly one ticket for the email");
        })
        .await;
}
