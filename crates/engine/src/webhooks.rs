//! Webhook mode: Graph change notifications for *Webhooks* mailboxes.
//!
//! [`Webhooks::start`] binds the **receiver** (axum) on a configurable address (default
//! `127.0.0.1`, a free port) and serves, per mailbox,
//! `POST {base}/graph/notify/{mailbox_id}` and `POST {base}/graph/lifecycle/{mailbox_id}`, where
//! `base` is the configured public base URL (a tunnel or reverse proxy) or the bound loopback URL.
//!
//! Invariants:
//! - Both routes answer Graph's validation handshake (`?validationToken=…`) with `200`,
//!   `text/plain` and the URL-decoded token, before anything else.
//! - A notification is accepted only when its `subscriptionId` is the mailbox's stored
//!   subscription and its `clientState` equals the subscription's secret (kept in the keyring,
//!   kind `client-state`, owner = the mailbox id; cached in memory). Anything else is dropped
//!   with a logged reason and a `rejected` subscription event.
//! - Accepted notifications are persisted (`webhook_notifications`) **before** the receiver
//!   answers `202`; the engine then handles them off the request path. A change notification
//!   asks the mailbox's sync task for a scan: the delta round records the sighting and the
//!   pipeline's exactly-once path makes a ticket, so duplicates and redeliveries are harmless.
//! - Bodies over the size limit or not matching the notification shape get `400` with a logged
//!   reason.
//! - Lifecycle events: `reauthorizationRequired` → reauthorize, then renew;
//!   `subscriptionRemoved` → create a new subscription, then resync through delta; `missed` →
//!   resync through delta.
//! - A subscription within `renew_before` (default 2 days) of its expiry is renewed, both when a
//!   notification is processed and by a periodic check; "now" is the injected clock.
//! - Webhook mailboxes keep a low-frequency fallback delta scan (default 15 min) that recovers
//!   notifications Graph never delivered.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use mailroom_clock::SharedClock;
use mailroom_graph::{GraphClient, GraphError, Secret};
use mailroom_secrets::{SecretKey, SecretKind, SecretValue, Secrets};
use mailroom_store::inbound::ts;
use mailroom_store::{Mailbox, Store};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::sync::{MailboxCommand, SyncSupervisor};

/// Configuration of the receiver and of subscription upkeep.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Where the receiver listens (default `127.0.0.1:0`, a free port).
    pub bind: SocketAddr,
    /// The public HTTPS base URL Graph posts to (a tunnel or reverse proxy forwarding to
    /// `bind`); `None` = the bound loopback URL (enough for the sandbox).
    pub public_base_url: Option<Url>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Subscription lifetime requested, in minutes (the maximum Graph allows is
    /// [UNCERTAIN] 4,230 or 10,070; Graph's ExtensionError limit is honoured either way).
    pub max_lifetime_minutes: i64,
    /// Renew when the subscription expires within this.
    pub renew_before: chrono::Duration,
    /// Fallback delta scan interval of webhook mailboxes.
    pub fallback_interval: Duration,
    /// How often the upkeep task checks for subscriptions to renew.
    pub renew_check_every: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_base_url: None,
            max_body_bytes: 256 * 1024,
            max_lifetime_minutes: 4230,
            renew_before: chrono::Duration::days(2),
            fallback_interval: Duration::from_secs(15 * 60),
            renew_check_every: Duration::from_secs(5 * 60),
        }
    }
}

/// Default receiver port of the app and `mailroom run` (a fixed port, so that a subscription
/// created earlier still reaches the receiver after a restart).
pub const DEFAULT_PORT: u16 = 47130;

/// The store setting holding [`WebhookSettings`].
pub const SETTINGS_KEY: &str = "webhooks";

/// Webhook settings as stored (setting `webhooks`) and edited by front ends; unset fields take
/// the defaults of [`WebhookOptions`] (port [`DEFAULT_PORT`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSettings {
    /// Address the receiver binds (default `127.0.0.1`).
    #[serde(default)]
    pub bind_address: Option<String>,
    /// Port the receiver binds (default [`DEFAULT_PORT`]; 0 = any free port).
    #[serde(default)]
    pub port: Option<u16>,
    /// Public HTTPS base URL of a tunnel/reverse proxy forwarding to the receiver.
    #[serde(default)]
    pub public_base_url: Option<String>,
    /// Requested subscription lifetime in minutes (default 4,230).
    #[serde(default)]
    pub max_lifetime_minutes: Option<i64>,
    /// Fallback delta scan interval in seconds (default 900).
    #[serde(default)]
    pub fallback_interval_secs: Option<u64>,
}

