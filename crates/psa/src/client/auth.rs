//! Discovery and tokens: the authorisation server from `/api/authinfo` (falling back
//! to `{instance}/auth`), client-credentials tokens cached and renewed before expiry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::transport::{header_pairs, RawResponse, TransportFailure};
use super::{CachedToken, PsaClient};
use crate::config::Secret;
use crate::error::{looks_like_html, parse_error_body, ErrorKind, PsaError};
use crate::model::*;

/// Refresh a cached token this long before it expires.
pub(super) const REFRESH_MARGIN_SECS: i64 = 60;

/// Lifetime assumed when the token reply has no `expires_in`.
pub(super) const DEFAULT_TOKEN_SECS: u64 = 3600;

impl PsaClient {
    /// `GET /api/authinfo`: where the instance's authorisation server is.
    pub async fn authinfo(&self) -> Result<AuthInfo, PsaError> {
        let url = self.api_url("authinfo", &[]);
        let raw = self
            .exchange(
                &Method::GET,
                &url,
                vec![("Accept".into(), "application/json".into())],
                None,
            )
            .await
            .map_err(|f| self.unreachable(self.instance(), &f))?;
        if !raw.is_success() {
            return Err(PsaError::from_response(
                "GET",
                "/api/authinfo",
                raw.status,
                raw.content_type.as_deref(),
                &raw.body,
            ));
        }
        self.parse_authinfo(&raw)
    }

    pub(super) fn parse_authinfo(&self, raw: &RawResponse) -> Result<AuthInfo, PsaError> {
        if looks_like_html(&raw.body) {
            return Err(self.not_halo("GET /api/authinfo", "an HTML page instead of JSON"));
        }
        serde_json::from_str::<AuthInfo>(&raw.body).map_err(|_| {
            self.not_halo(
                "GET /api/authinfo",
                "something other than HaloPSA's auth information",
            )
        })
    }

