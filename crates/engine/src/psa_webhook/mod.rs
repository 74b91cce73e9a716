//! HaloPSA's webhook to Mailroom (`POST /halo/webhook` on the webhook receiver): HaloPSA posts
//! a JSON payload for each subscribed event (New Ticket Logged, Ticket Status Changed, Ticket
//! Updated, Action Added), its body signed with Mailroom's certificate.
//!
//! Each delivery is verified ([`verify`]), then stored with what verifying found — before it is
//! answered — and a verified one is applied in the same transaction: the ticket it describes
//! goes into the ticket index (logged elsewhere, closed, moved to another client or site,
//! deleted), an agent's action is recorded for outgoing mail.
//!
//! Answers: `200` for an applied delivery and for a replay of one (HaloPSA may resend what it
//! already delivered; it is acknowledged, not applied twice); `401` for an unsigned, forged,
//! wrong-certificate or stale delivery, or when Mailroom has no certificate; `400` for a signed
//! body that is not a webhook payload.
//!
//! Invariants: nothing is applied unless its signature verifies with Mailroom's certificate;
//! a payload id is applied once; the stored headers never hold credentials.

pub mod verify;

use chrono::{DateTime, Duration, Utc};
use mailroom_store::psa_webhooks::{
    DeliveryEffects, NewPsaDelivery, PsaAgentAction, PsaDelivery, PsaTicketState, Recorded,
    Verification,
};
use mailroom_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::integration::{WebhookCertificate, CERTIFICATE_KEY};
use crate::{Core, CoreError};
pub use verify::{Encoding, Padding, SignatureScheme};

/// The receiver's path for HaloPSA's webhook.
pub const PSA_WEBHOOK_PATH: &str = "/halo/webhook";

/// Settings key of [`PsaWebhookSettings`].
pub(crate) const SETTINGS_KEY: &str = "integration.webhook";

/// How much of a refused delivery's body is kept.
const REFUSED_BODY_KEPT: usize = 4096;

/// HaloPSA's notification event numbers Mailroom subscribes its webhook to. Only New Ticket
/// Logged (3) and Ticket Status Changed (76) are confirmed by the reference (§4.1); the others
/// are unconfirmed ([U]) and configurable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventNumbers {
    pub new_ticket: i64,
    pub status_changed: i64,
    /// "Ticket Updated" (the guide's "Ticket Changed", field Client) [U].
    pub ticket_updated: i64,
    /// "Action Added" by an agent [U].
    pub action_added: i64,
}

impl Default for EventNumbers {
    fn default() -> Self {
        EventNumbers {
            new_ticket: 3,
            status_changed: 76,
            ticket_updated: 19,
            action_added: 31,
        }
    }
}

impl EventNumbers {
    /// Each event with its name as HaloPSA shows it.
    pub fn named(&self) -> [(i64, &'static str); 4] {
        [
            (self.new_ticket, "New Ticket Logged"),
            (self.status_changed, "Ticket Status Changed"),
            (self.ticket_updated, "Ticket Updated (client changed)"),
            (self.action_added, "Action Added by agent"),
        ]
    }
}

/// The PSA webhook's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PsaWebhookSettings {
    pub signature: SignatureScheme,
    /// Deliveries whose payload timestamp is older than this are refused as stale.
    pub max_age_hours: i64,
    pub events: EventNumbers,
}

impl Default for PsaWebhookSettings {
    fn default() -> Self {
        PsaWebhookSettings {
            signature: SignatureScheme::default(),
            max_age_hours: 24,
            events: EventNumbers::default(),
        }
    }
}

/// The fields of a payload the receiver reads (reference §4.2).
#[derive(Debug, Default)]
struct Payload {
    id: Option<String>,
    webhook_id: Option<String>,
    event: Option<String>,
    object_id: Option<i64>,
    timestamp: Option<DateTime<Utc>>,
    ticket: Option<serde_json::Map<String, Value>>,
    action: Option<serde_json::Map<String, Value>>,
    agent_id: Option<i64>,
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// HaloPSA's timestamps: RFC 3339 with up to 7 fractional digits, `Z` or none (taken as UTC).
fn timestamp(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc())
        })
        .ok()
}

