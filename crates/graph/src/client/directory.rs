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

    /// `GET /users/{upn}?$select=…` (properties outside the default set, such as
    /// `proxyAddresses`, come only when selected).
    pub async fn user_selecting(&self, upn: &str, select: &[&str]) -> Result<User, GraphError> {
        let mut url = self.versioned(&["users", upn]);
        url.query_pairs_mut()
            .append_pair("$select", &select.join(","));
        self.json(Call::new(http::Method::GET, url)).await
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
