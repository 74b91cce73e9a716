//! One Graph call: the request built with the mailbox's token, sent through the
//! mailbox's throttle with retries, recorded for the attempt's log; JSON, paging and `$batch`.

use mailroom_trace::Service;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use url::Url;

use super::error::{GraphError, GraphErrorKind};
use super::GraphClient;
use crate::http::{execute, RawResponse};
use crate::models::*;
use crate::secret::Secret;

/// Body of a request.
pub(super) enum Body {
    None,
    Json(Value),
}

pub(super) struct Call {
    pub(super) method: http::Method,
    pub(super) url: Url,
    pub(super) body: Body,
    pub(super) prefer: Vec<String>,
}

impl Call {
    pub(super) fn new(method: http::Method, url: Url) -> Self {
        Call {
            method,
            url,
            body: Body::None,
            prefer: Vec::new(),
        }
    }

    pub(super) fn json(mut self, value: Value) -> Self {
        self.body = Body::Json(value);
        self
    }

    pub(super) fn prefer(mut self, value: impl Into<String>) -> Self {
        self.prefer.push(value.into());
        self
    }

    /// Whether a retry after a timeout/504/transport error is safe.
    pub(super) fn idempotent(&self) -> bool {
        self.method != http::Method::POST
    }
}

impl GraphClient {
    pub(super) fn build(
        &self,
        call: &Call,
        token: &Secret,
    ) -> Result<http::Request<Vec<u8>>, GraphError> {
        let mut builder = http::Request::builder()
            .method(call.method.clone())
            .uri(call.url.as_str())
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            )
            .header(http::header::ACCEPT, "application/json");
        let mut prefer = call.prefer.clone();
        if self.immutable_ids {
            prefer.push("IdType=\"ImmutableId\"".into());
        }
        for p in prefer {
            builder = builder.header("Prefer", p);
        }
        let body = match &call.body {
            Body::None => Vec::new(),
            Body::Json(v) => {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
                serde_json::to_vec(v).expect("json body")
            }
        };
        builder
            .body(body)
            .map_err(|e| GraphError::new(GraphErrorKind::InvalidResponse, e.to_string()))
    }

    pub(super) async fn send(&self, call: Call) -> Result<RawResponse, GraphError> {
        let max_attempts = self.throttle.config().max_attempts.max(1);
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let token = self
                .tokens
                .access_token()
                .await
                .map_err(GraphError::from_identity)?;
            let request = self.build(&call, &token)?;
            let permit = self.throttle.acquire().await;
            let result = execute(&self.http, &self.clock, Service::Graph, request).await;
            drop(permit);
            let resp = match result {
                Ok(resp) => resp,
                Err(e) => {
                    if call.idempotent() && attempt < max_attempts {
                        tokio::time::sleep(self.throttle.backoff(attempt, None)).await;
                        continue;
                    }
                    let mut err = GraphError::new(GraphErrorKind::Transport, e.to_string());
                    err.message = e.message;
                    return Err(err);
                }
            };
            match resp.status {
                200..=299 => return Ok(resp),
                401 if !refreshed => {
                    refreshed = true;
                    self.tokens.invalidate(&token);
                    attempt -= 1;
                    continue;
                }
                429 | 503 | 504 => {
                    let err = GraphError::from_response(&resp, self.clock.now());
                    let retryable = resp.status != 504 || call.idempotent();
                    if !retryable || attempt >= max_attempts {
                        if let Some(wait) = err.retry_after {
                            self.throttle.hold_off(wait);
                        }
                        return Err(err);
                    }
                    // Back-off with Retry-After as its floor; a Retry-After closes the
                    // mailbox's shared gate, so every request of the mailbox waits it out.
                    let wait = self.throttle.backoff(attempt, err.retry_after);
                    match err.retry_after {
                        Some(_) => self.throttle.hold_off(wait),
                        None => tokio::time::sleep(wait).await,
                    }
                    continue;
                }
                _ => return Err(GraphError::from_response(&resp, self.clock.now())),
            }
        }
    }

    pub(super) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, GraphError> {
        let resp = self.send(call).await?;
        serde_json::from_slice(&resp.body).map_err(|e| {
            let mut err = GraphError::new(GraphErrorKind::InvalidResponse, e.to_string());
            err.status = Some(resp.status);
            err
        })
    }

    pub(super) async fn paged<T: DeserializeOwned>(
        &self,
        first: Call,
        max_pages: Option<usize>,
    ) -> Result<Vec<T>, GraphError> {
        let mut out = Vec::new();
        let prefer = first.prefer.clone();
        let mut call = first;
        let mut pages = 0usize;
        loop {
            let page: Value = self.json(call).await?;
            pages += 1;
            if let Some(items) = page["value"].as_array() {
                for item in items {
                    out.push(serde_json::from_value(item.clone()).map_err(|e| {
                        GraphError::new(GraphErrorKind::InvalidResponse, e.to_string())
                    })?);
                }
            }
            let Some(next) = page["@odata.nextLink"].as_str() else {
                break;
            };
            if max_pages.is_some_and(|m| pages >= m) {
                break;
            }
            call = Call::new(http::Method::GET, self.checked_link(next)?);
            call.prefer = prefer.clone();
        }
        Ok(out)
    }

    /// `POST /$batch` with at most 20 requests. Sub-responses are returned as they come
    /// (sorted by id order of the request); sub-request throttling (429 inside) is *not* retried
    /// here, callers retry those items after their `retry-after`.
    pub async fn batch(&self, requests: &[BatchRequest]) -> Result<Vec<BatchResponse>, GraphError> {
        if requests.is_empty() || requests.len() > 20 {
            return Err(GraphError::new(
                GraphErrorKind::BadRequest,
                format!("a batch holds 1 to 20 requests, not {}", requests.len()),
            ));
        }
        #[derive(serde::Deserialize)]
        struct Out {
            responses: Vec<BatchResponse>,
        }
        let out: Out = self
            .json(
                Call::new(http::Method::POST, self.versioned(&["$batch"]))
                    .json(json!({ "requests": requests })),
            )
            .await?;
        let mut responses = out.responses;
        let order = |id: &str| {
            requests
                .iter()
                .position(|r| r.id == id)
                .unwrap_or(usize::MAX)
        };
        responses.sort_by_key(|r| order(&r.id));
        Ok(responses)
    }
}
