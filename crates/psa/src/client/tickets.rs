//! Tickets, their actions and attachments; finding a ticket by an email's Message-ID.

use reqwest::Method;

use super::PsaClient;
use crate::config::MessageIdLookup;
use crate::error::{ErrorKind, PsaError};
use crate::model::*;

/// Filters for [`PsaClient::list_tickets`]. Unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketQuery {
    pub search: Option<String>,
    pub client_id: Option<i64>,
    pub site_id: Option<i64>,
    pub user_id: Option<i64>,
    pub status_id: Option<i64>,
    pub tickettype_id: Option<i64>,
    /// `open_only=true`.
    pub open_only: bool,
    /// Any other query parameters, sent as they are (e.g. `search_summary`, `advanced_search`).
    pub extra: Vec<(String, String)>,
}

impl TicketQuery {
    pub(super) fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        if let Some(s) = &self.search {
            q.push(("search".into(), s.clone()));
        }
        for (name, value) in [
            ("client_id", self.client_id),
            ("site_id", self.site_id),
            ("user_id", self.user_id),
            ("status_id", self.status_id),
            ("tickettype_id", self.tickettype_id),
        ] {
            if let Some(v) = value {
                q.push((name.into(), v.to_string()));
            }
        }
        if self.open_only {
            q.push(("open_only".into(), "true".into()));
        }
        q.extend(self.extra.iter().cloned());
        q
    }
}

impl PsaClient {
    /// Creates a ticket.
    pub async fn create_ticket(&self, ticket: &NewTicket) -> Result<Ticket, PsaError> {
        self.post_one("Tickets", ticket).await
    }

    /// Creates several tickets in one `POST /Tickets`. Returns the tickets HaloPSA answered —
    /// every one, or only the first (see [`PsaClient::post_many`]); match them to what was sent
    /// by their `email_message_id`.
    pub async fn create_tickets(&self, tickets: &[NewTicket]) -> Result<Vec<Ticket>, PsaError> {
        self.post_records("Tickets", tickets).await
    }

    /// Updates a ticket (`id` plus the changed fields).
    pub async fn update_ticket(&self, update: &Update) -> Result<Ticket, PsaError> {
        self.post_one("Tickets", update).await
    }

    /// Deletes a ticket (the integration's end-to-end test cleans up its test ticket).
    pub async fn delete_ticket(&self, id: i64) -> Result<(), PsaError> {
        self.call(Method::DELETE, &format!("Tickets/{id}"), &[], None)
            .await
            .map(|_| ())
    }

    /// One ticket, with details.
    pub async fn get_ticket(&self, id: i64) -> Result<Ticket, PsaError> {
        self.get_one(
            &format!("Tickets/{id}"),
            &[("includedetails".into(), "true".into())],
        )
        .await
    }

    /// Tickets matching `query`, across all pages.
    pub async fn list_tickets(&self, query: &TicketQuery) -> Result<Vec<Ticket>, PsaError> {
        self.get_paged("Tickets", "tickets", &query.to_query())
            .await
    }

