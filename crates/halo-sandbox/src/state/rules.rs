//! The business rules a real instance applies on write, per resource: tickets,
//! actions, attachments, certificates, API applications and the simple lists; each refusal is
//! the instance's own error text.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{flag, html_to_text, int, string, AppCred, Caller, Event, Rec, State};
use crate::certs::SigningCert;
use crate::error::ApiError;
use crate::res::Res;

pub(super) fn business(msg: impl Into<String>) -> ApiError {
    ApiError::Business(msg.into())
}

impl State {
    pub(super) fn rules_ticket(
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
                if int(o, "client_id") != int(rec, "client_id")
                    || int(o, "site_id") != int(rec, "site_id")
                {
                    events.push(Event::TicketUpdated(int(o, "id").unwrap_or_default()));
                }
            }
        }
        Ok(())
    }

    pub(super) fn rules_action(
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

    pub(super) fn rules_attachment(
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

    pub(super) fn rules_certificate(&mut self, raw: &Rec, rec: &mut Rec) -> Result<(), ApiError> {
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

    pub(super) fn rules_application(
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

    pub(super) fn rules_simple(&mut self, res: Res, rec: &mut Rec) -> Result<(), ApiError> {
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
                let max = self.behaviour.user_field_max_chars;
                if let Some((field, _)) = rec.iter().find(|(k, v)| {
                    k.as_str() != "notes" && v.as_str().is_some_and(|t| t.chars().count() > max)
                }) {
                    return Err(business(format!(
                        "{} (the value of {field} is longer than {max} characters)",
                        self.behaviour.value_too_long_error
                    )));
                }
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
}

pub(super) fn scope_names(rec: &Rec) -> Vec<String> {
    match rec.get("scopes") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|s| s.get("name").and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn mime_for(filename: &str) -> &'static str {
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
