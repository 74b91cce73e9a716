//! The PSA's state and the server-side rules applied when records are written.

mod reads;
mod rules;
mod writes;

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::Digest as _;

use crate::certs::SigningCert;
use crate::res::{IdKind, Res};
use crate::schema::{format_datetime, DateStyle};
use crate::seed::{HaloBehaviour, HaloSeed};
use crate::webhook::WebhookDelivery;

/// A JSON object record.
pub(crate) type Rec = Map<String, Value>;

/// Who is calling (from the bearer token).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub client_id: String,
    pub agent_id: i64,
    pub scopes: Vec<String>,
}

/// An issued access token.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub client_id: String,
    pub agent_id: i64,
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// Credentials of an API application.
#[derive(Clone)]
pub(crate) struct AppCred {
    pub app_id: String,
    pub client_id: String,
    pub secret: String,
    pub scopes: Vec<String>,
    pub agent_id: i64,
}

/// Something that happened and may trigger webhooks.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    NewTicket(i64),
    StatusChanged(i64),
    /// The ticket moved to another client or site ("Ticket Updated", the guide's "Ticket
    /// Changed" with field Client).
    TicketUpdated(i64),
    ActionAdded {
        ticket_id: i64,
        action_id: i64,
    },
    TicketDeleted(Rec),
}

/// Whole-sandbox state, behind one mutex.
pub(crate) struct State {
    pub behaviour: HaloBehaviour,
    pub tenant: String,
    pub default_tickettype_id: i64,
    pub default_status_id: i64,
    pub default_priority_id: i64,
    pub records: HashMap<Res, Vec<Rec>>,
    pub next_ids: HashMap<Res, i64>,
    pub creds: Vec<AppCred>,
    pub tokens: HashMap<String, Token>,
    pub windows: HashMap<String, VecDeque<DateTime<Utc>>>,
    pub attachment_bytes: HashMap<i64, Vec<u8>>,
    pub signers: HashMap<i64, SigningCert>,
    pub deliveries: Vec<WebhookDelivery>,
    /// The custom fields of users (definitions).
    pub user_custom_fields: Vec<Value>,
}

