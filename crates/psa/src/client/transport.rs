//! The request loop: one HTTP exchange recorded for the attempt's log, the
//! rolling-window limiter, retries of throttling and transient failures, token renewal on a
//! 401, and errors that say what to do.

use std::time::{Duration, Instant};

use mailroom_trace::{HttpExchange, RawExchange, Service};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::PsaClient;
use crate::config::RetryPolicy;
use crate::error::{looks_like_html, parse_error_body, ErrorKind, PsaError};
use crate::paging::{split_list, Pager};
use crate::throttle::Outcome as Reply;

/// A failure before any HTTP reply arrived.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(super) struct TransportFailure {
    pub(super) message: String,
    pub(super) connect: bool,
    pub(super) timeout: bool,
    /// Not sent: the 429 back-off would outlast the caller's budget.
    pub(super) throttled: bool,
}

impl TransportFailure {
    pub(super) fn from_reqwest(err: &reqwest::Error) -> Self {
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
pub(super) struct RawResponse {
    pub(super) status: u16,
    pub(super) content_type: Option<String>,
    pub(super) retry_after: Option<String>,
    pub(super) body: String,
}

impl RawResponse {
    pub(super) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

pub(super) fn header_pairs(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
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
pub(super) fn server_backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let mut backoff =
        mailroom_http::Backoff::new(policy.server_error_base, policy.server_error_cap);
    backoff.jitter = policy.jitter;
    backoff.delay(attempt, None)
}

impl PsaClient {
    /// One HTTP exchange: waits for the limiter, sends, records the (redacted) trace.
    pub(super) async fn exchange(
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

    pub(super) fn throttled_message(&self, what: &str) -> String {
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

    pub(super) fn unreachable(&self, what: &str, failure: &TransportFailure) -> PsaError {
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

    pub(super) fn not_halo(&self, what: &str, detail: &str) -> PsaError {
        PsaError::protocol(format!(
            "{} does not look like a HaloPSA instance: {what} returned {detail}. Enter the \
             instance address as shown in HaloPSA (e.g. https://yourcompany.halopsa.com).",
            self.instance()
        ))
    }

    pub(super) fn may_retry(
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

    pub(super) async fn get_value(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Value, PsaError> {
        self.call(Method::GET, path, query, None).await
    }

    pub(super) fn decode<T: DeserializeOwned>(
        &self,
        what: &str,
        value: Value,
    ) -> Result<T, PsaError> {
        serde_json::from_value(value).map_err(|e| {
            PsaError::protocol(format!(
                "HaloPSA's reply to {what} has an unexpected shape: {e}"
            ))
        })
    }

    pub(super) async fn get_one<T: DeserializeOwned>(
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

    /// Creates or updates several records in one `POST /api/<resource>`. Returns the records
    /// HaloPSA answered: every saved one, or only one when it answers a list with a single
    /// object (reference §2: which it does is unconfirmed) — callers match the answer to what
    /// they sent, by a field each record carries, and read back what is missing.
    pub async fn post_many(
        &self,
        resource: &str,
        records: Vec<Value>,
    ) -> Result<Vec<Value>, PsaError> {
        let reply = self
            .call(Method::POST, resource, &[], Some(&Value::Array(records)))
            .await?;
        match reply {
            Value::Array(items) => Ok(items.into_iter().filter(Value::is_object).collect()),
            Value::Object(_) => Ok(vec![reply]),
            Value::Null => Ok(Vec::new()),
            other => Err(PsaError::protocol(format!(
                "HaloPSA answered POST /api/{resource} with {other}, not records."
            ))),
        }
    }

    /// [`PsaClient::post_many`] of typed records, decoding what HaloPSA answered.
    pub(super) async fn post_records<B: Serialize, T: DeserializeOwned>(
        &self,
        resource: &str,
        records: &[B],
    ) -> Result<Vec<T>, PsaError> {
        let values = records
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PsaError::protocol(format!("Could not encode the {resource}: {e}")))?;
        let what = format!("POST /api/{resource}");
        self.post_many(resource, values)
            .await?
            .into_iter()
            .map(|record| self.decode(&what, record))
            .collect()
    }

    /// A lookup list (bare array, or an envelope under `plural`).
    pub(super) async fn get_list<T: DeserializeOwned>(
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
}

/// One header's value as text (a plain function, not a closure: a higher-ranked closure kept
/// across an `.await` would make the request future `!Send`).
pub(super) fn header_value(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