impl WebhookSettings {
    /// The receiver options these settings describe.
    pub fn options(&self) -> Result<WebhookOptions, String> {
        let mut o = WebhookOptions::default();
        let ip: std::net::IpAddr = match &self.bind_address {
            Some(a) => a
                .parse()
                .map_err(|e| format!("webhook bind address '{a}' is not an IP address: {e}"))?,
            None => o.bind.ip(),
        };
        o.bind = SocketAddr::new(ip, self.port.unwrap_or(DEFAULT_PORT));
        if let Some(u) = self
            .public_base_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            let url = Url::parse(u.trim())
                .map_err(|e| format!("webhook public base URL '{u}' is not a URL: {e}"))?;
            // Graph only delivers to HTTPS; plain http is accepted for loopback (the sandbox).
            let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
                return Err(format!(
                    "webhook public base URL '{u}' must be an https:// URL: Microsoft Graph only delivers notifications over HTTPS"
                ));
            }
            o.public_base_url = Some(url);
        }
        if let Some(m) = self.max_lifetime_minutes {
            o.max_lifetime_minutes = m.max(1);
        }
        if let Some(s) = self.fallback_interval_secs {
            o.fallback_interval = Duration::from_secs(s.max(1));
        }
        Ok(o)
    }
}

impl crate::Core {
    /// The stored webhook settings (defaults when never saved).
    pub async fn webhook_settings(&self) -> Result<WebhookSettings, crate::CoreError> {
        Ok(self
            .store()
            .setting::<WebhookSettings>(SETTINGS_KEY)
            .await?
            .unwrap_or_default())
    }

    /// Saves the webhook settings (validated first).
    pub async fn set_webhook_settings(
        &self,
        settings: &WebhookSettings,
    ) -> Result<(), crate::CoreError> {
        settings.options().map_err(crate::CoreError::InvalidInput)?;
        Ok(self.store().set_setting(SETTINGS_KEY, settings).await?)
    }

    /// Starts the webhook receiver with `options` (e.g. from [`Core::webhook_settings`]) and
    /// registers every enabled, connected *Webhooks* mailbox; `supervisor` runs their sync
    /// tasks (fallback scan) and the scans notifications trigger. Returns the service and the
    /// mailboxes that could not be registered with the reason.
    pub async fn start_webhooks(
        &self,
        options: WebhookOptions,
        clock: SharedClock,
        supervisor: Option<Arc<SyncSupervisor>>,
    ) -> Result<(Webhooks, Vec<(Mailbox, String)>), crate::CoreError> {
        let webhooks = Webhooks::start(
            options,
            self.store().clone(),
            self.secrets().clone(),
            clock,
            supervisor,
        )
        .await?;
        let mut skipped = Vec::new();
        for mailbox in self.mailboxes().await? {
            if !mailbox.enabled || mailbox.method != mailroom_store::MailboxMethod::Webhook {
                continue;
            }
            match self.graph_client_for(&mailbox).await {
                Ok(graph) => webhooks.add_mailbox(mailbox, graph).await,
                Err(e) => skipped.push((mailbox, e.to_string())),
            }
        }
        Ok((webhooks, skipped))
    }

    /// Part of *Disconnect* for a Webhooks mailbox: deletes its Graph subscription (best
    /// effort: a failure is logged and recorded as a `failed` event, the disconnect goes on),
    /// then the stored subscription and its clientState secret, and records `cancelled`.
    /// Must run while the mailbox's credentials still work. A front end running the receiver
    /// also calls [`Webhooks::remove_mailbox`].
    pub(crate) async fn cancel_subscription_on_disconnect(&self, mailbox: &Mailbox) {
        let pool = self.store().pool();
        let row =
            sqlx::query("SELECT subscription_id FROM webhook_subscriptions WHERE mailbox_id = ?")
                .bind(&mailbox.id)
                .fetch_optional(pool)
                .await;
        let subscription_id: String = match row {
            Ok(Some(row)) => row.get("subscription_id"),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(mailbox = %mailbox.name, "disconnect: cannot read the webhook subscription: {e}");
                return;
            }
        };
        let deleted = match self.graph_client_for(mailbox).await {
            Ok(graph) => match graph.delete_subscription(&subscription_id).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind == mailroom_graph::GraphErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        let (kind, detail) = match deleted {
            Ok(()) => (
                "cancelled",
                format!("subscription {subscription_id} (mailbox disconnected)"),
            ),
            Err(e) => {
                tracing::warn!(mailbox = %mailbox.name, "disconnect: cannot delete subscription {subscription_id} at Graph: {e}");
                (
                    "failed",
                    format!("disconnect: subscription {subscription_id} could not be deleted at Graph ({e}); it expires on its own"),
                )
            }
        };
        if let Err(e) = sqlx::query("DELETE FROM webhook_subscriptions WHERE mailbox_id = ?")
            .bind(&mailbox.id)
            .execute(pool)
            .await
        {
            tracing::warn!(mailbox = %mailbox.name, "disconnect: cannot forget the webhook subscription: {e}");
        }
        let secrets = self.secrets().clone();
        let key = SecretKey::new(&mailbox.id, SecretKind::ClientState);
        let _ = tokio::task::spawn_blocking(move || secrets.delete(&key)).await;
        tracing::info!(mailbox = %mailbox.name, kind, "webhook: {detail}");
        if let Err(e) = sqlx::query(
            "INSERT INTO webhook_events (mailbox_id, at, kind, detail) VALUES (?, ?, ?, ?)",
        )
        .bind(&mailbox.id)
        .bind(ts(Utc::now()))
        .bind(kind)
        .bind(&detail)
        .execute(pool)
        .await
        {
            tracing::warn!("cannot record a webhook event: {e}");
        }
    }

