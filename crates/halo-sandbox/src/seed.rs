//! The seeded PSA (see `notes/seed.md`) and the sandbox's configurable behaviour.
//!
//! Resource records in a seed are written in Halo's own JSON shape (the `Faults`, `Users`,
//! `Area`, … schemas) and go through the same model binding as API requests, so a JSON seed
//! file can describe any tenant the API could produce.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A rolling-window request limit per API client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests allowed inside one window.
    pub requests: u32,
    /// Length of the rolling window in seconds.
    pub window_secs: i64,
}

impl Default for RateLimit {
    /// Hosted Halo's observed limit: 300 requests per rolling 5 minutes.
    fn default() -> Self {
        Self {
            requests: 300,
            window_secs: 300,
        }
    }
}

/// An API application (`Configuration > Integrations > Halo API > Applications`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedApplication {
    /// Display name.
    pub name: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (never logged).
    pub client_secret: String,
    /// Permissions granted to the application (`all`, `read:tickets`, …).
    pub scopes: Vec<String>,
    /// The agent the application logs in as (login type Agent).
    pub agent_id: i64,
}

impl Default for SeedApplication {
    fn default() -> Self {
        Self {
            name: "Mailroom".into(),
            client_id: "mailroom-sandbox".into(),
            client_secret: "halo-sandbox-secret-5b1f0c2e9d7a".into(),
            scopes: vec!["all".into()],
            agent_id: 1,
        }
    }
}

impl std::fmt::Debug for SeedApplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedApplication")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("agent_id", &self.agent_id)
            .finish()
    }
}

/// A certificate registered in `Configuration > Advanced Settings > Certificates`, given as PEM.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedCertificate {
    /// Id of the `Certificate` record.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// The X.509 certificate, PEM.
    pub cert_pem: String,
    /// Its RSA private key, PKCS#8 or PKCS#1 PEM (never logged).
    pub key_pem: String,
}

impl std::fmt::Debug for SeedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedCertificate")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// RSA signature padding used when signing webhook bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignaturePadding {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Pkcs1v15Sha256,
    /// RSASSA-PSS with SHA-256 (salt length 32).
    PssSha256,
}

/// Text encoding of the signature header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    /// Standard base64 with padding.
    Base64,
    /// Lower-case hex.
    Hex,
}

/// How "Sign Request Body with a X.509 Certificate" signs deliveries.
///
/// Unconfirmed in the reference (§4.3, [U]): header name, padding and encoding are all
/// configurable. The signed content is always the exact request body bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SignatureConfig {
    /// Header carrying the signature.
    pub header: String,
    /// Padding scheme.
    pub padding: SignaturePadding,
    /// Encoding of the header value.
    pub encoding: SignatureEncoding,
    /// Optional header carrying the signing certificate's SHA-1 thumbprint (upper-case hex).
    pub thumbprint_header: Option<String>,
}

impl Default for SignatureConfig {
    fn default() -> Self {
        Self {
            header: "X-Halo-Signature".into(),
            padding: SignaturePadding::Pkcs1v15Sha256,
            encoding: SignatureEncoding::Base64,
            thumbprint_header: Some("X-Halo-Certificate-Thumbprint".into()),
        }
    }
}

/// Notification event numbers and names used for webhook deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookEvents {
    /// "New Ticket Logged" (3 per the reference).
    pub new_ticket: i64,
    /// "Ticket Status Changed" (76 per the reference).
    pub status_changed: i64,
    /// "Ticket Updated" (client or site changed): unconfirmed ([U]); the sandbox's default is
    /// 19 (the number RED gives "Ticket Updated by User").
    pub ticket_updated: i64,
    /// "Action Added": unconfirmed ([U]); the sandbox's default is 31.
    pub action_added: i64,
    /// "Ticket Deleted" (1072 per the reference).
    pub ticket_deleted: i64,
}

impl Default for WebhookEvents {
    fn default() -> Self {
        Self {
            new_ticket: 3,
            status_changed: 76,
            ticket_updated: 19,
            action_added: 31,
            ticket_deleted: 1072,
        }
    }
}

