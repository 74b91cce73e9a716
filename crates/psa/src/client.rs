//! The HaloPSA client: transport, token handling, retries and typed operations.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mailroom_clock::SharedClock;
use mailroom_trace::{HttpExchange, RawExchange, Service};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::config::{MessageIdLookup, PsaConfig, RetryPolicy, Secret};
use crate::error::{looks_like_html, parse_error_body, ErrorKind, PsaError};
use crate::limiter::{RollingLimiter, Sleeper, TokioSleeper};
use crate::model::*;
use crate::paging::{split_list, Pager};
use crate::throttle::{Outcome as Reply, Throttle, ThrottleState};

/// Refresh a cached token this long before it expires.
const REFRESH_MARGIN_SECS: i64 = 60;
/// Lifetime assumed when the token reply has no `expires_in`.
const DEFAULT_TOKEN_SECS: u64 = 3600;

/// A HaloPSA API client for one instance. Cheap to clone (shared state); safe to use from many
/// tasks at once — they share one token and one rate limiter.
#[derive(Clone)]
pub struct PsaClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: PsaConfig,
    http: reqwest::Client,
    clock: SharedClock,
    limiter: RollingLimiter,
    throttle: Throttle,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    token_url: tokio::sync::Mutex<Option<String>>,
    generation: Mutex<u64>,
}

struct CachedToken {
    access: Secret,
    expires_at: DateTime<Utc>,
    scopes: Vec<String>,
    generation: u64,
}

impl fmt::Debug for PsaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PsaClient")
            .field("base_url", &self.inner.config.base_url)
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

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
    fn to_query(&self) -> Vec<(String, String)> {
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

/// A failure before any HTTP reply arrived.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct TransportFailure {
    message: String,
    connect: bool,
    timeout: bool,
    /// Not sent: the 429 back-off would outlast the caller's budget.
    throttled: bool,
}

impl TransportFailure {
    fn from_reqwest(err: &reqwest::Error) -> Self {
        let mut message = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(inner) = source {
            message.push_str(": ");
            message.push_str(&inner.to_string());
            source = inner.source();
        }
        TransportFailure {
            message,
            connect: err.is_connect(),
            timeout: err.is_timeout(),
            throttled: false,
        }
    }
}

/// A reply, whatever its status.
struct RawResponse {
    status: u16,
    content_type: Option<String>,
    retry_after: Option<String>,
    body: String,
}

impl RawResponse {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

fn header_pairs(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or("<binary>").to_string(),
            )
        })
        .collect()
}

/// The 5xx/transport back-off wait before retry `attempt`.
fn server_backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let mut backoff =
        mailroom_http::Backoff::new(policy.server_error_base, policy.server_error_cap);
    backoff.jitter = policy.jitter;
    backoff.delay(attempt, None)
}

impl PsaClient {
    /// A client for `config`, using `clock` for token expiry and the rate limiter.
    pub fn new(config: PsaConfig, clock: SharedClock) -> Result<Self, PsaError> {
        Self::with_sleeper(config, clock, Arc::new(TokioSleeper))
    }

