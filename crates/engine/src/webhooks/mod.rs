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

mod receiver;
mod subscriptions;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailroom_clock::SharedClock;
use mailroom_graph::{GraphClient, GraphError};
use mailroom_secrets::{SecretKey, SecretKind, SecretValue, Secrets};
use mailroom_store::inbound::ts;
use mailroom_store::{Mailbox, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::sync::{MailboxCommand, SyncSupervisor};

pub use mailroom_store::webhooks::{
    NotificationKind, StoredNotification, SubscriptionEvent, SubscriptionEventKind,
    SubscriptionRecord,
};

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
    /// A connection that has not sent a complete request head within this is closed.
    pub header_read_timeout: Duration,
    /// A request whose body has not fully arrived within this is answered `408` and its
    /// connection closed.
    pub body_read_timeout: Duration,
    /// Connections served at once; further connections wait in the listen backlog.
    pub max_connections: usize,
    /// Accepted notifications queued for the engine; when full the receiver answers `503`
    /// with `Retry-After` (Graph retries) and counts the drop.
    pub queue_capacity: usize,
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
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 64,
            queue_capacity: 1024,
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
        let store = self.store();
        let subscription_id = match store.webhook_subscription(&mailbox.id).await {
            Ok(Some(record)) => record.subscription_id,
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
                SubscriptionEventKind::Cancelled,
                format!("subscription {subscription_id} (mailbox disconnected)"),
            ),
            Err(e) => {
                tracing::warn!(mailbox = %mailbox.name, "disconnect: cannot delete subscription {subscription_id} at Graph: {e}");
                (
                    SubscriptionEventKind::Failed,
                    format!("disconnect: subscription {subscription_id} could not be deleted at Graph ({e}); it expires on its own"),
                )
            }
        };
        if let Err(e) = store.delete_webhook_subscription(&mailbox.id).await {
            tracing::warn!(mailbox = %mailbox.name, "disconnect: cannot forget the webhook subscription: {e}");
        }
        delete_client_state(self.secrets(), &mailbox.id).await;
        tracing::info!(mailbox = %mailbox.name, %kind, "webhook: {detail}");
        if let Err(e) = store
            .record_webhook_event(&mailbox.id, kind, &detail, Utc::now())
            .await
        {
            tracing::warn!(mailbox = %mailbox.name, "cannot record a webhook event ({kind}: {detail}): {e}");
        }
    }

    /// The most recent subscription events of every mailbox (newest first, at most `limit`),
    /// for the Monitoring view. Works whether or not the receiver runs.
    pub async fn subscription_events_all(
        &self,
        limit: u32,
    ) -> Result<Vec<SubscriptionEvent>, crate::CoreError> {
        Ok(self.store().webhook_events_all(limit).await?)
    }
}