    /// The most recent subscription events of every mailbox (newest first, at most `limit`),
    /// for the Monitoring view. Works whether or not the receiver runs.
    pub async fn subscription_events_all(
        &self,
        limit: u32,
    ) -> Result<Vec<SubscriptionEvent>, crate::CoreError> {
        let rows = sqlx::query(
            "SELECT id, mailbox_id, at, kind, detail FROM webhook_events ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(self.store().pool())
        .await
        .map_err(WebhookError::from)?;
        Ok(event_rows(rows)?)
    }
}

fn event_rows(rows: Vec<sqlx::sqlite::SqliteRow>) -> Result<Vec<SubscriptionEvent>, WebhookError> {
    rows.into_iter()
        .map(|r| {
            Ok(SubscriptionEvent {
                id: r.get("id"),
                mailbox_id: r.get("mailbox_id"),
                at: parse_time(&r.get::<String, _>("at"))?,
                kind: r.get("kind"),
                detail: r.get("detail"),
            })
        })
        .collect()
}

/// Why a webhook operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The receiver could not bind its address.
    #[error("the webhook receiver cannot listen on {addr}: {source}. Choose another address or port in the webhook settings.")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The mailbox is not registered with the webhook service (not connected).
    #[error("mailbox {0} is not connected for webhooks; connect it first")]
    NotRegistered(String),
    /// The mailbox has no subscription.
    #[error("mailbox {0} has no subscription; create one first")]
    NoSubscription(String),
    /// Graph refused a subscription call.
    #[error("Microsoft Graph refused the subscription request: {0}. Check that the notification URL is reachable from the internet over HTTPS and that the app has Mail.Read (application) consented.")]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Store(#[from] mailroom_store::StoreError),
    #[error(transparent)]
    Secrets(#[from] mailroom_secrets::SecretsError),
}

impl From<sqlx::Error> for WebhookError {
    fn from(e: sqlx::Error) -> Self {
        WebhookError::Store(mailroom_store::StoreError::from(e))
    }
}

/// A stored subscription, as the UI and the CLI show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionRecord {
    pub mailbox_id: String,
    pub subscription_id: String,
    pub resource: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub last_notification_at: Option<DateTime<Utc>>,
    pub renewals: i64,
}

/// One entry of a mailbox's subscription log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionEvent {
    pub id: i64,
    pub mailbox_id: String,
    pub at: DateTime<Utc>,
    /// `created`, `renewed`, `reauthorized`, `recreated`, `cancelled`, `resync`, `rejected`,
    /// `failed`.
    pub kind: String,
    pub detail: String,
}

/// A notification persisted by the receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredNotification {
    pub id: i64,
    pub mailbox_id: String,
    pub subscription_id: String,
    /// `created` or a lifecycle event name.
    pub kind: String,
    pub resource: Option<String>,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotificationItem {
    subscription_id: String,
    #[serde(default)]
    client_state: Option<String>,
    #[serde(default)]
    change_type: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    lifecycle_event: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NotificationBody {
    value: Vec<NotificationItem>,
}

/// Work handed from the receiver to the engine side.
#[derive(Debug)]
enum Work {
    Notification { mailbox_id: String, row: i64 },
}

struct Inner {
    options: WebhookOptions,
    store: Store,
    secrets: Secrets,
    clock: SharedClock,
    /// `None` for a receiver without an engine (e.g. `mailroom subscription create`):
    /// notifications are persisted and stay pending until an engine runs.
    supervisor: Option<Arc<SyncSupervisor>>,
    local_addr: SocketAddr,
    base_url: Url,
    /// mailbox id → (subscription id, clientState).
    client_states: Mutex<HashMap<String, (String, SecretValue)>>,
    /// mailbox id → (mailbox, Graph client).
    mailboxes: Mutex<HashMap<String, (Mailbox, GraphClient)>>,
    work: mpsc::UnboundedSender<Work>,
    cancel: CancellationToken,
}

/// The webhook service: the receiver plus subscription upkeep (cheap to clone).
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("local_addr", &self.inner.local_addr)
            .field("base_url", &self.inner.base_url.as_str())
            .finish_non_exhaustive()
    }
}

