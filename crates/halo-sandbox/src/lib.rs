//! A faithful, stateful local emulation of the HaloPSA REST API.
//!
//! Mailroom's tests, benchmarks and `mailroom sandbox` talk to this instead of a real Halo
//! tenant. It follows `shared/reference/halopsa-api.md` (§1 auth, §2 REST conventions, §3
//! resources, §4 webhooks, §8 checklist) and Halo's own OpenAPI document:
//!
//! * **Auth** — `POST /auth/token` and `POST /token?tenant=` (form-encoded client
//!   credentials, RFC 6749 error bodies), `GET /api/authinfo`, bearer tokens that expire on
//!   the injected [`SharedClock`], permissions (`all`, `admin`, `read:`/`edit:` areas)
//!   enforced per resource with 403.
//! * **REST** — resource names are case-insensitive; `POST` takes an array or one object
//!   (an object with an existing `id` updates it); a one-element POST answers with the bare
//!   object (201 for Actions); paged lists answer `{page_no, page_size, record_count,
//!   <plural>}` and lookups bare arrays.
//! * **Server-side rules** — sequential ticket ids from a seeded start, dates from the clock,
//!   client/site/user/status names filled from ids, per-ticket action ids, outcome required on
//!   actions, status changes via actions/outcomes, attachment sizes.
//! * **Rate limit** — rolling window per client id, 429 with Halo's plain-text message.
//! * **Webhooks** — `/Webhook` + `/Notification` subscriptions fire on ticket/action events,
//!   optionally signed with an uploaded certificate (RSA-SHA256), and every delivery is
//!   recorded as a `WebhookEvent`.
//!
//! Invariants: every JSON record the sandbox returns contains only properties declared by its
//! OpenAPI component schema, typed as declared (ids the spec types `number` are emitted as
//! floats, e.g. `Users.site_id`); all time comes from the clock; secrets never appear in
//! `Debug` output or logs. Facts the reference marks unconfirmed are switches in
//! [`HaloBehaviour`] with the documented default.

mod agent_page;
mod certs;
mod error;
mod http;
mod res;
mod schema;
#[allow(clippy::all)]
mod schema_tables;
mod seed;
mod state;
mod webhook;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use mailroom_clock::SharedClock;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use agent_page::TabParameter;
pub use certs::CertificateError;
pub use seed::{
    HaloBehaviour, HaloSeed, PostAnswer, RateLimit, SeedApplication, SeedCertificate,
    SignatureConfig, SignatureEncoding, SignaturePadding, WebhookEvents,
};
pub use webhook::WebhookDelivery;

use res::Res;
use state::State;

/// A seed that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// A seeded record failed the same validation an API POST would apply.
    #[error("the seeded {resource} record is invalid: {detail}; fix the seed file")]
    Record {
        /// Resource name (`Users`, `Site`, …).
        resource: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// The credentials of the seeded API application.
#[derive(Clone, PartialEq, Eq)]
pub struct HaloCredentials {
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Hosted tenant name (`/token?tenant=`).
    pub tenant: String,
}

impl std::fmt::Debug for HaloCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaloCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("tenant", &self.tenant)
            .finish()
    }
}

pub(crate) struct Inner {
    pub clock: SharedClock,
    pub state: Mutex<State>,
    pub http: reqwest::Client,
    pub pending: Mutex<Vec<JoinHandle<()>>>,
    pub id_token_key: [u8; 32],
    pub credentials: HaloCredentials,
    /// Iframe secrets of the custom tabs whose *Send secure URL parameter* is on, by tab id.
    pub tab_secrets: Mutex<std::collections::HashMap<i64, String>>,
}

/// The emulated PSA. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct HaloSandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HaloSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaloSandbox")
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

pub(crate) fn spawn_deliveries(inner: &Arc<Inner>, jobs: Vec<webhook::Job>) {
    if jobs.is_empty() {
        return;
    }
    let mut pending = inner.pending.lock().expect("halo sandbox pending lock");
    pending.retain(|h| !h.is_finished());
    for job in jobs {
        pending.push(tokio::spawn(webhook::deliver(inner.clone(), job)));
    }
}