/// Reads an integer, also from a double (`Users.site_id`, `Site.client_id` are doubles).
pub(crate) fn int(rec: &Rec, key: &str) -> Option<i64> {
    match rec.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Reads a non-empty string.
pub(crate) fn string(rec: &Rec, key: &str) -> Option<String> {
    rec.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn flag(rec: &Rec, key: &str) -> bool {
    rec.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Crude HTML-to-text used to fill `details`/`note` from their `_html` variants.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    let mut tag = String::new();
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                tag.clear();
            }
            '>' if in_tag => {
                in_tag = false;
                let t = tag.trim_start_matches('/').to_ascii_lowercase();
                if t.starts_with("br") || t.starts_with('p') || t.starts_with("div") {
                    out.push('\n');
                }
            }
            _ if in_tag => tag.push(c),
            _ => out.push(c),
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

/// A stable GUID derived from a string (for seeded records).
pub(crate) fn stable_uuid(seed: &str) -> String {
    let digest = sha2::Sha256::digest(seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Normalised query parameters (names lower-cased, as ASP.NET binds them).
pub(crate) type Query = HashMap<String, String>;

impl State {
    /// Builds the state from a seed.
    pub fn new(seed: HaloSeed, now: DateTime<Utc>) -> Result<Self, crate::SeedError> {
        let mut state = State {
            behaviour: seed.behaviour.clone(),
            tenant: seed.tenant.clone(),
            default_tickettype_id: seed.default_tickettype_id,
            default_status_id: seed.default_status_id,
            default_priority_id: seed.default_priority_id,
            records: Res::ALL.iter().map(|r| (*r, Vec::new())).collect(),
            next_ids: HashMap::from([(Res::Tickets, seed.first_ticket_id)]),
            creds: Vec::new(),
            tokens: HashMap::new(),
            windows: HashMap::new(),
            attachment_bytes: HashMap::new(),
            signers: HashMap::new(),
            deliveries: Vec::new(),
            user_custom_fields: seed.user_custom_fields.clone(),
        };
        let seed_caller = Caller {
            client_id: String::new(),
            agent_id: seed.applications.first().map(|a| a.agent_id).unwrap_or(1),
            scopes: vec!["all".into()],
        };
        let groups: [(Res, &Vec<Value>); 10] = [
            (Res::Agent, &seed.agents),
            (Res::Client, &seed.clients),
            (Res::Site, &seed.sites),
            (Res::Users, &seed.users),
            (Res::TicketType, &seed.ticket_types),
            (Res::Status, &seed.statuses),
            (Res::Priority, &seed.priorities),
            (Res::Outcome, &seed.outcomes),
            (Res::Tabs, &seed.tabs),
            (Res::Tickets, &seed.tickets),
        ];
        for (res, items) in groups {
            for item in items {
                state
                    .upsert(res, item.clone(), &seed_caller, now, true)
                    .map_err(|e| crate::SeedError::Record {
                        resource: res.path(),
                        detail: e.describe(),
                    })?;
            }
        }
        // Clients seeded before their sites: fill main_site_name now.
        let sites = state.records[&Res::Site].clone();
        for client in state.records.get_mut(&Res::Client).into_iter().flatten() {
            if let Some(site_id) = int(client, "main_site_id") {
                if let Some(site) = sites.iter().find(|s| int(s, "id") == Some(site_id)) {
                    client.insert("main_site_name".into(), site["name"].clone());
                }
            }
        }
        let first_ticket = seed.first_ticket_id;
        let next = state.next_ids.entry(Res::Tickets).or_insert(first_ticket);
        *next = (*next).max(first_ticket);
        for app in &seed.applications {
            let app_id = stable_uuid(&format!("application:{}", app.client_id));
            let rec = json!({
                "id": app_id,
                "clientId": app.client_id,
                "displayName": app.name,
                "type": "confidential",
                "grant_type": "client_credentials",
                "loginentity": 0,
                "loginas_agent_id": app.agent_id,
                "allowagents": true,
                "allowusers": false,
                "inactive": false,
                "scopes": app.scopes.iter().enumerate().map(|(i, s)| json!({
                    "id": i as i64 + 1, "application_id": app_id, "name": s})).collect::<Vec<_>>(),
            });
            state.creds.push(AppCred {
                app_id,
                client_id: app.client_id.clone(),
                secret: app.client_secret.clone(),
                scopes: app.scopes.clone(),
                agent_id: app.agent_id,
            });
            state
                .upsert(Res::Application, rec, &seed_caller, now, true)
                .map_err(|e| crate::SeedError::Record {
                    resource: "Application",
                    detail: e.describe(),
                })?;
        }
        for cert in &seed.certificates {
            let signer = SigningCert::from_pem(&cert.cert_pem, &cert.key_pem).map_err(|e| {
                crate::SeedError::Record {
                    resource: "Certificate",
                    detail: e.to_string(),
                }
            })?;
            let rec = json!({"id": cert.id, "name": cert.name, "subject": signer.subject,
                "issuer": signer.issuer, "thumbprint": signer.thumbprint});
            state.insert_record(
                Res::Certificate,
                rec.as_object().cloned().unwrap_or_default(),
            );
            state.signers.insert(cert.id, signer);
        }
        Ok(state)
    }

    fn style(&self) -> DateStyle {
        if self.behaviour.naive_datetimes {
            DateStyle::Naive
        } else {
            DateStyle::Rfc3339Utc
        }
    }

    /// Formats `now` for a `date-time` property.
    pub fn ts(&self, now: DateTime<Utc>) -> Value {
        Value::String(format_datetime(now, self.style()))
    }

    fn insert_record(&mut self, res: Res, rec: Rec) {
        if res.id_kind() == IdKind::Int {
            if let Some(id) = int(&rec, "id") {
                let next = self.next_ids.entry(res).or_insert(1);
                if id >= *next {
                    *next = id + 1;
                }
            }
        }
        self.records.entry(res).or_default().push(rec);
    }

    fn next_id(&mut self, res: Res) -> i64 {
        let next = self.next_ids.entry(res).or_insert(1);
        let id = *next;
        *next += 1;
        id
    }

    /// Finds a record by id (`ticket_id` scopes action ids, which are per ticket).
    pub fn find(&self, res: Res, id: &str, ticket_id: Option<i64>) -> Option<&Rec> {
        self.position(res, id, ticket_id)
            .map(|i| &self.records[&res][i])
    }

    fn position(&self, res: Res, id: &str, ticket_id: Option<i64>) -> Option<usize> {
        let list = self.records.get(&res)?;
        match res.id_kind() {
            IdKind::Int => {
                let id: i64 = id.parse().ok()?;
                list.iter().position(|r| {
                    int(r, "id") == Some(id)
                        && (res != Res::Actions || int(r, "ticket_id") == ticket_id)
                })
            }
            IdKind::Uuid => list.iter().position(|r| {
                r.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.eq_ignore_ascii_case(id))
            }),
        }
    }

    fn by_int(&self, res: Res, id: i64) -> Option<&Rec> {
        self.records[&res].iter().find(|r| int(r, "id") == Some(id))
    }
}