/// What HaloPSA answers to a POST of several records (reference §2: [U]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostAnswer {
    /// Every saved record, as a list (a single record as the object itself).
    #[default]
    EveryRecord,
    /// Only the first saved record, as an object.
    FirstRecord,
}

/// Behaviour switches, mostly for facts the reference marks unconfirmed ([U]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HaloBehaviour {
    /// Request limit per client id; `None` disables limiting.
    pub rate_limit: Option<RateLimit>,
    /// Whether a 429 carries `Retry-After` ([U]; default absent).
    pub retry_after_header: bool,
    /// Whether token requests count in the same rolling window and get the same 429 ([U];
    /// default yes, the less convenient variant).
    pub rate_limit_token_endpoint: bool,
    /// Access-token lifetime in seconds (3600).
    pub token_lifetime_secs: i64,
    /// Page size when `pageinate=true` comes without `page_size` (50).
    pub default_page_size: u32,
    /// Largest `page_size` honoured on Tickets (100).
    pub max_ticket_page_size: u32,
    /// Error text for a ticket that names a user but no `site_id` ([U]).
    pub ticket_user_without_site_error: String,
    /// Fields `advanced_search` accepts on `/Tickets` ([U]; includes the Message-ID fields so
    /// replies can be threaded by `email_message_id` / `internet_message_id`).
    pub ticket_advanced_search_fields: Vec<String>,
    /// Fields `advanced_search` accepts on `/Users` ([3P] `azureoid`).
    pub user_advanced_search_fields: Vec<String>,
    /// Whether `?search=` on `/Tickets` also matches the Message-ID fields ([U]; off).
    pub ticket_search_matches_message_ids: bool,
    /// Whether `GET /Agent` lists API-only agents without `includeapiagents=true` ([U]; no).
    pub list_api_agents_by_default: bool,
    /// Status ids that count as closed (instance-specific; 9 in the seed).
    pub closed_status_ids: Vec<i64>,
    /// Webhook signing (X.509, [U]).
    pub signature: SignatureConfig,
    /// What *Send secure URL parameter* appends to an iframe tab's URL ([U]; an HS256 JWT).
    pub tab_parameter: crate::agent_page::TabParameter,
    /// Event numbers.
    pub events: WebhookEvents,
    /// Delivery timeout in seconds.
    pub webhook_timeout_secs: u64,
    /// Emit date-times without the `Z` suffix, as .NET does for unspecified kinds (default
    /// false: RFC 3339 with `Z`, which is what the spec's `date-time` format requires).
    pub naive_datetimes: bool,
    /// The longest value a user's text field takes ([U]: HaloPSA's columns are not in its
    /// OpenAPI document; 255 is a common `nvarchar` width). `notes` is not limited.
    pub user_field_max_chars: usize,
    /// HaloPSA's answer to a value longer than its column ([U]: SQL Server's own message).
    pub value_too_long_error: String,
    /// What a POST of several records answers ([U]).
    pub post_answer: PostAnswer,
    /// Whether one record HaloPSA refuses in a POST of several refuses the whole request with
    /// nothing saved, as one database transaction would ([U]). Off (the default): the records
    /// before the refused one stay saved and the answer is the 400 alone — the variant a client
    /// must be most careful with (resending the batch would create those records twice).
    pub reject_whole_batch: bool,
}

impl Default for HaloBehaviour {
    fn default() -> Self {
        Self {
            rate_limit: Some(RateLimit::default()),
            retry_after_header: false,
            rate_limit_token_endpoint: true,
            token_lifetime_secs: 3600,
            default_page_size: 50,
            max_ticket_page_size: 100,
            ticket_user_without_site_error: "Please select a Site when a User is specified".into(),
            ticket_advanced_search_fields: vec![
                "email_message_id".into(),
                "internet_message_id".into(),
                "user_email".into(),
                "mailentryid".into(),
            ],
            user_advanced_search_fields: vec!["azureoid".into(), "emailaddress".into()],
            ticket_search_matches_message_ids: false,
            list_api_agents_by_default: false,
            closed_status_ids: vec![9],
            signature: SignatureConfig::default(),
            tab_parameter: Default::default(),
            events: WebhookEvents::default(),
            webhook_timeout_secs: 30,
            naive_datetimes: false,
            user_field_max_chars: 255,
            value_too_long_error: "String or binary data would be truncated.".into(),
            post_answer: PostAnswer::EveryRecord,
            reject_whole_batch: false,
        }
    }
}