fn random_client_state() -> String {
    use rand::Rng as _;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(64)
        .map(char::from)
        .collect()
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, WebhookError> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            WebhookError::Store(mailroom_store::StoreError::Corrupt(format!(
                "timestamp '{text}': {e}"
            )))
        })
}

fn parse_time_opt(text: Option<String>) -> Result<Option<DateTime<Utc>>, WebhookError> {
    text.as_deref().map(parse_time).transpose()
}

impl Webhooks {
    /// Binds the receiver and starts the upkeep task (on the current Tokio runtime). Webhook
    /// mailboxes are then added with [`Webhooks::add_mailbox`].
    pub async fn start(
        options: WebhookOptions,
        store: Store,
        secrets: Secrets,
        clock: SharedClock,
        supervisor: Option<Arc<SyncSupervisor>>,
    ) -> Result<Self, WebhookError> {
        let listener = tokio::net::TcpListener::bind(options.bind)
            .await
            .map_err(|source| WebhookError::Bind {
                addr: options.bind,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| WebhookError::Bind {
            addr: options.bind,
            source,
        })?;
        let base_url = match &options.public_base_url {
            Some(u) => u.clone(),
            None => Url::parse(&format!("http://{local_addr}/")).expect("loopback URL"),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let webhooks = Webhooks {
            inner: Arc::new(Inner {
                options: options.clone(),
                store,
                secrets,
                clock,
                supervisor,
                local_addr,
                base_url,
                client_states: Mutex::new(HashMap::new()),
                mailboxes: Mutex::new(HashMap::new()),
                work: tx,
                cancel: cancel.clone(),
            }),
        };
        let router = Router::new()
            .route("/graph/notify/{mailbox_id}", post(notify))
            .route("/graph/lifecycle/{mailbox_id}", post(lifecycle))
            .layer(DefaultBodyLimit::max(options.max_body_bytes))
            .with_state(webhooks.clone());
        let server_cancel = cancel.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(server_cancel.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!("the webhook receiver stopped: {e}");
            }
        });
        tokio::spawn(webhooks.clone().upkeep(rx));
        tracing::info!(%local_addr, base = %webhooks.inner.base_url, "webhook receiver listening");
        Ok(webhooks)
    }

    /// The address the receiver is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The base URL Graph is given (public base URL or the loopback URL).
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// The notification URL of a mailbox.
    pub fn notification_url(&self, mailbox_id: &str) -> String {
        self.url_for("notify", mailbox_id)
    }

    /// The lifecycle notification URL of a mailbox.
    pub fn lifecycle_url(&self, mailbox_id: &str) -> String {
        self.url_for("lifecycle", mailbox_id)
    }

