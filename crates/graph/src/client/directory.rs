//! The signed-in user and a user by UPN.

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
}