/// Everything the sandbox PSA starts with. `Default` is the tenant described in `seed.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HaloSeed {
    /// Hosted tenant name (`/token?tenant=`).
    pub tenant: String,
    /// API applications that may obtain tokens.
    pub applications: Vec<SeedApplication>,
    /// `Uname` records.
    pub agents: Vec<Value>,
    /// `Area` records.
    pub clients: Vec<Value>,
    /// `Site` records.
    pub sites: Vec<Value>,
    /// `Users` records.
    pub users: Vec<Value>,
    /// `RequestType` records.
    pub ticket_types: Vec<Value>,
    /// `TStatus` records.
    pub statuses: Vec<Value>,
    /// `Policy` records (priorities).
    pub priorities: Vec<Value>,
    /// `TOutcome` records.
    pub outcomes: Vec<Value>,
    /// `Faults` records (need explicit ids).
    pub tickets: Vec<Value>,
    /// `Tabname` records.
    pub tabs: Vec<Value>,
    /// Certificates with private keys, for webhook signing.
    pub certificates: Vec<SeedCertificate>,
    /// The custom fields users have (`CustomField`: id, name, label, characterlimit): a
    /// single user's read lists each with its value; lists leave them out ([U]: which lists
    /// carry them). Set through `customfields: [{id | name, value}]` in `POST /Users`.
    pub user_custom_fields: Vec<Value>,
    /// Id given to the first ticket created through the API.
    pub first_ticket_id: i64,
    /// Defaults applied to new tickets that do not name them.
    pub default_tickettype_id: i64,
    /// Default status for new tickets ("New").
    pub default_status_id: i64,
    /// Default priority id (`Policy.priorityid`) for new tickets.
    pub default_priority_id: i64,
    /// Behaviour switches.
    pub behaviour: HaloBehaviour,
}

