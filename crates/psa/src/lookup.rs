//! Finding the ticket of a message the PSA itself sent.
//!
//! When HaloPSA emails an end user from a ticket, the action it records carries the mail's
//! Message-ID in `email_message_id` (OpenAPI `Actions.email_message_id`). A customer reply
//! names that id in `In-Reply-To` / `References`, so it can be threaded to the ticket even
//! without a subject tag. HaloPSA's OpenAPI document declares **no** `email_message_id`
//! filter on `GET /Actions` (its filters are `ticket_id`, dates, `conversationonly`, …), so
//! how to find the action is a configurable [`ActionLookup`]:
//! - [`ActionLookup::SearchActions`] (default): `GET /Tickets?search=<id>&searchactions=true`
//!   (both documented: "Whether to search actions when using search"), then the candidates'
//!   actions (`GET /Actions?ticket_id=`) are compared exactly. Whether HaloPSA's search covers
//!   `email_message_id` is not documented; where it does not, nothing is found and the mail
//!   is handled as before (a new ticket).
//! - [`ActionLookup::Disabled`]: never look.

use serde::{Deserialize, Serialize};

use crate::client::{canonical_message_id, normalize_message_id, PsaClient, TicketQuery};
use crate::error::PsaError;
use crate::model::Action;

/// How [`PsaClient::find_action_by_email_message_id`] looks for an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum ActionLookup {
    /// Ticket search over actions, then an exact comparison on the candidates' actions.
    SearchActions {
        /// Most candidate tickets whose actions are listed (one request each).
        max_tickets: usize,
    },
    /// Never look the PSA up.
    Disabled,
}

impl Default for ActionLookup {
    fn default() -> Self {
        ActionLookup::SearchActions { max_tickets: 5 }
    }
}

impl PsaClient {
    /// The action whose `email_message_id` is `message_id` (compared without `<>`,
    /// case-insensitively), found with `strategy`; `None` when there is none (or the
    /// strategy cannot find it). The lowest action id wins if several match.
    pub async fn find_action_by_email_message_id(
        &self,
        message_id: &str,
        strategy: &ActionLookup,
    ) -> Result<Option<Action>, PsaError> {
        let wanted = normalize_message_id(message_id);
        if wanted.is_empty() {
            return Ok(None);
        }
        match strategy {
            ActionLookup::Disabled => Ok(None),
            ActionLookup::SearchActions { max_tickets } => {
                let query = TicketQuery {
                    search: Some(canonical_message_id(message_id)),
                    extra: vec![("searchactions".into(), "true".into())],
                    ..Default::default()
                };
                let mut tickets = self.list_tickets(&query).await?;
                tickets.sort_by_key(|t| t.id);
                let mut found: Option<Action> = None;
                for ticket in tickets.into_iter().take((*max_tickets).max(1)) {
                    for action in self.list_actions(ticket.id).await? {
                        let hit = action
                            .email_message_id
                            .as_deref()
                            .is_some_and(|m| normalize_message_id(m) == wanted);
                        if hit && found.as_ref().is_none_or(|f| action.id < f.id) {
                            found = Some(action);
                        }
                    }
                    if found.is_some() {
                        break;
                    }
                }
                Ok(found)
            }
        }
    }
}
