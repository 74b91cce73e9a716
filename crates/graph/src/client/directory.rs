//! The signed-in user, a user by UPN, and the mailbox's Outlook contacts.

use super::error::GraphError;
use super::transport::Call;
use super::GraphClient;
use crate::models::*;

impl GraphClient {
    /// `GET /me`: the signed-in user (delegated).
    pub async fn me(&self) -> Result<User, GraphError> {
        self.json(Call::new(http::Method::GET, self.versioned(&["me"])))
            .await
    }

    /// `GET /users/{upn}`.
    pub async fn user(&self, upn: &str) -> Result<User, GraphError> {
        self.json(Call::new(
            http::Method::GET,
            self.versioned(&["users", upn]),
        ))
        .await
    }

    /// All contacts of the default contacts folder (paged).
    pub async fn contacts(&self) -> Result<Vec<Contact>, GraphError> {
        let mut url = self.mailbox_url(&["contacts"]);
        url.query_pairs_mut().append_pair("$top", "100");
        self.paged(Call::new(http::Method::GET, url), None).await
    }
}