/// Deletes a mailbox's clientState secret; a failure is logged (the secret is unused once the
/// subscription is gone, and a new subscription overwrites it).
async fn delete_client_state(secrets: &Secrets, mailbox_id: &str) {
    let secrets = secrets.clone();
    let key = SecretKey::new(mailbox_id, SecretKind::ClientState);
    if let Err(e) = secrets.delete(&key).await {
        tracing::warn!(
            mailbox_id,
            "webhook: cannot delete the clientState secret: {e}"
        );
    }
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
    /// The mailbox (named by its name and address) is not registered with the webhook service
    /// (not connected).
    #[error("{0} is not connected for webhooks; connect it first")]
    NotRegistered(String),
    /// The mailbox (named by its name and address) has no subscription.
    #[error("{0} has no subscription; create one first")]
    NoSubscription(String),
    /// Graph refused a subscription call.
    #[error("Microsoft Graph refused the subscription request: {0}. Check that the notification URL is reachable from the internet over HTTPS and that the app has Mail.Read (application) consented.")]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Store(#[from] mailroom_store::StoreError),
    #[error(transparent)]
    Secrets(#[from] mailroom_secrets::SecretsError),
    /// A console manages subscriptions for the service's workers, which Graph reaches at the
    /// public base URL: without one there is nowhere to point Graph.
    #[error("Graph reaches the Mailroom service's workers, not this console: set the webhook receiver's public base URL (Monitoring > Webhook receiver) to the HTTPS URL that reaches them first")]
    NoPublicUrl,
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
    /// notifications are persisted and stay pending until an engine runs. Replaced when the
    /// engine rebuilds its pipeline ([`Webhooks::set_supervisor`]).
    supervisor: Mutex<Option<Arc<SyncSupervisor>>>,
    local_addr: SocketAddr,
    base_url: Url,
    /// mailbox id → (subscription id, clientState).
    client_states: Mutex<HashMap<String, (String, SecretValue)>>,
    /// mailbox id → (mailbox, Graph client).
    mailboxes: Mutex<HashMap<String, (Mailbox, GraphClient)>>,
    /// The bounded queue of accepted notifications, drained by the upkeep task.
    work: mpsc::Sender<Work>,
    /// Notifications refused with `503` because the queue was full.
    dropped: AtomicU64,
    /// One permit per connection being served.
    connections: Arc<tokio::sync::Semaphore>,
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
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let connections = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
        let cancel = CancellationToken::new();
        let webhooks = Webhooks {
            inner: Arc::new(Inner {
                options: options.clone(),
                store,
                secrets,
                clock,
                supervisor: Mutex::new(supervisor),
                local_addr,
                base_url,
                client_states: Mutex::new(HashMap::new()),
                mailboxes: Mutex::new(HashMap::new()),
                work: tx,
                dropped: AtomicU64::new(0),
                connections: connections.clone(),
                cancel: cancel.clone(),
            }),
        };
        receiver::serve(
            listener,
            receiver::router(webhooks.clone()),
            &options,
            connections,
            cancel.clone(),
        );
        tokio::spawn(webhooks.clone().upkeep(rx));
        tracing::info!(%local_addr, base = %webhooks.inner.base_url, "webhook receiver listening");
        Ok(webhooks)
    }

    /// Subscription management without a receiver: the desktop console of a shared database,
    /// whose workers receive Graph's notifications at the public base URL. Nothing is served,
    /// handled or renewed here (the workers do that); mailboxes are added with
    /// [`Webhooks::add_mailbox`] so that their subscriptions can be created and cancelled.
    pub fn console(
        options: WebhookOptions,
        store: Store,
        secrets: Secrets,
        clock: SharedClock,
    ) -> Result<Self, WebhookError> {
        let base_url = options
            .public_base_url
            .clone()
            .ok_or(WebhookError::NoPublicUrl)?;
        // No queue: nothing is received here.
        let (work, _) = mpsc::channel(1);
        Ok(Webhooks {
            inner: Arc::new(Inner {
                options: options.clone(),
                store,
                secrets,
                clock,
                supervisor: Mutex::new(None),
                local_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                base_url,
                client_states: Mutex::new(HashMap::new()),
                mailboxes: Mutex::new(HashMap::new()),
                work,
                dropped: AtomicU64::new(0),
                connections: Arc::new(tokio::sync::Semaphore::new(1)),
                cancel: CancellationToken::new(),
            }),
        })
    }

    /// The sync supervisor notifications are handed to.
    pub(crate) fn supervisor(&self) -> Option<Arc<SyncSupervisor>> {
        self.inner
            .supervisor
            .lock()
            .expect("supervisor lock")
            .clone()
    }

    /// Hands notifications to `supervisor` from now on (the engine rebuilt its pipeline; the
    /// receiver keeps its address). Mailboxes are added again to start their tasks there.
    pub(crate) fn set_supervisor(&self, supervisor: Arc<SyncSupervisor>) {
        *self.inner.supervisor.lock().expect("supervisor lock") = Some(supervisor);
    }

    /// Notifications refused with `503` because the queue was full, since the start.
    pub fn dropped_notifications(&self) -> u64 {
        self.inner
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Connections being served now (at most `max_connections`).
    pub fn open_connections(&self) -> usize {
        self.inner.options.max_connections.max(1) - self.inner.connections.available_permits()
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
        if let Some(supervisor) = self.supervisor() {
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
        match self.inner.store.webhook_notifications(&id, true).await {
            Ok(pending) => {
                for n in pending {
                    // Waits for room in the queue; fails only once the service stopped.
                    let sent = self
                        .inner
                        .work
                        .send(Work::Notification {
                            mailbox_id: id.clone(),
                            row: n.id,
                        })
                        .await;
                    if sent.is_err() {
                        break;
                    }
                }
            }
            Err(e) => tracing::warn!(
                mailbox = %self.label(&id),
                "webhook: cannot read the notifications left pending: {e}; they are handled at the next start"
            ),
        }
    }

    /// Whether the mailbox was added ([`Webhooks::add_mailbox`]) and not removed since.
    pub fn has_mailbox(&self, mailbox_id: &str) -> bool {
        self.inner
            .mailboxes
            .lock()
            .expect("mailboxes lock")
            .contains_key(mailbox_id)
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

    async fn graph_of(&self, mailbox_id: &str) -> Result<(Mailbox, GraphClient), WebhookError> {
        let registered = self
            .inner
            .mailboxes
            .lock()
            .expect("mailboxes lock")
            .get(mailbox_id)
            .cloned();
        match registered {
            Some(entry) => Ok(entry),
            None => Err(WebhookError::NotRegistered(
                self.stored_label(mailbox_id).await,
            )),
        }
    }

    /// How logs and errors name a registered mailbox: its name and address (its id only when
    /// it is not registered).
    pub(crate) fn label(&self, mailbox_id: impl AsRef<str>) -> String {
        let mailbox_id = mailbox_id.as_ref();
        self.inner
            .mailboxes
            .lock()
            .expect("mailboxes lock")
            .get(mailbox_id)
            .map(|(mailbox, _)| crate::mailboxes::label(mailbox))
            .unwrap_or_else(|| format!("mailbox {mailbox_id}"))
    }

    /// [`Webhooks::label`] of any mailbox in the store.
    async fn stored_label(&self, mailbox_id: &str) -> String {
        match self.inner.store.mailbox(mailbox_id).await {
            Ok(mailbox) => crate::mailboxes::label(&mailbox),
            Err(_) => self.label(mailbox_id),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The engine side: handles persisted notifications and renews subscriptions periodically.
    async fn upkeep(self, mut work: mpsc::Receiver<Work>) {
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
                            tracing::warn!(mailbox = %self.label(&id), "webhook: renewal failed: {e}");
                            self.publish_failure(&id, format!("renew: {e}"));
                        }
                    }
                }
            }
        }
    }

    async fn handle(&self, batch: Vec<Work>) {
        let Some(supervisor) = self.supervisor() else {
            // No engine: the notifications stay pending for the next run.
            return;
        };
        let mut scan: Vec<String> = Vec::new();
        let mut rows: Vec<i64> = Vec::new();
        for Work::Notification { mailbox_id, row } in batch {
            rows.push(row);
            let kind = match self.inner.store.webhook_notification(row).await {
                Ok(Some(n)) => n.kind,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(
                        mailbox = %self.label(&mailbox_id),
                        "webhook: cannot read notification {row}: {e}; scanning anyway"
                    );
                    NotificationKind::Created
                }
            };
            match kind {
                NotificationKind::ReauthorizationRequired => {
                    self.on_reauthorization(&mailbox_id).await
                }
                NotificationKind::SubscriptionRemoved => {
                    self.on_removed(&mailbox_id).await;
                    push_unique(&mut scan, &mailbox_id);
                }
                NotificationKind::Missed => {
                    self.record_event(
                        &mailbox_id,
                        SubscriptionEventKind::Resync,
                        "missed notifications: delta resync",
                    )
                    .await;
                    push_unique(&mut scan, &mailbox_id);
                }
                NotificationKind::Created
                | NotificationKind::Updated
                | NotificationKind::Deleted => push_unique(&mut scan, &mailbox_id),
            }
        }
        for mailbox_id in scan {
            if let Err(e) = self.renew_if_due(&mailbox_id).await {
                tracing::warn!(mailbox = %self.label(&mailbox_id), "webhook: renewal failed: {e}");
                self.publish_failure(&mailbox_id, format!("renew: {e}"));
            }
            if !supervisor
                .send(&mailbox_id, MailboxCommand::ScanNow(None))
                .await
            {
                tracing::warn!(mailbox = %self.label(&mailbox_id), "webhook: the mailbox has no sync task");
            }
        }
        if let Err(e) = self
            .inner
            .store
            .mark_webhook_notifications_processed(&rows, self.now())
            .await
        {
            // They stay pending and are handled again at the next start (harmless: a scan).
            tracing::warn!(
                "webhook: cannot mark {} notifications processed: {e}",
                rows.len()
            );
        }
    }

    async fn on_reauthorization(&self, mailbox_id: &str) {
        let Ok(Some(record)) = self.subscription(mailbox_id).await else {
            return;
        };
        let Ok((_, graph)) = self.graph_of(mailbox_id).await else {
            return;
        };
        match graph
            .reauthorize_subscription(&record.subscription_id)
            .await
        {
            Ok(()) => {
                self.record_event(
                    mailbox_id,
                    SubscriptionEventKind::Reauthorized,
                    &format!("subscription {}", record.subscription_id),
                )
                .await;
                if let Err(e) = self.renew(mailbox_id, &record).await {
                    tracing::warn!(
                        mailbox = %self.label(mailbox_id),
                        "webhook: renewal after reauthorization failed: {e}"
                    );
                }
            }
            Err(e) => {
                self.record_event(
                    mailbox_id,
                    SubscriptionEventKind::Failed,
                    &format!("reauthorize: {e}"),
                )
                .await;
                self.publish_failure(mailbox_id, format!("reauthorize: {e}"));
            }
        }
    }

    async fn on_removed(&self, mailbox_id: &str) {
        let Ok((_, graph)) = self.graph_of(mailbox_id).await else {
            return;
        };
        match self.create_inner(mailbox_id, &graph).await {
            Ok(record) => {
                self.record_event(
                    mailbox_id,
                    SubscriptionEventKind::Recreated,
                    &format!(
                        "subscription removed by Microsoft 365; new subscription {} until {}",
                        record.subscription_id,
                        ts(record.expires_at)
                    ),
                )
                .await
            }
            // create_inner logged the failure.
            Err(e) => self.publish_failure(
                mailbox_id,
                format!("recreate after Microsoft 365 removed it: {e}"),
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
