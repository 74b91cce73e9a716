//! Typed HaloPSA objects: only the fields Mailroom uses.
//!
//! Read types are `#[serde(default)]` and ignore unknown fields (HaloPSA's `Faults` alone has
//! 835 properties); ids are read leniently (see [`crate::ids`]) and always written as integers.
//! Write types (`New*`) skip unset optional fields, and carry an `extra` map for fields the
//! product may add later without a new release of this crate.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::config::Secret;
use crate::ids;

fn is_false(b: &bool) -> bool {
    !*b
}

/// Reply of `GET /api/authinfo` (only `auth_url` and `tenant_id` are confirmed).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AuthInfo {
    /// The authorisation server (POST `{auth_url}/token`).
    pub auth_url: Option<String>,
    /// The hosted tenant, sent as `?tenant=`.
    pub tenant_id: Option<String>,
    /// Any other field the instance reports.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A ticket (`Faults`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Ticket {
    #[serde(deserialize_with = "ids::req")]
    pub id: i64,
    pub summary: Option<String>,
    pub details: Option<String>,
    pub details_html: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub tickettype_id: Option<i64>,
    #[serde(deserialize_with = "ids::opt")]
    pub status_id: Option<i64>,
    #[serde(deserialize_with = "ids::opt")]
    pub priority_id: Option<i64>,
    #[serde(deserialize_with = "ids::opt")]
    pub client_id: Option<i64>,
    pub client_name: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub site_id: Option<i64>,
    pub site_name: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub user_id: Option<i64>,
    pub user_name: Option<String>,
    pub user_email: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub agent_id: Option<i64>,
    pub emailtolist: Option<String>,
    pub emailcclist: Option<String>,
    pub email_message_id: Option<String>,
    pub internet_message_id: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub mailboxid: Option<i64>,
    pub hasbeenclosed: Option<bool>,
    /// Spelled with "rr" in JSON (the query parameter `dateoccured` has one "r").
    pub dateoccurred: Option<String>,
    pub datecreated: Option<String>,
    pub lastactiondate: Option<String>,
    pub attachments: Option<Vec<Attachment>>,
}

/// A file to embed in a ticket or action POST (`attachments[]`), or to upload on its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewAttachment {
    /// Ticket to attach to (written as both `ticket_id` and `faultid`, which HaloPSA accept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "faultid")]
    faultid: Option<i64>,
    /// Action to attach to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_id: Option<i64>,
    pub filename: String,
    /// File content, base64 (standard alphabet, padded).
    pub data_base64: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isimage: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Extra fields passed through as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NewAttachment {
    /// An attachment from raw bytes (base64-encoded here).
    pub fn from_bytes(
        filename: impl Into<String>,
        content_type: Option<String>,
        bytes: &[u8],
    ) -> Self {
        use base64::Engine as _;
        NewAttachment {
            filename: filename.into(),
            data_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            content_type,
            ..Default::default()
        }
    }

    /// Targets a ticket (and optionally one of its actions), for `POST /Attachment`.
    pub fn for_ticket(mut self, ticket_id: i64, action_id: Option<i64>) -> Self {
        self.ticket_id = Some(ticket_id);
        self.faultid = Some(ticket_id);
        self.action_id = action_id;
        self
    }
}

/// Fields for `POST /Tickets` (create).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewTicket {
    pub summary: String,
    pub details_html: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tickettype_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<i64>,
    /// HaloPSA requires a site whenever a user is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internet_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emailtolist: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emailcclist: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailboxid: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<NewAttachment>,
    /// Skip the ticket type's template (CIPP sends true).
    #[serde(skip_serializing_if = "is_false")]
    pub donotapplytemplateintheapi: bool,
    /// Extra fields passed through as they are (e.g. `dont_do_rules`, `source`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An action (`Actions`): a note, an email or a status change on a ticket.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Action {
    #[serde(deserialize_with = "ids::req")]
    pub id: i64,
    #[serde(deserialize_with = "ids::req")]
    pub ticket_id: i64,
    pub outcome: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub outcome_id: Option<i64>,
    pub note: Option<String>,
    pub note_html: Option<String>,
    pub hiddenfromuser: Option<bool>,
    pub emailfrom: Option<String>,
    pub emailto: Option<String>,
    pub emailcc: Option<String>,
    pub emailsubject: Option<String>,
    pub emailbody: Option<String>,
    pub emailbody_html: Option<String>,
    pub email_message_id: Option<String>,
    pub datetime: Option<String>,
    pub actiondatecreated: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub new_status: Option<i64>,
    pub attachments: Option<Vec<Attachment>>,
    /// Whether the action emails the end user (HaloPSA sends it, or an integration does).
    pub sendemail: Option<bool>,
}

