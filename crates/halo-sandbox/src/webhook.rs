//! Outbound webhooks: payloads (reference §4.2), signing (§4.3) and the delivery log
//! (`WebhookEvent`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::res::Res;
use crate::state::{int, string, Event, Rec, State};
use crate::Inner;

/// One recorded webhook delivery (what `/api/WebhookEvent` lists).
#[derive(Debug, Clone, Serialize)]
pub struct WebhookDelivery {
    /// Delivery id (GUID).
    pub id: String,
    /// The webhook that fired.
    pub webhook_id: String,
    /// The notification (event subscription) that matched.
    pub notification_id: Option<i64>,
    /// Event name, e.g. `new ticket logged`.
    pub event: String,
    /// Ticket id the event is about.
    pub entity_id: i64,
    /// When the delivery was attempted (sandbox clock).
    pub timestamp: DateTime<Utc>,
    /// Target URL.
    pub url: String,
    /// Request headers sent (Basic credentials redacted).
    pub request_headers: Vec<(String, String)>,
    /// Exact request body.
    pub request_body: String,
    /// HTTP status of the receiver's answer, if any.
    pub response_status: Option<u16>,
    /// Response headers.
    pub response_headers: Vec<(String, String)>,
    /// Response body.
    pub response_body: String,
    /// Wall-clock duration of the HTTP exchange in milliseconds.
    pub duration_ms: f64,
    /// Transport error, when the receiver could not be reached.
    pub error: Option<String>,
}

impl WebhookDelivery {
    /// True when the receiver answered 2xx.
    pub fn succeeded(&self) -> bool {
        self.response_status
            .is_some_and(|s| (200..300).contains(&s))
    }
}

/// A delivery waiting to be sent.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub webhook_id: String,
    pub notification_id: Option<i64>,
    pub event: String,
    pub entity_id: i64,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
    /// Set when the delivery cannot be attempted (e.g. missing certificate).
    pub precondition_error: Option<String>,
}

/// Halo's payload timestamp: 7 fractional digits and `Z` (`2026-09-25T06:41:08.7895915Z`).
fn payload_timestamp(at: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        at.format("%Y-%m-%dT%H:%M:%S"),
        at.nanosecond() % 1_000_000_000 / 100
    )
}

const TICKET_KEY_FIELDS: &[&str] = &[
    "id",
    "summary",
    "status_id",
    "tickettype_id",
    "client_id",
    "site_id",
    "user_id",
    "team",
    "agent_id",
    "priority_id",
    "customfields",
    "hasbeenclosed",
];
const ACTION_KEY_FIELDS: &[&str] = &[
    "id",
    "ticket_id",
    "outcome",
    "outcome_id",
    "note",
    "hiddenfromuser",
    "actionby_agent_id",
    "who_agentid",
    "datetime",
    "new_status",
];

fn key_fields(rec: &Rec, fields: &[&str]) -> Value {
    let mut out = Map::new();
    for f in fields {
        match rec.get(*f) {
            Some(v) => {
                out.insert((*f).into(), v.clone());
            }
            None if *f == "customfields" => {
                out.insert("customfields".into(), json!([]));
            }
            None => {}
        }
    }
    Value::Object(out)
}