    /// Like [`PsaClient::new`], with every wait (rate limit, back-off) going through `sleeper`.
    /// Tests pass a sleeper that advances a `ManualClock`.
    pub fn with_sleeper(
        config: PsaConfig,
        clock: SharedClock,
        sleeper: Arc<dyn Sleeper>,
    ) -> Result<Self, PsaError> {
        let parsed = url::Url::parse(config.instance()).map_err(|e| {
            PsaError::new(
                ErrorKind::Protocol,
                None,
                format!(
                    "\"{}\" is not a valid HaloPSA URL ({e}). Enter the instance address, e.g. https://yourcompany.halopsa.com",
                    config.base_url
                ),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(PsaError::new(
                ErrorKind::Protocol,
                None,
                format!("\"{}\" must start with https://", config.base_url),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                PsaError::new(
                    ErrorKind::Transport,
                    None,
                    format!("Could not set up HTTP: {e}"),
                )
            })?;
        let mut backoff =
            mailroom_http::Backoff::new(config.retry.rate_limit_base, config.retry.rate_limit_cap);
        backoff.jitter = config.retry.jitter;
        let throttle = Throttle::new(backoff, clock.clone(), sleeper.clone());
        let limiter = RollingLimiter::new(config.rate_limit, clock.clone(), sleeper);
        Ok(PsaClient {
            inner: Arc::new(Inner {
                config,
                http,
                clock,
                limiter,
                throttle,
                token: tokio::sync::Mutex::new(None),
                token_url: tokio::sync::Mutex::new(None),
                generation: Mutex::new(0),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &PsaConfig {
        &self.inner.config
    }

    /// The 429 back-off state (shared by all clones), for monitoring.
    pub fn throttle_state(&self) -> ThrottleState {
        self.inner.throttle.snapshot()
    }

    /// The client-side rate limiter (shared by all clones).
    pub fn limiter(&self) -> &RollingLimiter {
        &self.inner.limiter
    }

    fn instance(&self) -> &str {
        self.inner.config.instance()
    }

    fn api_url(&self, path: &str, query: &[(String, String)]) -> String {
        let mut url = format!("{}/api/{}", self.instance(), path.trim_start_matches('/'));
        if !query.is_empty() {
            let encoded = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .finish();
            url.push('?');
            url.push_str(&encoded);
        }
        url
    }

    /// One HTTP exchange: waits for the limiter, sends, records the (redacted) trace.
    async fn exchange(
        &self,
        method: &Method,
        url: &str,
        headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, TransportFailure> {
        let deadline = self.inner.clock.now()
            + chrono::Duration::from_std(self.inner.config.retry.rate_limit_max_wait)
                .unwrap_or(chrono::Duration::MAX);
        let admission = match self.inner.throttle.admit(deadline).await {
            Ok(admission) => admission,
            Err(over) => {
                return Err(TransportFailure {
                    message: format!(
                        "HaloPSA is rate-limiting this client; the next attempt may start at {}",
                        over.resume_at.to_rfc3339()
                    ),
                    connect: false,
                    timeout: false,
                    throttled: true,
                })
            }
        };
        let (permit, _) = self.inner.limiter.acquire().await;
        let started = self.inner.clock.now();
        let timer = Instant::now();
        let mut request = self.inner.http.request(method.clone(), url);
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let body_text = body
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned());
        if let Some(body) = body {
            request = request.body(body);
        }
        let result = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let response_headers = header_pairs(response.headers());
                let content_type = header_value(response.headers(), "content-type");
                let retry_after = header_value(response.headers(), "retry-after");
                match response.text().await {
                    Ok(text) => Ok((
                        RawResponse {
                            status,
                            content_type,
                            retry_after,
                            body: text,
                        },
                        response_headers,
                    )),
                    Err(e) => Err(TransportFailure::from_reqwest(&e)),
                }
            }
            Err(e) => Err(TransportFailure::from_reqwest(&e)),
        };
        self.inner.limiter.complete(permit);
        admission.finish(match &result {
            Ok((raw, _)) if raw.status == 429 => Reply::RateLimited {
                retry_after: raw
                    .retry_after
                    .as_deref()
                    .and_then(|v| mailroom_http::parse_retry_after(v, self.inner.clock.now())),
                message: parse_error_body(raw.content_type.as_deref(), &raw.body),
            },
            Ok(_) => Reply::Answered,
            Err(_) => Reply::NoAnswer,
        });
        let duration_ms = timer.elapsed().as_millis() as u64;
        let exchange = match &result {
            Ok((raw, response_headers)) => RawExchange {
                method: method.as_str(),
                url,
                request_headers: headers,
                request_body: body_text.as_deref(),
                status: Some(raw.status),
                response_headers: response_headers.clone(),
                response_body: Some(&raw.body),
                duration_ms,
                error: None,
            },
            Err(failure) => RawExchange {
                method: method.as_str(),
                url,
                request_headers: headers,
                request_body: body_text.as_deref(),
                duration_ms,
                error: Some(failure.message.clone()),
                ..Default::default()
            },
        };
        mailroom_trace::record(HttpExchange::new(Service::Psa, started, exchange));
        result.map(|(raw, _)| raw)
    }

    fn throttled_message(&self, what: &str) -> String {
        let said = self
            .inner
            .throttle
            .snapshot()
            .last_message
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        format!(
            "HaloPSA kept rate-limiting {what} (HTTP 429){said}. Mailroom backs off and retries; \
             other integrations may share the instance's limit."
        )
    }

    fn unreachable(&self, what: &str, failure: &TransportFailure) -> PsaError {
        let advice = if failure.timeout {
            "It did not answer in time; check the address and try again."
        } else {
            "Check the instance URL and that this computer can reach it (network, proxy, firewall)."
        };
        PsaError::new(
            ErrorKind::Transport,
            None,
            format!(
                "Could not reach HaloPSA at {what}: {}. {advice}",
                failure.message
            ),
        )
    }

    fn not_halo(&self, what: &str, detail: &str) -> PsaError {
        PsaError::protocol(format!(
            "{} does not look like a HaloPSA instance: {what} returned {detail}. Enter the \
             instance address as shown in HaloPSA (e.g. https://yourcompany.halopsa.com).",
            self.instance()
        ))
    }

    // ---------------------------------------------------------------- discovery and tokens

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

    fn parse_authinfo(&self, raw: &RawResponse) -> Result<AuthInfo, PsaError> {
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
    async fn token_url(&self) -> Result<String, PsaError> {
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
    async fn token(&self) -> Result<(Secret, u64), PsaError> {
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

    /// Drops the cached token if it is still the one that was refused.
    async fn invalidate_token(&self, generation: u64) {
        let mut cached = self.inner.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.generation == generation) {
            *cached = None;
        }
    }

    async fn request_token(&self) -> Result<CachedToken, PsaError> {
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
    fn token_error(
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

    // ---------------------------------------------------------------- the request loop

    fn may_retry(
        &self,
        method: &Method,
        status: Option<u16>,
        failure: Option<&TransportFailure>,
    ) -> bool {
        let policy = &self.inner.config.retry;
        let idempotent = method != Method::POST;
        if let Some(failure) = failure {
            return failure.connect
                || (failure.timeout && (idempotent || policy.retry_post_on_any_server_error));
        }
        match status {
            Some(502) | Some(503) => true,
            Some(500..=599) => idempotent || policy.retry_post_on_any_server_error,
            _ => false,
        }
    }

    /// Sends one API call with token handling, limiter, 429/5xx retries. Returns the JSON reply
    /// (`Value::Null` for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Value, PsaError> {
        let policy = self.inner.config.retry.clone();
        let max_attempts = policy.max_attempts.max(1);
        let url = self.api_url(path, query);
        let display_path = format!("/api/{}", path.trim_start_matches('/'));
        let body_bytes = body.map(|b| serde_json::to_vec(b).expect("JSON values serialize"));
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        let deadline = self.inner.clock.now()
            + chrono::Duration::from_std(policy.rate_limit_max_wait)
                .unwrap_or(chrono::Duration::MAX);
        loop {
            attempt += 1;
            let last_attempt = attempt >= max_attempts;
            let (token, generation) = match self.token().await {
                Ok(token) => token,
                Err(e) if e.kind == ErrorKind::RateLimited => {
                    // The token endpoint answered 429: the throttle holds the next request
                    // (Retry-After included); 429s are bounded by time, not attempts.
                    attempt -= 1;
                    if e.status.is_none() || self.inner.clock.now() >= deadline {
                        return Err(e);
                    }
                    continue;
                }
                Err(e) => {
                    if e.kind == ErrorKind::Server && !last_attempt {
                        self.inner
                            .limiter
                            .sleeper()
                            .sleep(server_backoff(&policy, attempt))
                            .await;
                        continue;
                    }
                    if e.kind == ErrorKind::Transport && !last_attempt {
                        self.inner
                            .limiter
                            .sleeper()
                            .sleep(server_backoff(&policy, attempt))
                            .await;
                        continue;
                    }
                    return Err(e);
                }
            };
            let mut headers = vec![
                ("Accept".to_string(), "application/json".to_string()),
                (
                    "Authorization".to_string(),
                    format!("Bearer {}", token.expose()),
                ),
            ];
            if body_bytes.is_some() {
                headers.push(("Content-Type".to_string(), "application/json".to_string()));
            }
            let raw = match self
                .exchange(&method, &url, headers, body_bytes.clone())
                .await
            {
                Ok(raw) => raw,
                Err(failure) if failure.throttled => {
                    return Err(PsaError::new(
                        ErrorKind::RateLimited,
                        None,
                        self.throttled_message(&format!("{method} {display_path}")),
                    ));
                }
                Err(failure) => {
                    if !last_attempt && self.may_retry(&method, None, Some(&failure)) {
                        let wait = server_backoff(&policy, attempt);
                        self.inner.limiter.sleeper().sleep(wait).await;
                        continue;
                    }
                    return Err(self.unreachable(self.instance(), &failure));
                }
            };
            if raw.is_success() {
                let trimmed = raw.body.trim();
                if trimmed.is_empty() {
                    return Ok(Value::Null);
                }
                if looks_like_html(trimmed) {
                    return Err(self.not_halo(
                        &format!("{method} {display_path}"),
                        "an HTML page instead of JSON",
                    ));
                }
                return serde_json::from_str(trimmed).map_err(|e| {
                    PsaError::new(
                        ErrorKind::Protocol,
                        Some(raw.status),
                        format!(
                            "HaloPSA's reply to {method} {display_path} is not valid JSON ({e})."
                        ),
                    )
                });
            }
            match raw.status {
                401 if !reauthenticated => {
                    tracing::debug!("HaloPSA returned 401; re-authenticating once");
                    self.invalidate_token(generation).await;
                    reauthenticated = true;
                    attempt -= 1; // re-authentication does not consume an attempt
                    continue;
                }
                429 if self.inner.clock.now() < deadline => {
                    // The throttle (shared by every caller) now backs off; the next exchange
                    // waits for the probe. A 429 is never a sign the request was processed,
                    // so a POST may be repeated. Bounded by time, not attempts.
                    tracing::debug!("HaloPSA returned 429; retrying after the back-off");
                    attempt -= 1;
                    continue;
                }
                status if !last_attempt && self.may_retry(&method, Some(status), None) => {
                    let wait = server_backoff(&policy, attempt);
                    self.inner.limiter.sleeper().sleep(wait).await;
                    continue;
                }
                status => {
                    if status == 401 {
                        return Err(PsaError::new(
                            ErrorKind::Unauthorized,
                            Some(401),
                            format!(
                                "HaloPSA refused a freshly issued access token for {method} {display_path}{}. \
                                 Check that the API application is active and its agent is enabled.",
                                parse_error_body(raw.content_type.as_deref(), &raw.body)
                                    .map(|m| format!(": {m}"))
                                    .unwrap_or_default()
                            ),
                        ));
                    }
                    return Err(PsaError::from_response(
                        method.as_str(),
                        &display_path,
                        status,
                        raw.content_type.as_deref(),
                        &raw.body,
                    ));
                }
            }
        }
    }

    async fn get_value(&self, path: &str, query: &[(String, String)]) -> Result<Value, PsaError> {
        self.call(Method::GET, path, query, None).await
    }

    fn decode<T: DeserializeOwned>(&self, what: &str, value: Value) -> Result<T, PsaError> {
        serde_json::from_value(value).map_err(|e| {
            PsaError::protocol(format!(
                "HaloPSA's reply to {what} has an unexpected shape: {e}"
            ))
        })
    }

    async fn get_one<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<T, PsaError> {
        let value = self.get_value(path, query).await?;
        self.decode(&format!("GET /api/{path}"), value)
    }

    /// `POST /api/{resource}` with a one-element array; accepts an object or an array back.
    pub async fn post_one<B: Serialize, T: DeserializeOwned>(
        &self,
        resource: &str,
        body: &B,
    ) -> Result<T, PsaError> {
        let item = serde_json::to_value(body).map_err(|e| {
            PsaError::protocol(format!("Could not encode the {resource} request: {e}"))
        })?;
        let reply = self
            .call(Method::POST, resource, &[], Some(&Value::Array(vec![item])))
            .await?;
        let object = match reply {
            Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
            Value::Object(_) => reply,
            _ => {
                return Err(PsaError::protocol(format!(
                    "HaloPSA accepted POST /api/{resource} but returned no object."
                )))
            }
        };
        self.decode(&format!("POST /api/{resource}"), object)
    }

    /// A lookup list (bare array, or an envelope under `plural`).
    async fn get_list<T: DeserializeOwned>(
        &self,
        path: &str,
        plural: &str,
        query: &[(String, String)],
    ) -> Result<Vec<T>, PsaError> {
        let value = self.get_value(path, query).await?;
        let page = split_list(value, plural)?;
        page.items
            .into_iter()
            .map(|item| self.decode(&format!("GET /api/{path}"), item))
            .collect()
    }

    /// A paged list: `pageinate=true&page_size=&page_no=` until `record_count` is reached.
    pub async fn get_paged<T: DeserializeOwned>(
        &self,
        path: &str,
        plural: &str,
        query: &[(String, String)],
    ) -> Result<Vec<T>, PsaError> {
        let mut pager = Pager::new(self.inner.config.page_size);
        let mut out = Vec::new();
        while let Some(paging) = pager.next_query() {
            let mut q: Vec<(String, String)> = query.to_vec();
            q.extend(paging);
            let page = split_list(self.get_value(path, &q).await?, plural)?;
            let more = pager.absorb(&page);
            for item in page.items {
                out.push(self.decode(&format!("GET /api/{path}"), item)?);
            }
            if !more {
                break;
            }
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- typed operations

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

    /// The agent the API application acts as (`GET /Agent/me`).
    pub async fn me(&self) -> Result<Agent, PsaError> {
        self.get_one("Agent/me", &[]).await
    }

    /// Creates a ticket.
    pub async fn create_ticket(&self, ticket: &NewTicket) -> Result<Ticket, PsaError> {
        self.post_one("Tickets", ticket).await
    }

    /// Updates a ticket (`id` plus the changed fields).
    pub async fn update_ticket(&self, update: &Update) -> Result<Ticket, PsaError> {
        self.post_one("Tickets", update).await
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

    /// Uploads a file (base64) to a ticket or action (`POST /Attachment`).
    pub async fn upload_attachment(
        &self,
        attachment: &NewAttachment,
    ) -> Result<Attachment, PsaError> {
        self.post_one("Attachment", attachment).await
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

    /// Configured outbound webhooks.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, PsaError> {
        self.get_list("Webhook", "webhooks", &[]).await
    }

    /// Creates an outbound webhook.
    pub async fn create_webhook(&self, webhook: &NewWebhook) -> Result<Webhook, PsaError> {
        self.post_one("Webhook", webhook).await
    }

    /// Deletes a webhook by its uuid.
    pub async fn delete_webhook(&self, id: &str) -> Result<(), PsaError> {
        let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        self.call(Method::DELETE, &format!("Webhook/{encoded}"), &[], None)
            .await
            .map(|_| ())
    }

    /// Webhook deliveries HaloPSA logged (optionally of one webhook), across pages.
    pub async fn webhook_events(
        &self,
        webhook_id: Option<&str>,
    ) -> Result<Vec<WebhookEvent>, PsaError> {
        let query: Vec<(String, String)> = webhook_id
            .map(|id| vec![("webhook_id".to_string(), id.to_string())])
            .unwrap_or_default();
        self.get_paged("WebhookEvent", "webhookevents", &query)
            .await
    }

    /// Custom tabs.
    pub async fn tabs(&self) -> Result<Vec<Tab>, PsaError> {
        self.get_list("Tabs", "tabs", &[]).await
    }

    /// Creates a custom tab.
    pub async fn create_tab(&self, tab: &NewTab) -> Result<Tab, PsaError> {
        self.post_one("Tabs", tab).await
    }

    /// Certificates registered in HaloPSA.
    pub async fn certificates(&self) -> Result<Vec<Certificate>, PsaError> {
        self.get_list("Certificate", "certificates", &[]).await
    }

    /// Registers a certificate (a PFX already uploaded as an attachment, plus its password).
    pub async fn create_certificate(
        &self,
        certificate: &NewCertificate,
    ) -> Result<Certificate, PsaError> {
        self.post_one("Certificate", certificate).await
    }

    /// Registers a PKCS#12 (PFX) certificate in two steps, as HaloPSA's `Certificate`
    /// resource implies ([U] in the reference): upload the file as an attachment, then
    /// `POST /Certificate` with its `attachment_id` and the PFX password.
    pub async fn register_certificate_pfx(
        &self,
        name: &str,
        filename: &str,
        pfx: &[u8],
        password: &Secret,
    ) -> Result<Certificate, PsaError> {
        let attachment = self
            .upload_attachment(&NewAttachment::from_bytes(
                filename,
                Some("application/x-pkcs12".to_string()),
                pfx,
            ))
            .await?;
        self.create_certificate(&NewCertificate {
            name: name.to_string(),
            attachment_id: attachment.id,
            new_password: password.clone(),
            extra: Default::default(),
        })
        .await
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

/// One header's value as text (a plain function, not a closure: a higher-ranked closure kept
/// across an `.await` would make the request future `!Send`).
fn header_value(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_normalize() {
        assert_eq!(normalize_message_id(" <ABC@x.test> "), "abc@x.test");
        assert_eq!(normalize_message_id("abc@x.test"), "abc@x.test");
        assert_eq!(canonical_message_id(" abc@x.test"), "<abc@x.test>");
        assert_eq!(canonical_message_id("<abc@x.test>"), "<abc@x.test>");
    }

    #[test]
    fn ticket_queries_encode_only_set_fields() {
        let q = TicketQuery {
            search: Some("a b".into()),
            client_id: Some(3),
            open_only: true,
            ..Default::default()
        };
        assert_eq!(
            q.to_query(),
            vec![
                ("search".to_string(), "a b".to_string()),
                ("client_id".to_string(), "3".to_string()),
                ("open_only".to_string(), "true".to_string())
            ]
        );
    }

    #[test]
    fn bad_urls_are_rejected_up_front() {
        let err = PsaClient::new(
            PsaConfig::new("not a url", "id", "s"),
            mailroom_clock::system(),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Protocol);
        assert!(err.message.contains("halopsa.com"));
    }
}
