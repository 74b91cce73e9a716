//! Error notifications through the real window, on the sandbox tenant (issue 12): Monitoring
//! lists the PSA's agents; an agent and the sending mailbox chosen, *Send a test digest* sends
//! one email to that agent, which the outbound log shows as sent; an email that fails for good
//! notifies the agent once by email and the desktop once.

mod support;

use std::time::{Duration, Instant};

use support::desktop::NotificationMonitor;
use support::Session;

#[tokio::test]
async fn a_test_digest_goes_to_the_chosen_agent_and_shows_in_the_outbound_log() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("notifications", async |s| {
            s.find("#nav-monitoring").await.click().await.unwrap();
            s.wait_text("#notify-agents", "@").await;
            s.client
                .execute(
                    "document.querySelector('#notify-agents input[name=notify-agent]').click();
                     const from = document.getElementById('notify-from');
                     from.value = from.options[1].value;",
                    vec![],
                )
                .await
                .unwrap();
            s.find("#notify-test").await.click().await.unwrap();
            s.wait_text(".toast", "Test digest sent to 1 agent(s).")
                .await;
            let start = std::time::Instant::now();
            loop {
                let rows = s.text("#outbound-rows").await;
                if rows.contains("Mailroom: test notification") && rows.contains("sent") {
                    break;
                }
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(20),
                    "not in the outbound log: {rows}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            s.client
                .execute(
                    "document.getElementById('monitoring-notifications').scrollIntoView();",
                    vec![],
                )
                .await
                .unwrap();
            s.screenshot("notifications").await;
            // Kept: after a reload the agent is still chosen.
            s.reload().await;
            s.find("#nav-monitoring").await.click().await.unwrap();
            s.wait_text("#notify-agents", "@").await;
            let checked = s
                .client
                .execute(
                    "return document.querySelectorAll('#notify-agents input:checked').length;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(checked.as_i64(), Some(1));
        })
        .await;
}

/// The forced failure: with an agent and the sending mailbox chosen, an email the PSA
/// refuses for good (a 400 on creating its ticket) is shown as a desktop notification, listed
/// under the recent problems, and emailed to the agent once, as a digest the outbound log
/// shows as sent.
#[tokio::test]
async fn a_failed_email_notifies_the_chosen_agent_once_and_on_the_desktop() {
    // Whichever email's ticket is refused (the seeded inbox may still be in processing).
    const PROBLEM: &str = "An email was not turned into a ticket";
    const REFUSAL: &str = "The ticket type does not take new tickets";
    const DIGEST: &str = "Mailroom: 1 problem(s) need attention";
    let desktop = NotificationMonitor::start();
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("notifications-failure", async |s| {
            let control = s.control_url().await;
            let http = reqwest::Client::new();
            s.find("#nav-monitoring").await.click().await.unwrap();
            s.wait_text("#notify-agents", "@").await;
            s.client
                .execute(
                    "document.querySelector('#notify-agents input[name=notify-agent]').click();
                     const from = document.getElementById('notify-from');
                     from.value = [...from.options].find(o => o.textContent === 'Support').value;",
                    vec![],
                )
                .await
                .unwrap();
            s.find("#notify-save").await.click().await.unwrap();
            s.wait_text(".toast", "Notification settings saved.").await;

            // The PSA refuses the next ticket for good.
            let fault = serde_json::json!({
                "service": "psa", "method": "POST", "path": "/api/Tickets", "count": 1,
                "action": { "kind": "fail", "status": 400, "message": "The ticket type does not take new tickets" }
            });
            let added = http.post(format!("{control}/faults")).json(&fault).send().await.unwrap();
            assert!(added.status().is_success(), "{:?}", added.text().await);
            s.find("[data-mailbox='Support']").await.click().await.unwrap();
            s.wait_text("#incoming-panel, .mailbox", "support@contoso.test").await;
            s.find("#tab-log").await.click().await.unwrap();
            s.find("#sandbox-send-test").await.click().await.unwrap();
            s.find("#import-now").await.click().await.unwrap();

            desktop.wait_for(PROBLEM, Duration::from_secs(30)).await;
            assert_eq!(desktop.count(REFUSAL), 1, "the body names the error");

            // Monitoring: the problem is listed, and its digest is in the outbound log, sent.
            s.find("#nav-monitoring").await.click().await.unwrap();
            let start = Instant::now();
            loop {
                let rows = s.text("#outbound-rows").await;
                if rows.contains(DIGEST) && rows.contains("sent") {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "the digest is not in the outbound log: {rows}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
                // The outbound log reloads every 5 s; the problems list loads with the view.
            }
            s.reload().await;
            s.find("#nav-monitoring").await.click().await.unwrap();
            let problems = s.wait_text("#problems", PROBLEM).await;
            assert!(problems.contains(REFUSAL), "{problems}");
            assert!(problems.contains("emailed"), "{problems}");
            s.client
                .execute(
                    "document.getElementById('monitoring-notifications').scrollIntoView();",
                    vec![],
                )
                .await
                .unwrap();
            s.screenshot("notifications-failure").await;

            // Once: one digest email, one desktop notification.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let sent: Vec<serde_json::Value> = http
                .get(format!("{control}/mailboxes/support@contoso.test/sent"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let digests: Vec<_> = sent.iter().filter(|m| m["subject"] == DIGEST).collect();
            assert_eq!(digests.len(), 1, "{sent:#?}");
            assert!(
                digests[0]["body"].as_str().unwrap_or_default().contains(REFUSAL),
                "{:#?}",
                digests[0]
            );
            assert_eq!(desktop.count(PROBLEM), 1);
        })
        .await;
}
