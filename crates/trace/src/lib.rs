//! Records of HTTP exchanges ("requests" in the inbound log), with secrets redacted.
//!
//! The Graph and PSA clients call [`record`] after every HTTP exchange. The engine wraps the
//! processing of one email in [`with_sink`], so every exchange made on behalf of that email lands
//! in that attempt's request list; outside such a scope, `record` does nothing.
//!
//! Invariant: nothing leaves this module unredacted. [`HttpExchange::new`] and the `redact_*`
//! helpers strip credentials (client secrets, assertions, codes, verifiers, access/refresh/id
//! tokens, passwords, `Authorization` headers) before a record exists, and bodies are capped at
//! [`MAX_BODY_CHARS`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Bodies longer than this are cut (with a marker) before they are stored.
pub const MAX_BODY_CHARS: usize = 64 * 1024;

/// Placeholder written where a secret was.
pub const REDACTED: &str = "[redacted]";

/// Parameter, header and JSON key names whose values are credentials.
const SECRET_NAMES: &[&str] = &[
    "authorization",
    "client_secret",
    "client_assertion",
    "code",
    "code_verifier",
    "refresh_token",
    "access_token",
    "id_token",
    "password",
    "new_password",
    "clientstate",
    "validationtoken",
    "x-halo-signature",
    "cookie",
    "set-cookie",
    // An attachment upload session's pre-authenticated URL and its token.
    "authtoken",
    "uploadurl",
];

fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_NAMES.contains(&lower.as_str())
}

/// Which remote service an exchange went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Identity,
    Graph,
    Psa,
    Webhook,
}

/// One HTTP request and its response (or transport error), redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpExchange {
    pub service: Service,
    pub method: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<String>,
    /// `None` when the request failed before a response arrived.
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// Transport-level failure (timeout, connection refused), if any.
    pub error: Option<String>,
}

/// The raw parts of an exchange, before redaction. Only [`HttpExchange::new`] consumes it.
#[derive(Debug, Default)]
pub struct RawExchange<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<&'a str>,
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<&'a str>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

impl HttpExchange {
    /// Builds a redacted record from raw parts.
    pub fn new(service: Service, started_at: DateTime<Utc>, raw: RawExchange<'_>) -> Self {
        HttpExchange {
            service,
            method: raw.method.to_string(),
            url: redact_url(raw.url),
            request_headers: redact_headers(raw.request_headers),
            request_body: raw.request_body.map(redact_body),
            status: raw.status,
            response_headers: redact_headers(raw.response_headers),
            response_body: raw.response_body.map(redact_body),
            started_at,
            duration_ms: raw.duration_ms,
            error: raw.error,
        }
    }
}

/// Replaces the values of secret-named headers.
pub fn redact_headers(headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(name, value)| {
            if is_secret_name(&name) {
                (name, REDACTED.to_string())
            } else {
                (name, value)
            }
        })
        .collect()
}

