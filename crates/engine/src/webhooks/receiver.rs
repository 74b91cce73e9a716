//! The HTTP receiver: the accept loop (connection cap, header and body read timeouts), the two
//! routes with the validation handshake, and validation + persistence of notification batches.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use mailroom_secrets::{SecretKey, SecretKind, SecretValue};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{NotificationBody, NotificationKind, WebhookError, WebhookOptions, Webhooks, Work};

/// `Retry-After` (seconds) of the `503` answered when the notification queue is full.
pub const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// The receiver's routes.
pub(super) fn router(webhooks: Webhooks) -> Router {
    Router::new()
        .route("/graph/notify/{mailbox_id}", post(notify))
        .route("/graph/lifecycle/{mailbox_id}", post(lifecycle))
        .route(crate::ticket_tab::TAB_PATH, get(ticket_tab))
        .route(crate::psa_webhook::PSA_WEBHOOK_PATH, post(psa_webhook))
        .layer(axum::middleware::map_response_with_state(
            webhooks.clone(),
            close_when_full,
        ))
        .with_state(webhooks)
}

/// When every connection permit is taken (others wait in the listen backlog), the answered
/// connection is closed instead of kept alive: an idle keep-alive connection would otherwise
/// hold its permit until the header read timeout while senders queue behind it.
async fn close_when_full(State(webhooks): State<Webhooks>, mut response: Response) -> Response {
    if webhooks.inner.connections.available_permits() == 0 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// HaloPSA's webhook (`crate::psa_webhook`): verified, stored and applied before it is
/// answered.
async fn psa_webhook(
    State(webhooks): State<Webhooks>,
    request_headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    let inner = &webhooks.inner;
    let options = &inner.options;
    let bytes = match tokio::time::timeout(
        options.body_read_timeout,
        axum::body::to_bytes(body, options.max_body_bytes),
    )
    .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            return closing(
                StatusCode::BAD_REQUEST,
                format!("request body rejected: {e}"),
            )
        }
        Err(_) => {
            return closing(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time".into(),
            )
        }
    };
    let headers: Vec<(String, String)> = request_headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let (status, answer) =
        crate::psa_webhook::receive(&inner.store, &headers, &bytes, inner.clock.now()).await;
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        answer,
    )
        .into_response()
}

/// The PSA ticket tab (`crate::ticket_tab`): the ticket's page for a verified request, else the
/// refusal page. Never cached; no script runs in it; only the PSA's origin may frame it.
async fn ticket_tab(
    State(webhooks): State<Webhooks>,
    Query(query): Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    let inner = &webhooks.inner;
    let (status, page, csp) =
        crate::ticket_tab::answer(&inner.store, &inner.secrets, &query, inner.clock.now()).await;
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        page,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// Serves `router` on `listener` until `cancel`: at most `connections`' permits at once (further
/// connections wait in the listen backlog), each closed when a request head takes longer than
/// the header read timeout (an idle keep-alive connection included).
pub(super) fn serve(
    listener: TcpListener,
    router: Router,
    options: &WebhookOptions,
    connections: Arc<Semaphore>,
    cancel: CancellationToken,
) {
    let header_timeout = options.header_read_timeout;
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                _ = cancel.cancelled() => break,
                p = connections.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let stream = tokio::select! {
                _ = cancel.cancelled() => break,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!("webhook receiver: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let router = router.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout);
                let conn = builder
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
                tokio::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!("webhook receiver: connection closed: {e}");
                        }
                    }
                    _ = cancel.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                    }
                }
            });
        }
        tracing::debug!("webhook receiver stopped");
    });
}

#[derive(Debug, Deserialize)]
struct HandshakeQuery {
    #[serde(rename = "validationToken")]
    validation_token: Option<String>,
}

/// Graph's validation handshake: the decoded token as plain text, never sniffed as HTML.
fn handshake(token: String) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        token,
    )
        .into_response()
}

