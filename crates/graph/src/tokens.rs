//! Access-token sources for the Graph client.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::Duration;

use crate::cloud::AppRegistration;
use crate::identity::{IdentityClient, IdentityError, TokenSet};
use crate::secret::Secret;

/// Future returned by [`TokenProvider::access_token`].
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Secret, IdentityError>> + Send + 'a>>;

/// A source of Graph access tokens.
pub trait TokenProvider: Send + Sync {
    /// A currently valid access token (refreshing or re-acquiring as needed).
    fn access_token(&self) -> TokenFuture<'_>;

    /// Graph rejected `token` with 401: the next [`TokenProvider::access_token`] must fetch a
    /// new one. (Ignored if the provider already moved on to a different token.)
    fn invalidate(&self, token: &Secret);
}

/// Tokens are refreshed this long before they expire.
pub const REFRESH_MARGIN_MINUTES: i64 = 5;

/// Called with the new token set whenever the refresh token rotates; persist it (the secret
/// store). The new access token is handed out only once the returned future has finished.
pub type RotationCallback = Arc<
    dyn Fn(TokenSet) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// Delegated tokens: holds the refresh token, refreshes 5 minutes before expiry, and reports
/// every rotation to the persistence callback before handing out the new access token.
pub struct DelegatedTokens {
    identity: IdentityClient,
    app: AppRegistration,
    state: tokio::sync::Mutex<TokenSet>,
    rejected: Mutex<Option<Secret>>,
    on_rotate: RotationCallback,
}

impl DelegatedTokens {
    /// Starts from a token set (e.g. fresh from the sign-in).
    pub fn new(
        identity: IdentityClient,
        app: AppRegistration,
        tokens: TokenSet,
        on_rotate: RotationCallback,
    ) -> Self {
        DelegatedTokens {
            identity,
            app,
            state: tokio::sync::Mutex::new(tokens),
            rejected: Mutex::new(None),
            on_rotate,
        }
    }

    /// Starts from a stored refresh token only (app restart); the first call refreshes.
    pub fn from_refresh_token(
        identity: IdentityClient,
        app: AppRegistration,
        refresh_token: Secret,
        on_rotate: RotationCallback,
    ) -> Self {
        let expired = TokenSet {
            access_token: Secret::new(""),
            refresh_token: Some(refresh_token),
            expires_at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
            scopes: Vec::new(),
            account: None,
        };
        Self::new(identity, app, expired, on_rotate)
    }

    /// A copy of the current token set.
    pub async fn current(&self) -> TokenSet {
        self.state.lock().await.clone()
    }

    async fn get(&self) -> Result<Secret, IdentityError> {
        let mut state = self.state.lock().await;
        let rejected = self
            .rejected
            .lock()
            .expect("rejected lock")
            .take()
            .is_some_and(|r| r == state.access_token);
        let now = self.identity.clock().now();
        let due = now + Duration::minutes(REFRESH_MARGIN_MINUTES) >= state.expires_at;
        if !(rejected || due || state.access_token.expose().is_empty()) {
            return Ok(state.access_token.clone());
        }
        let refresh_token = state.refresh_token.clone().ok_or_else(|| {
            IdentityError::Configuration(
                "no refresh token is stored (offline_access missing?); sign in again".into(),
            )
        })?;
        let mut fresh = self.identity.refresh(&self.app, &refresh_token).await?;
        if fresh.account.is_none() {
            fresh.account = state.account.clone();
        }
        (self.on_rotate)(fresh.clone()).await;
        *state = fresh;
        Ok(state.access_token.clone())
    }
}

impl TokenProvider for DelegatedTokens {
    fn access_token(&self) -> TokenFuture<'_> {
        Box::pin(self.get())
    }

    fn invalidate(&self, token: &Secret) {
        *self.rejected.lock().expect("rejected lock") = Some(token.clone());
    }
}

/// App-only tokens (client credentials), cached until 5 minutes before expiry.
pub struct AppOnlyTokens {
    identity: IdentityClient,
    app: AppRegistration,
    cache: tokio::sync::Mutex<Option<TokenSet>>,
    rejected: Mutex<Option<Secret>>,
}

impl AppOnlyTokens {
    /// A provider for a confidential app registration.
    pub fn new(identity: IdentityClient, app: AppRegistration) -> Self {
        AppOnlyTokens {
            identity,
            app,
            cache: tokio::sync::Mutex::new(None),
            rejected: Mutex::new(None),
        }
    }

    /// The cached token set, if any (for permission checks).
    pub async fn current(&self) -> Option<TokenSet> {
        self.cache.lock().await.clone()
    }

    async fn get(&self) -> Result<Secret, IdentityError> {
        let mut cache = self.cache.lock().await;
        let rejected = self.rejected.lock().expect("rejected lock").take();
        let now = self.identity.clock().now();
        if let Some(set) = cache.as_ref() {
            let stale = rejected.is_some_and(|r| r == set.access_token);
            if !stale && now + Duration::minutes(REFRESH_MARGIN_MINUTES) < set.expires_at {
                return Ok(set.access_token.clone());
            }
        }
        let fresh = self.identity.client_credentials(&self.app).await?;
        let token = fresh.access_token.clone();
        *cache = Some(fresh);
        Ok(token)
    }
}

impl TokenProvider for AppOnlyTokens {
    fn access_token(&self) -> TokenFuture<'_> {
        Box::pin(self.get())
    }

    fn invalidate(&self, token: &Secret) {
        *self.rejected.lock().expect("rejected lock") = Some(token.clone());
    }
}

/// A fixed token (tests, tools). Never refreshes.
pub struct StaticToken(pub Secret);

impl TokenProvider for StaticToken {
    fn access_token(&self) -> TokenFuture<'_> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }

    fn invalidate(&self, _token: &Secret) {}
}
