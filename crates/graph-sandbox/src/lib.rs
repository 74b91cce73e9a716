//! Emulated Microsoft Graph v1.0 for mail: users, mail folders, messages (list, get, `$value`,
//! attachments, PATCH, move, sendMail, reply), delta, `$batch`, contacts, subscriptions with
//! the validation handshake, and a change-notification publisher with lifecycle events.
//!
//! The emulator follows `shared/reference/microsoft-graph-and-identity.md` (§3–§7, checklist §9):
//! real URL shapes (`/v1.0/me/…`, `/v1.0/users/{id|upn}/…`, `mailFolders('Inbox')`), Graph's
//! error shape (`{"error":{"code","message","innerError":{"date","request-id",…}}}`), its
//! paging (`@odata.nextLink`, `$skip`), delta tokens, throttling and access rules.
//!
//! Invariants:
//! - Every request is authenticated through the [`auth::TokenValidator`] handed in by the
//!   identity platform (crate `mailroom-sandbox`), and authorized per mailbox: delegated tokens
//!   need `Mail.*` scopes for their own mailbox or `*.Shared` scopes plus an Exchange delegate
//!   grant for another one; app-only tokens need the role and must pass the application access
//!   policies of the seed.
//! - All time comes from the injected [`mailroom_clock::SharedClock`] (message dates,
//!   subscription expiry, delta-token age, throttling windows, retry windows).
//! - Seed content and ids are deterministic (ids are hashes of the mailbox and a counter).
//! - State lives behind one mutex that is never held across an `.await`; the notification
//!   publisher runs on its own thread (see [`publisher`]).
//!
//! Configuration knobs (for tests and the sandbox control API): [`GraphSandbox::set_publisher_options`],
//! [`GraphSandbox::set_mailbox_limits`], [`GraphSandbox::set_behaviour`],
//! [`GraphSandbox::push_fault`], [`GraphSandbox::invalidate_delta_tokens`],
//! [`GraphSandbox::hold_requests`].

mod address_book;
mod api;
pub mod auth;
mod mime;
pub mod publisher;
mod query;
pub mod seed;
mod state;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use mailroom_clock::SharedClock;
use serde::{Deserialize, Serialize};

pub use auth::{AccessGrant, StaticTokens, TokenRejection, TokenValidator};
pub use publisher::{
    LifecycleEvent, NotificationKind, NotificationOutcome, NotificationRecord, PublisherOptions,
};
pub use seed::{
    generated_address_book, AccessRight, ApplicationAccessPolicy, GraphSeed, SeedAddress,
    SeedContact, SeedUser,
};

/// Errors of the sandbox's Rust API (HTTP errors are Graph-shaped responses instead).
#[derive(Debug, thiserror::Error)]
pub enum GraphSandboxError {
    /// No directory user/mailbox has this id, UPN or address.
    #[error("no mailbox '{0}' in the sandbox tenant; use a seeded user's id, UPN or address")]
    UnknownMailbox(String),
    /// The folder (id or well-known name) does not exist in the mailbox.
    #[error("no mail folder '{0}'; use inbox, sentitems, deleteditems, drafts, archive, junkemail or a folder id")]
    UnknownFolder(String),
    /// No active subscription has this id.
    #[error("no active subscription '{0}'; it may have expired or been deleted")]
    UnknownSubscription(String),
    /// The seed is inconsistent.
    #[error("invalid Graph seed: {0}")]
    InvalidSeed(String),
}

/// Mail arriving "from outside" (SMTP) into a tenant mailbox's inbox.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InboundMail {
    /// Recipient mailbox address (several may be given, comma-separated; the first tenant
    /// mailbox among them receives the message).
    pub to: String,
    /// Sender address.
    pub from: String,
    /// Sender display name.
    pub from_name: Option<String>,
    pub subject: String,
    pub body_html: Option<String>,
    pub body_text: Option<String>,
    /// Extra header fields (e.g. `Auto-Submitted`, `Message-ID`, `Reply-To`, `Cc`).
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<InboundAttachment>,
    /// `In-Reply-To` message id (with or without angle brackets).
    pub in_reply_to: Option<String>,
    /// `References` message ids.
    pub references: Vec<String>,
}