impl Payload {
    /// Reads what it can (also from a body that is refused, for the record).
    fn read(body: &[u8]) -> Result<Payload, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("The body is not JSON ({e})"))?;
        let Value::Object(obj) = value else {
            return Err("The body is not a JSON object".into());
        };
        Ok(Payload {
            id: text(obj.get("id")),
            webhook_id: text(obj.get("webhook_id")),
            event: text(obj.get("event")),
            object_id: int(obj.get("object_id")),
            timestamp: timestamp(obj.get("timestamp")),
            ticket: obj.get("ticket").and_then(Value::as_object).cloned(),
            action: obj.get("action").and_then(Value::as_object).cloned(),
            agent_id: int(obj.get("agent_id")),
        })
    }

    fn ticket_id(&self) -> Option<i64> {
        self.ticket
            .as_ref()
            .and_then(|t| int(t.get("id")))
            .or(self.object_id)
    }

    /// What a verified payload changes.
    fn effects(&self, at: DateTime<Utc>) -> DeliveryEffects {
        let event = self.event.clone().unwrap_or_default();
        let deleted = event.to_ascii_lowercase().contains("deleted");
        let ticket = match (&self.ticket, self.ticket_id()) {
            (Some(t), Some(ticket_id)) => Some(PsaTicketState {
                ticket_id,
                summary: text(t.get("summary")),
                client_id: int(t.get("client_id")),
                site_id: int(t.get("site_id")),
                user_id: int(t.get("user_id")),
                status_id: int(t.get("status_id")),
                tickettype_id: int(t.get("tickettype_id")),
                closed: t.get("hasbeenclosed").and_then(Value::as_bool) == Some(true),
                deleted,
                updated_at: at,
                last_event: event.clone(),
            }),
            (None, Some(ticket_id)) if deleted => Some(PsaTicketState {
                ticket_id,
                summary: None,
                client_id: None,
                site_id: None,
                user_id: None,
                status_id: None,
                tickettype_id: None,
                closed: false,
                deleted: true,
                updated_at: at,
                last_event: event.clone(),
            }),
            _ => None,
        };
        let action = self.action.as_ref().and_then(|a| {
            let action_id = int(a.get("id"))?;
            let ticket_id = int(a.get("ticket_id")).or(self.ticket_id())?;
            Some(PsaAgentAction {
                ticket_id,
                action_id,
                outcome: text(a.get("outcome")),
                note: text(a.get("note")),
                hidden_from_user: a.get("hiddenfromuser").and_then(Value::as_bool) == Some(true),
                agent_id: int(a.get("actionby_agent_id"))
                    .or(int(a.get("who_agentid")))
                    .or(self.agent_id),
                received_at: at,
                delivery_id: 0,
                handled_at: None,
            })
        });
        DeliveryEffects { ticket, action }
    }
}

/// Headers as stored: credentials redacted.
fn recorded_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("cookie") {
                (k.clone(), "<redacted>".into())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

fn truncated(body: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= limit {
        return text.into_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], body.len())
}

/// Verifies, stores and applies one delivery; returns the HTTP status and a short answer.
pub(crate) async fn receive(
    store: &Store,
    headers: &[(String, String)],
    body: &[u8],
    now: DateTime<Utc>,
) -> (u16, String) {
    match receive_inner(store, headers, body, now).await {
        Ok(answer) => answer,
        Err(e) => {
            // Not stored: answer 503 so HaloPSA keeps the delivery and shows the failure.
            tracing::error!("PSA webhook: the delivery could not be stored: {e}");
            (
                503,
                "Mailroom could not store the delivery; try again".into(),
            )
        }
    }
}