/// Fields for `POST /Actions` (create). HaloPSA requires an outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewAction {
    pub ticket_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_id: Option<i64>,
    /// Outcome by name, as an alternative to `outcome_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note_html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emailfrom: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emailto: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emailcc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emailsubject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emailbody_html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_message_id: Option<String>,
    pub hiddenfromuser: bool,
    /// Whether HaloPSA should send the action as an email (Mailroom records inbound mail: false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sendemail: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_status: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<NewAttachment>,
    /// Extra fields passed through as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An end user (`Users`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct User {
    #[serde(deserialize_with = "ids::req")]
    pub id: i64,
    pub name: Option<String>,
    pub firstname: Option<String>,
    pub surname: Option<String>,
    pub emailaddress: Option<String>,
    pub email2: Option<String>,
    pub email3: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub site_id: Option<i64>,
    pub site_name: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub client_id: Option<i64>,
    pub client_name: Option<String>,
    pub inactive: Option<bool>,
}

/// Fields for `POST /Users` (create): HaloPSA needs at least a name and a site.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewUser {
    pub name: String,
    pub site_id: i64,
    pub emailaddress: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firstname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub surname: Option<String>,
    /// Extra fields passed through as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A customer (`Area`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Client {
    #[serde(deserialize_with = "ids::req")]
    pub id: i64,
    pub name: Option<String>,
    pub inactive: Option<bool>,
    #[serde(deserialize_with = "ids::opt")]
    pub main_site_id: Option<i64>,
    pub domain: Option<String>,
    pub website: Option<String>,
}

/// A customer site (`Site`); `emaildomain` drives domain matching.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Site {
    #[serde(deserialize_with = "ids::req")]
    pub id: i64,
    pub name: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub client_id: Option<i64>,
    pub client_name: Option<String>,
    pub emaildomain: Option<String>,
    pub inactive: Option<bool>,
}

/// An agent (`Uname`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Agent {
    #[serde(deserialize_with = "ids::req")]
    pub id: i64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub firstname: Option<String>,
    pub surname: Option<String>,
    pub isdisabled: Option<bool>,
    pub isapiagent: Option<bool>,
    pub team: Option<String>,
}

/// A ticket type (`RequestType`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TicketType {
    #[serde(deserialize_with = "ids::req")]
    pub id: i64,
    pub name: Option<String>,
    #[serde(rename = "use")]
    pub use_: Option<String>,
    pub agentscanselect: Option<bool>,
    #[serde(deserialize_with = "ids::opt")]
    pub workflow_id: Option<i64>,
    pub allowall_iframe_customtabs: Option<bool>,
    /// The iframe custom tabs allowed on this type (`IframeTabRequestType`).
    pub allowed_iframe_customtabs: Option<Vec<IframeTabRequestType>>,
}

/// An iframe custom tab allowed on a ticket type.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct IframeTabRequestType {
    #[serde(deserialize_with = "ids::opt")]
    pub tickettype_id: Option<i64>,
    #[serde(deserialize_with = "ids::opt")]
    pub iframetab_id: Option<i64>,
    pub iframetab_name: Option<String>,
}

/// A ticket status (`TStatus`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Status {
    #[serde(deserialize_with = "ids::req")]
    pub id: i64,
    pub name: Option<String>,
    pub shortname: Option<String>,
    #[serde(rename = "type", deserialize_with = "ids::opt")]
    pub type_: Option<i64>,
    #[serde(deserialize_with = "ids::opt")]
    pub sequence: Option<i64>,
    pub colour: Option<String>,
}

