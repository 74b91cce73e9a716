//! The HaloPSA client: transport, token handling, retries and typed operations.

mod auth;
mod directory;
mod integration;
mod tickets;
mod transport;

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use mailroom_clock::SharedClock;

use crate::config::{PsaConfig, Secret};
use crate::error::{ErrorKind, PsaError};
use crate::limiter::{RollingLimiter, Sleeper, TokioSleeper};
use crate::throttle::{Throttle, ThrottleState};

pub use directory::ProbeReport;
pub use tickets::{canonical_message_id, normalize_message_id, TicketQuery};

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