async fn receive_inner(
    store: &Store,
    headers: &[(String, String)],
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(u16, String), CoreError> {
    let settings: PsaWebhookSettings = store.setting(SETTINGS_KEY).await?.unwrap_or_default();
    let kept: Option<WebhookCertificate> = store.setting(CERTIFICATE_KEY).await?;
    let certificate = kept
        .as_ref()
        .and_then(|c| verify::PublicCertificate::from_pem(&c.cert_pem, &c.thumbprint));
    let (verification, detail) =
        verify::verify(&settings.signature, certificate.as_ref(), headers, body);
    let payload = Payload::read(body);
    let read = payload.as_ref().ok();
    let mut delivery = NewPsaDelivery {
        received_at: now,
        payload_id: read.and_then(|p| p.id.clone()),
        webhook_id: read.and_then(|p| p.webhook_id.clone()),
        event: read.and_then(|p| p.event.clone()),
        ticket_id: read.and_then(Payload::ticket_id),
        action_id: read.and_then(|p| p.action.as_ref().and_then(|a| int(a.get("id")))),
        verification,
        detail,
        status: 401,
        headers: recorded_headers(headers),
        body: truncated(body, REFUSED_BODY_KEPT),
    };
    if verification != Verification::Verified {
        tracing::warn!(verification = %verification, "PSA webhook: delivery refused: {}", delivery.detail);
        store.record_refused_psa_delivery(&delivery).await?;
        return Ok((401, delivery.detail));
    }
    let payload = match payload {
        Ok(p) if p.id.is_some() && p.event.is_some() => p,
        Ok(_) => {
            delivery.verification = Verification::Malformed;
            delivery.detail =
                "Signed, but not a HaloPSA webhook payload: it has no id or event".into();
            delivery.status = 400;
            store.record_refused_psa_delivery(&delivery).await?;
            return Ok((400, delivery.detail));
        }
        Err(e) => {
            delivery.verification = Verification::Malformed;
            delivery.detail = format!("Signed, but not a HaloPSA webhook payload: {e}");
            delivery.status = 400;
            store.record_refused_psa_delivery(&delivery).await?;
            return Ok((400, delivery.detail));
        }
    };
    let max_age = Duration::hours(settings.max_age_hours.max(1));
    match payload.timestamp {
        Some(at) if now - at > max_age => {
            delivery.verification = Verification::Stale;
            delivery.detail = format!(
                "Signed, but sent at {} — older than the {} h Mailroom accepts; a recorded delivery sent again is refused",
                at.format("%Y-%m-%d %H:%M:%S UTC"),
                max_age.num_hours()
            );
            store.record_refused_psa_delivery(&delivery).await?;
            return Ok((401, delivery.detail));
        }
        _ => {}
    }
    delivery.status = 200;
    delivery.body = String::from_utf8_lossy(body).into_owned();
    let effects = payload.effects(payload.timestamp.unwrap_or(now));
    match store
        .record_verified_psa_delivery(&delivery, &effects)
        .await?
    {
        Recorded::Applied { id } => {
            tracing::info!(delivery = id, event = ?payload.event, ticket = ?delivery.ticket_id, "PSA webhook: delivery applied");
            Ok((200, "received".into()))
        }
        Recorded::Replay { id, first } => {
            tracing::warn!(
                delivery = id,
                first,
                "PSA webhook: a delivery was received again; acknowledged, not applied"
            );
            Ok((200, "already received".into()))
        }
    }
}

impl Core {
    /// The PSA webhook's settings.
    pub async fn psa_webhook_settings(&self) -> Result<PsaWebhookSettings, CoreError> {
        Ok(self
            .store()
            .setting(SETTINGS_KEY)
            .await?
            .unwrap_or_default())
    }

    /// Keeps the PSA webhook's settings.
    pub async fn set_psa_webhook_settings(
        &self,
        settings: &PsaWebhookSettings,
    ) -> Result<(), CoreError> {
        if settings.max_age_hours < 1 {
            return Err(CoreError::InvalidInput(
                "the oldest delivery accepted must be at least 1 hour old".into(),
            ));
        }
        if let Some(h) = &settings.signature.header {
            if h.trim().is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(CoreError::InvalidInput(format!(
                    "'{h}' is not a header name; leave it empty to detect the signature header"
                )));
            }
        }
        self.store().set_setting(SETTINGS_KEY, settings).await?;
        Ok(())
    }

    /// The URL to give the webhook in HaloPSA (the receiver's base URL and
    /// [`PSA_WEBHOOK_PATH`]).
    pub async fn psa_webhook_url(&self) -> Result<String, CoreError> {
        self.receiver_url(PSA_WEBHOOK_PATH).await
    }

    /// Starts a receiver for HaloPSA's webhook and the ticket tab on the configured address,
    /// for a front end without an engine (`mailroom psa setup all`, the end-to-end test), and
    /// records where it is reached. `None` when that address is already taken — by a running
    /// engine, which receives instead. Keep the returned service alive while it is needed.
    pub async fn start_psa_receiver(&self) -> Result<Option<crate::webhooks::Webhooks>, CoreError> {
        let options = self
            .webhook_settings()
            .await?
            .options()
            .map_err(CoreError::InvalidInput)?;
        match crate::webhooks::Webhooks::start(
            options,
            self.store().clone(),
            self.secrets().clone(),
            mailroom_clock::system(),
            None,
        )
        .await
        {
            Ok(service) => {
                self.store()
                    .set_setting(
                        crate::ticket_tab::RECEIVER_BASE_URL_KEY,
                        service.base_url().as_str(),
                    )
                    .await?;
                Ok(Some(service))
            }
            Err(crate::webhooks::WebhookError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The newest deliveries first (`limit`, older than `before_id`).
    pub async fn psa_webhook_deliveries(
        &self,
        limit: i64,
        before_id: Option<i64>,
    ) -> Result<Vec<PsaDelivery>, CoreError> {
        Ok(self
            .store()
            .psa_deliveries(limit.clamp(1, 500), before_id)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halo_timestamps_with_seven_digits_and_without_a_zone_are_read() {
        let with_z = timestamp(Some(&Value::from("2026-09-25T06:41:08.7895915Z"))).unwrap();
        let naive = timestamp(Some(&Value::from("2026-09-25T06:41:08.7895915"))).unwrap();
        assert_eq!(with_z, naive);
    }

    #[test]
    fn the_reference_payload_updates_the_ticket_index() {
        // halopsa-api.md §4.2, "seen on a live tenant".
        let body = br#"{"id":"8e25bc7b-e07e-4102-9398-5d6647e1e79d","webhook_id":"53232637-7724-4a19-b126-3c7267a292aa","notification_id":41,"escmsg_id":"a726ee11-acb8-f111-8260-02725cb0e102","event":"ticket status changed","message":"The status has been changed for Ticket ID: 0004242.","object_id":4242,"agent_id":3,"timestamp":"2026-09-25T06:41:08.7895915Z","ticket":{"id":4242,"summary":"...","status_id":9,"tickettype_id":25,"client_id":1,"team_id":5,"agent_id":3,"customfields":[],"hasbeenclosed":true}}"#;
        let payload = Payload::read(body).unwrap();
        let at = payload.timestamp.unwrap();
        let effects = payload.effects(at);
        let ticket = effects.ticket.unwrap();
        assert_eq!(
            (ticket.ticket_id, ticket.status_id, ticket.closed),
            (4242, Some(9), true)
        );
        assert_eq!(ticket.client_id, Some(1));
        assert!(effects.action.is_none());
    }

    #[test]
    fn long_refused_bodies_are_cut_on_a_character_boundary() {
        let body = "é".repeat(3000);
        let cut = truncated(body.as_bytes(), 4095);
        assert!(
            cut.ends_with("(6000 bytes in all)"),
            "{}",
            &cut[cut.len() - 30..]
        );
    }
}
