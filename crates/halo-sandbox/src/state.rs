//! The PSA's state and the server-side rules applied when records are written.

use std::collections::{HashMap, VecDeque};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::Digest as _;

use crate::certs::SigningCert;
use crate::error::ApiError;
use crate::res::{IdKind, ListStyle, Res};
use crate::schema::{coerce_object, format_datetime, has_prop, DateStyle};
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
    ActionAdded { ticket_id: i64, action_id: i64 },
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

fn business(msg: impl Into<String>) -> ApiError {
    ApiError::Business(msg.into())
}

/// Normalised query parameters (names lower-cased, as ASP.NET binds them).
pub(crate) type Query = HashMap<String, String>;

fn q_bool(q: &Query, key: &str) -> Option<bool> {
    q.get(key)
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn q_int(q: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    match q.get(key) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::model(key, format!("The value '{v}' is not valid for {key}."))),
    }
}

fn contains_ci(haystack: Option<&Value>, needle: &str) -> bool {
    match haystack {
        Some(Value::String(s)) => s.to_lowercase().contains(needle),
        Some(Value::Number(n)) => n.to_string() == needle,
        _ => false,
    }
}

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

    /// `POST /api/<res>`: creates or updates each element; returns the saved records.
    pub fn post(
        &mut self,
        res: Res,
        body: Value,
        caller: &Caller,
        now: DateTime<Utc>,
        path_id: Option<&str>,
    ) -> Result<(Vec<Value>, Vec<Event>), ApiError> {
        let items = match body {
            Value::Array(items) => items,
            Value::Object(mut obj) => {
                if let Some(id) = path_id {
                    obj.insert("id".into(), Value::String(id.to_string()));
                }
                vec![Value::Object(obj)]
            }
            _ => {
                return Err(ApiError::model(
                    "",
                    "The request body must be a JSON array of objects (or one object).",
                ))
            }
        };
        let mut out = Vec::new();
        let mut events = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let (saved, mut ev) = self.upsert_at(res, item, caller, now, false, i)?;
            let mut shown = self.present(res, &saved, true);
            if res == Res::Application {
                // The secret is shown once, in the answer to the POST that set it.
                if let (Some(secret), Value::Object(obj)) = (saved.get("clientSecret"), &mut shown)
                {
                    obj.insert("clientSecret".into(), secret.clone());
                }
            }
            out.push(shown);
            events.append(&mut ev);
        }
        Ok((out, events))
    }

    fn upsert(
        &mut self,
        res: Res,
        item: Value,
        caller: &Caller,
        now: DateTime<Utc>,
        seeding: bool,
    ) -> Result<(Rec, Vec<Event>), ApiError> {
        self.upsert_at(res, item, caller, now, seeding, 0)
    }

    fn upsert_at(
        &mut self,
        res: Res,
        item: Value,
        caller: &Caller,
        now: DateTime<Utc>,
        seeding: bool,
        index: usize,
    ) -> Result<(Rec, Vec<Event>), ApiError> {
        let path = format!("[{index}]");
        let Value::Object(raw) = item else {
            return Err(ApiError::model(
                &path,
                "Each element must be a JSON object.",
            ));
        };
        let input = coerce_object(res.schema(), &raw, &path, self.style())
            .map_err(|e| ApiError::ModelState(vec![e]))?;
        let id_text = match res.id_kind() {
            IdKind::Int => int(&input, "id")
                .filter(|id| *id > 0)
                .map(|i| i.to_string()),
            IdKind::Uuid => string(&input, "id"),
        };
        let ticket_scope = if res == Res::Actions {
            int(&input, "ticket_id")
        } else {
            None
        };
        let existing = id_text
            .as_deref()
            .and_then(|id| self.position(res, id, ticket_scope));
        if existing.is_none() && id_text.is_some() && !seeding && res != Res::Application {
            return Err(business(format!(
                "{} {} does not exist, so it cannot be updated. Omit id to create a new record.",
                res.path(),
                id_text.unwrap_or_default()
            )));
        }
        let mut rec = existing
            .map(|i| self.records[&res][i].clone())
            .unwrap_or_default();
        let old = existing.map(|_| rec.clone());
        for (k, v) in input.iter() {
            rec.insert(k.clone(), v.clone());
        }
        let mut events = Vec::new();
        match res {
            Res::Tickets => {
                self.rules_ticket(&raw, &input, &mut rec, old.as_ref(), now, &mut events)?
            }
            Res::Actions => {
                self.rules_action(&raw, &mut rec, old.as_ref(), caller, now, &mut events)?
            }
            Res::Attachment => self.rules_attachment(&raw, &mut rec, old.as_ref(), now)?,
            Res::Certificate => self.rules_certificate(&raw, &mut rec)?,
            Res::Application => self.rules_application(&raw, &mut rec, old.as_ref())?,
            _ => self.rules_simple(res, &mut rec)?,
        }
        // Assign the id last, once validation passed.
        if old.is_none() {
            match res.id_kind() {
                IdKind::Int if res == Res::Actions => {}
                IdKind::Int => {
                    let id = match id_text.as_deref().and_then(|s| s.parse::<i64>().ok()) {
                        Some(id) if seeding => id,
                        _ => self.next_id(res),
                    };
                    rec.insert("id".into(), json!(id));
                }
                IdKind::Uuid => {
                    let id = string(&rec, "id")
                        .or(id_text)
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                    rec.insert("id".into(), json!(id));
                }
            }
        }
        if let Res::Attachment = res {
            if let Some(bytes) = rec.remove("data_base64") {
                let id = int(&rec, "id").unwrap_or_default();
                if let Some(b64) = bytes.as_str() {
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap_or_default();
                    self.attachment_bytes.insert(id, data);
                }
            }
        }
        if let Res::Certificate = res {
            // rules_certificate stashed the signer under id 0 until the id was known.
            if let Some(signer) = self.signers.remove(&0) {
                self.signers
                    .insert(int(&rec, "id").unwrap_or_default(), signer);
            }
        }
        match existing {
            Some(i) => self.records.get_mut(&res).expect("table")[i] = rec.clone(),
            None => self.insert_record(res, rec.clone()),
        }
        if res == Res::Attachment {
            if let Some(t) = int(&rec, "ticket_id") {
                self.refresh_attachment_counts(t);
            }
        }
        if old.is_none() {
            if let Some(Event::NewTicket(id)) = events.first_mut() {
                *id = int(&rec, "id").unwrap_or_default();
            }
        }
        // Embedded attachments become Attachment records linked to the ticket/action.
        if matches!(res, Res::Tickets | Res::Actions) {
            if let Some(Value::Array(atts)) = raw.get("attachments") {
                let (ticket_id, action_id) = if res == Res::Tickets {
                    (int(&rec, "id"), None)
                } else {
                    (int(&rec, "ticket_id"), int(&rec, "id"))
                };
                for att in atts {
                    let Some(obj) = att.as_object() else { continue };
                    if string(obj, "data_base64").is_none() {
                        continue;
                    }
                    let mut obj = obj.clone();
                    obj.remove("id");
                    obj.insert("ticket_id".into(), json!(ticket_id));
                    if let Some(a) = action_id {
                        obj.insert("action_id".into(), json!(a));
                    }
                    self.upsert(Res::Attachment, Value::Object(obj), caller, now, false)?;
                }
                self.refresh_attachment_counts(ticket_id.unwrap_or_default());
                let scope = if res == Res::Actions { ticket_id } else { None };
                let id = int(&rec, "id").unwrap_or_default().to_string();
                rec = self.find(res, &id, scope).cloned().unwrap_or(rec);
            }
        }
        Ok((rec, events))
    }

    fn refresh_attachment_counts(&mut self, ticket_id: i64) {
        let atts: Vec<Rec> = self.records[&Res::Attachment]
            .iter()
            .filter(|a| int(a, "ticket_id") == Some(ticket_id))
            .cloned()
            .collect();
        if let Some(t) = self
            .records
            .get_mut(&Res::Tickets)
            .and_then(|l| l.iter_mut().find(|t| int(t, "id") == Some(ticket_id)))
        {
            t.insert("attachment_count".into(), json!(atts.len()));
        }
        for a in self
            .records
            .get_mut(&Res::Actions)
            .into_iter()
            .flatten()
            .filter(|a| int(a, "ticket_id") == Some(ticket_id))
        {
            let n = atts
                .iter()
                .filter(|x| int(x, "action_id") == int(a, "id"))
                .count();
            a.insert("attachment_count".into(), json!(n));
        }
    }

    fn is_closed(&self, status_id: Option<i64>) -> bool {
        status_id.is_some_and(|s| self.behaviour.closed_status_ids.contains(&s))
    }

    fn rules_ticket(
        &mut self,
        raw: &Rec,
        input: &Rec,
        rec: &mut Rec,
        old: Option<&Rec>,
        now: DateTime<Utc>,
        events: &mut Vec<Event>,
    ) -> Result<(), ApiError> {
        let is_new = old.is_none();
        if is_new {
            rec.entry("dateoccurred").or_insert(self.ts(now));
            rec.insert("datecreated".into(), self.ts(now));
            rec.insert("lastactiondate".into(), self.ts(now));
            rec.entry("tickettype_id")
                .or_insert(json!(self.default_tickettype_id));
            rec.entry("status_id")
                .or_insert(json!(self.default_status_id));
            rec.entry("priority_id")
                .or_insert(json!(self.default_priority_id));
            rec.entry("deleted").or_insert(json!(false));
            rec.entry("inactive").or_insert(json!(false));
            rec.entry("attachment_count").or_insert(json!(0));
        }
        // userlookup {id: -1} means the client's "General User".
        let general_user = raw
            .get("userlookup")
            .and_then(|u| u.get("id"))
            .and_then(Value::as_i64)
            == Some(-1);
        let user_id = int(rec, "user_id").filter(|u| *u > 0);
        if user_id.is_none() && general_user {
            rec.insert("user_name".into(), json!("General User"));
        }
        if let Some(uid) = user_id {
            let user = self
                .by_int(Res::Users, uid)
                .cloned()
                .ok_or_else(|| business(format!("User {uid} does not exist")))?;
            let user_changed = input.contains_key("user_id");
            if user_changed && int(rec, "site_id").filter(|s| *s > 0).is_none() {
                return Err(business(
                    self.behaviour.ticket_user_without_site_error.clone(),
                ));
            }
            if user_changed || !rec.contains_key("user_name") {
                rec.insert("user_name".into(), user["name"].clone());
            }
            if !input.contains_key("user_email") && user_changed {
                if let Some(email) = user.get("emailaddress") {
                    rec.insert("user_email".into(), email.clone());
                }
            }
            if int(rec, "client_id").is_none() {
                if let Some(c) = int(&user, "client_id") {
                    rec.insert("client_id".into(), json!(c));
                }
            }
        }
        if let Some(site_id) = int(rec, "site_id").filter(|s| *s > 0) {
            let site = self
                .by_int(Res::Site, site_id)
                .cloned()
                .ok_or_else(|| business(format!("Site {site_id} does not exist")))?;
            let site_client = int(&site, "client_id");
            match int(rec, "client_id") {
                None | Some(0) => {
                    rec.insert("client_id".into(), json!(site_client));
                }
                Some(c) if Some(c) != site_client => {
                    return Err(business(format!(
                        "Site {site_id} does not belong to client {c}"
                    )))
                }
                _ => {}
            }
            rec.insert("site_name".into(), site["name"].clone());
        }
        if let Some(client_id) = int(rec, "client_id").filter(|c| *c > 0) {
            let client = self
                .by_int(Res::Client, client_id)
                .cloned()
                .ok_or_else(|| business(format!("Client {client_id} does not exist")))?;
            rec.insert("client_name".into(), client["name"].clone());
        }
        let lookups = [
            ("tickettype_id", Res::TicketType, "tickettype_name", "name"),
            ("status_id", Res::Status, "status_name", "name"),
            ("agent_id", Res::Agent, "agent_name", "name"),
        ];
        for (key, res, name_key, src) in lookups {
            if let Some(id) = int(rec, key).filter(|i| *i > 0) {
                let found = self.by_int(res, id).and_then(|r| r.get(src)).cloned();
                match found {
                    Some(name) => {
                        rec.insert(name_key.into(), name);
                    }
                    None if key != "agent_id" => {
                        return Err(business(format!("{} {id} does not exist", res.path())))
                    }
                    None => {}
                }
            }
        }
        if let Some(p) = int(rec, "priority_id") {
            if let Some(name) = self.records[&Res::Priority]
                .iter()
                .find(|r| int(r, "priorityid") == Some(p))
                .and_then(|r| r.get("name"))
            {
                rec.insert("priority_name".into(), name.clone());
            }
        }
        if string(rec, "details").is_none() {
            if let Some(html) = string(rec, "details_html") {
                rec.insert("details".into(), json!(html_to_text(&html)));
            }
        }
        let status = int(rec, "status_id");
        let closed = self.is_closed(status);
        rec.insert(
            "hasbeenclosed".into(),
            json!(closed || flag(rec, "hasbeenclosed")),
        );
        if closed && old.is_none_or(|o| !self.is_closed(int(o, "status_id"))) {
            rec.insert("dateclosed".into(), self.ts(now));
        }
        match old {
            None => events.push(Event::NewTicket(0)),
            Some(o) => {
                rec.insert("lastactiondate".into(), self.ts(now));
                if int(o, "status_id") != status {
                    events.push(Event::StatusChanged(int(o, "id").unwrap_or_default()));
                }
            }
        }
        Ok(())
    }

    fn rules_action(
        &mut self,
        raw: &Rec,
        rec: &mut Rec,
        old: Option<&Rec>,
        caller: &Caller,
        now: DateTime<Utc>,
        events: &mut Vec<Event>,
    ) -> Result<(), ApiError> {
        let Some(ticket_id) = int(rec, "ticket_id").filter(|t| *t > 0) else {
            return Err(ApiError::BadRequestEmpty);
        };
        let ticket = self
            .by_int(Res::Tickets, ticket_id)
            .cloned()
            .ok_or_else(|| business(format!("Ticket {ticket_id} does not exist")))?;
        // Outcome: by id, or by name (outcome/buttonname).
        let outcome_rec = match int(rec, "outcome_id").filter(|o| *o > 0) {
            Some(oid) => Some(self.by_int(Res::Outcome, oid).cloned().ok_or_else(|| {
                business("An Outcome must be entered for this Action".to_string())
            })?),
            None => match string(rec, "outcome") {
                // A name that is no outcome of this instance is no outcome at all: HaloPSA
                // answers a new action with it like one without any.
                Some(name) => match self.records[&Res::Outcome]
                    .iter()
                    .find(|o| {
                        ["outcome", "buttonname"].iter().any(|k| {
                            o.get(*k)
                                .and_then(Value::as_str)
                                .is_some_and(|s| s.eq_ignore_ascii_case(name.trim()))
                        })
                    })
                    .cloned()
                {
                    Some(o) => Some(o),
                    None if old.is_some() => None,
                    None => return Err(business("An Outcome must be entered for this Action")),
                },
                None if old.is_some() => None,
                None => return Err(business("An Outcome must be entered for this Action")),
            },
        };
        if let Some(o) = &outcome_rec {
            rec.insert("outcome_id".into(), o["id"].clone());
            rec.insert(
                "outcome".into(),
                o.get("outcome").cloned().unwrap_or(Value::Null),
            );
            rec.insert(
                "action_systemid".into(),
                json!(int(o, "systemid").unwrap_or(0)),
            );
            if !raw.contains_key("hiddenfromuser") && old.is_none() {
                rec.insert("hiddenfromuser".into(), json!(flag(o, "hidefromuser")));
            }
        }
        if old.is_none() {
            let next = self.records[&Res::Actions]
                .iter()
                .filter(|a| int(a, "ticket_id") == Some(ticket_id))
                .filter_map(|a| int(a, "id"))
                .max()
                .unwrap_or(0)
                + 1;
            rec.insert("id".into(), json!(next));
            rec.entry("datetime").or_insert(self.ts(now));
            rec.insert("actiondatecreated".into(), self.ts(now));
            rec.entry("hiddenfromuser").or_insert(json!(false));
            rec.entry("attachment_count").or_insert(json!(0));
            if int(rec, "actionby_user_id").is_none() {
                rec.entry("actionby_agent_id")
                    .or_insert(json!(caller.agent_id));
                rec.entry("who_agentid").or_insert(json!(caller.agent_id));
            }
            let app_name = self
                .creds
                .iter()
                .find(|c| c.client_id == caller.client_id)
                .and_then(|c| self.find(Res::Application, &c.app_id, None))
                .and_then(|a| a.get("displayName").cloned());
            if let Some(name) = app_name {
                rec.entry("actionby_application_id").or_insert(name);
            }
            if let Some(agent) = self.by_int(Res::Agent, caller.agent_id) {
                if let Some(initials) = agent.get("initials") {
                    rec.entry("who_initials").or_insert(initials.clone());
                }
            }
            // An action that emails the end user ("sendemail": true, or an outcome that
            // sends, like "Email User", unless the request says false) is mail the PSA sent:
            // HaloPSA records that mail's Message-ID on the action (`email_message_id`), which
            // the customer's reply then names in In-Reply-To / References.
            let sends = match raw.get("sendemail").and_then(Value::as_bool) {
                Some(b) => b,
                None => outcome_rec
                    .as_ref()
                    .and_then(|o| o.get("sendemail"))
                    .is_some_and(|v| v.as_i64() == Some(1) || v.as_bool() == Some(true)),
            };
            if sends && string(rec, "email_message_id").is_none() {
                let id = int(rec, "id").unwrap_or_default();
                rec.insert(
                    "email_message_id".into(),
                    json!(format!(
                        "<halo.{ticket_id}.{id}.{}@halo-sandbox.mailroom.test>",
                        now.timestamp_millis()
                    )),
                );
                rec.insert("dateemailed".into(), self.ts(now));
                if let Some(user_email) = string(&ticket, "user_email") {
                    rec.entry("emailto").or_insert(json!(user_email));
                }
            }
        }
        if string(rec, "note").is_none() {
            if let Some(html) = string(rec, "note_html") {
                rec.insert("note".into(), json!(html_to_text(&html)));
            }
        }
        // Status change requested by the action or implied by its outcome.
        let new_status = int(raw, "new_status")
            .filter(|s| *s > 0)
            .or_else(|| outcome_rec.as_ref().and_then(|o| int(o, "newstatus")))
            .filter(|s| *s > 0);
        let old_status = int(&ticket, "status_id");
        let mut ticket_update = ticket.clone();
        if let Some(ns) = new_status {
            let status = self
                .by_int(Res::Status, ns)
                .cloned()
                .ok_or_else(|| business(format!("Status {ns} does not exist")))?;
            rec.insert("new_status".into(), json!(ns));
            rec.insert("new_status_name".into(), status["name"].clone());
            rec.insert("old_status".into(), json!(old_status));
            ticket_update.insert("status_id".into(), json!(ns));
            ticket_update.insert("status_name".into(), status["name"].clone());
            let closed = self.is_closed(Some(ns));
            ticket_update.insert("hasbeenclosed".into(), json!(closed));
            if closed && !self.is_closed(old_status) {
                ticket_update.insert("dateclosed".into(), self.ts(now));
            }
        }
        ticket_update.insert("lastactiondate".into(), self.ts(now));
        let incoming = string(rec, "emailfrom").is_some_and(|from| {
            !self.records[&Res::Agent].iter().any(|a| {
                a.get("email").and_then(Value::as_str).is_some_and(|e| {
                    !e.is_empty() && from.to_lowercase().contains(&e.to_lowercase())
                })
            })
        }) || int(rec, "actionby_user_id").is_some();
        if incoming && old.is_none() {
            ticket_update.insert("lastincomingemail".into(), self.ts(now));
        }
        if let Some(t) = self
            .records
            .get_mut(&Res::Tickets)
            .and_then(|l| l.iter_mut().find(|t| int(t, "id") == Some(ticket_id)))
        {
            *t = ticket_update;
        }
        if old.is_none() {
            events.push(Event::ActionAdded {
                ticket_id,
                action_id: int(rec, "id").unwrap_or_default(),
            });
        }
        if new_status.is_some() && new_status != old_status {
            events.push(Event::StatusChanged(ticket_id));
        }
        Ok(())
    }

    fn rules_attachment(
        &mut self,
        raw: &Rec,
        rec: &mut Rec,
        old: Option<&Rec>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let ticket_id = int(rec, "ticket_id")
            .filter(|t| *t > 0)
            .or_else(|| int(rec, "faultid").filter(|t| *t > 0));
        if let Some(t) = ticket_id {
            if self.by_int(Res::Tickets, t).is_none() {
                return Err(business(format!("Ticket {t} does not exist")));
            }
            rec.insert("ticket_id".into(), json!(t));
            rec.insert("faultid".into(), json!(t));
        }
        if let (Some(t), Some(a)) = (ticket_id, int(rec, "action_id").filter(|a| *a > 0)) {
            if self.find(Res::Actions, &a.to_string(), Some(t)).is_none() {
                return Err(business(format!("Action {a} does not exist on ticket {t}")));
            }
        }
        let filename = string(rec, "filename").unwrap_or_default();
        if old.is_none() {
            let Some(b64) = raw.get("data_base64").and_then(Value::as_str) else {
                return Err(business(
                    "An attachment needs data_base64 (the file content)",
                ));
            };
            let data = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| {
                    ApiError::model("[0].data_base64", "data_base64 is not valid base64.")
                })?;
            if filename.is_empty() {
                return Err(business("An attachment needs a filename"));
            }
            rec.insert("filesize".into(), json!(data.len()));
            rec.insert("datecreated".into(), self.ts(now));
        }
        let lower = filename.to_lowercase();
        let guessed = mime_for(&lower);
        rec.entry("content_type").or_insert(json!(guessed));
        let is_image = rec
            .get("content_type")
            .and_then(Value::as_str)
            .is_some_and(|c| c.starts_with("image/"));
        rec.insert("isimage".into(), json!(is_image));
        Ok(())
    }

    fn rules_certificate(&mut self, raw: &Rec, rec: &mut Rec) -> Result<(), ApiError> {
        rec.remove("new_password");
        if string(rec, "name").is_none() {
            return Err(business("A certificate needs a name"));
        }
        if let Some(att_id) = int(rec, "attachment_id").filter(|a| *a > 0) {
            let att = self
                .by_int(Res::Attachment, att_id)
                .cloned()
                .ok_or_else(|| business(format!("Attachment {att_id} does not exist")))?;
            let bytes = self
                .attachment_bytes
                .get(&att_id)
                .cloned()
                .unwrap_or_default();
            let password = raw
                .get("new_password")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let signer = SigningCert::from_pkcs12(&bytes, password)
                .map_err(|e| business(format!("The certificate could not be loaded: {e}")))?;
            rec.insert("subject".into(), json!(signer.subject));
            rec.insert("issuer".into(), json!(signer.issuer));
            rec.insert("thumbprint".into(), json!(signer.thumbprint));
            rec.insert("attachment_name".into(), att["filename"].clone());
            let id = int(rec, "id").unwrap_or(0);
            self.signers.insert(id, signer);
        }
        Ok(())
    }

    fn rules_application(
        &mut self,
        raw: &Rec,
        rec: &mut Rec,
        old: Option<&Rec>,
    ) -> Result<(), ApiError> {
        let name = string(rec, "displayName")
            .or_else(|| raw.get("name").and_then(Value::as_str).map(str::to_string));
        let Some(name) = name else {
            return Err(business("An application needs a name (displayName)"));
        };
        rec.insert("displayName".into(), json!(name));
        if old.is_none() {
            let client_id =
                string(rec, "clientId").unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            if self.creds.iter().any(|c| c.client_id == client_id) {
                // Seeded credentials re-registering themselves: keep the seed's secret.
                rec.insert("clientId".into(), json!(client_id));
                return Ok(());
            }
            let secret = string(rec, "clientSecret").unwrap_or_else(|| {
                let bytes: [u8; 32] = rand::random();
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
            });
            rec.insert("clientId".into(), json!(client_id));
            rec.insert("clientSecret".into(), json!(secret));
            rec.entry("grant_type")
                .or_insert(json!("client_credentials"));
            rec.entry("inactive").or_insert(json!(false));
            let app_id = string(rec, "id").unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            rec.insert("id".into(), json!(app_id));
            let scopes = scope_names(rec);
            self.creds.push(AppCred {
                app_id,
                client_id,
                secret,
                scopes,
                agent_id: int(rec, "loginas_agent_id").unwrap_or(1),
            });
        } else {
            let client_id = string(rec, "clientId").unwrap_or_default();
            let scopes = scope_names(rec);
            let agent = int(rec, "loginas_agent_id");
            let secret = string(rec, "clientSecret");
            if let Some(cred) = self.creds.iter_mut().find(|c| c.client_id == client_id) {
                cred.scopes = scopes;
                if let Some(a) = agent {
                    cred.agent_id = a;
                }
                if let Some(s) = secret {
                    cred.secret = s;
                }
            }
        }
        Ok(())
    }

    fn rules_simple(&mut self, res: Res, rec: &mut Rec) -> Result<(), ApiError> {
        let need_name = |rec: &Rec, key: &str, what: &str| -> Result<(), ApiError> {
            if string(rec, key).is_none() {
                Err(business(format!("A {what} must be entered")))
            } else {
                Ok(())
            }
        };
        match res {
            Res::Users => {
                need_name(rec, "name", "Name")?;
                let Some(site_id) = int(rec, "site_id").filter(|s| *s > 0) else {
                    return Err(business("A Site must be selected for this User"));
                };
                let site = self
                    .by_int(Res::Site, site_id)
                    .cloned()
                    .ok_or_else(|| business(format!("Site {site_id} does not exist")))?;
                rec.insert("site_name".into(), site["name"].clone());
                let client_id = int(&site, "client_id");
                rec.insert("client_id".into(), json!(client_id));
                if let Some(c) = client_id.and_then(|c| self.by_int(Res::Client, c)) {
                    rec.insert("client_name".into(), c["name"].clone());
                }
                let name = string(rec, "name").unwrap_or_default();
                if string(rec, "firstname").is_none() && string(rec, "surname").is_none() {
                    let mut parts = name.splitn(2, ' ');
                    rec.insert("firstname".into(), json!(parts.next().unwrap_or_default()));
                    rec.insert("surname".into(), json!(parts.next().unwrap_or_default()));
                }
                rec.entry("inactive").or_insert(json!(false));
            }
            Res::Client => {
                need_name(rec, "name", "Name")?;
                rec.entry("inactive").or_insert(json!(false));
                if let Some(site_id) = int(rec, "main_site_id").filter(|s| *s > 0) {
                    if let Some(s) = self.by_int(Res::Site, site_id) {
                        rec.insert("main_site_name".into(), s["name"].clone());
                    }
                }
            }
            Res::Site => {
                need_name(rec, "name", "Name")?;
                let Some(client_id) = int(rec, "client_id").filter(|c| *c > 0) else {
                    return Err(business("A Customer must be selected for this Site"));
                };
                let client = self
                    .by_int(Res::Client, client_id)
                    .cloned()
                    .ok_or_else(|| business(format!("Client {client_id} does not exist")))?;
                rec.insert("client_name".into(), client["name"].clone());
                rec.insert(
                    "clientsite_name".into(),
                    json!(format!(
                        "{}/{}",
                        client["name"].as_str().unwrap_or_default(),
                        string(rec, "name").unwrap_or_default()
                    )),
                );
                rec.entry("inactive").or_insert(json!(false));
            }
            Res::Agent | Res::TicketType | Res::Status | Res::Tabs | Res::Priority => {
                need_name(rec, "name", "Name")?
            }
            Res::Outcome => {
                if string(rec, "outcome").is_none() {
                    if let Some(b) = string(rec, "buttonname") {
                        rec.insert("outcome".into(), json!(b));
                    }
                }
                need_name(rec, "outcome", "Outcome")?;
            }
            Res::Webhook => {
                need_name(rec, "name", "Name")?;
                let url = string(rec, "url").unwrap_or_default();
                if url::Url::parse(&url).is_err() {
                    return Err(business(format!(
                        "The Payload URL '{url}' is not a valid absolute URL"
                    )));
                }
                if let Some(cid) = int(rec, "certificate_id").filter(|c| *c > 0) {
                    let cert = self
                        .by_int(Res::Certificate, cid)
                        .cloned()
                        .ok_or_else(|| business(format!("Certificate {cid} does not exist")))?;
                    rec.insert("certificate_name".into(), cert["name"].clone());
                }
                rec.entry("active").or_insert(json!(true));
                rec.entry("disabled").or_insert(json!(false));
                rec.entry("method").or_insert(json!(0));
                rec.entry("type").or_insert(json!(0));
                rec.entry("content_type")
                    .or_insert(json!("application/json"));
                rec.entry("authentication_type").or_insert(json!(0));
                if let Some(Value::Array(events)) = rec.get_mut("events") {
                    for (i, ev) in events.iter_mut().enumerate() {
                        if let Some(obj) = ev.as_object_mut() {
                            if int(obj, "id").unwrap_or(0) <= 0 {
                                obj.insert("id".into(), json!(i as i64 + 1));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The JSON a client sees for a stored record.
    pub fn present(&self, res: Res, rec: &Rec, detail: bool) -> Value {
        let mut out = rec.clone();
        match res {
            Res::Application => {
                out.remove("clientSecret");
            }
            Res::Webhook => {
                out.remove("basic_password");
            }
            Res::Attachment if detail => {
                if let Some(bytes) = int(rec, "id").and_then(|id| self.attachment_bytes.get(&id)) {
                    out.insert(
                        "data_base64".into(),
                        json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    );
                }
            }
            Res::Tickets | Res::Actions if detail => {
                let (t, a) = if res == Res::Tickets {
                    (int(rec, "id"), None)
                } else {
                    (int(rec, "ticket_id"), int(rec, "id"))
                };
                let atts: Vec<Value> = self.records[&Res::Attachment]
                    .iter()
                    .filter(|x| {
                        int(x, "ticket_id") == t && (a.is_none() || int(x, "action_id") == a)
                    })
                    .map(|x| self.present(Res::Attachment, x, false))
                    .collect();
                out.insert("attachments".into(), Value::Array(atts));
            }
            _ => {}
        }
        debug_assert!(out.keys().all(|k| has_prop(res.schema(), k)));
        Value::Object(out)
    }

    /// `GET /api/<res>`.
    pub fn list(&self, res: Res, q: &Query, caller: &Caller) -> Result<Value, ApiError> {
        let mut items: Vec<&Rec> = self.records[&res].iter().collect();
        self.filter(res, q, caller, &mut items)?;
        // Ordering: `order` names a field, `orderdesc=true` reverses.
        if let Some(field) = q.get("order").filter(|f| !f.is_empty()) {
            items.sort_by(|a, b| cmp_values(a.get(field.as_str()), b.get(field.as_str())));
        }
        if q_bool(q, "orderdesc") == Some(true) {
            items.reverse();
        }
        let total = items.len();
        let page = |items: Vec<&Rec>| -> Vec<Value> {
            items
                .into_iter()
                .map(|r| self.present(res, r, false))
                .collect()
        };
        match res.list_style() {
            ListStyle::Paged(plural) => {
                let mut env = Map::new();
                let items = if q_bool(q, "pageinate") == Some(true) {
                    let mut size = q_int(q, "page_size")?
                        .unwrap_or(self.behaviour.default_page_size as i64)
                        .max(1);
                    if res == Res::Tickets {
                        size = size.min(self.behaviour.max_ticket_page_size as i64);
                    }
                    let page_no = q_int(q, "page_no")?.unwrap_or(1).max(1);
                    env.insert("page_no".into(), json!(page_no));
                    env.insert("page_size".into(), json!(size));
                    let start = ((page_no - 1) * size) as usize;
                    items.into_iter().skip(start).take(size as usize).collect()
                } else if let Some(count) = q_int(q, "count")? {
                    items.into_iter().take(count.max(0) as usize).collect()
                } else {
                    items
                };
                env.insert("record_count".into(), json!(total));
                env.insert(plural.into(), Value::Array(page(items)));
                Ok(Value::Object(env))
            }
            ListStyle::Bare => {
                let items = match q_int(q, "count")? {
                    Some(count) => items.into_iter().take(count.max(0) as usize).collect(),
                    None => items,
                };
                Ok(Value::Array(page(items)))
            }
        }
    }

    fn filter(
        &self,
        res: Res,
        q: &Query,
        _caller: &Caller,
        items: &mut Vec<&Rec>,
    ) -> Result<(), ApiError> {
        let eq_int = |items: &mut Vec<&Rec>, param: &str, field: &str| -> Result<(), ApiError> {
            if let Some(v) = q_int(q, param)? {
                items.retain(|r| int(r, field) == Some(v));
            }
            Ok(())
        };
        let search = q
            .get("search")
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
        let search_in = |items: &mut Vec<&Rec>, fields: &[&str]| {
            if let Some(s) = &search {
                items.retain(|r| fields.iter().any(|f| contains_ci(r.get(*f), s)));
            }
        };
        let active_filter = |items: &mut Vec<&Rec>, field: &str| {
            let (mut active, mut inactive) = (
                q_bool(q, "includeactive").unwrap_or(true),
                q_bool(q, "includeinactive").unwrap_or(false),
            );
            if let Some(ai) = q.get("activeinactive") {
                let mut parts = ai.split(',').map(|p| p.trim().eq_ignore_ascii_case("true"));
                active = parts.next().unwrap_or(true);
                inactive = parts.next().unwrap_or(false);
            }
            items.retain(|r| if flag(r, field) { inactive } else { active });
        };
        match res {
            Res::Tickets => {
                let mut fields = vec![
                    "summary",
                    "details",
                    "user_name",
                    "user_email",
                    "client_name",
                ];
                if self.behaviour.ticket_search_matches_message_ids {
                    fields.extend(["email_message_id", "internet_message_id"]);
                }
                if let Some(s) = &search {
                    // `searchactions=true` ("Whether to search actions when using search")
                    // also matches the tickets' actions: their notes and subjects, and their
                    // Message-IDs where the search covers those.
                    let mut action_fields = vec!["note", "emailsubject"];
                    if self.behaviour.ticket_search_matches_message_ids {
                        action_fields.push("email_message_id");
                    }
                    let action_hit: std::collections::HashSet<i64> =
                        if q_bool(q, "searchactions") == Some(true) {
                            self.records[&Res::Actions]
                                .iter()
                                .filter(|a| action_fields.iter().any(|f| contains_ci(a.get(*f), s)))
                                .filter_map(|a| int(a, "ticket_id"))
                                .collect()
                        } else {
                            Default::default()
                        };
                    items.retain(|r| {
                        int(r, "id")
                            .is_some_and(|id| id.to_string() == *s || action_hit.contains(&id))
                            || fields.iter().any(|f| contains_ci(r.get(*f), s))
                    });
                }
                eq_int(items, "client_id", "client_id")?;
                eq_int(items, "site_id", "site_id")?;
                eq_int(items, "user_id", "user_id")?;
                eq_int(items, "agent_id", "agent_id")?;
                eq_int(items, "status_id", "status_id")?;
                eq_int(items, "tickettype_id", "tickettype_id")?;
                eq_int(items, "requesttype_id", "tickettype_id")?;
                if let Some(ids) = q.get("ticketids").filter(|s| !s.is_empty()) {
                    let wanted: Vec<i64> = ids
                        .split(',')
                        .filter_map(|s| s.trim().parse().ok())
                        .collect();
                    items.retain(|r| int(r, "id").is_some_and(|id| wanted.contains(&id)));
                }
                if q_bool(q, "open_only") == Some(true) {
                    items.retain(|r| !self.is_closed(int(r, "status_id")));
                }
                if q_bool(q, "closed_only") == Some(true) {
                    items.retain(|r| self.is_closed(int(r, "status_id")));
                }
                self.advanced_search(q, &self.behaviour.ticket_advanced_search_fields, items)?;
            }
            Res::Actions => {
                eq_int(items, "ticket_id", "ticket_id")?;
                if q_bool(q, "excludesys") == Some(true) {
                    items.retain(|r| int(r, "action_systemid").unwrap_or(0) == 0);
                }
                if q_bool(q, "excludeprivate") == Some(true) {
                    items.retain(|r| !flag(r, "hiddenfromuser"));
                }
                if q_bool(q, "conversationonly") == Some(true) {
                    items.retain(|r| {
                        string(r, "emailfrom").is_some() || string(r, "emailto").is_some()
                    });
                }
                if q_bool(q, "agentonly") == Some(true) {
                    items.retain(|r| int(r, "actionby_agent_id").is_some());
                }
            }
            Res::Users => {
                search_in(
                    items,
                    &[
                        "name",
                        "emailaddress",
                        "email2",
                        "email3",
                        "login",
                        "phonenumber",
                    ],
                );
                eq_int(items, "client_id", "client_id")?;
                eq_int(items, "site_id", "site_id")?;
                active_filter(items, "inactive");
                self.advanced_search(q, &self.behaviour.user_advanced_search_fields, items)?;
            }
            Res::Client => {
                search_in(items, &["name"]);
                active_filter(items, "inactive");
            }
            Res::Site => {
                search_in(items, &["name", "emaildomain"]);
                eq_int(items, "client_id", "client_id")?;
                eq_int(items, "site_id", "id")?;
                active_filter(items, "inactive");
            }
            Res::Agent => {
                search_in(items, &["name", "email"]);
                let api = q_bool(q, "includeapiagents")
                    .unwrap_or(self.behaviour.list_api_agents_by_default);
                if !api {
                    items.retain(|r| !flag(r, "isapiagent"));
                }
                if q_bool(q, "includedisabled") != Some(true) {
                    items.retain(|r| !flag(r, "isdisabled"));
                }
            }
            Res::Status if q_bool(q, "excludeclosed") == Some(true) => {
                items.retain(|r| !self.is_closed(int(r, "id")));
            }
            Res::Outcome => {
                if q_bool(q, "showhidden") != Some(true) {
                    items.retain(|r| !flag(r, "hidden"));
                }
                if q_bool(q, "excludesystemactions") == Some(true) {
                    items.retain(|r| int(r, "systemid").unwrap_or(0) == 0);
                }
            }
            Res::Priority => eq_int(items, "slaid", "slaid")?,
            Res::Attachment => {
                eq_int(items, "ticket_id", "ticket_id")?;
                eq_int(items, "action_id", "action_id")?;
            }
            Res::WebhookEvent | Res::Notification => {
                if let Some(w) = q.get("webhook_id").filter(|s| !s.is_empty()) {
                    items.retain(|r| {
                        r.get("webhook_id")
                            .and_then(Value::as_str)
                            .is_some_and(|x| x.eq_ignore_ascii_case(w))
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn advanced_search(
        &self,
        q: &Query,
        allowed: &[String],
        items: &mut Vec<&Rec>,
    ) -> Result<(), ApiError> {
        let Some(raw) = q.get("advanced_search").filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        let invalid = || business("Invalid advanced search parameter");
        let filters: Vec<Value> = serde_json::from_str(raw).map_err(|_| invalid())?;
        for f in filters {
            let name = f
                .get("filter_name")
                .and_then(Value::as_str)
                .ok_or_else(invalid)?
                .to_string();
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&name)) {
                return Err(invalid());
            }
            let value = match f.get("filter_value") {
                Some(Value::String(s)) => s.to_lowercase(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(invalid()),
            };
            // filter_type 2 = exact match [3P]; anything else is treated as "contains" [U].
            let exact = f.get("filter_type").and_then(Value::as_i64) == Some(2);
            items.retain(|r| {
                let field = match r.get(name.as_str()) {
                    Some(Value::String(s)) => s.to_lowercase(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => return false,
                };
                if exact {
                    field == value
                } else {
                    field.contains(&value)
                }
            });
        }
        Ok(())
    }

    /// `DELETE /api/<res>/<id>`.
    pub fn delete(
        &mut self,
        res: Res,
        id: &str,
        ticket_id: Option<i64>,
    ) -> Result<Vec<Event>, ApiError> {
        let pos = self
            .position(res, id, ticket_id)
            .ok_or(ApiError::NotFound)?;
        let rec = self.records.get_mut(&res).expect("table").remove(pos);
        let mut events = Vec::new();
        match res {
            Res::Tickets => {
                let tid = int(&rec, "id");
                self.records
                    .get_mut(&Res::Actions)
                    .expect("table")
                    .retain(|a| int(a, "ticket_id") != tid);
                let removed: Vec<i64> = self.records[&Res::Attachment]
                    .iter()
                    .filter(|a| int(a, "ticket_id") == tid)
                    .filter_map(|a| int(a, "id"))
                    .collect();
                self.records
                    .get_mut(&Res::Attachment)
                    .expect("table")
                    .retain(|a| int(a, "ticket_id") != tid);
                for id in removed {
                    self.attachment_bytes.remove(&id);
                }
                events.push(Event::TicketDeleted(rec));
            }
            Res::Attachment => {
                if let Some(id) = int(&rec, "id") {
                    self.attachment_bytes.remove(&id);
                }
                if let Some(t) = int(&rec, "ticket_id") {
                    self.refresh_attachment_counts(t);
                }
            }
            Res::Certificate => {
                if let Some(id) = int(&rec, "id") {
                    self.signers.remove(&id);
                }
            }
            Res::Application => {
                if let Some(cid) = string(&rec, "clientId") {
                    self.creds.retain(|c| c.client_id != cid);
                    self.tokens.retain(|_, t| t.client_id != cid);
                }
            }
            _ => {}
        }
        Ok(events)
    }
}

fn scope_names(rec: &Rec) -> Vec<String> {
    match rec.get("scopes") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|s| s.get("name").and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None | Some(Value::Null), Some(_)) => Ordering::Less,
        (Some(_), None | Some(Value::Null)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

fn mime_for(filename: &str) -> &'static str {
    let ext = filename.rsplit('.').next().unwrap_or_default();
    match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "htm" | "html" => "text/html",
        "csv" => "text/csv",
        "eml" => "message/rfc822",
        "zip" => "application/zip",
        "pfx" | "p12" => "application/x-pkcs12",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}