/// Replaces secret query parameters of a URL (e.g. `code` on a redirect).
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return raw.to_string();
    };
    if url.query().is_none() {
        return raw.to_string();
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if is_secret_name(&k) {
                REDACTED.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

/// Redacts a body: JSON objects key by key (recursively), form bodies pair by pair, and caps
/// the length. Anything else is kept as it is (capped).
pub fn redact_body(body: &str) -> String {
    let redacted = if let Ok(mut json) = serde_json::from_str::<serde_json::Value>(body) {
        redact_json(&mut json);
        json.to_string()
    } else if looks_like_form(body) {
        redact_form(body)
    } else {
        body.to_string()
    };
    cap(redacted)
}

fn looks_like_form(body: &str) -> bool {
    !body.is_empty()
        && !body.contains(char::is_whitespace)
        && body.split('&').all(|pair| pair.contains('='))
}

fn redact_form(body: &str) -> String {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| {
            let v = if is_secret_name(&k) {
                REDACTED.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Redacts secret-named keys anywhere in a JSON value.
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_name(key) && !v.is_null() {
                    *v = serde_json::Value::String(REDACTED.to_string());
                } else {
                    redact_json(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

fn cap(mut text: String) -> String {
    if text.chars().count() > MAX_BODY_CHARS {
        let cut: String = text.chars().take(MAX_BODY_CHARS).collect();
        let dropped = text.chars().count() - MAX_BODY_CHARS;
        text = format!("{cut}… [{dropped} more characters not stored]");
    }
    text
}

/// Receives the exchanges made within a [`with_sink`] scope.
pub trait ExchangeSink: Send + Sync {
    fn record(&self, exchange: HttpExchange);
}

tokio::task_local! {
    static SINK: Arc<dyn ExchangeSink>;
    static TAP: Arc<dyn ExchangeSink>;
}

/// Runs `future` with `tap` receiving every exchange recorded inside it as well, whatever
/// scopes ([`with_sink`]) it opens within: a measurement over work that keeps its own logs
/// (benchmarks count the requests of a whole import this way).
pub async fn with_tap<F: std::future::Future>(tap: Arc<dyn ExchangeSink>, future: F) -> F::Output {
    TAP.scope(tap, future).await
}

/// Runs `future` with `sink` receiving every exchange recorded inside it.
pub async fn with_sink<F: std::future::Future>(
    sink: Arc<dyn ExchangeSink>,
    future: F,
) -> F::Output {
    SINK.scope(sink, future).await
}

/// Hands an exchange to the current scope's sink; a no-op outside any scope.
pub fn record(exchange: HttpExchange) {
    let _ = TAP.try_with(|tap| tap.record(exchange.clone()));
    let _ = SINK.try_with(|sink| sink.record(exchange));
}

/// Hands an exchange made on behalf of several scopes (one request for a batch of records) to
/// this scope's sink only: the tap saw it once, when it was made.
pub fn record_shared(exchange: HttpExchange) {
    let _ = SINK.try_with(|sink| sink.record(exchange));
}

/// A sink that keeps exchanges in memory (the engine drains it into the store per attempt).
#[derive(Default)]
pub struct Collector {
    exchanges: std::sync::Mutex<Vec<HttpExchange>>,
}

impl Collector {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Takes everything recorded so far.
    pub fn drain(&self) -> Vec<HttpExchange> {
        std::mem::take(&mut *self.exchanges.lock().expect("collector lock"))
    }
}

impl ExchangeSink for Collector {
    fn record(&self, exchange: HttpExchange) {
        self.exchanges
            .lock()
            .expect("collector lock")
            .push(exchange);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tap_sees_what_nested_sinks_record() {
        let exchange = HttpExchange::new(
            Service::Psa,
            chrono::Utc::now(),
            RawExchange {
                method: "GET",
                url: "https://halo.example/api/Users",
                ..Default::default()
            },
        );
        let (tap, inner) = (Collector::new(), Collector::new());
        with_tap(
            tap.clone(),
            with_sink(inner.clone(), async { record(exchange) }),
        )
        .await;
        assert_eq!(tap.drain().len(), 1);
        assert_eq!(inner.drain().len(), 1);
    }

    #[test]
    fn form_bodies_lose_their_credentials() {
        let body =
            "grant_type=refresh_token&client_id=abc&refresh_token=1.AXkA&client_secret=s3cr3t";
        let out = redact_body(body);
        assert!(out.contains("client_id=abc"));
        assert!(!out.contains("1.AXkA"));
        assert!(!out.contains("s3cr3t"));
    }

    #[test]
    fn json_bodies_lose_nested_tokens() {
        let body = r#"{"token_type":"Bearer","access_token":"eyJ0","nested":[{"password":"pw","name":"n"}]}"#;
        let out = redact_body(body);
        assert!(!out.contains("eyJ0"));
        assert!(!out.contains("\"pw\""));
        assert!(out.contains("\"name\":\"n\""));
    }

    #[test]
    fn urls_and_headers_are_redacted() {
        let url = redact_url("http://localhost:5000/?code=0.AbC&state=xyz");
        assert!(!url.contains("0.AbC"));
        assert!(url.contains("state=xyz"));
        let headers = redact_headers(vec![
            ("Authorization".into(), "Bearer eyJ0".into()),
            ("Accept".into(), "application/json".into()),
        ]);
        assert_eq!(headers[0].1, REDACTED);
        assert_eq!(headers[1].1, "application/json");
    }

    #[test]
    fn upload_session_urls_are_redacted() {
        let url = redact_url(
            "https://outlook.office.com/api/v2.0/Users('a')/Messages('b')/AttachmentSessions('c')?authtoken=eyJhbG",
        );
        assert!(!url.contains("eyJhbG"), "{url}");
        let body = redact_body(
            r#"{"uploadUrl":"https://outlook.office.com/x?authtoken=eyJhbG","nextExpectedRanges":["0-"]}"#,
        );
        assert!(!body.contains("eyJhbG"), "{body}");
        assert!(body.contains("nextExpectedRanges"), "{body}");
    }

    #[test]
    fn long_bodies_are_capped() {
        let long = "x".repeat(MAX_BODY_CHARS + 10);
        let out = redact_body(&long);
        assert!(out.ends_with("[10 more characters not stored]"));
    }

    #[tokio::test]
    async fn records_reach_only_the_scoped_sink() {
        let exchange = HttpExchange::new(
            Service::Graph,
            Utc::now(),
            RawExchange {
                method: "GET",
                url: "http://127.0.0.1/v1.0/me",
                status: Some(200),
                ..Default::default()
            },
        );
        record(exchange.clone()); // outside any scope: dropped, no panic
        let collector = Collector::new();
        with_sink(collector.clone(), async { record(exchange.clone()) }).await;
        assert_eq!(collector.drain(), vec![exchange]);
    }
}