    fn url_for(&self, route: &str, mailbox_id: &str) -> String {
        let mut url = self.inner.base_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["graph", route, mailbox_id]);
        }
        url.to_string()
    }

    /// Registers a webhook mailbox: its Graph client is used for subscription calls and its
    /// sync task is (re)started with the fallback scan interval. Pending notifications left
    /// from a previous run are handled.
    pub async fn add_mailbox(&self, mailbox: Mailbox, graph: GraphClient) {
        let graph = graph.with_subscription_max_minutes(self.inner.options.max_lifetime_minutes);
        if let Some(supervisor) = &self.inner.supervisor {
            supervisor.start_mailbox_every(
                mailbox.clone(),
                graph.clone(),
                self.inner.options.fallback_interval,
            );
        }
        let id = mailbox.id.clone();
        self.inner
            .mailboxes
            .lock()
            .expect("mailboxes lock")
            .insert(id.clone(), (mailbox, graph));
        if let Ok(pending) = self.pending_notifications(&id).await {
            for n in pending {
                let _ = self.inner.work.send(Work::Notification {
                    mailbox_id: id.clone(),
                    row: n.id,
                });
            }
        }
    }

    /// Forgets a mailbox (its sync task keeps running until the supervisor stops it).
    pub fn remove_mailbox(&self, mailbox_id: &str) {
        self.inner
            .mailboxes
            .lock()
            .expect("mailboxes lock")
            .remove(mailbox_id);
        self.inner
            .client_states
            .lock()
            .expect("client states lock")
            .remove(mailbox_id);
    }

    fn graph_of(&self, mailbox_id: &str) -> Result<(Mailbox, GraphClient), WebhookError> {
        self.inner
            .mailboxes
            .lock()
            .expect("mailboxes lock")
            .get(mailbox_id)
            .cloned()
            .ok_or_else(|| WebhookError::NotRegistered(mailbox_id.into()))
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Creates the mailbox's subscription (inbox messages, `created`, expiry at the configured
    /// maximum, clamped to Graph's limit) with a new random clientState, replacing (and
    /// deleting at Graph) any previous one.
    pub async fn create_subscription(
        &self,
        mailbox_id: &str,
    ) -> Result<SubscriptionRecord, WebhookError> {
        let (_, graph) = self.graph_of(mailbox_id)?;
        if let Some(old) = self.subscription(mailbox_id).await? {
            if let Err(e) = graph.delete_subscription(&old.subscription_id).await {
                tracing::info!(mailbox_id, "previous subscription not deleted: {e}");
            }
        }
        let record = self.create_inner(mailbox_id, &graph).await?;
        self.record_event(
            mailbox_id,
            "created",
            &format!(
                "subscription {} on {} until {}",
                record.subscription_id,
                record.resource,
                ts(record.expires_at)
            ),
        )
        .await;
        Ok(record)
    }

    async fn create_inner(
        &self,
        mailbox_id: &str,
        graph: &GraphClient,
    ) -> Result<SubscriptionRecord, WebhookError> {
        let state = random_client_state();
        let key = SecretKey::new(mailbox_id, SecretKind::ClientState);
        self.inner
            .secrets
            .set_async(key, SecretValue::new(state.clone()))
            .await?;
        let resource = graph.inbox_resource();
        let expiration =
            self.now() + chrono::Duration::minutes(self.inner.options.max_lifetime_minutes);
        let created = graph
            .create_subscription(
                &resource,
                &self.notification_url(mailbox_id),
                Some(&self.lifecycle_url(mailbox_id)),
                &Secret::new(state.clone()),
                expiration,
            )
            .await;
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                self.record_event(mailbox_id, "failed", &format!("create: {e}"))
                    .await;
                return Err(e.into());
            }
        };
        let now = self.now();
        let expires_at = created.expiration_date_time.unwrap_or(expiration);
        sqlx::query(
            "INSERT INTO webhook_subscriptions (mailbox_id, subscription_id, resource, expires_at, created_at, renewals)
             VALUES (?, ?, ?, ?, ?, 0)
             ON CONFLICT(mailbox_id) DO UPDATE SET subscription_id = excluded.subscription_id,
               resource = excluded.resource, expires_at = excluded.expires_at,
               created_at = excluded.created_at, last_notification_at = NULL, renewals = 0",
        )
        .bind(mailbox_id)
        .bind(&created.id)
        .bind(&resource)
        .bind(ts(expires_at))
        .bind(ts(now))
        .execute(self.inner.store.pool())
        .await?;
        self.inner
            .client_states
            .lock()
            .expect("client states lock")
            .insert(
                mailbox_id.into(),
                (created.id.clone(), SecretValue::new(state)),
            );
        self.subscription(mailbox_id)
            .await?
            .ok_or_else(|| WebhookError::NoSubscription(mailbox_id.into()))
    }

    /// The mailbox's stored subscription, if any.
    pub async fn subscription(
        &self,
        mailbox_id: &str,
    ) -> Result<Option<SubscriptionRecord>, WebhookError> {
        let row = sqlx::query(
            "SELECT mailbox_id, subscription_id, resource, expires_at, created_at, last_notification_at, renewals
             FROM webhook_subscriptions WHERE mailbox_id = ?",
        )
        .bind(mailbox_id)
        .fetch_optional(self.inner.store.pool())
        .await?;
        row.map(|r| {
            Ok(SubscriptionRecord {
                mailbox_id: r.get("mailbox_id"),
                subscription_id: r.get("subscription_id"),
                resource: r.get("resource"),
                expires_at: parse_time(&r.get::<String, _>("expires_at"))?,
                created_at: parse_time(&r.get::<String, _>("created_at"))?,
                last_notification_at: parse_time_opt(r.get("last_notification_at"))?,
                renewals: r.get("renewals"),
            })
        })
        .transpose()
    }

    /// Cancels the mailbox's subscription: deletes it at Graph (a subscription Graph no longer
    /// knows is fine), then locally, with its clientState secret.
    pub async fn cancel_subscription(&self, mailbox_id: &str) -> Result<(), WebhookError> {
        let record = self
            .subscription(mailbox_id)
            .await?
            .ok_or_else(|| WebhookError::NoSubscription(mailbox_id.into()))?;
        if let Ok((_, graph)) = self.graph_of(mailbox_id) {
            match graph.delete_subscription(&record.subscription_id).await {
                Ok(()) => {}
                Err(e) if e.kind == mailroom_graph::GraphErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        sqlx::query("DELETE FROM webhook_subscriptions WHERE mailbox_id = ?")
            .bind(mailbox_id)
            .execute(self.inner.store.pool())
            .await?;
        self.inner
            .client_states
            .lock()
            .expect("client states lock")
            .remove(mailbox_id);
        let secrets = self.inner.secrets.clone();
        let key = SecretKey::new(mailbox_id, SecretKind::ClientState);
        let _ = tokio::task::spawn_blocking(move || secrets.delete(&key)).await;
        self.record_event(
            mailbox_id,
            "cancelled",
            &format!("subscription {}", record.subscription_id),
        )
        .await;
        Ok(())
    }

    /// Renews the mailbox's subscription when it expires within `renew_before` of the clock's
    /// now. Returns whether it renewed.
    pub async fn renew_if_due(&self, mailbox_id: &str) -> Result<bool, WebhookError> {
        let Some(record) = self.subscription(mailbox_id).await? else {
            return Ok(false);
        };
        if record.expires_at - self.now() > self.inner.options.renew_before {
            return Ok(false);
        }
        self.renew(mailbox_id, &record).await?;
        Ok(true)
    }

    /// Renews every registered mailbox's subscription that is due (the periodic check).
    pub async fn renew_due(&self) -> Vec<(String, Result<bool, WebhookError>)> {
        let ids: Vec<String> = self
            .inner
            .mailboxes
            .lock()
            .expect("mailboxes lock")
            .keys()
            .cloned()
            .collect();
        let mut out = Vec::new();
        for id in ids {
            let result = self.renew_if_due(&id).await;
            out.push((id, result));
        }
        out
    }

    async fn renew(
        &self,
        mailbox_id: &str,
        record: &SubscriptionRecord,
    ) -> Result<SubscriptionRecord, WebhookError> {
        let (_, graph) = self.graph_of(mailbox_id)?;
        let wanted =
            self.now() + chrono::Duration::minutes(self.inner.options.max_lifetime_minutes);
        let renewed = match graph
            .renew_subscription(&record.subscription_id, wanted)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.record_event(mailbox_id, "failed", &format!("renew: {e}"))
                    .await;
                return Err(e.into());
            }
        };
        let expires_at = renewed.expiration_date_time.unwrap_or(wanted);
        sqlx::query(
            "UPDATE webhook_subscriptions SET expires_at = ?, renewals = renewals + 1 WHERE mailbox_id = ?",
        )
        .bind(ts(expires_at))
        .bind(mailbox_id)
        .execute(self.inner.store.pool())
        .await?;
        self.record_event(
            mailbox_id,
            "renewed",
            &format!(
                "subscription {} until {}",
                record.subscription_id,
                ts(expires_at)
            ),
        )
        .await;
        self.subscription(mailbox_id)
            .await?
            .ok_or_else(|| WebhookError::NoSubscription(mailbox_id.into()))
    }

    /// The mailbox's subscription log, oldest first.
    pub async fn events(&self, mailbox_id: &str) -> Result<Vec<SubscriptionEvent>, WebhookError> {
        let rows = sqlx::query(
            "SELECT id, mailbox_id, at, kind, detail FROM webhook_events WHERE mailbox_id = ? ORDER BY id",
        )
        .bind(mailbox_id)
        .fetch_all(self.inner.store.pool())
        .await?;
        event_rows(rows)
    }

    /// Notifications persisted for a mailbox, oldest first.
    pub async fn notifications(
        &self,
        mailbox_id: &str,
    ) -> Result<Vec<StoredNotification>, WebhookError> {
        self.notifications_where(mailbox_id, false).await
    }

    async fn pending_notifications(
        &self,
        mailbox_id: &str,
    ) -> Result<Vec<StoredNotification>, WebhookError> {
        self.notifications_where(mailbox_id, true).await
    }

    async fn notifications_where(
        &self,
        mailbox_id: &str,
        pending_only: bool,
    ) -> Result<Vec<StoredNotification>, WebhookError> {
        let sql = if pending_only {
            "SELECT * FROM webhook_notifications WHERE mailbox_id = ? AND processed_at IS NULL ORDER BY id"
        } else {
            "SELECT * FROM webhook_notifications WHERE mailbox_id = ? ORDER BY id"
        };
        let rows = sqlx::query(sql)
            .bind(mailbox_id)
            .fetch_all(self.inner.store.pool())
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredNotification {
                    id: r.get("id"),
                    mailbox_id: r.get("mailbox_id"),
                    subscription_id: r.get("subscription_id"),
                    kind: r.get("kind"),
                    resource: r.get("resource"),
                    received_at: parse_time(&r.get::<String, _>("received_at"))?,
                    processed_at: parse_time_opt(r.get("processed_at"))?,
                })
            })
            .collect()
    }

    async fn record_event(&self, mailbox_id: &str, kind: &str, detail: &str) {
        match kind {
            "rejected" | "failed" => tracing::warn!(mailbox_id, kind, "webhook: {detail}"),
            _ => tracing::info!(mailbox_id, kind, "webhook: {detail}"),
        }
        let result = sqlx::query(
            "INSERT INTO webhook_events (mailbox_id, at, kind, detail) VALUES (?, ?, ?, ?)",
        )
        .bind(mailbox_id)
        .bind(ts(self.now()))
        .bind(kind)
        .bind(detail)
        .execute(self.inner.store.pool())
        .await;
        if let Err(e) = result {
            tracing::warn!("cannot record a webhook event: {e}");
        }
    }

    /// The expected (subscription id, clientState) of a mailbox: memory, else store + keyring.
    async fn expected_state(&self, mailbox_id: &str) -> Option<(String, SecretValue)> {
        if let Some(hit) = self
            .inner
            .client_states
            .lock()
            .expect("client states lock")
            .get(mailbox_id)
            .cloned()
        {
            return Some(hit);
        }
        let record = self.subscription(mailbox_id).await.ok()??;
        let value = self
            .inner
            .secrets
            .get_async(SecretKey::new(mailbox_id, SecretKind::ClientState))
            .await
            .ok()??;
        let entry = (record.subscription_id, value);
        self.inner
            .client_states
            .lock()
            .expect("client states lock")
            .insert(mailbox_id.into(), entry.clone());
        Some(entry)
    }

    /// Validates and persists a posted notification batch; returns the HTTP response.
    async fn receive(&self, mailbox_id: &str, lifecycle: bool, body: &[u8]) -> Response {
        let route = if lifecycle { "lifecycle" } else { "notify" };
        let parsed: NotificationBody = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(
                    mailbox_id,
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
        let expected = self.expected_state(mailbox_id).await;
        let now = self.now();
        let mut accepted = 0usize;
        for item in parsed.value {
            let reason = match &expected {
                None => Some("the mailbox has no subscription".to_string()),
                Some((sub, _)) if *sub != item.subscription_id => Some(format!(
                    "unknown subscription {} (expected {sub})",
                    item.subscription_id
                )),
                Some((_, state)) if item.client_state.as_deref() != Some(state.expose()) => {
                    Some(format!(
                        "clientState does not match subscription {}",
                        item.subscription_id
                    ))
                }
                Some(_) => None,
            };
            if let Some(reason) = reason {
                if expected.is_some() {
                    self.record_event(mailbox_id, "rejected", &format!("{route}: {reason}"))
                        .await;
                } else {
                    // Not a subscribed mailbox (or a made-up id): log only, so that posts to
                    // arbitrary URLs cannot fill the event table.
                    tracing::warn!(mailbox_id, route, "webhook: notification dropped: {reason}");
                }
                continue;
            }
            let kind = if lifecycle {
                match item.lifecycle_event.as_deref() {
                    Some(e @ ("reauthorizationRequired" | "subscriptionRemoved" | "missed")) => {
                        e.to_string()
                    }
                    other => {
                        tracing::warn!(mailbox_id, "webhook: unknown lifecycle event {other:?}");
                        continue;
                    }
                }
            } else {
                item.change_type.clone().unwrap_or_else(|| "created".into())
            };
            let row = sqlx::query(
                "INSERT INTO webhook_notifications (mailbox_id, subscription_id, kind, resource, received_at)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(mailbox_id)
            .bind(&item.subscription_id)
            .bind(&kind)
            .bind(&item.resource)
            .bind(ts(now))
            .execute(self.inner.store.pool())
            .await;
            let row = match row {
                Ok(r) => r.last_insert_rowid(),
                Err(e) => {
                    // Ask Graph to retry: nothing was persisted.
                    tracing::error!(mailbox_id, "webhook: cannot persist a notification: {e}");
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
            };
            let _ = sqlx::query(
                "UPDATE webhook_subscriptions SET last_notification_at = ? WHERE mailbox_id = ?",
            )
            .bind(ts(now))
            .bind(mailbox_id)
            .execute(self.inner.store.pool())
            .await;
            accepted += 1;
            let _ = self.inner.work.send(Work::Notification {
                mailbox_id: mailbox_id.into(),
                row,
            });
        }
        tracing::debug!(
            mailbox_id,
            route,
            accepted,
            "webhook: notifications received"
        );
        StatusCode::ACCEPTED.into_response()
    }

    /// The engine side: handles persisted notifications and renews subscriptions periodically.
    async fn upkeep(self, mut work: mpsc::UnboundedReceiver<Work>) {
        let mut check = tokio::time::interval(self.inner.options.renew_check_every);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.inner.cancel.cancelled() => break,
                item = work.recv() => match item {
                    None => break,
                    Some(first) => {
                        // Coalesce what is queued: one scan per mailbox per batch.
                        let mut batch = vec![first];
                        while let Ok(more) = work.try_recv() {
                            batch.push(more);
                        }
                        self.handle(batch).await;
                    }
                },
                _ = check.tick() => {
                    for (id, result) in self.renew_due().await {
                        if let Err(e) = result {
                            tracing::warn!(mailbox_id = %id, "webhook: renewal failed: {e}");
                        }
                    }
                }
            }
        }
    }

    async fn handle(&self, batch: Vec<Work>) {
        let Some(supervisor) = self.inner.supervisor.clone() else {
            // No engine: the notifications stay pending for the next run.
            return;
        };
        let mut scan: Vec<String> = Vec::new();
        let mut rows: Vec<i64> = Vec::new();
        for Work::Notification { mailbox_id, row } in batch {
            rows.push(row);
            let kind: Option<String> =
                sqlx::query_scalar("SELECT kind FROM webhook_notifications WHERE id = ?")
                    .bind(row)
                    .fetch_optional(self.inner.store.pool())
                    .await
                    .ok()
                    .flatten();
            let Some(kind) = kind else { continue };
            match kind.as_str() {
                "reauthorizationRequired" => self.on_reauthorization(&mailbox_id).await,
                "subscriptionRemoved" => {
                    self.on_removed(&mailbox_id).await;
                    push_unique(&mut scan, &mailbox_id);
                }
                "missed" => {
                    self.record_event(&mailbox_id, "resync", "missed notifications: delta resync")
                        .await;
                    push_unique(&mut scan, &mailbox_id);
                }
                _ => push_unique(&mut scan, &mailbox_id),
            }
        }
        for mailbox_id in scan {
            if let Err(e) = self.renew_if_due(&mailbox_id).await {
                tracing::warn!(mailbox_id, "webhook: renewal failed: {e}");
            }
            if !supervisor
                .send(&mailbox_id, MailboxCommand::ScanNow(None))
                .await
            {
                tracing::warn!(mailbox_id, "webhook: the mailbox has no sync task");
            }
        }
        let now = ts(self.now());
        for row in rows {
            let _ = sqlx::query("UPDATE webhook_notifications SET processed_at = ? WHERE id = ?")
                .bind(&now)
                .bind(row)
                .execute(self.inner.store.pool())
                .await;
        }
    }

    async fn on_reauthorization(&self, mailbox_id: &str) {
        let Ok(Some(record)) = self.subscription(mailbox_id).await else {
            return;
        };
        let Ok((_, graph)) = self.graph_of(mailbox_id) else {
            return;
        };
        match graph
            .reauthorize_subscription(&record.subscription_id)
            .await
        {
            Ok(()) => {
                self.record_event(
                    mailbox_id,
                    "reauthorized",
                    &format!("subscription {}", record.subscription_id),
                )
                .await;
                if let Err(e) = self.renew(mailbox_id, &record).await {
                    tracing::warn!(
                        mailbox_id,
                        "webhook: renewal after reauthorization failed: {e}"
                    );
                }
            }
            Err(e) => {
                self.record_event(mailbox_id, "failed", &format!("reauthorize: {e}"))
                    .await;
            }
        }
    }

    async fn on_removed(&self, mailbox_id: &str) {
        let Ok((_, graph)) = self.graph_of(mailbox_id) else {
            return;
        };
        match self.create_inner(mailbox_id, &graph).await {
            Ok(record) => {
                self.record_event(
                    mailbox_id,
                    "recreated",
                    &format!(
                        "subscription removed by Microsoft 365; new subscription {} until {}",
                        record.subscription_id,
                        ts(record.expires_at)
                    ),
                )
                .await
            }
            Err(e) => tracing::warn!(
                mailbox_id,
                "webhook: recreating the subscription failed: {e}"
            ),
        }
    }

    /// Stops the receiver and the upkeep task.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
    }
}

