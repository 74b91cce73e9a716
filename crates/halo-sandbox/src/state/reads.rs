//! Reads: a record presented as the API returns it (list or detail fields), lists with
//! the documented filters, paging, ordering and advanced search.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::rules::business;
use super::{flag, int, string, Caller, Query, Rec, State};
use crate::error::ApiError;
use crate::res::{ListStyle, Res};
use crate::schema::has_prop;

pub(super) fn q_bool(q: &Query, key: &str) -> Option<bool> {
    q.get(key)
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

pub(super) fn q_int(q: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    match q.get(key) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::model(key, format!("The value '{v}' is not valid for {key}."))),
    }
}

pub(super) fn contains_ci(haystack: Option<&Value>, needle: &str) -> bool {
    match haystack {
        Some(Value::String(s)) => s.to_lowercase().contains(needle),
        Some(Value::Number(n)) => n.to_string() == needle,
        _ => false,
    }
}

impl State {
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
            Res::Users if detail => {
                let stored = rec.get("customfields").and_then(Value::as_array);
                let fields: Vec<Value> = self
                    .user_custom_fields
                    .iter()
                    .map(|def| {
                        let mut f = def.clone();
                        let value = stored
                            .into_iter()
                            .flatten()
                            .find(|v| v.get("id") == def.get("id"))
                            .and_then(|v| v.get("value").cloned())
                            .unwrap_or(Value::Null);
                        f["value"] = value.clone();
                        f["display"] = value;
                        f
                    })
                    .collect();
                out.insert("customfields".into(), Value::Array(fields));
            }
            Res::Users => {
                out.remove("customfields");
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

    pub(super) fn filter(
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

    pub(super) fn advanced_search(
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
}

pub(super) fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
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