/// An attachment of an [`InboundMail`]. In JSON the bytes are `content_base64`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InboundAttachment {
    pub name: String,
    pub content_type: String,
    #[serde(rename = "content_base64", with = "b64")]
    pub content: Vec<u8>,
    /// Inline (e.g. a `cid:` image in the HTML body) rather than a file attachment.
    #[serde(default)]
    pub inline: bool,
    #[serde(default)]
    pub content_id: Option<String>,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(serde::de::Error::custom)
    }
}

/// Result of [`GraphSandbox::deliver`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveredMessage {
    /// Object id of the receiving mailbox.
    pub mailbox_id: String,
    /// Graph message id (changes on move).
    pub id: String,
    /// ImmutableId of the message (stable across moves).
    pub immutable_id: String,
    /// `<…>` Message-ID.
    pub internet_message_id: String,
    pub conversation_id: String,
}

/// Inspection view of a stored message.
/// A contact as the sandbox holds it (for tests and the control API).
#[derive(Debug, Clone, Serialize)]
pub struct ContactView {
    pub id: String,
    pub folder_id: String,
    #[serde(flatten)]
    pub contact: SeedContact,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageView {
    pub id: String,
    pub immutable_id: String,
    /// Well-known name of the folder (`inbox`, …) or its display name for custom folders.
    pub folder: String,
    pub folder_id: String,
    pub subject: String,
    pub is_read: bool,
    /// Sender address.
    pub from: String,
    pub internet_message_id: String,
    pub conversation_id: String,
    pub received: DateTime<Utc>,
    pub categories: Vec<String>,
}

/// How a [`SentMail`] was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SentKind {
    /// `POST …/sendMail`.
    SendMail,
    /// `POST …/messages/{id}/reply`.
    Reply,
    /// `POST …/messages/{id}/send` of a draft (`POST …/messages`, `…/createReply`).
    Draft,
}

/// A message sent through Graph (sendMail or reply), as it left the mailbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentMail {
    pub kind: SentKind,
    /// Object id of the sending mailbox.
    pub mailbox_id: String,
    /// The `From` address.
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    /// `text` or `html`.
    pub body_content_type: String,
    pub body: String,
    pub internet_message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// Custom `x-` headers given by the client.
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<InboundAttachment>,
    /// The complete MIME message.
    pub mime: String,
    pub sent_at: DateTime<Utc>,
    /// Id of the copy in Sent Items, when saved.
    pub sent_items_id: Option<String>,
}

/// Inspection view of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionView {
    pub id: String,
    pub resource: String,
    pub change_type: String,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    pub client_state: Option<String>,
    pub expiration: DateTime<Utc>,
    pub application_id: String,
    pub creator_id: String,
    /// Set by a `reauthorizationRequired` event until `/reauthorize` or PATCH.
    pub needs_reauthorization: bool,
}

/// Outlook per app+mailbox throttling (reference §6).
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxLimits {
    /// Apply the limits at all.
    pub enabled: bool,
    /// Concurrent requests per app+mailbox (Graph: 4) before 429 ApplicationThrottled.
    pub max_concurrent: usize,
    /// Requests per window per app+mailbox (Graph: 10,000) before 429 TooManyRequests.
    pub window_requests: usize,
    /// Length of the window (Graph: 10 minutes).
    pub window: chrono::Duration,
}

impl Default for MailboxLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            max_concurrent: 4,
            window_requests: 10_000,
            window: chrono::Duration::minutes(10),
        }
    }
}