impl Default for HaloSeed {
    fn default() -> Self {
        Self {
            tenant: "sandbox".into(),
            applications: vec![SeedApplication::default()],
            agents: vec![
                json!({"id": 1, "name": "Mailroom API", "firstname": "Mailroom", "surname": "API",
                       "initials": "MA", "email": "", "isapiagent": true, "isdisabled": false,
                       "team": "API"}),
                json!({"id": 2, "name": "Megan Bowen", "firstname": "Megan", "surname": "Bowen",
                       "initials": "MB", "email": "megan@contoso.test", "isapiagent": false,
                       "isdisabled": false, "team": "Service Desk"}),
                json!({"id": 3, "name": "Alex Wilber", "firstname": "Alex", "surname": "Wilber",
                       "initials": "AW", "email": "alex@contoso.test", "isapiagent": false,
                       "isdisabled": false, "team": "Service Desk"}),
            ],
            clients: vec![
                json!({"id": 1, "name": "Fabrikam", "inactive": false, "main_site_id": 10,
                       "website": "https://fabrikam.test"}),
                json!({"id": 2, "name": "Northwind Traders", "inactive": false, "main_site_id": 11}),
                json!({"id": 3, "name": "Unassigned Email", "inactive": false, "main_site_id": 12}),
            ],
            sites: vec![
                json!({"id": 10, "name": "Fabrikam HQ", "client_id": 1,
                       "emaildomain": "fabrikam.test", "inactive": false}),
                json!({"id": 11, "name": "Northwind Main", "client_id": 2,
                       "emaildomain": "northwind.test", "inactive": false}),
                json!({"id": 12, "name": "Default Site", "client_id": 3, "inactive": false}),
            ],
            users: vec![
                json!({"id": 100, "name": "Pat Smith", "firstname": "Pat", "surname": "Smith",
                       "emailaddress": "pat@fabrikam.test", "site_id": 10, "inactive": false}),
                json!({"id": 101, "name": "Lee Chen", "firstname": "Lee", "surname": "Chen",
                       "emailaddress": "lee@fabrikam.test", "site_id": 10, "inactive": false}),
            ],
            ticket_types: vec![
                json!({"id": 1, "name": "Incident", "use": "fault", "agentscanselect": true,
                       "allowall_iframe_customtabs": false}),
                json!({"id": 3, "name": "Service Request", "use": "fault",
                       "agentscanselect": true, "allowall_iframe_customtabs": false}),
                json!({"id": 4, "name": "Problem", "use": "fault", "agentscanselect": true,
                       "allowall_iframe_customtabs": false}),
            ],
            statuses: vec![
                json!({"id": 1, "name": "New", "shortname": "New", "type": 1, "sequence": 1,
                       "colour": "#3a87ad"}),
                json!({"id": 2, "name": "In Progress", "shortname": "Prog", "type": 1,
                       "sequence": 2, "colour": "#f89406"}),
                json!({"id": 3, "name": "Waiting on User", "shortname": "Wait", "type": 1,
                       "sequence": 3, "colour": "#999999"}),
                json!({"id": 4, "name": "Updated", "shortname": "Upd", "type": 1,
                       "sequence": 4, "colour": "#5bc0de"}),
                json!({"id": 9, "name": "Closed", "shortname": "Closed", "type": 2,
                       "sequence": 9, "colour": "#468847"}),
            ],
            priorities: vec![
                json!({"id": "5b6f0c1e-0000-4000-8000-000000000001", "slaid": 1, "priorityid": 1,
                       "name": "Critical", "fixtime": 4.0, "fixunits": "h"}),
                json!({"id": "5b6f0c1e-0000-4000-8000-000000000002", "slaid": 1, "priorityid": 2,
                       "name": "High", "fixtime": 8.0, "fixunits": "h"}),
                json!({"id": "5b6f0c1e-0000-4000-8000-000000000003", "slaid": 1, "priorityid": 3,
                       "name": "Medium", "fixtime": 24.0, "fixunits": "h"}),
                json!({"id": "5b6f0c1e-0000-4000-8000-000000000004", "slaid": 1, "priorityid": 4,
                       "name": "Low", "fixtime": 72.0, "fixunits": "h"}),
            ],
            outcomes: vec![
                json!({"id": 1, "outcome": "Email User", "buttonname": "Email User",
                       "sequence": 1, "hidden": false, "systemid": 0, "hidefromuser": false,
                       "sendemail": 1}),
                json!({"id": 7, "outcome": "Private Note", "buttonname": "Private Note",
                       "labellong": "Add a private note", "sequence": 7, "hidden": false,
                       "systemid": 0, "hidefromuser": true, "sendemail": 0}),
                json!({"id": 8, "outcome": "Close Ticket", "buttonname": "Close",
                       "sequence": 8, "hidden": false, "systemid": 0, "hidefromuser": false,
                       "newstatus": 9, "sendemail": 0}),
                json!({"id": 10, "outcome": "Ticket Logged", "buttonname": "Ticket Logged",
                       "sequence": 10, "hidden": true, "systemid": 1, "hidefromuser": false,
                       "sendemail": 0}),
            ],
            tickets: Vec::new(),
            tabs: Vec::new(),
            certificates: Vec::new(),
            user_custom_fields: vec![
                json!({"id": 171, "name": "CFCostCentre", "label": "Cost centre", "type": 0, "characterlimit": 20, "usage": 2}),
                json!({"id": 172, "name": "CFLinkedIn", "label": "LinkedIn profile", "type": 0, "characterlimit": 200, "usage": 2}),
            ],
            first_ticket_id: 1000,
            default_tickettype_id: 1,
            default_status_id: 1,
            default_priority_id: 3,
            behaviour: HaloBehaviour::default(),
        }
    }
}