fn closing(status: StatusCode, message: String) -> Response {
    let mut r = (status, message).into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

async fn route(
    webhooks: Webhooks,
    mailbox_id: String,
    query: Result<Query<HandshakeQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
    lifecycle: bool,
) -> Response {
    if let Ok(Query(HandshakeQuery {
        validation_token: Some(token),
    })) = query
    {
        return handshake(token);
    }
    let options = &webhooks.inner.options;
    let read = tokio::time::timeout(
        options.body_read_timeout,
        axum::body::to_bytes(body, options.max_body_bytes),
    )
    .await;
    match read {
        Ok(Ok(bytes)) => webhooks.receive(&mailbox_id, lifecycle, &bytes).await,
        Ok(Err(e)) => {
            tracing::warn!(mailbox = %webhooks.label(mailbox_id), "webhook: request body rejected: {e}");
            closing(
                StatusCode::BAD_REQUEST,
                format!("request body rejected: {e}"),
            )
        }
        Err(_) => {
            tracing::warn!(
                mailbox = %webhooks.label(mailbox_id),
                "webhook: request body not received within {:?}; connection closed",
                options.body_read_timeout
            );
            closing(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time".into(),
            )
        }
    }
}

async fn notify(
    State(webhooks): State<Webhooks>,
    Path(mailbox_id): Path<String>,
    query: Result<Query<HandshakeQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Response {
    route(webhooks, mailbox_id, query, body, false).await
}

async fn lifecycle(
    State(webhooks): State<Webhooks>,
    Path(mailbox_id): Path<String>,
    query: Result<Query<HandshakeQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Response {
    route(webhooks, mailbox_id, query, body, true).await
}

/// Compares a presented clientState with the expected one in constant time.
fn client_state_matches(presented: Option<&str>, expected: &SecretValue) -> bool {
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.expose().as_bytes())))
}

impl Webhooks {
    /// The expected (subscription id, clientState) of a mailbox: memory, else store + keyring;
    /// `None` when the mailbox has no subscription.
    async fn expected_state(
        &self,
        mailbox_id: &str,
    ) -> Result<Option<(String, SecretValue)>, WebhookError> {
        if let Some(hit) = self
            .inner
            .client_states
            .lock()
            .expect("client states lock")
            .get(mailbox_id)
            .cloned()
        {
            return Ok(Some(hit));
        }
        let Some(record) = self.subscription(mailbox_id).await? else {
            return Ok(None);
        };
        let Some(value) = self
            .inner
            .secrets
            .get(&SecretKey::new(mailbox_id, SecretKind::ClientState))
            .await?
        else {
            tracing::warn!(
                mailbox = %self.label(mailbox_id),
                "webhook: the subscription's clientState secret is missing from the keyring; recreate the subscription"
            );
            return Ok(None);
        };
        let entry = (record.subscription_id, value);
        self.inner
            .client_states
            .lock()
            .expect("client states lock")
            .insert(mailbox_id.into(), entry.clone());
        Ok(Some(entry))
    }

