//! Step 8: the end-to-end test — the whole chain, link by link, as the guide's last section
//! checks it by hand: a test ticket logged in HaloPSA, HaloPSA's webhook delivery of it received
//! and verified by Mailroom, HaloPSA's own delivery log showing `200`, the ticket tab opened
//! with a secure parameter as HaloPSA would sign it; then the test ticket is deleted.
//!
//! Unlike the other steps this one writes to the PSA, so it only runs when asked (*Run the
//! test*, `mailroom psa test`); the periodic check keeps its last result.

use std::time::Duration;

use chrono::Utc;
use mailroom_psa::NewTicket;
use mailroom_store::psa_webhooks::{PsaDelivery, Verification};

use super::{CheckItem, Step, StepResult};
use crate::{Core, CoreError};

/// How long the test waits for HaloPSA's delivery to reach Mailroom.
pub const DELIVERY_WAIT: Duration = Duration::from_secs(30);

/// The first delivery about `ticket_id` the receiver stored, if any.
async fn delivery_for(core: &Core, ticket_id: i64) -> Result<Option<PsaDelivery>, CoreError> {
    Ok(core
        .store()
        .psa_deliveries(50, None)
        .await?
        .into_iter()
        .rev()
        .find(|d| d.ticket_id == Some(ticket_id)))
}

