//! Graph resource shapes used by Mailroom (reference §3–§5). Unknown fields are kept in
//! `other` so nothing the engine may need later is lost.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{ name, address }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `{ emailAddress: {…} }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub email_address: EmailAddress,
}

impl Recipient {
    /// A recipient with just an address.
    pub fn address(address: impl Into<String>) -> Self {
        Recipient {
            email_address: EmailAddress {
                name: None,
                address: Some(address.into()),
            },
        }
    }
}

/// Message body. Responses use lowercase `html`/`text`; requests may use `HTML`/`Text`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    pub content_type: String,
    pub content: String,
}

/// One `internetMessageHeaders` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetMessageHeader {
    pub name: String,
    pub value: String,
}

/// A message (only the fields Mailroom uses are typed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub body_preview: Option<String>,
    #[serde(default)]
    pub body: Option<ItemBody>,
    #[serde(default)]
    pub from: Option<Recipient>,
    #[serde(default)]
    pub sender: Option<Recipient>,
    #[serde(default)]
    pub to_recipients: Vec<Recipient>,
    #[serde(default)]
    pub cc_recipients: Vec<Recipient>,
    #[serde(default)]
    pub reply_to: Vec<Recipient>,
    #[serde(default)]
    pub received_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub sent_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub has_attachments: Option<bool>,
    #[serde(default)]
    pub is_read: Option<bool>,
    #[serde(default)]
    pub is_draft: Option<bool>,
    #[serde(default)]
    pub internet_message_id: Option<String>,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    /// Only returned when asked for with `$select`.
    #[serde(default)]
    pub internet_message_headers: Option<Vec<InternetMessageHeader>>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Message {
    /// Case-insensitive header lookup (needs `internetMessageHeaders` selected).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.internet_message_headers
            .as_ref()?
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }
}

/// An attachment with its bytes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub id: String,
    /// `#microsoft.graph.fileAttachment`, `…itemAttachment`, `…referenceAttachment`.
    pub odata_type: String,
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub size: Option<i64>,
    pub is_inline: bool,
    pub content_id: Option<String>,
    /// Empty for non-file attachments.
    pub bytes: Vec<u8>,
}

/// A mail folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFolder {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A directory user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// An Outlook contact (reference §5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    #[serde(default)]
    pub email_addresses: Vec<EmailAddress>,
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub business_phones: Vec<String>,
    #[serde(default)]
    pub mobile_phone: Option<String>,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    /// All other fields (addresses, notes, …) for contact mappings.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// An Outlook contact folder. `parent_folder_id` of a top-level one is the default *Contacts*
/// folder's id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactFolder {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
}

/// One page of a contact folder's delta round.
#[derive(Debug, Clone)]
pub struct ContactDeltaPage {
    /// Contacts added or changed (the whole folder in an initial round).
    pub contacts: Vec<Contact>,
    /// Ids reported with `@removed` (deleted, or moved to another folder).
    pub removed_ids: Vec<String>,
    /// A nextLink (more pages now) or the round's final deltaLink (store it).
    pub next: DeltaCursor,
    pub round_complete: bool,
}

/// A change-notification subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub change_type: Option<String>,
    #[serde(default)]
    pub notification_url: Option<String>,
    #[serde(default)]
    pub lifecycle_notification_url: Option<String>,
    #[serde(default)]
    pub expiration_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub application_id: Option<String>,
    #[serde(default)]
    pub creator_id: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Query options for listing messages.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// `$top` (1–1000; Graph's default is 10).
    pub top: Option<u32>,
    /// `$select` fields.
    pub select: Vec<String>,
    /// `$filter` (remember the `$orderby` rule of reference §3.2).
    pub filter: Option<String>,
    /// `$orderby`.
    pub orderby: Option<String>,
    /// Stop after this many pages (None = all).
    pub max_pages: Option<usize>,
    /// Ask for text bodies (`Prefer: outlook.body-content-type="text"`).
    pub text_body: bool,
}

/// Where a delta round starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeltaCursor {
    /// No stored state: a full initial sync.
    Initial,
    /// A stored `@odata.nextLink` or `@odata.deltaLink`, followed verbatim.
    Link(String),
}

/// One delta page.
#[derive(Debug, Clone)]
pub struct DeltaPage {
    pub messages: Vec<Message>,
    /// Ids reported with `@removed`.
    pub removed_ids: Vec<String>,
    /// Where to continue: a nextLink (more pages now) or the final deltaLink (store it).
    pub next: DeltaCursor,
    /// True when `next` is the round's final deltaLink.
    pub round_complete: bool,
}

/// An upload session for a large attachment (`createUploadSession`): the pre-authenticated
/// URL the byte ranges are `PUT` to, and where the next range starts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadSession {
    pub upload_url: String,
    #[serde(default, alias = "ExpirationDateTime")]
    pub expiration_date_time: Option<DateTime<Utc>>,
    /// For Outlook attachments a single `"{start}"` (or `"0-"` at first).
    #[serde(default)]
    pub next_expected_ranges: Vec<String>,
}

/// A file to attach to an outgoing message: up to [`SIMPLE_ATTACHMENT_LIMIT`] in one request,
/// up to [`MAX_ATTACHMENT`] through an upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingAttachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// Set for inline images referenced as `cid:`.
    pub content_id: Option<String>,
}

/// The largest file attached in one `POST …/attachments` ("a file under 3 MB").
pub const SIMPLE_ATTACHMENT_LIMIT: usize = 3 * 1024 * 1024;

/// The largest file an upload session takes (150 MB).
pub const MAX_ATTACHMENT: usize = 150 * 1024 * 1024;

/// The bytes of one upload `PUT` (under the 4 MB Graph asks for; a multiple of 320 KiB).
pub const UPLOAD_CHUNK: usize = 10 * 320 * 1024;

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub subject: String,
    /// `HTML` or `Text` content type with content.
    pub body: ItemBody,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Vec<String>,
    pub attachments: Vec<OutgoingAttachment>,
    /// Custom headers; names must start with `x-`.
    pub headers: Vec<(String, String)>,
}

/// One request of a JSON batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    pub id: String,
    pub method: String,
    /// Relative to the version root, e.g. `/users/{id}/messages/{mid}`.
    pub url: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// One response of a JSON batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub id: String,
    pub status: u16,
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default)]
    pub body: Option<Value>,
}