fn push_unique(list: &mut Vec<String>, id: &str) {
    if !list.iter().any(|x| x == id) {
        list.push(id.to_string());
    }
}

#[derive(Debug, Deserialize)]
struct HandshakeQuery {
    #[serde(rename = "validationToken")]
    validation_token: Option<String>,
}

fn handshake(token: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        token,
    )
        .into_response()
}

async fn route(
    webhooks: Webhooks,
    mailbox_id: String,
    query: Result<Query<HandshakeQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
    lifecycle: bool,
) -> Response {
    if let Ok(Query(HandshakeQuery {
        validation_token: Some(token),
    })) = query
    {
        return handshake(token);
    }
    match body {
        Ok(bytes) => webhooks.receive(&mailbox_id, lifecycle, &bytes).await,
        Err(e) => {
            tracing::warn!(mailbox_id, "webhook: request body rejected: {e}");
            (
                StatusCode::BAD_REQUEST,
                format!("request body rejected: {e}"),
            )
                .into_response()
        }
    }
}

async fn notify(
    State(webhooks): State<Webhooks>,
    Path(mailbox_id): Path<String>,
    query: Result<Query<HandshakeQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    route(webhooks, mailbox_id, query, body, false).await
}

async fn lifecycle(
    State(webhooks): State<Webhooks>,
    Path(mailbox_id): Path<String>,
    query: Result<Query<HandshakeQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    route(webhooks, mailbox_id, query, body, true).await
}