impl State {
    /// Builds the deliveries that `events` trigger (called with the state lock held).
    pub(crate) fn jobs_for(&self, events: &[Event], agent_id: i64, now: DateTime<Utc>) -> Vec<Job> {
        let mut jobs = Vec::new();
        let ev = &self.behaviour.events;
        for event in events {
            let (eventno, name, ticket_id, message) = match event {
                Event::NewTicket(t) => (
                    ev.new_ticket,
                    "new ticket logged",
                    *t,
                    format!("A new Ticket has been logged with Ticket ID: {t:07}."),
                ),
                Event::StatusChanged(t) => (
                    ev.status_changed,
                    "ticket status changed",
                    *t,
                    format!("The status has been changed for Ticket ID: {t:07}."),
                ),
                Event::TicketUpdated(t) => (
                    ev.ticket_updated,
                    "ticket updated",
                    *t,
                    format!("Ticket ID: {t:07} has been updated."),
                ),
                Event::ActionAdded { ticket_id, .. } => (
                    ev.action_added,
                    "action added",
                    *ticket_id,
                    format!("An Action has been added to Ticket ID: {ticket_id:07}."),
                ),
                Event::TicketDeleted(rec) => {
                    let t = int(rec, "id").unwrap_or_default();
                    (
                        ev.ticket_deleted,
                        "ticket deleted",
                        t,
                        format!("Ticket ID: {t:07} has been deleted."),
                    )
                }
            };
            let ticket = match event {
                Event::TicketDeleted(rec) => Some(rec.clone()),
                _ => self
                    .find(Res::Tickets, &ticket_id.to_string(), None)
                    .cloned(),
            };
            let action = match event {
                Event::ActionAdded {
                    ticket_id,
                    action_id,
                } => self
                    .find(Res::Actions, &action_id.to_string(), Some(*ticket_id))
                    .cloned(),
                _ => None,
            };
            for webhook in &self.records[&Res::Webhook] {
                let active = webhook.get("active").and_then(Value::as_bool) != Some(false)
                    && webhook.get("disabled").and_then(Value::as_bool) != Some(true)
                    && int(webhook, "type").unwrap_or(0) == 0;
                if !active {
                    continue;
                }
                let Some(webhook_id) = string(webhook, "id") else {
                    continue;
                };
                let Some(notification_id) = self.subscription(webhook, &webhook_id, eventno) else {
                    continue;
                };
                let mut payload = json!({
                    "id": uuid::Uuid::new_v4().to_string(),
                    "webhook_id": webhook_id,
                    "notification_id": notification_id,
                    "escmsg_id": uuid::Uuid::new_v4().to_string(),
                    "event": name,
                    "message": message,
                    "object_id": ticket_id,
                    "agent_id": agent_id,
                    "timestamp": payload_timestamp(now),
                });
                // payload_type [U]: 0/absent = key fields, 1 = full objects, 2 = event only.
                let payload_type = int(webhook, "payload_type").unwrap_or(0);
                if payload_type != 2 {
                    if let Some(t) = &ticket {
                        payload["ticket"] = if payload_type == 1 {
                            self.present(Res::Tickets, t, false)
                        } else {
                            key_fields(t, TICKET_KEY_FIELDS)
                        };
                    }
                    if let Some(a) = &action {
                        payload["action"] = if payload_type == 1 {
                            self.present(Res::Actions, a, false)
                        } else {
                            key_fields(a, ACTION_KEY_FIELDS)
                        };
                    }
                }
                let body = serde_json::to_vec(&payload).unwrap_or_default();
                let mut headers = vec![(
                    "Content-Type".to_string(),
                    string(webhook, "content_type").unwrap_or_else(|| "application/json".into()),
                )];
                let mut precondition_error = None;
                match int(webhook, "authentication_type").unwrap_or(0) {
                    1 => {
                        let user = string(webhook, "basic_username").unwrap_or_default();
                        let pass = string(webhook, "basic_password").unwrap_or_default();
                        let token = base64::engine::general_purpose::STANDARD
                            .encode(format!("{user}:{pass}"));
                        headers.push(("Authorization".into(), format!("Basic {token}")));
                    }
                    // [U] 4 = "Sign Request Body with a X.509 Certificate".
                    4 => {
                        let cert =
                            int(webhook, "certificate_id").and_then(|id| self.signers.get(&id));
                        match cert {
                            Some(cert) => {
                                let sig = &self.behaviour.signature;
                                headers.push((
                                    sig.header.clone(),
                                    cert.sign(&body, sig.padding, sig.encoding),
                                ));
                                if let Some(h) = &sig.thumbprint_header {
                                    headers.push((h.clone(), cert.thumbprint.clone()));
                                }
                            }
                            None => {
                                precondition_error = Some(
                                    "The webhook's signing certificate is missing; upload it under Certificates and select it on the webhook".into(),
                                )
                            }
                        }
                    }
                    _ => {}
                }
                jobs.push(Job {
                    webhook_id,
                    notification_id: Some(notification_id),
                    event: name.to_string(),
                    entity_id: ticket_id,
                    url: string(webhook, "url").unwrap_or_default(),
                    headers,
                    body,
                    timeout: Duration::from_secs(self.behaviour.webhook_timeout_secs),
                    precondition_error,
                });
            }
        }
        jobs
    }