/// A priority. `GET /Priority` rows carry the priority number in `priorityid` (the spec's `id`
/// is a uuid of the SLA policy row); [`Priority::id`] is `priorityid`, else an integer `id`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Priority {
    pub id: i64,
    pub name: Option<String>,
    pub slaid: Option<i64>,
    pub colour: Option<String>,
    pub ishidden: Option<bool>,
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Raw {
            #[serde(deserialize_with = "ids::opt")]
            priorityid: Option<i64>,
            id: Value,
            name: Option<String>,
            #[serde(deserialize_with = "ids::opt")]
            slaid: Option<i64>,
            colour: Option<String>,
            ishidden: Option<bool>,
        }
        let raw = Raw::deserialize(d)?;
        let id = raw
            .priorityid
            .or_else(|| raw.id.as_i64())
            .or_else(|| {
                raw.id
                    .as_f64()
                    .filter(|f| f.fract() == 0.0)
                    .map(|f| f as i64)
            })
            .or_else(|| raw.id.as_str().and_then(|s| s.trim().parse().ok()))
            .unwrap_or(0);
        Ok(Priority {
            id,
            name: raw.name,
            slaid: raw.slaid,
            colour: raw.colour,
            ishidden: raw.ishidden,
        })
    }
}

/// An outcome (`TOutcome`): HaloPSA's action definition ("Email Received", "Private Note", …).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Outcome {
    #[serde(deserialize_with = "ids::req")]
    pub id: i64,
    /// The outcome's name.
    pub outcome: Option<String>,
    pub buttonname: Option<String>,
    pub labellong: Option<String>,
    pub hidden: Option<bool>,
    #[serde(deserialize_with = "ids::opt")]
    pub systemid: Option<i64>,
    #[serde(deserialize_with = "ids::opt")]
    pub newstatus: Option<i64>,
    pub hidefromuser: Option<bool>,
    #[serde(deserialize_with = "ids::opt")]
    pub sequence: Option<i64>,
}

/// An attachment (`Attachment`) as HaloPSA reports it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Attachment {
    #[serde(deserialize_with = "ids::req")]
    pub id: i64,
    pub filename: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub filesize: Option<i64>,
    pub content_type: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub ticket_id: Option<i64>,
    #[serde(deserialize_with = "ids::opt")]
    pub faultid: Option<i64>,
    #[serde(deserialize_with = "ids::opt")]
    pub action_id: Option<i64>,
    pub isimage: Option<bool>,
    pub note: Option<String>,
    pub desc: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub unique_id: Option<i64>,
    pub link: Option<String>,
    pub download_url: Option<String>,
    /// The file's content (base64), on `GET /Attachment/{id}` with details.
    pub data_base64: Option<String>,
}

/// An outbound webhook (`Webhook`). The enum values of `type`, `method`, `authentication_type`
/// and `payload_type` are unconfirmed (see the reference, §4.1).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Webhook {
    /// A uuid.
    pub id: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "type", deserialize_with = "ids::opt")]
    pub type_: Option<i64>,
    pub url: Option<String>,
    pub content_type: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub method: Option<i64>,
    pub active: Option<bool>,
    pub disabled: Option<bool>,
    #[serde(deserialize_with = "ids::opt")]
    pub authentication_type: Option<i64>,
    pub basic_username: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub certificate_id: Option<i64>,
    pub certificate_name: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub payload_type: Option<i64>,
    #[serde(deserialize_with = "ids::opt")]
    pub last_status: Option<i64>,
    /// Days HaloPSA keeps the webhook's delivery log.
    #[serde(deserialize_with = "ids::opt")]
    pub log_retention_policy_days: Option<i64>,
    /// Subscribed events (`UnameNotification`), kept raw.
    pub events: Option<Vec<Value>>,
}

fn expose_opt<S: Serializer>(secret: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_str(secret.expose()),
        None => s.serialize_none(),
    }
}

fn expose<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

/// Fields for `POST /Webhook` (create). Defaults follow the community n8n trigger: outbound
/// (`type` 0), POST (`method` 0), JSON, no authentication (`authentication_type` 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewWebhook {
    pub name: String,
    pub url: String,
    #[serde(rename = "type")]
    pub type_: i64,
    pub method: i64,
    pub active: bool,
    pub content_type: String,
    pub authentication_type: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose_opt")]
    pub basic_password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_type: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Value>,
    /// Extra fields passed through as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NewWebhook {
    /// An unauthenticated outbound JSON POST webhook.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        NewWebhook {
            name: name.into(),
            url: url.into(),
            type_: 0,
            method: 0,
            active: true,
            content_type: "application/json".to_string(),
            authentication_type: 0,
            basic_username: None,
            basic_password: None,
            certificate_id: None,
            payload_type: None,
            events: Vec::new(),
            extra: Map::new(),
        }
    }
}

