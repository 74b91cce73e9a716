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

    /// `GET /users?$top={top}&$select=…`: the first `top` users of the directory (one page;
    /// app-only it needs `User.Read.All` or `User.ReadBasic.All`).
    pub async fn users(&self, top: usize, select: &[&str]) -> Result<Vec<User>, GraphError> {
        let mut url = self.versioned(&["users"]);
        url.query_pairs_mut()
            .append_pair("$top", &top.clamp(1, 999).to_string())
            .append_pair("$select", &select.join(","));
        self.paged(Call::new(http::Method::GET, url), Some(1)).await
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