    /// Validates and persists a posted notification batch; returns the HTTP response.
    ///
    /// Forged or stale items are counted (one counter per mailbox per minute), never stored one
    /// by one. The queue room for every valid item is reserved before anything is persisted:
    /// when the queue is full the batch is refused with `503` and `Retry-After`, so Graph
    /// redelivers it.
    pub(super) async fn receive(&self, mailbox_id: &str, lifecycle: bool, body: &[u8]) -> Response {
        let route = if lifecycle { "lifecycle" } else { "notify" };
        let parsed: NotificationBody = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(
                    mailbox = %self.label(mailbox_id),
                    route,
                    "webhook: malformed payload rejected: {e}"
                );
                return (
                    StatusCode::BAD_REQUEST,
                    "malformed notification payload: expected {\"value\": [ … ]}",
                )
                    .into_response();
            }
        };
        let mut expected = match self.expected_state(mailbox_id).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(
                    mailbox = %self.label(mailbox_id),
                    "webhook: cannot read the subscription to validate a notification: {e}"
                );
                return busy();
            }
        };
        // Another worker on the database may have recreated the subscription since this one
        // remembered it (a load balancer hands Graph's posts to any worker): before refusing
        // a notification, read the subscription again once.
        let stale = expected.as_ref().is_some_and(|(sub, state)| {
            parsed.value.iter().any(|item| {
                item.subscription_id != *sub
                    || !client_state_matches(item.client_state.as_deref(), state)
            })
        });
        if stale {
            self.inner
                .client_states
                .lock()
                .expect("client states lock")
                .remove(mailbox_id);
            expected = match self.expected_state(mailbox_id).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(
                        mailbox = %self.label(mailbox_id),
                        "webhook: cannot read the subscription to validate a notification: {e}"
                    );
                    return busy();
                }
            };
        }
        let now = self.now();
        let mut rejected = 0u64;
        let mut last_reason = String::new();
        let mut valid: Vec<(String, NotificationKind, Option<String>)> = Vec::new();
        for item in parsed.value {
            let reason = match &expected {
                None => Some("the mailbox has no subscription".to_string()),
                Some((sub, _)) if *sub != item.subscription_id => Some(format!(
                    "unknown subscription {} (expected {sub})",
                    item.subscription_id
                )),
                Some((_, state)) if !client_state_matches(item.client_state.as_deref(), state) => {
                    Some(format!(
                        "clientState does not match subscription {}",
                        item.subscription_id
                    ))
                }
                Some(_) => None,
            };
            if let Some(reason) = reason {
                rejected += 1;
                last_reason = format!("{route}: {reason}");
                continue;
            }
            let kind = if lifecycle {
                match item.lifecycle_event.as_deref() {
                    Some("reauthorizationRequired") => NotificationKind::ReauthorizationRequired,
                    Some("subscriptionRemoved") => NotificationKind::SubscriptionRemoved,
                    Some("missed") => NotificationKind::Missed,
                    other => {
                        tracing::warn!(mailbox = %self.label(mailbox_id), "webhook: unknown lifecycle event {other:?}");
                        continue;
                    }
                }
            } else {
                match item.change_type.as_deref() {
                    None | Some("created") => NotificationKind::Created,
                    Some("updated") => NotificationKind::Updated,
                    Some("deleted") => NotificationKind::Deleted,
                    Some(other) => {
                        tracing::warn!(mailbox = %self.label(mailbox_id), "webhook: unknown changeType {other:?}");
                        continue;
                    }
                }
            };
            valid.push((item.subscription_id, kind, item.resource));
        }
        if rejected > 0 {
            tracing::warn!(
                mailbox = %self.label(mailbox_id),
                route,
                rejected,
                "webhook: notifications dropped: {last_reason}"
            );
            // Not a subscribed mailbox (or a made-up id): the log only, so that posts to
            // arbitrary URLs cannot fill the database.
            if expected.is_some() {
                if let Err(e) = self
                    .inner
                    .store
                    .count_webhook_rejections(mailbox_id, rejected, &last_reason, now)
                    .await
                {
                    tracing::warn!(
                        mailbox = %self.label(mailbox_id),
                        "webhook: cannot count {rejected} rejected notifications: {e}"
                    );
                }
            }
        }
        if valid.is_empty() {
            return StatusCode::ACCEPTED.into_response();
        }
        let permits = match self.inner.work.try_reserve_many(valid.len()) {
            Ok(p) => p,
            Err(_) => {
                let total = self
                    .inner
                    .dropped
                    .fetch_add(valid.len() as u64, Ordering::Relaxed)
                    + valid.len() as u64;
                tracing::warn!(
                    mailbox = %self.label(mailbox_id),
                    route,
                    batch = valid.len(),
                    dropped_total = total,
                    "webhook: the notification queue is full; answered 503 (Graph retries)"
                );
                return busy();
            }
        };
        let mut accepted = 0usize;
        for ((subscription_id, kind, resource), permit) in valid.into_iter().zip(permits) {
            let row = self
                .inner
                .store
                .insert_webhook_notification(
                    mailbox_id,
                    &subscription_id,
                    kind,
                    resource.as_deref(),
                    now,
                )
                .await;
            let row = match row {
                Ok(id) => id,
                Err(e) => {
                    // Ask Graph to retry: this one (and the rest) were not persisted.
                    tracing::error!(mailbox = %self.label(mailbox_id), "webhook: cannot persist a notification: {e}");
                    return busy();
                }
            };
            accepted += 1;
            permit.send(Work::Notification {
                mailbox_id: mailbox_id.into(),
                row,
            });
        }
        tracing::debug!(
            mailbox = %self.label(mailbox_id),
            route,
            accepted,
            "webhook: notifications received"
        );
        StatusCode::ACCEPTED.into_response()
    }
}

/// `503` with `Retry-After`: Graph redelivers later.
fn busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, BUSY_RETRY_AFTER_SECS.to_string())],
        "the receiver is busy; retry later",
    )
        .into_response()
}