/// Behaviour switches where Graph's behaviour is configurable or uncertain.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphBehaviour {
    /// `move` gives the message a new id (Graph's default; with `Prefer: IdType="ImmutableId"`
    /// clients see the stable immutable id anyway).
    pub move_changes_id: bool,
    /// Delta tokens older than this answer 410 SyncStateNotFound (`None`: never expire).
    pub delta_token_ttl: Option<chrono::Duration>,
    /// Accept `http://` notification URLs on loopback hosts (`127.0.0.1`, `localhost`,
    /// `[::1]`). Graph requires HTTPS for every notification URL, so this is off by default; a
    /// sandbox that delivers to a local receiver turns it on, standing in for the HTTPS tunnel
    /// or relay a real deployment puts in front of that receiver.
    pub loopback_http_notification_urls: bool,
    /// Maximum active subscriptions per mailbox (Graph: 1,000).
    pub max_subscriptions_per_mailbox: usize,
}

impl Default for GraphBehaviour {
    fn default() -> Self {
        Self {
            move_changes_id: true,
            delta_token_ttl: None,
            loopback_http_notification_urls: false,
            max_subscriptions_per_mailbox: 1000,
        }
    }
}

/// A one-shot injected fault: the next matching request gets this status.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// 503 (serviceNotAvailable) or 504 (gatewayTimeout); any status is accepted.
    pub status: u16,
    /// `Retry-After` seconds to send (fractional allowed).
    pub retry_after: Option<f64>,
    /// Only requests whose path contains this (case-insensitive) match; `None` = any.
    pub path_contains: Option<String>,
}

pub(crate) struct Inner {
    pub state: Mutex<state::State>,
    pub validator: Arc<dyn TokenValidator>,
    pub clock: SharedClock,
    pub publisher: publisher::Publisher,
    pub limits: Mutex<MailboxLimits>,
    pub behaviour: Mutex<GraphBehaviour>,
    pub faults: Mutex<VecDeque<Fault>>,
    pub hold: tokio::sync::watch::Sender<bool>,
    pub http: reqwest::Client,
    /// The root absolute links are built on (`https://127.0.0.1:47111`), set by whoever serves
    /// the emulator; without it the request's own authority over plain HTTP.
    pub base_url: Mutex<Option<String>>,
}

/// The emulated Graph service. Cheap to clone (shared state).
#[derive(Clone)]
pub struct GraphSandbox {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for GraphSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSandbox").finish_non_exhaustive()
    }
}

