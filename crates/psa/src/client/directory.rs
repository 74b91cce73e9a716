//! The connection check and the PSA's directory and lists: the agent, users, clients,
//! sites, ticket types, statuses, priorities and outcomes.

use super::PsaClient;
use crate::error::PsaError;
use crate::model::*;
use serde_json::{Map, Value};

/// What "Test connection" found: who the API acts as and what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    /// The agent the API application logs in as (`GET /Agent/me`).
    pub agent: Agent,
    /// Ticket types visible to it.
    pub ticket_types: Vec<TicketType>,
    /// Scopes the token was granted (from the token reply; the requested ones if it said none).
    pub granted_scopes: Vec<String>,
    /// The token endpoint that was used.
    pub token_url: String,
}

impl PsaClient {
    /// "Test connection": obtains a token, reads `/Agent/me` and the ticket types.
    pub async fn probe(&self) -> Result<ProbeReport, PsaError> {
        self.token().await?;
        let agent = self.me().await?;
        let ticket_types = self.ticket_types().await?;
        let granted_scopes = self
            .inner
            .token
            .lock()
            .await
            .as_ref()
            .map(|t| t.scopes.clone())
            .unwrap_or_default();
        let token_url = self.token_url().await?;
        Ok(ProbeReport {
            agent,
            ticket_types,
            granted_scopes,
            token_url,
        })
    }

    /// A harmless read that proves a read permission: `GET /<resource>?count=1`.
    pub async fn can_read(&self, resource: &str) -> Result<(), PsaError> {
        self.get_value(resource, &[("count".into(), "1".into())])
            .await
            .map(|_| ())
    }

    /// The agents (`GET /Agent`, a bare array; API-only agents are left out, as HaloPSA does
    /// without `includeapiagents`).
    pub async fn agents(&self) -> Result<Vec<Agent>, PsaError> {
        self.get_list("Agent", "agents", &[]).await
    }

    /// The agent the API application acts as (`GET /Agent/me`).
    pub async fn me(&self) -> Result<Agent, PsaError> {
        self.get_one("Agent/me", &[]).await
    }

    /// Users whose `emailaddress` equals `email` (case-insensitive): searches HaloPSA, then
    /// compares exactly on this side, since HaloPSA's search is a fuzzy match over names,
    /// emails and logins.
    pub async fn find_users_by_email(
        &self,
        email: &str,
        client_id: Option<i64>,
    ) -> Result<Vec<User>, PsaError> {
        let wanted = email.trim().to_lowercase();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = vec![("search".to_string(), email.trim().to_string())];
        if let Some(client_id) = client_id {
            query.push(("client_id".into(), client_id.to_string()));
        }
        let users: Vec<User> = self.get_paged("Users", "users", &query).await?;
        Ok(users
            .into_iter()
            .filter(|u| {
                u.emailaddress
                    .as_deref()
                    .is_some_and(|e| e.trim().to_lowercase() == wanted)
            })
            .collect())
    }

    /// One user.
    pub async fn get_user(&self, id: i64) -> Result<User, PsaError> {
        self.get_one(&format!("Users/{id}"), &[]).await
    }

    /// Creates a user (name, site and email at least).
    pub async fn create_user(&self, user: &NewUser) -> Result<User, PsaError> {
        self.post_one("Users", user).await
    }

    /// Creates several users in one `POST /Users`. Returns the users HaloPSA answered — every
    /// one, or only the first (see [`PsaClient::post_many`]); match them to what was sent by
    /// their `emailaddress`.
    pub async fn create_users(&self, users: &[NewUser]) -> Result<Vec<User>, PsaError> {
        self.post_records("Users", users).await
    }

    /// Every user as HaloPSA lists it (all its fields, as JSON), across pages.
    pub async fn user_records(&self) -> Result<Vec<Map<String, Value>>, PsaError> {
        self.get_paged("Users", "users", &[]).await
    }

    /// The id of some user (`GET /Users?count=1`), to read the fields users have.
    pub async fn any_user_id(&self) -> Result<Option<i64>, PsaError> {
        let users: Vec<Map<String, Value>> = self
            .get_list("Users", "users", &[("count".to_string(), "1".to_string())])
            .await?;
        Ok(users
            .first()
            .and_then(|u| u.get("id"))
            .and_then(|v| v.as_f64())
            .map(|id| id as i64))
    }

    /// One user with every field (`GET /Users/{id}`), as JSON.
    pub async fn user_record(&self, id: i64) -> Result<Map<String, Value>, PsaError> {
        self.get_one(&format!("Users/{id}"), &[]).await
    }

    /// Creates or updates several users in one `POST /Users` (an element with `id` updates that
    /// user). Returns what HaloPSA answered: every saved user, or only one when it answers a
    /// list with a single object (reference §2: which it does is unconfirmed) — callers match
    /// the answer to what they sent and read back what is missing.
    pub async fn post_users(
        &self,
        users: &[Map<String, Value>],
    ) -> Result<Vec<Map<String, Value>>, PsaError> {
        let records = users.iter().cloned().map(Value::Object).collect();
        Ok(self
            .post_many("Users", records)
            .await?
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(map) => Some(map),
                _ => None,
            })
            .collect())
    }

    /// All clients (customers), across pages.
    pub async fn list_clients(&self) -> Result<Vec<Client>, PsaError> {
        self.get_paged("Client", "clients", &[]).await
    }

    /// All sites (optionally of one client), with `emaildomain`, across pages.
    pub async fn list_sites(&self, client_id: Option<i64>) -> Result<Vec<Site>, PsaError> {
        let query: Vec<(String, String)> = client_id
            .map(|id| vec![("client_id".to_string(), id.to_string())])
            .unwrap_or_default();
        self.get_paged("Site", "sites", &query).await
    }

    /// Ticket types (`GET /TicketType`).
    pub async fn ticket_types(&self) -> Result<Vec<TicketType>, PsaError> {
        self.get_list("TicketType", "tickettypes", &[]).await
    }

    /// Ticket statuses (`GET /Status`).
    pub async fn statuses(&self) -> Result<Vec<Status>, PsaError> {
        self.get_list("Status", "statuses", &[]).await
    }

    /// Priorities (`GET /Priority`).
    pub async fn priorities(&self) -> Result<Vec<Priority>, PsaError> {
        self.get_list("Priority", "priorities", &[]).await
    }

    /// Outcomes (`GET /Outcome`).
    pub async fn outcomes(&self) -> Result<Vec<Outcome>, PsaError> {
        self.get_list("Outcome", "outcomes", &[]).await
    }
}
