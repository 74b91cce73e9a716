//! The operations endpoints of a headless Mailroom (`mailroom serve`), on an address of their
//! own — never the webhook receiver's public one:
//! - `GET /healthz`: the process answers and its engine has not stopped (liveness).
//! - `GET /readyz`: the engine is up and syncing (readiness); 503 with the reason while it
//!   starts, is degraded (no PSA connection, no usable mailbox) or stops.
//! - `GET /metrics`: Prometheus metrics, read at scrape time from the store's kept counters
//!   and the running engine (not the dashboard's charts): emails by mailbox and status, queue depth and the oldest
//!   unprocessed email's age per mailbox, Graph and HaloPSA requests with the throttled and
//!   failed ones, the PSA rate limit's use.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::engine::{EngineHandle, EngineState};
use crate::Core;

#[derive(Clone)]
struct Ops {
    core: Core,
    engine: std::sync::Arc<EngineHandle>,
}

/// Serves the operations endpoints on `addr` until `cancel`; returns the bound address (port 0
/// picks a free one).
pub async fn serve(
    addr: SocketAddr,
    core: Core,
    engine: std::sync::Arc<EngineHandle>,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Ops { core, engine });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!("the operations endpoints stopped: {e}");
        }
    });
    Ok(bound)
}

async fn healthz(State(ops): State<Ops>) -> Response {
    match ops.engine.state() {
        EngineState::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "stopped\n").into_response(),
        _ => (StatusCode::OK, "ok\n").into_response(),
    }
}