    /// The notification id that subscribes `webhook` to `eventno`, if any.
    fn subscription(&self, webhook: &Rec, webhook_id: &str, eventno: i64) -> Option<i64> {
        if let Some(Value::Array(events)) = webhook.get("events") {
            for e in events.iter().filter_map(Value::as_object) {
                if int(e, "eventno") == Some(eventno) {
                    return Some(int(e, "id").unwrap_or_default());
                }
            }
        }
        self.records[&Res::Notification]
            .iter()
            .find(|n| {
                int(n, "eventno") == Some(eventno)
                    && n.get("webhook_id")
                        .and_then(Value::as_str)
                        .is_some_and(|w| w.eq_ignore_ascii_case(webhook_id))
            })
            .and_then(|n| int(n, "id"))
    }
}

fn redact(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("authorization") {
                (k.clone(), "Basic <redacted>".to_string())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

fn header_text(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// Sends one delivery and records it.
pub(crate) async fn deliver(inner: Arc<Inner>, job: Job) {
    let timestamp = inner.clock.now();
    let started = Instant::now();
    let mut delivery = WebhookDelivery {
        id: uuid::Uuid::new_v4().to_string(),
        webhook_id: job.webhook_id.clone(),
        notification_id: job.notification_id,
        event: job.event.clone(),
        entity_id: job.entity_id,
        timestamp,
        url: job.url.clone(),
        request_headers: redact(&job.headers),
        request_body: String::from_utf8_lossy(&job.body).into_owned(),
        response_status: None,
        response_headers: Vec::new(),
        response_body: String::new(),
        duration_ms: 0.0,
        error: job.precondition_error.clone(),
    };
    if job.precondition_error.is_none() {
        let mut req = inner
            .http
            .post(&job.url)
            .timeout(job.timeout)
            .body(job.body.clone());
        for (k, v) in &job.headers {
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(resp) => {
                delivery.response_status = Some(resp.status().as_u16());
                delivery.response_headers = resp
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                    .collect();
                delivery.response_body = resp.text().await.unwrap_or_default();
            }
            Err(e) => {
                delivery.error = Some(format!(
                    "The webhook receiver at {} could not be reached: {e}",
                    job.url
                ))
            }
        }
    }
    delivery.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::debug!(webhook = %delivery.webhook_id, event = %delivery.event, status = ?delivery.response_status, "halo sandbox webhook delivered");
    let mut state = inner.state.lock().expect("halo sandbox state lock");
    let ts = state.ts(timestamp);
    // [U] status: 1 = delivered (2xx), 2 = failed.
    let record = json!({
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "notification_id": delivery.notification_id,
        "timestamp": ts,
        "status": if delivery.succeeded() { 1 } else { 2 },
        "duration": delivery.duration_ms,
        "requestheaders": header_text(&delivery.request_headers),
        "requestbody": delivery.request_body,
        "responsestatus": delivery.response_status.map(i64::from).unwrap_or(0),
        "responseheaders": header_text(&delivery.response_headers),
        "responsebody": delivery.response_body,
        "entity_id": delivery.entity_id,
        "error": !delivery.succeeded(),
    });
    if let Value::Object(rec) = record {
        state
            .records
            .entry(Res::WebhookEvent)
            .or_default()
            .push(rec);
    }
    if let Some(w) = state.records.get_mut(&Res::Webhook).and_then(|l| {
        l.iter_mut()
            .find(|w| w.get("id").and_then(Value::as_str) == Some(delivery.webhook_id.as_str()))
    }) {
        w.insert(
            "last_status".into(),
            json!(delivery.response_status.map(i64::from).unwrap_or(0)),
        );
    }
    state.deliveries.push(delivery);
}
