//! Step 7: HaloPSA's webhook to Mailroom — a webhook pointing at the receiver's
//! [`PSA_WEBHOOK_PATH`](crate::psa_webhook::PSA_WEBHOOK_PATH), active, its body signed with
//! Mailroom's certificate, subscribed to the events Mailroom acts on; and what the receiver
//! made of the newest delivery.

use mailroom_psa::{Certificate, ErrorKind, PsaClient, Webhook};
use mailroom_store::psa_webhooks::Verification;
use serde_json::{json, Value};

use super::certificate::{same_thumbprint, CERTIFICATES_PATH, PSA_CERTIFICATE_NAME};
use super::{same_url, CheckItem, Clients, Step, StepResult};
use crate::{Core, CoreError};

/// Where webhooks are set up in HaloPSA.
const WEBHOOKS_PATH: &str = "Configuration > Integrations > Webhooks";

/// The name Mailroom gives its webhook.
pub const PSA_WEBHOOK_NAME: &str = "Mailroom ticket webhook";

/// `Webhook.authentication_type` of "Sign Request Body with a X.509 Certificate" ([3P]/[U]:
/// the value RED's enum list gives).
const AUTH_X509: i64 = 4;

/// `Webhook.payload_type` of "Event information only" ([U]): no ticket object to index.
const PAYLOAD_EVENT_ONLY: i64 = 2;

/// The event numbers a webhook is subscribed to.
fn subscribed(webhook: &Webhook) -> Vec<i64> {
    webhook
        .events
        .iter()
        .flatten()
        .filter_map(|e| match e.get("eventno") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        })
        .collect()
}

/// Whether HaloPSA's reachable address for `url` is plausible: a loopback receiver only works
/// for a PSA on this machine (the sandbox).
fn reachable_from(psa_base: &str, url: &str) -> bool {
    let host = |u: &str| {
        url::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    };
    let loopback = |h: &Option<String>| {
        h.as_deref()
            .is_some_and(|h| h == "localhost" || h.starts_with("127.") || h == "[::1]")
    };
    !loopback(&host(url)) || loopback(&host(psa_base))
}

/// Mailroom's certificate as HaloPSA holds it, if uploaded.
fn psa_certificate<'a>(list: &'a [Certificate], thumbprint: &str) -> Option<&'a Certificate> {
    list.iter().find(|c| {
        c.thumbprint
            .as_deref()
            .is_some_and(|t| same_thumbprint(t, thumbprint))
    })
}