    /// Tickets whose `email_message_id` or `internet_message_id` equals `message_id` (compared
    /// without surrounding `<>` and case-insensitively), using the configured lookup strategy.
    /// HaloPSA is asked for the canonical form `<local@domain>` ([`canonical_message_id`]), so
    /// tickets should be created with ids in that form. Each configured field costs one request
    /// when nothing matches.
    pub async fn find_tickets_by_message_id(
        &self,
        message_id: &str,
    ) -> Result<Vec<Ticket>, PsaError> {
        let wanted = normalize_message_id(message_id);
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let matches = |tickets: Vec<Ticket>| -> Vec<Ticket> {
            tickets
                .into_iter()
                .filter(|t| {
                    [&t.email_message_id, &t.internet_message_id]
                        .into_iter()
                        .flatten()
                        .any(|id| normalize_message_id(id) == wanted)
                })
                .collect()
        };
        let canonical = canonical_message_id(message_id);
        let search = TicketQuery {
            search: Some(canonical.clone()),
            ..Default::default()
        };
        match &self.inner.config.message_id_lookup {
            MessageIdLookup::Disabled => Ok(Vec::new()),
            MessageIdLookup::Search => Ok(matches(self.list_tickets(&search).await?)),
            MessageIdLookup::AdvancedSearch { fields } => {
                for field in fields {
                    let filter = serde_json::json!([{
                        "filter_name": field,
                        "filter_type": 2,
                        "filter_value": canonical,
                    }]);
                    let query = TicketQuery {
                        extra: vec![("advanced_search".into(), filter.to_string())],
                        ..Default::default()
                    };
                    match self.list_tickets(&query).await {
                        Ok(tickets) => {
                            let found = matches(tickets);
                            if !found.is_empty() {
                                return Ok(found);
                            }
                        }
                        Err(e)
                            if e.kind == ErrorKind::Validation
                                && e.message.to_ascii_lowercase().contains("advanced search") =>
                        {
                            tracing::debug!(
                                field,
                                "HaloPSA rejects advanced search on this field; using search"
                            );
                            return Ok(matches(self.list_tickets(&search).await?));
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(Vec::new())
            }
        }
    }

    /// Adds an action to a ticket. HaloPSA requires an outcome ("An Outcome must be entered
    /// for this Action" otherwise, surfaced as [`ErrorKind::Validation`]).
    pub async fn create_action(&self, action: &NewAction) -> Result<Action, PsaError> {
        self.post_one("Actions", action).await
    }

    /// Adds several actions (to any tickets) in one `POST /Actions`. Returns the actions
    /// HaloPSA answered — every one, or only the first (see [`PsaClient::post_many`]); match
    /// them to what was sent by their `email_message_id`.
    pub async fn create_actions(&self, actions: &[NewAction]) -> Result<Vec<Action>, PsaError> {
        self.post_records("Actions", actions).await
    }

    /// The actions of a ticket, with HTML note/email bodies and attachments.
    pub async fn list_actions(&self, ticket_id: i64) -> Result<Vec<Action>, PsaError> {
        let query: Vec<(String, String)> = vec![
            ("ticket_id".into(), ticket_id.to_string()),
            ("includehtmlnote".into(), "true".into()),
            ("includehtmlemail".into(), "true".into()),
            ("includeattachments".into(), "true".into()),
        ];
        self.get_list("Actions", "actions", &query).await
    }

    /// Uploads a file (base64) to a ticket or action (`POST /Attachment`).
    pub async fn upload_attachment(
        &self,
        attachment: &NewAttachment,
    ) -> Result<Attachment, PsaError> {
        self.post_one("Attachment", attachment).await
    }

    /// One attachment with its content (`GET /Attachment/{id}?includedetails=true`).
    pub async fn get_attachment(&self, id: i64) -> Result<(Attachment, Vec<u8>), PsaError> {
        use base64::Engine as _;
        let attachment: Attachment = self
            .get_one(
                &format!("Attachment/{id}"),
                &[("includedetails".into(), "true".into())],
            )
            .await?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(attachment.data_base64.as_deref().unwrap_or_default().trim())
            .map_err(|e| {
                PsaError::new(
                    ErrorKind::Protocol,
                    None,
                    format!("HaloPSA sent attachment {id} with content that is not base64: {e}"),
                )
            })?;
        Ok((attachment, bytes))
    }

    /// The attachments of a ticket (or of one of its actions).
    pub async fn list_attachments(
        &self,
        ticket_id: i64,
        action_id: Option<i64>,
    ) -> Result<Vec<Attachment>, PsaError> {
        let mut query = vec![("ticket_id".to_string(), ticket_id.to_string())];
        if let Some(action_id) = action_id {
            query.push(("action_id".into(), action_id.to_string()));
        }
        self.get_list("Attachment", "attachments", &query).await
    }
}

/// A Message-ID in its canonical header form, `<local@domain>` (as Graph's
/// `internetMessageId` has it). Store ids in this form so lookups match exactly.
pub fn canonical_message_id(id: &str) -> String {
    let bare = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    format!("<{bare}>")
}

/// A Message-ID without angle brackets or surrounding space, lower-cased (for comparison).
pub fn normalize_message_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_lowercase()
}