    /// The token endpoint (with `?tenant=`), discovered once and cached.
    pub(super) async fn token_url(&self) -> Result<String, PsaError> {
        let mut cached = self.inner.token_url.lock().await;
        if let Some(url) = cached.as_ref() {
            return Ok(url.clone());
        }
        let config = &self.inner.config;
        let mut tenant = config.tenant.clone().filter(|t| !t.trim().is_empty());
        let auth_url = match &config.auth_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let url = self.api_url("authinfo", &[]);
                let raw = self
                    .exchange(
                        &Method::GET,
                        &url,
                        vec![("Accept".into(), "application/json".into())],
                        None,
                    )
                    .await
                    .map_err(|f| self.unreachable(self.instance(), &f))?;
                let fallback = format!("{}/auth", self.instance());
                if raw.is_success() {
                    let info = self.parse_authinfo(&raw)?;
                    if tenant.is_none() {
                        tenant = info.tenant_id.filter(|t| !t.trim().is_empty());
                    }
                    info.auth_url
                        .filter(|u| !u.trim().is_empty())
                        .map(|u| u.trim_end_matches('/').to_string())
                        .unwrap_or(fallback)
                } else {
                    tracing::debug!(
                        status = raw.status,
                        "HaloPSA /api/authinfo unavailable; using {fallback}"
                    );
                    fallback
                }
            }
        };
        let mut url = format!("{auth_url}/token");
        if let Some(tenant) = tenant {
            let encoded: String =
                url::form_urlencoded::byte_serialize(tenant.trim().as_bytes()).collect();
            url.push_str(if url.contains('?') { "&" } else { "?" });
            url.push_str("tenant=");
            url.push_str(&encoded);
        }
        *cached = Some(url.clone());
        Ok(url)
    }

    /// A valid access token, from the cache or freshly requested (60 s before expiry).
    pub(super) async fn token(&self) -> Result<(Secret, u64), PsaError> {
        let mut cached = self.inner.token.lock().await;
        let now = self.inner.clock.now();
        if let Some(token) = cached.as_ref() {
            if now + chrono::Duration::seconds(REFRESH_MARGIN_SECS) < token.expires_at {
                return Ok((token.access.clone(), token.generation));
            }
        }
        let fresh = self.request_token().await?;
        let result = (fresh.access.clone(), fresh.generation);
        *cached = Some(fresh);
        Ok(result)
    }

    /// Signs in (or reuses the cached token) and answers the scopes the token was granted (the
    /// requested ones when the reply names none).
    pub async fn granted_scopes(&self) -> Result<Vec<String>, PsaError> {
        self.token().await?;
        Ok(self
            .inner
            .token
            .lock()
            .await
            .as_ref()
            .map(|t| t.scopes.clone())
            .unwrap_or_default())
    }

    /// Drops the cached token if it is still the one that was refused.
    pub(super) async fn invalidate_token(&self, generation: u64) {
        let mut cached = self.inner.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.generation == generation) {
            *cached = None;
        }
    }

    pub(super) async fn request_token(&self) -> Result<CachedToken, PsaError> {
        use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
        let token_url = self.token_url().await?;
        let config = &self.inner.config;
        let client = oauth2::basic::BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(config.client_secret.expose().to_string()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(TokenUrl::new(token_url.clone()).map_err(|e| {
                PsaError::protocol(format!(
                    "The HaloPSA authorisation URL \"{token_url}\" is invalid: {e}"
                ))
            })?);
        let last: Arc<Mutex<Option<RawResponse>>> = Arc::new(Mutex::new(None));
        // The closure owns a clone of the client (an `Arc` inside), so the futures it returns
        // borrow nothing and stay `Send`.
        let this = self.clone();
        let reply = last.clone();
        let http = move |request: oauth2::HttpRequest| {
            let last = reply.clone();
            let this = this.clone();
            async move {
                let method = request.method().clone();
                let url = request.uri().to_string();
                let headers: Vec<(String, String)> = header_pairs(request.headers());
                let body = request.into_body();
                let raw = this.exchange(&method, &url, headers, Some(body)).await?;
                let mut response = http::Response::builder().status(raw.status);
                if let Some(ct) = &raw.content_type {
                    response = response.header(http::header::CONTENT_TYPE, ct.as_str());
                }
                let response =
                    response
                        .body(raw.body.clone().into_bytes())
                        .map_err(|e| TransportFailure {
                            message: e.to_string(),
                            connect: false,
                            timeout: false,
                            throttled: false,
                        })?;
                *last.lock().expect("token reply lock") = Some(raw);
                Ok::<_, TransportFailure>(response)
            }
        };
        let scopes: Vec<Scope> = config
            .scopes
            .split_whitespace()
            .map(|s| Scope::new(s.to_string()))
            .collect();
        let result = client
            .exchange_client_credentials()
            .add_scopes(scopes)
            .request_async(&http)
            .await;
        let raw = last.lock().expect("token reply lock").take();
        match result {
            Ok(token) => {
                let lifetime = token
                    .expires_in()
                    .unwrap_or(Duration::from_secs(DEFAULT_TOKEN_SECS));
                let granted = match token.scopes() {
                    Some(scopes) => scopes.iter().map(|s| s.to_string()).collect(),
                    None => config
                        .scopes
                        .split_whitespace()
                        .map(str::to_string)
                        .collect(),
                };
                let generation = {
                    let mut g = self.inner.generation.lock().expect("generation lock");
                    *g += 1;
                    *g
                };
                Ok(CachedToken {
                    access: Secret::new(token.access_token().secret().clone()),
                    expires_at: self.inner.clock.now()
                        + chrono::Duration::from_std(lifetime)
                            .unwrap_or(chrono::Duration::hours(1)),
                    scopes: granted,
                    generation,
                })
            }
            Err(oauth2::RequestTokenError::Request(failure)) if failure.throttled => {
                Err(PsaError::new(
                    ErrorKind::RateLimited,
                    None,
                    self.throttled_message("the token request"),
                ))
            }
            Err(oauth2::RequestTokenError::Request(failure)) => {
                Err(self.unreachable(&token_url, &failure))
            }
            Err(other) => Err(self.token_error(&token_url, raw, &other.to_string())),
        }
    }

    /// Turns a refused token request into an admin-readable error.
    pub(super) fn token_error(
        &self,
        token_url: &str,
        raw: Option<RawResponse>,
        oauth_message: &str,
    ) -> PsaError {
        let Some(raw) = raw else {
            return PsaError::protocol(format!(
                "The HaloPSA token request failed: {oauth_message}"
            ));
        };
        let status = Some(raw.status);
        if looks_like_html(&raw.body)
            || raw
                .content_type
                .as_deref()
                .is_some_and(|ct| ct.contains("html"))
        {
            return self.not_halo(&format!("the token endpoint {token_url}"), "an HTML page");
        }
        let json: Option<Value> = serde_json::from_str(&raw.body).ok();
        let code = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let said = parse_error_body(raw.content_type.as_deref(), &raw.body)
            .map(|m| format!(" HaloPSA said: {m}"))
            .unwrap_or_default();
        let kind_status = raw.status;
        match (code.as_str(), kind_status) {
            ("invalid_client", _) | (_, 401) => PsaError::new(
                ErrorKind::Unauthorized,
                status,
                format!(
                    "HaloPSA rejected the client ID or client secret.{said} Copy both again from \
                     Configuration > Integrations > HaloPSA API > Applications (the application \
                     must use \"Client ID and Secret (Services)\"); a regenerated secret replaces \
                     the old one."
                ),
            ),
            ("invalid_scope", _) => PsaError::new(
                ErrorKind::Forbidden,
                status,
                format!(
                    "HaloPSA refused the requested scopes \"{}\".{said} Allow them on the API \
                     application's Permissions tab, or request fewer.",
                    self.inner.config.scopes
                ),
            ),
            ("unauthorized_client", _) | ("unsupported_grant_type", _) => PsaError::new(
                ErrorKind::Forbidden,
                status,
                format!(
                    "This HaloPSA API application may not use client credentials.{said} Set its \
                     Authentication Method to \"Client ID and Secret (Services)\" and its Login \
                     Type to Agent."
                ),
            ),
            (_, 403) => PsaError::new(
                ErrorKind::Forbidden,
                status,
                format!("HaloPSA refused to issue a token (HTTP 403).{said}"),
            ),
            (_, 404) => self.not_halo(&format!("the token endpoint {token_url}"), "404 Not Found"),
            (_, 429) => PsaError::new(
                ErrorKind::RateLimited,
                status,
                format!("HaloPSA rate-limited the token request.{said}"),
            ),
            (_, 500..=599) => PsaError::new(
                ErrorKind::Server,
                status,
                format!(
                    "HaloPSA's authorisation server failed (HTTP {}).{said} Try again later.",
                    raw.status
                ),
            ),
            (_, 200..=299) => self.not_halo(
                &format!("the token endpoint {token_url}"),
                "something other than an access token",
            ),
            _ => PsaError::new(
                ErrorKind::Unauthorized,
                status,
                format!(
                    "HaloPSA refused the token request (HTTP {}).{said} ({oauth_message})",
                    raw.status
                ),
            ),
        }
    }
}