impl Core {
    /// Runs the end-to-end test (see the module) and keeps its result as the step's.
    pub async fn run_end_to_end_test(&self, wait: Duration) -> Result<StepResult, CoreError> {
        let admin = self.psa_setup_client().await?;
        let scope = self.scope_settings().await?;
        let now = Utc::now();
        let mut items = Vec::new();
        let ticket = admin
            .create_ticket(&NewTicket {
                summary: format!(
                    "Mailroom end-to-end test {}",
                    now.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                details_html: "<p>Logged by Mailroom's integration test; it deletes this ticket when the test ends.</p>".into(),
                tickettype_id: scope.default_ticket_type_id,
                ..Default::default()
            })
            .await;
        let ticket_id = match ticket {
            Ok(t) => {
                items.push(CheckItem::ok(
                    "ticket",
                    "Test ticket logged in HaloPSA",
                    format!("Ticket {}", t.id),
                ));
                t.id
            }
            Err(e) => {
                items.push(CheckItem::failed(
                    "ticket",
                    "Test ticket logged in HaloPSA",
                    e.to_string(),
                    "Check the connection and the agent's permissions (steps 1 and 2).",
                ));
                return self
                    .keep_result(StepResult::new(Step::Test, items, Utc::now()))
                    .await;
            }
        };

        // Mailroom's receiver: the delivery, verified.
        let deadline = tokio::time::Instant::now() + wait;
        let delivery = loop {
            if let Some(d) = delivery_for(self, ticket_id).await? {
                break Some(d);
            }
            if tokio::time::Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        items.push(match &delivery {
            Some(d) if d.verification == Verification::Verified => CheckItem::ok(
                "delivery",
                "Mailroom received the webhook",
                format!(
                    "\"{}\" after {:.1} s, verified",
                    d.event.clone().unwrap_or_default(),
                    (d.received_at - now).num_milliseconds().max(0) as f64 / 1000.0
                ),
            ),
            Some(d) => CheckItem::failed(
                "delivery",
                "Mailroom received the webhook",
                format!("It arrived but was refused: {}", d.detail),
                "Fix what the reason names (the certificate and webhook steps).",
            ),
            None => CheckItem::failed(
                "delivery",
                "Mailroom received the webhook",
                format!("No delivery about ticket {ticket_id} arrived within {} s", wait.as_secs()),
                "Check the webhook step (its URL must be reachable from HaloPSA, and it must be subscribed to New Ticket Logged).",
            ),
        });

        // HaloPSA's own delivery log (the guide's "Deliveries tab … the response is 200").
        let url = self.psa_webhook_url().await?;
        let webhook_id = admin.webhooks().await.ok().and_then(|list| {
            list.into_iter()
                .find(|w| {
                    w.url.as_deref().is_some_and(|u| {
                        u.trim_end_matches('/')
                            .eq_ignore_ascii_case(url.trim_end_matches('/'))
                    })
                })
                .and_then(|w| w.id)
        });
        let logged = match &webhook_id {
            Some(id) => admin
                .webhook_events(Some(id))
                .await
                .map(|events| events.into_iter().find(|e| e.entity_id == Some(ticket_id))),
            None => Ok(None),
        };
        items.push(match logged {
            Ok(Some(e)) if e.responsestatus == Some(200) => CheckItem::ok(
                "psa_log",
                "HaloPSA's delivery log",
                "Response 200".to_string(),
            ),
            Ok(Some(e)) => CheckItem::failed(
                "psa_log",
                "HaloPSA's delivery log",
                format!(
                    "Response {}{}",
                    e.responsestatus.unwrap_or_default(),
                    e.responsebody
                        .filter(|b| !b.is_empty())
                        .map(|b| format!(": {b}"))
                        .unwrap_or_default()
                ),
                "See the deliveries list for what Mailroom made of it.",
            ),
            Ok(None) => CheckItem::failed(
                "psa_log",
                "HaloPSA's delivery log",
                if webhook_id.is_some() {
                    format!("HaloPSA logged no delivery about ticket {ticket_id}")
                } else {
                    "No webhook posts to Mailroom".to_string()
                },
                "Check the webhook step.",
            ),
            Err(e) => CheckItem {
                optional: true,
                ..CheckItem::failed(
                    "psa_log",
                    "HaloPSA's delivery log",
                    format!("It cannot be read: {e}"),
                    "Allow admin on the API application, or look at the webhook's Deliveries tab in HaloPSA.",
                )
            },
        });

        // The ticket tab, opened as HaloPSA would (a signed secure parameter).
        items.push(match self.signed_ticket_tab_url(ticket_id, None).await? {
            None => CheckItem::failed(
                "tab",
                "The ticket tab opens",
                "No tab secret saved",
                "Set up the ticket tab (step 4).",
            ),
            Some(tab_url) => {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(15))
                    .build()
                    .map_err(|e| CoreError::InvalidInput(e.to_string()))?;
                match http.get(&tab_url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let page = r.text().await.unwrap_or_default();
                        if page.contains(&ticket_id.to_string()) {
                            CheckItem::ok(
                                "tab",
                                "The ticket tab opens",
                                format!("Ticket {ticket_id}'s page was served"),
                            )
                        } else {
                            CheckItem::failed(
                                "tab",
                                "The ticket tab opens",
                                "A page was served, but not the ticket's",
                                "Check that the tab's URL is Mailroom's (step 4).",
                            )
                        }
                    }
                    Ok(r) => CheckItem::failed(
                        "tab",
                        "The ticket tab opens",
                        format!("HTTP {}", r.status().as_u16()),
                        "See the tab step's refused requests.",
                    ),
                    Err(e) => CheckItem::failed(
                        "tab",
                        "The ticket tab opens",
                        format!("The tab's URL cannot be reached: {e}"),
                        "Is Mailroom running with its receiver (the engine started)?",
                    ),
                }
            }
        });

        // Clean up.
        items.push(match admin.delete_ticket(ticket_id).await {
            Ok(()) => CheckItem::ok(
                "cleanup",
                "Test ticket deleted",
                format!("Ticket {ticket_id}"),
            ),
            Err(e) => CheckItem {
                optional: true,
                ..CheckItem::failed(
                    "cleanup",
                    "Test ticket deleted",
                    format!("Ticket {ticket_id} could not be deleted: {e}"),
                    format!("Delete ticket {ticket_id} in HaloPSA by hand."),
                )
            },
        });
        self.keep_result(StepResult::new(Step::Test, items, Utc::now()))
            .await
    }
}

/// The test's result before it first ran (the periodic check never runs it).
pub(super) fn not_run() -> Vec<CheckItem> {
    vec![CheckItem::failed(
        "not_run",
        "End-to-end test",
        "Not run yet",
        "Click Run the test once the steps above are green.",
    )]
}
