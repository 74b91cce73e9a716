//! The contract between the emulated identity platform and the emulated Graph.
//!
//! The identity platform (crate `mailroom-sandbox`) issues access tokens and implements
//! [`TokenValidator`]; Graph calls it for every request's `Authorization: Bearer` token and
//! decides 401/403 from the returned [`AccessGrant`]. The client treats tokens as opaque.

use chrono::{DateTime, Utc};

/// What one access token allows: who, for which app, with which permissions, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    /// Directory (tenant) id the token was issued in.
    pub tenant_id: String,
    /// Application (client) id the token was issued to (the `appid`/`azp` claim).
    pub client_id: String,
    /// Object id of the signed-in user for delegated tokens; `None` for app-only tokens.
    pub user_id: Option<String>,
    /// User principal name of the signed-in user (delegated tokens only).
    pub user_principal_name: Option<String>,
    /// Delegated permissions (`scp` claim), e.g. `Mail.ReadWrite`, without the resource prefix.
    pub scopes: Vec<String>,
    /// Application permissions (`roles` claim), e.g. `Mail.ReadWrite`.
    pub roles: Vec<String>,
    /// When the token stops being accepted.
    pub expires_at: DateTime<Utc>,
}

impl AccessGrant {
    /// True for app-only (client credentials) tokens.
    pub fn is_app_only(&self) -> bool {
        self.user_id.is_none()
    }
}

/// Why a presented token was not accepted (Graph answers 401 `InvalidAuthenticationToken`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not a token this identity platform issued (or garbled).
    Unknown,
    /// Issued, but past its lifetime.
    Expired,
    /// Issued for another audience (not Graph).
    WrongAudience,
    /// The grant behind it was revoked (consent withdrawn, user revoked, secret expired).
    Revoked,
}

/// Implemented by the identity platform; called by Graph for every request.
pub trait TokenValidator: Send + Sync + 'static {
    fn validate(&self, bearer_token: &str) -> Result<AccessGrant, TokenRejection>;
}

/// A fixed in-memory table of bearer token → [`AccessGrant`].
///
/// For tests and for embedding the Graph emulator without the identity platform: the real
/// identity platform (`mailroom-sandbox`) implements [`TokenValidator`] from the tokens it issued.
/// Expiry is decided by the caller (Graph compares [`AccessGrant::expires_at`] with its clock).
#[derive(Default)]
pub struct StaticTokens {
    table:
        std::sync::RwLock<std::collections::HashMap<String, Result<AccessGrant, TokenRejection>>>,
}

impl std::fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the tokens themselves.
        let n = self.table.read().map(|t| t.len()).unwrap_or(0);
        f.debug_struct("StaticTokens").field("tokens", &n).finish()
    }
}

impl StaticTokens {
    /// An empty table (every token is [`TokenRejection::Unknown`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `token` as granting `grant`.
    pub fn insert(&self, token: impl Into<String>, grant: AccessGrant) {
        self.table
            .write()
            .expect("token table lock")
            .insert(token.into(), Ok(grant));
    }

    /// Registers `token` as rejected for `reason` (e.g. revoked, wrong audience).
    pub fn reject(&self, token: impl Into<String>, reason: TokenRejection) {
        self.table
            .write()
            .expect("token table lock")
            .insert(token.into(), Err(reason));
    }

    /// Forgets `token` (it becomes unknown).
    pub fn remove(&self, token: &str) {
        self.table.write().expect("token table lock").remove(token);
    }
}

impl TokenValidator for StaticTokens {
    fn validate(&self, bearer_token: &str) -> Result<AccessGrant, TokenRejection> {
        self.table
            .read()
            .expect("token table lock")
            .get(bearer_token)
            .cloned()
            .unwrap_or(Err(TokenRejection::Unknown))
    }
}
