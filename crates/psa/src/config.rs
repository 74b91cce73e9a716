//! Connection settings for one HaloPSA instance.

use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// A credential value that never appears in `Debug` output or serialized data, zeroed on drop
/// (a thin newtype over `secrecy::SecretString`; `Debug` prints `[REDACTED]`).
///
/// It deliberately implements neither `Display`, `Serialize` nor `Deserialize`; the only way to
/// read it is [`Secret::expose`], which the client calls at the moment it builds a request.
#[derive(Clone, Debug)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The secret value itself. Call only where the value must go on the wire.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

/// A rolling-window request limit: at most `requests` requests in any `window`.
///
/// Hosted HaloPSA answers "Rate Limit Reached - 300 Requests per rolling 5 minute window"
/// (HTTP 429); some plans are reported to allow 450. The default is the documented 300 / 5 min.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingWindow {
    /// Requests allowed within one window (at least 1).
    pub requests: u32,
    /// Length of the rolling window.
    pub window: Duration,
}

impl Default for RollingWindow {
    fn default() -> Self {
        RollingWindow {
            requests: 300,
            window: Duration::from_secs(300),
        }
    }
}

/// Retry behaviour for rate limiting (429), server errors (5xx) and transport failures.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts per call for 5xx and transport failures, including the first one (at
    /// least 1). Neither a re-authentication after a 401 nor a 429 consumes an attempt.
    pub max_attempts: u32,
    /// First back-off step after a 429 (doubled per refused probe; `Retry-After` is a floor).
    pub rate_limit_base: Duration,
    /// Longest back-off step (default: the 5-minute window).
    pub rate_limit_cap: Duration,
    /// Longest a call keeps waiting through 429 back-off before it fails with
    /// `ErrorKind::RateLimited` (kept under the engine's claim lease).
    pub rate_limit_max_wait: Duration,
    /// First back-off after a 5xx or a transport failure (doubled per attempt).
    pub server_error_base: Duration,
    /// Upper bound of the 5xx/transport back-off.
    pub server_error_cap: Duration,
    /// Random extra wait of up to one delay (backon's jitter), capped at the step's ceiling.
    pub jitter: bool,
    /// Whether a `POST` (create/update, not idempotent) is retried after a 500 or a timeout. A
    /// POST is always retried after 502/503 and connection failures, where the request most
    /// likely never reached HaloPSA. Default false: a duplicated ticket is worse than a retry
    /// by the caller, which can first look the ticket up by message id.
    pub retry_post_on_any_server_error: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            rate_limit_base: Duration::from_secs(1),
            rate_limit_cap: Duration::from_secs(300),
            rate_limit_max_wait: Duration::from_secs(120),
            server_error_base: Duration::from_secs(1),
            server_error_cap: Duration::from_secs(30),
            jitter: true,
            retry_post_on_any_server_error: false,
        }
    }
}

/// How [`crate::PsaClient::find_tickets_by_message_id`] asks HaloPSA for candidates.
///
/// HaloPSA has no documented "ticket by Message-ID" filter ([U] in the reference), so the lookup
/// strategy is configurable. Whatever the strategy, candidates are compared client-side against
/// `email_message_id` and `internet_message_id`, so a fuzzy server-side match never leaks through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageIdLookup {
    /// `GET /Tickets?advanced_search=[{"filter_name":<field>,"filter_type":2,"filter_value":<id>}]`
    /// (filter_type 2 = exact match), one request per field until one matches. If HaloPSA
    /// rejects the field ("Invalid advanced search parameter"), falls back to
    /// [`MessageIdLookup::Search`]. The default, with fields `email_message_id` and
    /// `internet_message_id`.
    AdvancedSearch {
        /// Field names to filter on, in order.
        fields: Vec<String>,
    },
    /// `GET /Tickets?search=<message id>` (works only where HaloPSA's search indexes the
    /// Message-ID fields).
    Search,
    /// Never look tickets up by message id (always returns no match).
    Disabled,
}

impl Default for MessageIdLookup {
    fn default() -> Self {
        MessageIdLookup::AdvancedSearch {
            fields: vec![
                "email_message_id".to_string(),
                "internet_message_id".to_string(),
            ],
        }
    }
}

/// Everything needed to talk to one HaloPSA instance.
#[derive(Debug, Clone)]
pub struct PsaConfig {
    /// The instance URL, e.g. `https://contoso.halopsa.com` (the API is at `{base_url}/api`).
    pub base_url: String,
    /// The authorisation server, e.g. `https://contoso.halopsa.com/auth`. `None`: discover it
    /// with `GET {base_url}/api/authinfo`, falling back to `{base_url}/auth`.
    pub auth_url: Option<String>,
    /// Hosted tenant name, sent as `?tenant=` on the token request. `None`: use the `tenant_id`
    /// that `/api/authinfo` reports, if any.
    pub tenant: Option<String>,
    /// Client ID of the "Client ID and Secret (Services)" API application.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: Secret,
    /// Space-separated scopes to request (default `all`).
    pub scopes: String,
    /// Client-side request limit; keep it at or below the instance's limit.
    pub rate_limit: RollingWindow,
    /// Retry behaviour.
    pub retry: RetryPolicy,
    /// Page size for paged lists (HaloPSA allows at most 100 for tickets).
    pub page_size: u32,
    /// Strategy for finding tickets by email Message-ID.
    pub message_id_lookup: MessageIdLookup,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

impl PsaConfig {
    /// A configuration with the documented defaults: discovered auth URL, scope `all`,
    /// 300 requests per rolling 5 minutes, pages of 100, message-id lookup by advanced search.
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        PsaConfig {
            base_url: base_url.into(),
            auth_url: None,
            tenant: None,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scopes: "all".to_string(),
            rate_limit: RollingWindow::default(),
            retry: RetryPolicy::default(),
            page_size: 100,
            message_id_lookup: MessageIdLookup::default(),
            request_timeout: Duration::from_secs(60),
        }
    }

    /// `base_url` without trailing slashes.
    pub(crate) fn instance(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let config = PsaConfig::new("https://x.halopsa.com/", "id", "hunter2-secret");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2-secret"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
        assert_eq!(config.instance(), "https://x.halopsa.com");
        assert_eq!(config.client_secret.expose(), "hunter2-secret");
    }
}