pub(super) async fn check_webhook(
    core: &Core,
    clients: &Clients,
) -> Result<Vec<CheckItem>, CoreError> {
    let url = core.psa_webhook_url().await?;
    let settings = core.psa_webhook_settings().await?;
    let psa_base = core
        .psa_connection()
        .await?
        .map(|c| c.base_url)
        .unwrap_or_default();
    let mut items = vec![if reachable_from(&psa_base, &url) {
        CheckItem::ok("url", "Mailroom's webhook URL", url.clone())
    } else {
        CheckItem::failed(
            "url",
            "Mailroom's webhook URL",
            format!("{url} is only reachable on this computer; HaloPSA at {psa_base} cannot post to it"),
            "Set the public HTTPS base URL (a tunnel or reverse proxy to the receiver) under Settings > Webhooks, then create the webhook again.",
        )
    }];
    let webhooks = match clients.admin.webhooks().await {
        Ok(list) => list,
        Err(e) => {
            items.push(CheckItem {
                optional: matches!(e.kind, ErrorKind::Forbidden | ErrorKind::Unauthorized),
                ..CheckItem::failed(
                    "psa_webhook",
                    "The webhook in HaloPSA",
                    format!("Mailroom cannot read the PSA's webhooks: {e}"),
                    format!("Allow admin on the API application to let Mailroom check it, or check by hand in {WEBHOOKS_PATH} that a webhook posts to {url}."),
                )
            });
            return Ok(items);
        }
    };
    let Some(webhook) = webhooks
        .iter()
        .find(|w| w.url.as_deref().is_some_and(|u| same_url(u, &url)))
    else {
        items.push(CheckItem::failed(
            "psa_webhook",
            "The webhook in HaloPSA",
            format!("No webhook posts to {url}"),
            format!(
                "Click Create it for me, or in {WEBHOOKS_PATH} > New: name {PSA_WEBHOOK_NAME}, Payload URL {url}, Authentication \"Sign Request Body with a X.509 Certificate\", Certificate {PSA_CERTIFICATE_NAME}, and the events below."
            ),
        ));
        return Ok(items);
    };
    let name = webhook.name.clone().unwrap_or_default();
    items.push(CheckItem::ok(
        "psa_webhook",
        "The webhook in HaloPSA",
        format!("\"{name}\" posts to {url}"),
    ));
    let active = webhook.active != Some(false) && webhook.disabled != Some(true);
    items.push(if active {
        CheckItem::ok("active", "Active", "Yes")
    } else {
        CheckItem::failed(
            "active",
            "Active",
            if webhook.disabled == Some(true) {
                "HaloPSA disabled it (after failed deliveries, or by hand)"
            } else {
                "It is switched off"
            },
            format!(
                "In {WEBHOOKS_PATH} > {name}, tick Active and save (or click Create it for me)."
            ),
        )
    });
    let kept = core.webhook_certificate().await?;
    let certificates = clients.admin.certificates().await.unwrap_or_default();
    let ours = kept
        .as_ref()
        .and_then(|k| psa_certificate(&certificates, &k.thumbprint));
    let signing = webhook.authentication_type == Some(AUTH_X509);
    items.push(match (signing, ours) {
        (true, Some(cert)) if webhook.certificate_id == Some(cert.id) => CheckItem::ok(
            "signing",
            "Signed with Mailroom's certificate",
            format!("With \"{}\"", cert.name.clone().unwrap_or_default()),
        ),
        (true, Some(_)) => CheckItem::failed(
            "signing",
            "Signed with Mailroom's certificate",
            format!(
                "It signs with \"{}\", not Mailroom's certificate",
                webhook.certificate_name.clone().unwrap_or_default()
            ),
            format!("Select the certificate {PSA_CERTIFICATE_NAME} on the webhook (or click Create it for me)."),
        ),
        (true, None) => CheckItem::failed(
            "signing",
            "Signed with Mailroom's certificate",
            "Mailroom's certificate is not in HaloPSA",
            format!("Upload it first (the certificate step, or {CERTIFICATES_PATH})."),
        ),
        (false, _) => CheckItem::failed(
            "signing",
            "Signed with Mailroom's certificate",
            "The webhook does not sign its requests; Mailroom refuses unsigned deliveries",
            "Set its Authentication to \"Sign Request Body with a X.509 Certificate\" with the certificate Mailroom (or click Create it for me).",
        ),
    });
    let have = subscribed(webhook);
    let missing: Vec<String> = settings
        .events
        .named()
        .iter()
        .filter(|(no, _)| !have.contains(no))
        .map(|(no, name)| format!("{name} ({no})"))
        .collect();
    items.push(if missing.is_empty() {
        CheckItem::ok(
            "events",
            "Events",
            settings
                .events
                .named()
                .iter()
                .map(|(_, n)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        )
    } else {
        CheckItem::failed(
            "events",
            "Events",
            format!("Not subscribed: {}", missing.join(", ")),
            format!("In {WEBHOOKS_PATH} > {name} > Events, add them (or click Create it for me)."),
        )
    });
    if webhook.payload_type == Some(PAYLOAD_EVENT_ONLY) {
        items.push(CheckItem::failed(
            "payload",
            "Payload",
            "\"Event information only\" carries no ticket, so Mailroom cannot keep its ticket index",
            "Set the Payload Type to \"Small object with key fields only\".",
        ));
    }
    let newest = core
        .store()
        .psa_deliveries(1, None)
        .await?
        .into_iter()
        .next();
    items.push(match newest {
        None => CheckItem {
            optional: true,
            ..CheckItem::failed(
                "deliveries",
                "Deliveries received",
                "None yet",
                "Run the end-to-end test, or log a ticket in HaloPSA.",
            )
        },
        Some(d)
            if matches!(
                d.verification,
                Verification::Verified | Verification::Replay
            ) =>
        {
            CheckItem::ok(
                "deliveries",
                "Deliveries received",
                format!(
                    "The newest ({}, {}) was verified",
                    d.received_at.format("%Y-%m-%d %H:%M UTC"),
                    d.event.unwrap_or_default()
                ),
            )
        }
        Some(d) => CheckItem::failed(
            "deliveries",
            "Deliveries received",
            format!(
                "The newest ({}) was refused: {}",
                d.received_at.format("%Y-%m-%d %H:%M UTC"),
                d.detail
            ),
            "See the deliveries list below for what arrived.",
        ),
    });
    Ok(items)
}

/// The webhook's events as HaloPSA's `events[]` (`UnameNotification`), keeping the ids of
/// those that exist.
fn events_body(existing: Option<&Webhook>, numbers: &[(i64, &'static str)]) -> Vec<Value> {
    numbers
        .iter()
        .map(|(no, name)| {
            let old = existing.and_then(|w| {
                w.events.iter().flatten().find(|e| {
                    e.get("eventno")
                        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
                        == Some(*no)
                })
            });
            let mut event = json!({ "eventno": no, "name": name });
            if let Some(id) = old.and_then(|e| e.get("id")) {
                event["id"] = id.clone();
            }
            event
        })
        .collect()
}

impl Core {
    /// *Create it for me* of the webhook step: the webhook posting to Mailroom's URL, created
    /// or corrected (active, signed with Mailroom's certificate, the events, key-field payload).
    /// Needs the certificate uploaded first. Idempotent.
    pub async fn create_psa_webhook(&self) -> Result<StepResult, CoreError> {
        let Some(kept) = self.webhook_certificate().await? else {
            return Err(CoreError::InvalidInput(
                "generate the certificate and upload it to HaloPSA first (the certificate step)"
                    .into(),
            ));
        };
        let admin: PsaClient = self.psa_setup_client().await?;
        let certificates = admin.certificates().await?;
        let Some(cert) = psa_certificate(&certificates, &kept.thumbprint) else {
            return Err(CoreError::InvalidInput(
                "Mailroom's certificate is not in HaloPSA yet: upload it first (the certificate step)"
                    .into(),
            ));
        };
        let url = self.psa_webhook_url().await?;
        let settings = self.psa_webhook_settings().await?;
        // HaloPSA keeps the webhook's own delivery log as long as Mailroom keeps its attempts.
        let log_days = self.retention().await?.attempts_days;
        let webhooks = admin.webhooks().await?;
        let existing = webhooks
            .iter()
            .find(|w| w.url.as_deref().is_some_and(|u| same_url(u, &url)));
        let mut body = json!({
            "name": existing.and_then(|w| w.name.clone()).unwrap_or_else(|| PSA_WEBHOOK_NAME.into()),
            "url": url,
            "type": 0,
            "method": 0,
            "content_type": "application/json",
            "active": true,
            "disabled": false,
            "authentication_type": AUTH_X509,
            "certificate_id": cert.id,
            "payload_type": 0,
            "log_retention_policy_days": log_days,
            "events": events_body(existing, &settings.events.named()),
        });
        if let Some(id) = existing.and_then(|w| w.id.clone()) {
            body["id"] = json!(id);
        }
        let saved: Value = admin.post_one("Webhook", &body).await?;
        tracing::info!(webhook = ?saved.get("id"), %url, "PSA webhook created or corrected");
        self.check_integration_step(Step::Webhook).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_receiver_only_suits_a_psa_on_this_computer() {
        assert!(reachable_from(
            "http://127.0.0.1:4000",
            "http://127.0.0.1:47130/halo/webhook"
        ));
        assert!(!reachable_from(
            "https://acme.halopsa.com",
            "http://127.0.0.1:47130/halo/webhook"
        ));
        assert!(reachable_from(
            "https://acme.halopsa.com",
            "https://hooks.acme.example/halo/webhook"
        ));
    }
}