impl GraphSandbox {
    /// Builds the emulator from `seed`. Panics with the seed error if the seed is inconsistent
    /// (use [`GraphSandbox::try_new`] to handle that).
    pub fn new(seed: GraphSeed, validator: Arc<dyn TokenValidator>, clock: SharedClock) -> Self {
        match Self::try_new(seed, validator, clock) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// Builds the emulator from `seed`, reporting an inconsistent seed.
    pub fn try_new(
        seed: GraphSeed,
        validator: Arc<dyn TokenValidator>,
        clock: SharedClock,
    ) -> Result<Self, GraphSandboxError> {
        let state = state::State::new(&seed, clock.now())?;
        let (hold, _) = tokio::sync::watch::channel(false);
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GraphSandboxError::InvalidSeed(format!("HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                validator,
                publisher: publisher::Publisher::start(clock.clone()),
                clock,
                limits: Mutex::new(MailboxLimits::default()),
                behaviour: Mutex::new(GraphBehaviour::default()),
                faults: Mutex::new(VecDeque::new()),
                hold,
                http,
                base_url: Mutex::new(None),
            }),
        })
    }

    /// Sets the root the emulator is served at (scheme, host and port, no `/v1.0`): every
    /// absolute link it answers with (`@odata.nextLink`, `@odata.deltaLink`, `@odata.context`)
    /// starts with it, as real Graph's start with `https://graph.microsoft.com`. Without it the
    /// request's authority is used over `http`, which is wrong under TLS.
    pub fn set_base_url(&self, root: &str) {
        *self.inner.base_url.lock().expect("base url lock") =
            Some(root.trim_end_matches('/').to_string());
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, state::State> {
        self.inner.state.lock().expect("graph sandbox state lock")
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The axum router serving `/v1.0/...`.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }

    /// The directory users (and shared mailboxes).
    pub fn users(&self) -> Vec<SeedUser> {
        self.state()
            .mailboxes
            .iter()
            .map(|m| m.user.clone())
            .collect()
    }

    /// Tenant id.
    pub fn tenant_id(&self) -> String {
        self.state().tenant_id.clone()
    }

    /// Delivers mail from outside into the inbox of the first tenant mailbox in `mail.to`:
    /// builds the MIME, creates the message, logs delta changes and publishes notifications.
    pub fn deliver(&self, mail: InboundMail) -> Result<DeliveredMessage, GraphSandboxError> {
        let now = self.now();
        let (delivered, jobs) = {
            let mut st = self.state();
            let mb = mail
                .to
                .split(',')
                .find_map(|a| st.mailbox_index(a.trim()))
                .ok_or_else(|| GraphSandboxError::UnknownMailbox(mail.to.clone()))?;
            let inbox = st.mailboxes[mb]
                .folder("inbox")
                .expect("every mailbox has an inbox")
                .id
                .clone();
            let new = state::NewMessage::from_inbound(&mail, now, false);
            let idx = st.insert_message(mb, &inbox, new);
            let m = &st.mailboxes[mb].messages[idx];
            let delivered = DeliveredMessage {
                mailbox_id: st.mailboxes[mb].user.id.clone(),
                id: m.id.clone(),
                immutable_id: m.immutable_id.clone(),
                internet_message_id: m.internet_message_id.clone(),
                conversation_id: m.conversation_id.clone(),
            };
            let jobs = api::notifications_for(&mut st, mb, idx, "created", now);
            (delivered, jobs)
        };
        self.publish(jobs);
        Ok(delivered)
    }

    pub(crate) fn publish(&self, jobs: Vec<publisher::Job>) {
        for j in jobs {
            self.inner.publisher.send(j);
        }
    }

    /// The messages of a mailbox (id, UPN or address), newest first.
    pub fn messages(&self, mailbox: &str) -> Vec<MessageView> {
        let st = self.state();
        let Some(mb) = st.mailbox_index(mailbox) else {
            return Vec::new();
        };
        let mbx = &st.mailboxes[mb];
        let mut out: Vec<MessageView> = mbx
            .messages
            .iter()
            .map(|m| {
                let folder = mbx.folders.iter().find(|f| f.id == m.folder_id);
                MessageView {
                    id: m.id.clone(),
                    immutable_id: m.immutable_id.clone(),
                    folder: folder
                        .map(|f| {
                            f.well_known
                                .map(str::to_owned)
                                .unwrap_or(f.display_name.clone())
                        })
                        .unwrap_or_default(),
                    folder_id: m.folder_id.clone(),
                    subject: m.subject.clone(),
                    is_read: m.is_read,
                    from: m.from.1.clone(),
                    internet_message_id: m.internet_message_id.clone(),
                    conversation_id: m.conversation_id.clone(),
                    received: m.received,
                    categories: m.categories.clone(),
                }
            })
            .collect();
        out.sort_by_key(|m| std::cmp::Reverse(m.received));
        out
    }

    /// The contacts of a mailbox's address book (every folder), oldest first: each with its
    /// id and its folder's path (empty: the default *Contacts* folder).
    pub fn contacts(&self, mailbox: &str) -> Vec<ContactView> {
        let st = self.state();
        let Some(mb) = st.mailbox_index(mailbox) else {
            return Vec::new();
        };
        let book = &st.mailboxes[mb].book;
        book.contacts
            .iter()
            .map(|c| ContactView {
                id: c.id.clone(),
                folder_id: c.folder_id.clone(),
                contact: c.seed.clone(),
            })
            .collect()
    }

    /// Adds a contact to a mailbox's address book (in `contact.folder`, created as needed);
    /// returns its id.
    pub fn add_contact(&self, contact: SeedContact) -> Result<String, GraphSandboxError> {
        let now = self.now();
        let mut st = self.state();
        let mb = st
            .mailbox_index(&contact.mailbox)
            .ok_or_else(|| GraphSandboxError::UnknownMailbox(contact.mailbox.clone()))?;
        let owner = st.mailboxes[mb].user.id.clone();
        Ok(st.mailboxes[mb].book.add(&owner, contact, now).0)
    }

    /// Changes a contact as Outlook would (its change key and delta follow); false when the
    /// mailbox has no contact with that id.
    pub fn update_contact(
        &self,
        mailbox: &str,
        id: &str,
        change: impl FnOnce(&mut SeedContact),
    ) -> bool {
        let now = self.now();
        let mut st = self.state();
        let Some(mb) = st.mailbox_index(mailbox) else {
            return false;
        };
        st.mailboxes[mb].book.update(id, now, change)
    }

    /// Deletes a contact (delta reports it `@removed`); false when there is none.
    pub fn delete_contact(&self, mailbox: &str, id: &str) -> bool {
        let mut st = self.state();
        let Some(mb) = st.mailbox_index(mailbox) else {
            return false;
        };
        st.mailboxes[mb].book.remove(id)
    }

    /// Mail sent from a mailbox through sendMail/reply, oldest first.
    pub fn sent_mail(&self, mailbox: &str) -> Vec<SentMail> {
        let st = self.state();
        st.mailbox_index(mailbox)
            .map(|mb| st.mailboxes[mb].sent.clone())
            .unwrap_or_default()
    }

    /// Active (unexpired) subscriptions.
    pub fn subscriptions(&self) -> Vec<SubscriptionView> {
        let now = self.now();
        let mut st = self.state();
        st.subscriptions.retain(|s| s.expiration > now);
        st.subscriptions
            .iter()
            .map(api::subscription_view)
            .collect()
    }

    /// Sends a lifecycle event for a subscription to its `lifecycleNotificationUrl`.
    /// `subscriptionRemoved` also deletes the subscription; `reauthorizationRequired` marks it
    /// until the app reauthorizes or renews it. Returns false when the subscription has no
    /// lifecycle URL (nothing is sent).
    pub fn fire_lifecycle(
        &self,
        subscription_id: &str,
        event: LifecycleEvent,
    ) -> Result<bool, GraphSandboxError> {
        let job = {
            let mut st = self.state();
            let tenant = st.tenant_id.clone();
            let pos = st
                .subscriptions
                .iter()
                .position(|s| s.id == subscription_id)
                .ok_or_else(|| GraphSandboxError::UnknownSubscription(subscription_id.into()))?;
            let sub = match event {
                LifecycleEvent::SubscriptionRemoved => st.subscriptions.remove(pos),
                LifecycleEvent::ReauthorizationRequired => {
                    st.subscriptions[pos].needs_reauthorization = true;
                    st.subscriptions[pos].clone()
                }
                LifecycleEvent::Missed => st.subscriptions[pos].clone(),
            };
            api::lifecycle_job(&sub, &tenant, event)
        };
        Ok(match job {
            Some(j) => {
                self.publish(vec![j]);
                true
            }
            None => false,
        })
    }

    /// Replaces the publisher options.
    pub fn set_publisher_options(&self, opts: PublisherOptions) {
        *self
            .inner
            .publisher
            .options
            .lock()
            .expect("publisher options") = opts;
    }

    /// Current publisher options.
    pub fn publisher_options(&self) -> PublisherOptions {
        self.inner
            .publisher
            .options
            .lock()
            .expect("publisher options")
            .clone()
    }

    /// Everything the publisher did so far (change and lifecycle notifications).
    pub fn notification_log(&self) -> Vec<NotificationRecord> {
        self.inner
            .publisher
            .log
            .lock()
            .expect("publisher log")
            .clone()
    }

    /// Replaces the per app+mailbox throttling limits.
    pub fn set_mailbox_limits(&self, limits: MailboxLimits) {
        *self.inner.limits.lock().expect("limits lock") = limits;
    }

    /// Replaces the behaviour switches.
    pub fn set_behaviour(&self, behaviour: GraphBehaviour) {
        *self.inner.behaviour.lock().expect("behaviour lock") = behaviour;
    }

    /// Current behaviour switches.
    pub fn behaviour(&self) -> GraphBehaviour {
        self.inner.behaviour.lock().expect("behaviour lock").clone()
    }

    /// Queues a one-shot fault (e.g. 503 with Retry-After, 504) for the next matching request.
    pub fn push_fault(&self, fault: Fault) {
        self.inner
            .faults
            .lock()
            .expect("faults lock")
            .push_back(fault);
    }

    /// Forgets every issued delta token and page: clients get 410 SyncStateNotFound.
    pub fn invalidate_delta_tokens(&self) {
        let mut st = self.state();
        st.delta_tokens.clear();
        st.delta_pages.clear();
    }

    /// While held, admitted requests wait (still counting as in flight) before being
    /// processed: lets tests put exactly N requests in flight to observe concurrency limits.
    pub fn hold_requests(&self, hold: bool) {
        self.inner.hold.send_replace(hold);
    }

    /// Requests currently in flight for an app (client id) against a mailbox (id/UPN/address).
    pub fn in_flight(&self, app_id: &str, mailbox: &str) -> usize {
        let st = self.state();
        let Some(mb) = st.mailbox_index(mailbox) else {
            return 0;
        };
        let key = (
            app_id.to_ascii_lowercase(),
            st.mailboxes[mb].user.id.clone(),
        );
        st.limiters.get(&key).map(|l| l.in_flight).unwrap_or(0)
    }

    /// Adds an application access policy (takes effect immediately; Exchange: up to 30 min).
    pub fn add_access_policy(&self, policy: seed::ApplicationAccessPolicy) {
        self.state().policies.push(policy);
    }

    /// Adds an application access policy whose every scope member is a mailbox of the tenant
    /// (Exchange refuses a policy scope group it cannot resolve); names the first unknown one.
    pub fn try_add_access_policy(
        &self,
        policy: seed::ApplicationAccessPolicy,
    ) -> Result<(), String> {
        let mut st = self.state();
        if let Some(unknown) = policy
            .mailboxes
            .iter()
            .find(|m| st.mailbox_index(m).is_none())
        {
            return Err(format!("{unknown} is no mailbox of the tenant"));
        }
        st.policies.push(policy);
        Ok(())
    }

    /// The application access policies in force.
    pub fn access_policies(&self) -> Vec<seed::ApplicationAccessPolicy> {
        self.state().policies.clone()
    }

    /// Removes every application access policy of `app_id`.
    pub fn clear_access_policies(&self, app_id: &str) {
        self.state()
            .policies
            .retain(|p| !p.app_id.eq_ignore_ascii_case(app_id));
    }

    /// Raw MIME of a message (by id or immutable id) in a mailbox.
    pub fn message_mime(&self, mailbox: &str, id: &str) -> Option<String> {
        let st = self.state();
        let mb = st.mailbox_index(mailbox)?;
        let idx = st.mailboxes[mb].message_index(id)?;
        Some(st.mailboxes[mb].messages[idx].mime.clone())
    }
}

/// Serves `sandbox` on 127.0.0.1 with an OS-chosen port (for tests and embedding).
pub async fn spawn_local(
    sandbox: GraphSandbox,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = sandbox.router();
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("graph sandbox server stopped: {e}");
        }
    });
    Ok((addr, handle))
}

pub(crate) fn b64encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