impl HaloSandbox {
    /// Builds the sandbox from `seed`.
    ///
    /// # Panics
    /// When the seed is invalid; use [`HaloSandbox::try_new`] for seeds read from files.
    pub fn new(seed: HaloSeed, clock: SharedClock) -> Self {
        Self::try_new(seed, clock).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Builds the sandbox from `seed`, reporting invalid seed records.
    pub fn try_new(seed: HaloSeed, clock: SharedClock) -> Result<Self, SeedError> {
        let app = seed.applications.first().cloned().unwrap_or_default();
        let credentials = HaloCredentials {
            client_id: app.client_id,
            client_secret: app.client_secret,
            tenant: seed.tenant.clone(),
        };
        let state = State::new(seed, clock.now())?;
        let http = reqwest::Client::builder()
            .user_agent("HaloPSA-Webhook (mailroom sandbox)")
            .build()
            .unwrap_or_default();
        Ok(Self {
            inner: Arc::new(Inner {
                clock,
                state: Mutex::new(state),
                http,
                pending: Mutex::new(Vec::new()),
                id_token_key: rand::random(),
                credentials,
                tab_secrets: Mutex::new(std::collections::HashMap::new()),
            }),
        })
    }

    /// The axum router: `/auth/token`, `/token?tenant=`, `/api/...`.
    pub fn router(&self) -> axum::Router {
        http::router(self.inner.clone())
    }

    /// Turns on *Send secure URL parameter* for custom tab `tab_id` and answers its Iframe
    /// secret, as HaloPSA's tab screen shows it (its API has no field for either).
    pub fn enable_secure_url(&self, tab_id: i64) -> Option<String> {
        let exists = self.state().records[&Res::Tabs]
            .iter()
            .any(|t| crate::state::int(t, "id") == Some(tab_id));
        if !exists {
            return None;
        }
        let secret: String = {
            use rand::Rng as _;
            rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect()
        };
        self.inner
            .tab_secrets
            .lock()
            .expect("tab secrets lock")
            .insert(tab_id, secret.clone());
        Some(secret)
    }

    /// Custom tabs (`Tabs`).
    pub fn tabs(&self) -> Vec<Value> {
        self.snapshot(Res::Tabs)
    }

    /// Credentials of the seeded API application.
    pub fn credentials(&self) -> HaloCredentials {
        self.inner.credentials.clone()
    }

    fn snapshot(&self, res: Res) -> Vec<Value> {
        let state = self.state();
        state.records[&res]
            .iter()
            .map(|r| state.present(res, r, true))
            .collect()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("halo sandbox state lock")
    }

    /// All tickets, as `GET /Tickets/{id}` would return them.
    pub fn tickets(&self) -> Vec<Value> {
        self.snapshot(Res::Tickets)
    }

    /// All actions of all tickets.
    pub fn actions(&self) -> Vec<Value> {
        self.snapshot(Res::Actions)
    }

    /// All end users.
    pub fn users(&self) -> Vec<Value> {
        self.snapshot(Res::Users)
    }

    /// All clients (`Area`).
    pub fn clients(&self) -> Vec<Value> {
        self.snapshot(Res::Client)
    }

    /// All sites.
    pub fn sites(&self) -> Vec<Value> {
        self.snapshot(Res::Site)
    }

    /// All attachments, including `data_base64`.
    pub fn attachments(&self) -> Vec<Value> {
        self.snapshot(Res::Attachment)
    }

    /// The stored bytes of attachment `id`.
    pub fn attachment_data(&self, id: i64) -> Option<Vec<u8>> {
        self.state().attachment_bytes.get(&id).cloned()
    }

    /// Sets (or with `None` removes) the per-client rolling-window rate limit.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut state = self.state();
        state.behaviour.rate_limit = limit;
        state.windows.clear();
    }

    /// Sets the lifetime of tokens issued from now on, in seconds.
    pub fn set_token_lifetime(&self, secs: i64) {
        self.state().behaviour.token_lifetime_secs = secs;
    }

    /// The current behaviour switches.
    pub fn behaviour(&self) -> HaloBehaviour {
        self.state().behaviour.clone()
    }

    /// Changes behaviour switches at run time (e.g. the webhook signature format).
    pub fn update_behaviour(&self, change: impl FnOnce(&mut HaloBehaviour)) {
        change(&mut self.state().behaviour);
    }

    /// Invalidates every issued access token (as a secret rotation would).
    pub fn revoke_tokens(&self) {
        self.state().tokens.clear();
    }

    /// Every webhook delivery attempted so far, oldest first.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.state().deliveries.clone()
    }

    /// Waits until every webhook delivery queued so far has been attempted and recorded.
    pub async fn flush_webhooks(&self) {
        loop {
            let handles: Vec<JoinHandle<()>> = std::mem::take(
                &mut *self
                    .inner
                    .pending
                    .lock()
                    .expect("halo sandbox pending lock"),
            );
            if handles.is_empty() {
                return;
            }
            for h in handles {
                let _ = h.await;
            }
        }
    }
}

/// Serves `sandbox` on `127.0.0.1` at an OS-chosen port (for tests).
pub async fn spawn_local(sandbox: HaloSandbox) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let router = sandbox.router();
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "halo sandbox server stopped");
        }
    });
    Ok((addr, handle))
}