async fn readyz(State(ops): State<Ops>) -> Response {
    match ops.engine.state() {
        EngineState::Running { mailboxes } => (
            StatusCode::OK,
            format!("ready: {mailboxes} mailbox(es) syncing\n"),
        )
            .into_response(),
        EngineState::Degraded { reason, .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("degraded: {reason}\n"),
        )
            .into_response(),
        EngineState::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response(),
        EngineState::Watching => (
            StatusCode::SERVICE_UNAVAILABLE,
            "processes no mail (watching the other workers)\n",
        )
            .into_response(),
        EngineState::Stopping | EngineState::Stopped => {
            (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MailboxLabels {
    mailbox: String,
    mailbox_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EmailLabels {
    mailbox: String,
    mailbox_id: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TakeoverLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProcessLabels {
    role: String,
    processing: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

async fn metrics(State(ops): State<Ops>) -> Response {
    match render_metrics(&ops).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics could not be read: {e}\n"),
        )
            .into_response(),
    }
}

/// The metrics now, in the OpenMetrics text format.
async fn render_metrics(ops: &Ops) -> Result<String, crate::CoreError> {
    let now = chrono::Utc::now();
    let mailboxes = ops.core.mailboxes().await?;
    let totals = ops.core.store().request_totals().await?;
    let mut registry = Registry::with_prefix("mailroom");

    let up = Gauge::<i64>::default();
    up.set(matches!(ops.engine.state(), EngineState::Running { .. }) as i64);
    registry.register(
        "up",
        "Whether the engine is up and syncing (1) or not (0)",
        up,
    );

    let emails = Family::<EmailLabels, Counter>::default();
    let queue = Family::<MailboxLabels, Gauge>::default();
    let oldest = Family::<MailboxLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for m in &mailboxes {
        let (total, oldest_unfinished_at) = ops.core.mailbox_totals(&m.id).await?;
        let mailbox = MailboxLabels {
            mailbox: m.name.clone(),
            mailbox_id: m.id.clone(),
        };
        for (status, n) in [
            ("processed", total.processed),
            ("failed", total.failed),
            ("skipped", total.skipped),
        ] {
            emails
                .get_or_create(&EmailLabels {
                    mailbox: m.name.clone(),
                    mailbox_id: m.id.clone(),
                    status: status.into(),
                })
                .inc_by(n.max(0) as u64);
        }
        queue
            .get_or_create(&mailbox)
            .set(total.pending + total.retrying);
        let age = oldest_unfinished_at
            .map(|at| (now - at).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        oldest.get_or_create(&mailbox).set(age);
    }
    registry.register(
        "emails",
        "Emails finished, by mailbox and status (processed, failed, skipped)",
        emails,
    );
    registry.register(
        "queue_depth",
        "Emails not finished yet (pending or waiting for a retry), by mailbox",
        queue,
    );
    registry.register(
        "oldest_unprocessed_age_seconds",
        "Age of the oldest email not finished yet, by mailbox (0 when none waits)",
        oldest,
    );

    let requests = Family::<ServiceLabels, Counter>::default();
    let throttled = Family::<ServiceLabels, Counter>::default();
    let failed = Family::<ServiceLabels, Counter>::default();
    for t in &totals {
        let service = ServiceLabels {
            service: t.service.clone(),
        };
        requests
            .get_or_create(&service)
            .inc_by(t.requests.max(0) as u64);
        throttled
            .get_or_create(&service)
            .inc_by(t.throttled.max(0) as u64);
        failed
            .get_or_create(&service)
            .inc_by(t.failed.max(0) as u64);
    }
    registry.register(
        "requests",
        "HTTP requests made while processing mail, by service (graph, psa)",
        requests,
    );
    registry.register(
        "requests_throttled",
        "Requests answered 429 Too Many Requests, by service",
        throttled,
    );
    registry.register(
        "requests_failed",
        "Requests answered 5xx or not at all, by service",
        failed,
    );

    // Shared by every worker on the database: a worker that died or hung left these.
    let takeovers = ops.core.store().lease_takeovers().await?;
    let taken = Family::<TakeoverLabels, Counter>::default();
    taken
        .get_or_create(&TakeoverLabels {
            kind: "claim".into(),
        })
        .inc_by(takeovers.claims.max(0) as u64);
    taken
        .get_or_create(&TakeoverLabels {
            kind: "delta_round".into(),
        })
        .inc_by(takeovers.leases.max(0) as u64);
    registry.register(
        "lease_takeovers",
        "Leases taken over after they ran out (a worker died or hung): email claims and \
         mailbox delta rounds, across all workers on the database",
        taken,
    );

    // Every Mailroom process on the database that beat within the last 30 s.
    let processes = ops.core.processes(now).await?;
    let alive = Family::<ProcessLabels, Gauge>::default();
    for role in ["service", "desktop"] {
        for processing in [true, false] {
            alive
                .get_or_create(&ProcessLabels {
                    role: role.into(),
                    processing: if processing { "true" } else { "false" }.into(),
                })
                .set(0);
        }
    }
    for p in processes.processes.iter().filter(|p| p.alive) {
        alive
            .get_or_create(&ProcessLabels {
                role: p.heartbeat.role.clone(),
                processing: p.heartbeat.processing.to_string(),
            })
            .inc();
    }
    registry.register(
        "processes",
        "Mailroom processes alive on the database (heartbeat within 30 s), by role and whether \
         they process mail",
        alive,
    );

    if let Some(usage) = ops.engine.psa_usage() {
        let used = Gauge::<i64>::default();
        used.set(usage.used.into());
        registry.register(
            "psa_rate_limit_used",
            "HaloPSA requests in the current rolling window",
            used,
        );
        let limit = Gauge::<i64>::default();
        limit.set(usage.limit.into());
        registry.register(
            "psa_rate_limit",
            "HaloPSA requests allowed per rolling window",
            limit,
        );
        let limited = Counter::<u64>::default();
        limited.inc_by(usage.rate_limited_total);
        registry.register(
            "psa_rate_limited",
            "HaloPSA 429 answers since this process started",
            limited,
        );
    }

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|e| crate::CoreError::InvalidInput(format!("metrics encoding: {e}")))?;
    Ok(text)
}
