//! Writes: POST (create or update, one record or a list), upsert by id, DELETE, and the
//! bookkeeping they trigger (attachment counts, closed statuses).

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::rules::business;
use super::{int, string, Caller, Event, Rec, State};
use crate::error::ApiError;
use crate::res::{IdKind, Res};
use crate::schema::coerce_object;

impl State {
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
        // One refused record refuses the whole request with nothing saved: what the loop below
        // changes is put back from this copy.
        let undo = (items.len() > 1 && self.behaviour.reject_whole_batch).then(|| {
            (
                self.records.clone(),
                self.next_ids.clone(),
                self.attachment_bytes.clone(),
            )
        });
        let mut out = Vec::new();
        let mut events = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let (saved, mut ev) = match self.upsert_at(res, item, caller, now, false, i) {
                Ok(done) => done,
                Err(e) => {
                    if let Some((records, next_ids, attachment_bytes)) = undo {
                        self.records = records;
                        self.next_ids = next_ids;
                        self.attachment_bytes = attachment_bytes;
                    }
                    return Err(e);
                }
            };
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

    /// A user's custom field values after a write: each posted `{id | name, value}` must name
    /// one of the users' custom fields and keep to its character limit ([U]: HaloPSA's exact
    /// message); values not posted are kept.
    fn merge_user_custom_fields(
        &self,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<Value, ApiError> {
        let mut values: Vec<Value> = old.and_then(Value::as_array).cloned().unwrap_or_default();
        for item in new.as_array().into_iter().flatten() {
            let def = self
                .user_custom_fields
                .iter()
                .find(|d| {
                    (item
                        .get("id")
                        .and_then(Value::as_i64)
                        .is_some_and(|id| id > 0)
                        && d.get("id") == item.get("id"))
                        || (item.get("name").and_then(Value::as_str).is_some()
                            && d.get("name") == item.get("name"))
                })
                .ok_or_else(|| {
                    business(format!(
                        "Custom field {} does not exist",
                        item.get("name")
                            .or(item.get("id"))
                            .cloned()
                            .unwrap_or(Value::Null)
                    ))
                })?;
            let value = item.get("value").cloned().unwrap_or(Value::Null);
            let limit = def
                .get("characterlimit")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if let Some(text) = value.as_str() {
                if limit > 0 && text.chars().count() as i64 > limit {
                    return Err(business(format!(
                        "{} cannot be longer than {limit} characters",
                        def.get("label")
                            .and_then(Value::as_str)
                            .unwrap_or("A custom field")
                    )));
                }
            }
            values.retain(|v| v.get("id") != def.get("id"));
            values.push(json!({"id": def["id"], "value": value}));
        }
        Ok(Value::Array(values))
    }

    pub(super) fn upsert(
        &mut self,
        res: Res,
        item: Value,
        caller: &Caller,
        now: DateTime<Utc>,
        seeding: bool,
    ) -> Result<(Rec, Vec<Event>), ApiError> {
        self.upsert_at(res, item, caller, now, seeding, 0)
    }

    pub(super) fn upsert_at(
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
            if res == Res::Users && k == "customfields" {
                let merged = self.merge_user_custom_fields(rec.get("customfields"), v)?;
                rec.insert(k.clone(), merged);
                continue;
            }
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

    pub(super) fn refresh_attachment_counts(&mut self, ticket_id: i64) {
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

    pub(super) fn is_closed(&self, status_id: Option<i64>) -> bool {
        status_id.is_some_and(|s| self.behaviour.closed_status_ids.contains(&s))
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