/// One webhook delivery as HaloPSA logged it (`WebhookEvent`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct WebhookEvent {
    pub id: Option<String>,
    pub webhook_id: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub notification_id: Option<i64>,
    pub timestamp: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub status: Option<i64>,
    pub duration: Option<f64>,
    pub requestheaders: Option<String>,
    pub requestbody: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub responsestatus: Option<i64>,
    pub responseheaders: Option<String>,
    pub responsebody: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub entity_id: Option<i64>,
    pub error: Option<bool>,
}

/// A custom tab (`Tabname`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Tab {
    #[serde(deserialize_with = "ids::opt")]
    pub id: Option<i64>,
    pub guid: Option<String>,
    pub name: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub tableid: Option<i64>,
    #[serde(deserialize_with = "ids::opt")]
    pub columns: Option<i64>,
    #[serde(deserialize_with = "ids::opt")]
    pub sequence: Option<i64>,
    pub url: Option<String>,
    pub icon: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub linked_dashboard_id: Option<i64>,
}

/// Fields for `POST /Tabs` (create).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewTab {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tableid: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// Extra fields passed through as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A certificate registered in HaloPSA (`Certificate`), e.g. for signing webhook bodies.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Certificate {
    #[serde(deserialize_with = "ids::req")]
    pub id: i64,
    pub name: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub thumbprint: Option<String>,
    #[serde(deserialize_with = "ids::opt")]
    pub attachment_id: Option<i64>,
    pub attachment_name: Option<String>,
}

/// Fields for `POST /Certificate`: a PFX previously uploaded as an attachment plus its password.
/// The exact upload sequence is unconfirmed ([U] in the reference).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewCertificate {
    pub name: String,
    pub attachment_id: i64,
    #[serde(serialize_with = "expose")]
    pub new_password: Secret,
    /// Extra fields passed through as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Fields for updating an existing object: `id` plus whatever changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Update {
    pub id: i64,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tickets_read_leniently_and_write_integers() {
        let t: Ticket = serde_json::from_value(json!({
            "id": 42, "summary": "Printer", "site_id": 95.0, "client_id": "3",
            "unknown_field": {"deep": true}, "attachments": null
        }))
        .unwrap();
        assert_eq!((t.id, t.site_id, t.client_id), (42, Some(95), Some(3)));
        let body = serde_json::to_value(NewTicket {
            summary: "s".into(),
            details_html: "<p>d</p>".into(),
            site_id: Some(95),
            user_id: Some(7),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            body,
            json!({"summary":"s","details_html":"<p>d</p>","site_id":95,"user_id":7})
        );
        assert!(body["site_id"].is_i64());
    }

    #[test]
    fn priorities_take_priorityid() {
        let p: Priority =
            serde_json::from_value(json!({"id":"8b1e…","priorityid":2,"name":"High"})).unwrap();
        assert_eq!(p.id, 2);
        let p: Priority = serde_json::from_value(json!({"id":4,"name":"Low"})).unwrap();
        assert_eq!(p.id, 4);
    }

    #[test]
    fn attachments_target_ticket_with_both_names() {
        let a = NewAttachment::from_bytes("a.txt", None, b"hi").for_ticket(5, Some(9));
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            v,
            json!({"ticket_id":5,"faultid":5,"action_id":9,"filename":"a.txt","data_base64":"aGk="})
        );
    }

    #[test]
    fn secrets_are_sent_but_not_debug_printed() {
        let mut hook = NewWebhook::new("w", "https://x");
        hook.basic_password = Some(Secret::new("pw-123"));
        assert!(!format!("{hook:?}").contains("pw-123"));
        assert_eq!(
            serde_json::to_value(&hook).unwrap()["basic_password"],
            "pw-123"
        );
    }
}
