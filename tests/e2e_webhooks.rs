//! Webhook mode through the real window, on the sandbox tenant: sandbox mode subscribes the
//! Webhooks mailbox helpdesk@ when the engine starts, the Incoming tab shows the subscription,
//! and mail delivered to helpdesk@ becomes a ticket through Graph's change notification with no
//! scan asked for (helpdesk@'s fallback scan runs every 15 minutes). The subscription is then
//! cancelled and created again from the Incoming tab, and the Monitoring view lists those events.

mod support;

use std::time::{Duration, Instant};

use support::Session;

const SUBJECT: &str = "Webhook: the VPN drops every ten minutes";

async fn get_json(http: &reqwest::Client, url: String) -> Vec<serde_json::Value> {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn helpdesk_mail_becomes_a_ticket_through_a_notification() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("webhooks_sandbox", async |s| {
            let control = s.control_url().await;
            let http = reqwest::Client::new();

            // The subscription is created when the engine starts.
            let start = Instant::now();
            let subscription = loop {
                let subs = get_json(&http, format!("{control}/graph/subscriptions")).await;
                if let Some(sub) = subs.iter().find(|s| {
                    s["resource"]
                        .as_str()
                        .is_some_and(|r| r.contains("helpdesk@contoso.test"))
                }) {
                    break sub.clone();
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "helpdesk@ was never subscribed: {subs:?}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            let id = subscription["id"].as_str().unwrap().to_string();

            s.find("[data-mailbox='Helpdesk (shared)']")
                .await
                .click()
                .await
                .unwrap();
            s.wait_text("#subscription-status", "Subscription active")
                .await;
            s.wait_text("#subscription-id", &id).await;

            // Cancel it and create a new one from the Incoming tab.
            s.find("#subscription-cancel").await.click().await.unwrap();
            s.wait_text("#subscription-status", "No subscription").await;
            assert!(
                get_json(&http, format!("{control}/graph/subscriptions"))
                    .await
                    .iter()
                    .all(|sub| sub["id"] != id.as_str()),
                "Cancel subscription deletes it at Graph"
            );
            s.find("#subscription-create").await.click().await.unwrap();
            s.wait_text("#subscription-status", "Subscription active")
                .await;
            let new_id = s.text("#subscription-id").await;
            assert_ne!(new_id, id, "a new subscription was created");
            let subs = get_json(&http, format!("{control}/graph/subscriptions")).await;
            assert!(
                subs.iter().any(|sub| sub["id"] == new_id.as_str()),
                "the id shown is Graph's: {new_id} not in {subs:?}"
            );

            let mail = serde_json::json!({
                "to": "helpdesk@contoso.test",
                "from": "pat@fabrikam.test",
                "from_name": "Pat Smith",
                "subject": SUBJECT,
                "body_text": "It started this morning.",
            });
            let delivered = http
                .post(format!("{control}/mail/deliver"))
                .json(&mail)
                .send()
                .await
                .unwrap();
            assert!(
                delivered.status().is_success(),
                "{:?}",
                delivered.text().await
            );

            let start = Instant::now();
            loop {
                let tickets = get_json(&http, format!("{control}/psa/tickets")).await;
                let matching = tickets.iter().filter(|t| t["summary"] == SUBJECT).count();
                if matching == 1 {
                    break;
                }
                assert!(matching <= 1, "one ticket per email");
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "no ticket from the notification"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }

            // It came through a change notification to the subscription created from the UI.
            let notifications = get_json(&http, format!("{control}/graph/notifications")).await;
            assert!(
                notifications
                    .iter()
                    .any(|n| n["subscription_id"] == new_id.as_str()
                        && n["kind"]["Change"] == "created"
                        && n["outcome"]["Delivered"] == 202),
                "{notifications:?}"
            );

            // The Monitoring view lists the subscription events of every mailbox.
            s.find("#nav-monitoring").await.click().await.unwrap();
            s.wait_text("#monitoring-subscription-events", "cancelled")
                .await;
            let events = s
                .wait_text("#monitoring-subscription-events", "created")
                .await;
            assert!(events.contains(&new_id), "{events}");
            assert!(events.contains("Helpdesk (shared)"), "{events}");
        })
        .await;
}
