//! The Microsoft Graph client for one mailbox.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use mailroom_clock::SharedClock;
use mailroom_trace::Service;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use url::Url;

use crate::http::{build_client, build_client_with_roots, execute, RawResponse};
use crate::identity::IdentityError;
use crate::models::*;
use crate::secret::Secret;
use crate::throttle::{parse_retry_after, MailboxThrottle, ThrottleConfig};
use crate::tokens::TokenProvider;

/// Which mailbox the client works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxRef {
    /// The signed-in user (`/me`), delegated only.
    Me,
    /// `/users/{upn}`: app-only, or a shared mailbox through delegation.
    User(String),
}

/// Broad class of a Graph failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphErrorKind {
    /// 401: the token was rejected (after one refresh and retry).
    Unauthorized,
    /// 403 `ErrorAccessDenied`: missing permission, wrong permission type, or an application
    /// access policy / RBAC scope excludes the mailbox.
    AccessDenied,
    /// 404 `ErrorItemNotFound`.
    NotFound,
    /// 429 after all retries.
    Throttled,
    /// 410 `SyncStateNotFound`: the delta state expired; resync from [`DeltaCursor::Initial`].
    SyncStateNotFound,
    /// 5xx after all retries.
    Server,
    /// Another 4xx (bad request, conflict, validation failure).
    BadRequest,
    /// No HTTP response (connection failed) after all retries.
    Transport,
    /// The access token could not be obtained; see [`GraphError::identity`].
    Identity,
    /// A response that could not be understood.
    InvalidResponse,
}

/// A failed Graph call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct GraphError {
    pub kind: GraphErrorKind,
    pub status: Option<u16>,
    /// Graph error code, e.g. `ErrorAccessDenied`.
    pub code: Option<String>,
    pub message: String,
    /// `request-id` (quote it to Microsoft support).
    pub request_id: Option<String>,
    /// The server's Retry-After, if any.
    pub retry_after: Option<Duration>,
    /// The token failure behind a [`GraphErrorKind::Identity`] error.
    pub identity: Option<Arc<IdentityError>>,
}

impl GraphError {
    fn new(kind: GraphErrorKind, message: impl Into<String>) -> Self {
        GraphError {
            kind,
            status: None,
            code: None,
            message: message.into(),
            request_id: None,
            retry_after: None,
            identity: None,
        }
    }

    fn describe(&self) -> String {
        let hint = match self.kind {
            GraphErrorKind::Unauthorized => "the access token was rejected; sign in again or check the app credentials",
            GraphErrorKind::AccessDenied => "access denied: check the app's Graph permissions (delegated vs application), admin consent, and any application access policy limiting mailboxes",
            GraphErrorKind::NotFound => "the item or mailbox was not found",
            GraphErrorKind::Throttled => "Microsoft Graph is throttling this mailbox; Mailroom will retry later",
            GraphErrorKind::SyncStateNotFound => "the delta sync state expired; a full resync is needed",
            GraphErrorKind::Server => "Microsoft Graph had a server error; Mailroom will retry later",
            GraphErrorKind::BadRequest => "Microsoft Graph rejected the request",
            GraphErrorKind::Transport => "Microsoft Graph could not be reached; check the network and the configured cloud",
            GraphErrorKind::Identity => "no access token could be obtained",
            GraphErrorKind::InvalidResponse => "Microsoft Graph sent a response Mailroom could not read",
        };
        let mut out = hint.to_string();
        if let Some(status) = self.status {
            out.push_str(&format!(" (HTTP {status}"));
            if let Some(code) = &self.code {
                out.push_str(&format!(" {code}"));
            }
            out.push(')');
        }
        if !self.message.is_empty() {
            out.push_str(": ");
            out.push_str(&self.message);
        }
        if let Some(id) = &self.request_id {
            out.push_str(&format!(" [request-id {id}]"));
        }
        out
    }

    fn from_identity(e: IdentityError) -> Self {
        let mut err = GraphError::new(GraphErrorKind::Identity, e.to_string());
        err.identity = Some(Arc::new(e));
        err
    }

    fn from_response(resp: &RawResponse, now: DateTime<Utc>) -> Self {
        let header = |name: &str| {
            resp.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        let error = &body["error"];
        let code = error["code"].as_str().map(str::to_string);
        let message = error["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&resp.body)
                    .chars()
                    .take(300)
                    .collect()
            });
        let request_id = error["innerError"]["request-id"]
            .as_str()
            .map(str::to_string)
            .or_else(|| header("request-id"));
        let kind = match resp.status {
            401 => GraphErrorKind::Unauthorized,
            403 => GraphErrorKind::AccessDenied,
            404 => GraphErrorKind::NotFound,
            410 => GraphErrorKind::SyncStateNotFound,
            429 => GraphErrorKind::Throttled,
            s if s >= 500 => GraphErrorKind::Server,
            _ if code.as_deref() == Some("SyncStateNotFound") => GraphErrorKind::SyncStateNotFound,
            _ => GraphErrorKind::BadRequest,
        };
        GraphError {
            kind,
            status: Some(resp.status),
            code,
            message,
            request_id,
            retry_after: header("retry-after").and_then(|v| parse_retry_after(&v, now)),
            identity: None,
        }
    }
}

/// Default maximum subscription lifetime in minutes (reference §4.4: 4,230 is the conservative
/// documented value; the server's `ExtensionError` clamp is honoured as well).
pub const DEFAULT_SUBSCRIPTION_MAX_MINUTES: i64 = 4230;

/// Body of a request.
enum Body {
    None,
    Json(Value),
}

struct Call {
    method: http::Method,
    url: Url,
    body: Body,
    prefer: Vec<String>,
}

impl Call {
    fn new(method: http::Method, url: Url) -> Self {
        Call {
            method,
            url,
            body: Body::None,
            prefer: Vec::new(),
        }
    }

    fn json(mut self, value: Value) -> Self {
        self.body = Body::Json(value);
        self
    }

    fn prefer(mut self, value: impl Into<String>) -> Self {
        self.prefer.push(value.into());
        self
    }

    /// Whether a retry after a timeout/504/transport error is safe.
    fn idempotent(&self) -> bool {
        self.method != http::Method::POST
    }
}

/// Microsoft Graph client for one mailbox: typed mail, contacts, subscriptions and batch calls,
/// with throttling, retries and one token refresh on 401.
///
/// Invariants: every HTTP exchange is recorded with `mailroom_trace`; at most
/// `max_in_flight` requests per mailbox are in flight; `@odata.nextLink`/`deltaLink` are
/// followed verbatim but only on the configured Graph origin (the token is never sent elsewhere).
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    clock: SharedClock,
    root: Url,
    tokens: Arc<dyn TokenProvider>,
    mailbox: MailboxRef,
    throttle: Arc<MailboxThrottle>,
    immutable_ids: bool,
    delta_page_size: u32,
    subscription_max_minutes: i64,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("root", &self.root.as_str())
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}

/// The Graph root of a configured URL: `https://graph.microsoft.com`,
/// `https://graph.microsoft.com/`, `https://graph.microsoft.com/v1.0` and
/// `https://graph.microsoft.com/v1.0/` all give `https://graph.microsoft.com/` (the client adds
/// `v1.0` itself). A path prefix (a proxy) is kept.
pub fn graph_root(mut url: Url) -> Url {
    let mut segments: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    if segments
        .last()
        .is_some_and(|s| s.eq_ignore_ascii_case("v1.0"))
    {
        segments.pop();
    }
    if let Ok(mut path) = url.path_segments_mut() {
        path.clear();
        path.extend(&segments);
    }
    url
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl GraphClient {
    /// A client for `mailbox` at `graph_url`: the Graph root, e.g. `https://graph.microsoft.com`,
    /// with or without the `/v1.0` version segment and a trailing slash (see [`graph_root`]).
    pub fn new(graph_url: Url, tokens: Arc<dyn TokenProvider>, mailbox: MailboxRef) -> Self {
        let graph_url = graph_root(graph_url);
        let clock = mailroom_clock::system();
        GraphClient {
            http: build_client(),
            throttle: Arc::new(MailboxThrottle::new(
                ThrottleConfig::default(),
                clock.clone(),
            )),
            clock,
            root: graph_url,
            tokens,
            mailbox,
            immutable_ids: false,
            delta_page_size: 50,
            subscription_max_minutes: DEFAULT_SUBSCRIPTION_MAX_MINUTES,
        }
    }

    /// Uses `clock` (and a fresh throttle on that clock with the current configuration).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        let config = self.throttle.config().clone();
        self.throttle = Arc::new(MailboxThrottle::new(config, clock.clone()));
        self.clock = clock;
        self
    }

    /// Additionally trusts these PEM CA certificates (a private CA, or the sandbox with TLS).
    pub fn with_root_certificates(mut self, pems: &[String]) -> Result<Self, GraphError> {
        self.http = build_client_with_roots(pems)
            .map_err(|e| GraphError::new(GraphErrorKind::Transport, e))?;
        Ok(self)
    }

    /// Uses a fresh throttle with `config`.
    pub fn with_throttle_config(mut self, config: ThrottleConfig) -> Self {
        self.throttle = Arc::new(MailboxThrottle::new(config, self.clock.clone()));
        self
    }

    /// Shares a throttle with other clients of the same mailbox.
    pub fn with_throttle(mut self, throttle: Arc<MailboxThrottle>) -> Self {
        self.throttle = throttle;
        self
    }

    /// Sends `Prefer: IdType="ImmutableId"` on every request (ids survive moves).
    pub fn with_immutable_ids(mut self, on: bool) -> Self {
        self.immutable_ids = on;
        self
    }

    /// Page size for delta (`Prefer: odata.maxpagesize`).
    pub fn with_delta_page_size(mut self, size: u32) -> Self {
        self.delta_page_size = size.max(1);
        self
    }

    /// Maximum subscription lifetime requested (minutes).
    pub fn with_subscription_max_minutes(mut self, minutes: i64) -> Self {
        self.subscription_max_minutes = minutes.max(1);
        self
    }

    /// The mailbox this client works on.
    pub fn mailbox(&self) -> &MailboxRef {
        &self.mailbox
    }

    /// The mailbox's throttle state.
    pub fn throttle(&self) -> &Arc<MailboxThrottle> {
        &self.throttle
    }

    /// The Graph resource path of the mailbox, e.g. `users/support@contoso.test` or `me`
    /// (for subscription resources).
    pub fn mailbox_resource(&self) -> String {
        match &self.mailbox {
            MailboxRef::Me => "me".into(),
            MailboxRef::User(upn) => format!("users/{upn}"),
        }
    }

    fn versioned(&self, segments: &[&str]) -> Url {
        let mut url = self.root.clone();
        {
            let mut path = url.path_segments_mut().expect("graph root is a base URL");
            path.pop_if_empty();
            path.push("v1.0");
            path.extend(segments);
        }
        url
    }

    fn mailbox_url(&self, segments: &[&str]) -> Url {
        let mut all: Vec<&str> = match &self.mailbox {
            MailboxRef::Me => vec!["me"],
            MailboxRef::User(upn) => vec!["users", upn.as_str()],
        };
        all.extend_from_slice(segments);
        self.versioned(&all)
    }

    fn checked_link(&self, link: &str) -> Result<Url, GraphError> {
        let url = Url::parse(link).map_err(|e| {
            GraphError::new(
                GraphErrorKind::InvalidResponse,
                format!("bad link {link}: {e}"),
            )
        })?;
        if origin(&url) != origin(&self.root) {
            return Err(GraphError::new(
                GraphErrorKind::InvalidResponse,
                format!(
                    "refusing to follow a link to another host: {}",
                    url.origin().ascii_serialization()
                ),
            ));
        }
        Ok(url)
    }

    fn build(&self, call: &Call, token: &Secret) -> Result<http::Request<Vec<u8>>, GraphError> {
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

    async fn send(&self, call: Call) -> Result<RawResponse, GraphError> {
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

    async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, GraphError> {
        let resp = self.send(call).await?;
        serde_json::from_slice(&resp.body).map_err(|e| {
            let mut err = GraphError::new(GraphErrorKind::InvalidResponse, e.to_string());
            err.status = Some(resp.status);
            err
        })
    }

    async fn paged<T: DeserializeOwned>(
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

    /// `GET /me`: the signed-in user (delegated).
    pub async fn me(&self) -> Result<User, GraphError> {
        self.json(Call::new(http::Method::GET, self.versioned(&["me"])))
            .await
    }

    /// `GET /users/{upn}`.
    pub async fn user(&self, upn: &str) -> Result<User, GraphError> {
        self.json(Call::new(
            http::Method::GET,
            self.versioned(&["users", upn]),
        ))
        .await
    }

    /// Lists messages of a folder (well-known name like `inbox`, or an id), following
    /// `@odata.nextLink` verbatim.
    pub async fn list_messages(
        &self,
        folder: &str,
        query: &MessageQuery,
    ) -> Result<Vec<Message>, GraphError> {
        let mut url = self.mailbox_url(&["mailFolders", folder, "messages"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(top) = query.top {
                q.append_pair("$top", &top.clamp(1, 1000).to_string());
            }
            if !query.select.is_empty() {
                q.append_pair("$select", &query.select.join(","));
            }
            if let Some(f) = &query.filter {
                q.append_pair("$filter", f);
            }
            if let Some(o) = &query.orderby {
                q.append_pair("$orderby", o);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let mut call = Call::new(http::Method::GET, url);
        if query.text_body {
            call = call.prefer("outlook.body-content-type=\"text\"");
        }
        self.paged(call, query.max_pages).await
    }

    /// One delta page for `folder`. Follow `next` until `round_complete`, then store the
    /// deltaLink. A 410 gives [`GraphErrorKind::SyncStateNotFound`]: restart from
    /// [`DeltaCursor::Initial`].
    pub async fn delta(&self, folder: &str, cursor: &DeltaCursor) -> Result<DeltaPage, GraphError> {
        let url = match cursor {
            DeltaCursor::Initial => self.mailbox_url(&["mailFolders", folder, "messages", "delta"]),
            DeltaCursor::Link(link) => self.checked_link(link)?,
        };
        let call = Call::new(http::Method::GET, url)
            .prefer(format!("odata.maxpagesize={}", self.delta_page_size));
        let page: Value = self.json(call).await?;
        let mut messages = Vec::new();
        let mut removed_ids = Vec::new();
        for item in page["value"].as_array().into_iter().flatten() {
            if item.get("@removed").is_some() {
                if let Some(id) = item["id"].as_str() {
                    removed_ids.push(id.to_string());
                }
                continue;
            }
            messages
                .push(serde_json::from_value(item.clone()).map_err(|e| {
                    GraphError::new(GraphErrorKind::InvalidResponse, e.to_string())
                })?);
        }
        let (next, round_complete) = if let Some(n) = page["@odata.nextLink"].as_str() {
            (DeltaCursor::Link(n.to_string()), false)
        } else if let Some(d) = page["@odata.deltaLink"].as_str() {
            (DeltaCursor::Link(d.to_string()), true)
        } else {
            return Err(GraphError::new(
                GraphErrorKind::InvalidResponse,
                "delta page has neither @odata.nextLink nor @odata.deltaLink",
            ));
        };
        Ok(DeltaPage {
            messages,
            removed_ids,
            next,
            round_complete,
        })
    }

    /// A whole delta round: follows nextLinks until the deltaLink and returns everything,
    /// with the deltaLink to store as the next cursor.
    pub async fn delta_round(
        &self,
        folder: &str,
        cursor: &DeltaCursor,
    ) -> Result<DeltaPage, GraphError> {
        let mut all = DeltaPage {
            messages: Vec::new(),
            removed_ids: Vec::new(),
            next: cursor.clone(),
            round_complete: false,
        };
        loop {
            let page = self.delta(folder, &all.next).await?;
            all.messages.extend(page.messages);
            all.removed_ids.extend(page.removed_ids);
            all.next = page.next;
            if page.round_complete {
                all.round_complete = true;
                return Ok(all);
            }
        }
    }

    /// `GET /messages/{id}` with `$select` (include `internetMessageHeaders` to get headers).
    pub async fn message(&self, id: &str, select: &[&str]) -> Result<Message, GraphError> {
        let mut url = self.mailbox_url(&["messages", id]);
        if !select.is_empty() {
            url.query_pairs_mut()
                .append_pair("$select", &select.join(","));
        }
        self.json(Call::new(http::Method::GET, url)).await
    }

    /// The raw MIME of a message (`/$value`).
    pub async fn mime(&self, id: &str) -> Result<Vec<u8>, GraphError> {
        let resp = self
            .send(Call::new(
                http::Method::GET,
                self.mailbox_url(&["messages", id, "$value"]),
            ))
            .await?;
        Ok(resp.body)
    }

    /// Attachments with decoded bytes. File attachments without inline `contentBytes` (large
    /// ones) are fetched through `/attachments/{id}/$value`.
    pub async fn attachments(&self, id: &str) -> Result<Vec<Attachment>, GraphError> {
        let items: Vec<Value> = self
            .paged(
                Call::new(
                    http::Method::GET,
                    self.mailbox_url(&["messages", id, "attachments"]),
                ),
                None,
            )
            .await?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let aid = item["id"].as_str().unwrap_or_default().to_string();
            let odata_type = item["@odata.type"].as_str().unwrap_or_default().to_string();
            let is_file = odata_type.eq_ignore_ascii_case("#microsoft.graph.fileAttachment");
            let bytes = match item["contentBytes"].as_str() {
                Some(b64) if is_file => STANDARD.decode(b64.trim()).map_err(|e| {
                    GraphError::new(
                        GraphErrorKind::InvalidResponse,
                        format!("attachment {aid}: bad base64: {e}"),
                    )
                })?,
                None if is_file => {
                    self.send(Call::new(
                        http::Method::GET,
                        self.mailbox_url(&["messages", id, "attachments", &aid, "$value"]),
                    ))
                    .await?
                    .body
                }
                _ => Vec::new(),
            };
            out.push(Attachment {
                id: aid,
                odata_type,
                name: item["name"].as_str().map(str::to_string),
                content_type: item["contentType"].as_str().map(str::to_string),
                size: item["size"].as_i64(),
                is_inline: item["isInline"].as_bool().unwrap_or(false),
                content_id: item["contentId"].as_str().map(str::to_string),
                bytes,
            });
        }
        Ok(out)
    }

    /// Sets `isRead`.
    pub async fn set_read(&self, id: &str, read: bool) -> Result<(), GraphError> {
        self.send(
            Call::new(http::Method::PATCH, self.mailbox_url(&["messages", id]))
                .json(json!({ "isRead": read })),
        )
        .await?;
        Ok(())
    }

    /// Marks a message read.
    pub async fn mark_read(&self, id: &str) -> Result<(), GraphError> {
        self.set_read(id, true).await
    }

    /// Moves a message to a folder (id or well-known name); returns the message's **new** id.
    pub async fn move_to(&self, id: &str, folder_id: &str) -> Result<String, GraphError> {
        let moved: Message = self
            .json(
                Call::new(
                    http::Method::POST,
                    self.mailbox_url(&["messages", id, "move"]),
                )
                .json(json!({ "destinationId": folder_id })),
            )
            .await?;
        Ok(moved.id)
    }

    /// Lists the top-level folders (children of `msgfolderroot`).
    pub async fn folders(&self) -> Result<Vec<MailFolder>, GraphError> {
        let mut url = self.mailbox_url(&["mailFolders", "msgfolderroot", "childFolders"]);
        url.query_pairs_mut().append_pair("$top", "100");
        self.paged(Call::new(http::Method::GET, url), None).await
    }

    /// Finds a top-level folder by display name (case-insensitive) or creates it under
    /// `msgfolderroot`; returns its id.
    pub async fn ensure_folder(&self, display_name: &str) -> Result<String, GraphError> {
        if let Some(found) = self.folders().await?.into_iter().find(|f| {
            f.display_name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(display_name))
        }) {
            return Ok(found.id);
        }
        let created: MailFolder = self
            .json(
                Call::new(
                    http::Method::POST,
                    self.mailbox_url(&["mailFolders", "msgfolderroot", "childFolders"]),
                )
                .json(json!({ "displayName": display_name })),
            )
            .await?;
        Ok(created.id)
    }

    fn message_json(message: &OutgoingMessage) -> Value {
        let recipients = |list: &[String]| -> Value {
            Value::Array(
                list.iter()
                    .map(|a| json!({ "emailAddress": { "address": a } }))
                    .collect(),
            )
        };
        let mut m = json!({
            "subject": message.subject,
            "body": { "contentType": message.body.content_type, "content": message.body.content },
            "toRecipients": recipients(&message.to),
        });
        if !message.cc.is_empty() {
            m["ccRecipients"] = recipients(&message.cc);
        }
        if !message.bcc.is_empty() {
            m["bccRecipients"] = recipients(&message.bcc);
        }
        if !message.reply_to.is_empty() {
            m["replyTo"] = recipients(&message.reply_to);
        }
        if !message.attachments.is_empty() {
            m["attachments"] = Value::Array(
                message
                    .attachments
                    .iter()
                    .map(|a| {
                        let mut v = json!({
                            "@odata.type": "#microsoft.graph.fileAttachment",
                            "name": a.name,
                            "contentType": a.content_type,
                            "contentBytes": STANDARD.encode(&a.bytes),
                        });
                        if let Some(cid) = &a.content_id {
                            v["contentId"] = json!(cid);
                            v["isInline"] = json!(true);
                        }
                        v
                    })
                    .collect(),
            );
        }
        if !message.headers.is_empty() {
            m["internetMessageHeaders"] = Value::Array(
                message
                    .headers
                    .iter()
                    .map(|(n, v)| json!({ "name": n, "value": v }))
                    .collect(),
            );
        }
        m
    }

    /// `POST /sendMail` (202). Custom header names must start with `x-`.
    pub async fn send_mail(
        &self,
        message: &OutgoingMessage,
        save_to_sent_items: bool,
    ) -> Result<(), GraphError> {
        if let Some((bad, _)) = message
            .headers
            .iter()
            .find(|(n, _)| !n.to_ascii_lowercase().starts_with("x-"))
        {
            return Err(GraphError::new(
                GraphErrorKind::BadRequest,
                format!("custom header {bad} must start with x-"),
            ));
        }
        self.send(
            Call::new(http::Method::POST, self.mailbox_url(&["sendMail"])).json(json!({
                "message": Self::message_json(message),
                "saveToSentItems": save_to_sent_items,
            })),
        )
        .await?;
        Ok(())
    }

    /// `POST /messages/{id}/reply` with a comment (202).
    pub async fn reply(&self, id: &str, comment: &str) -> Result<(), GraphError> {
        self.send(
            Call::new(
                http::Method::POST,
                self.mailbox_url(&["messages", id, "reply"]),
            )
            .json(json!({ "comment": comment })),
        )
        .await?;
        Ok(())
    }

    /// All contacts of the default contacts folder (paged).
    pub async fn contacts(&self) -> Result<Vec<Contact>, GraphError> {
        let mut url = self.mailbox_url(&["contacts"]);
        url.query_pairs_mut().append_pair("$top", "100");
        self.paged(Call::new(http::Method::GET, url), None).await
    }

    /// Creates a subscription (`changeType=created`). If Graph answers with the
    /// `ExtensionError` "Subscription expiration can only be N minutes in the future", retries
    /// once at N minutes (less one for clock skew).
    pub async fn create_subscription(
        &self,
        resource: &str,
        notification_url: &str,
        lifecycle_url: Option<&str>,
        client_state: &Secret,
        expiration: DateTime<Utc>,
    ) -> Result<Subscription, GraphError> {
        let cap = self.clock.now() + chrono::Duration::minutes(self.subscription_max_minutes);
        let mut expiration = expiration.min(cap);
        let mut clamped = false;
        loop {
            let mut body = json!({
                "changeType": "created",
                "notificationUrl": notification_url,
                "resource": resource,
                "expirationDateTime": expiration.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "clientState": client_state.expose(),
                "latestSupportedTlsVersion": "v1_2",
            });
            if let Some(l) = lifecycle_url {
                body["lifecycleNotificationUrl"] = json!(l);
            }
            let call = Call::new(http::Method::POST, self.versioned(&["subscriptions"])).json(body);
            match self.json::<Subscription>(call).await {
                Err(e) if !clamped => match parse_expiration_cap(&e) {
                    Some(minutes) => {
                        clamped = true;
                        expiration =
                            self.clock.now() + chrono::Duration::minutes((minutes - 1).max(1));
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// The subscription resource for this mailbox's inbox:
    /// `users/{upn}/mailFolders('Inbox')/messages`.
    pub fn inbox_resource(&self) -> String {
        format!("{}/mailFolders('Inbox')/messages", self.mailbox_resource())
    }

    /// Extends a subscription (`PATCH`), clamped like [`GraphClient::create_subscription`].
    pub async fn renew_subscription(
        &self,
        id: &str,
        expiration: DateTime<Utc>,
    ) -> Result<Subscription, GraphError> {
        let cap = self.clock.now() + chrono::Duration::minutes(self.subscription_max_minutes);
        let mut expiration = expiration.min(cap);
        let mut clamped = false;
        loop {
            let call = Call::new(http::Method::PATCH, self.versioned(&["subscriptions", id])).json(
                json!({ "expirationDateTime": expiration.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) }),
            );
            match self.json::<Subscription>(call).await {
                Err(e) if !clamped => match parse_expiration_cap(&e) {
                    Some(minutes) => {
                        clamped = true;
                        expiration =
                            self.clock.now() + chrono::Duration::minutes((minutes - 1).max(1));
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// `POST /subscriptions/{id}/reauthorize` (answer to `reauthorizationRequired`).
    pub async fn reauthorize_subscription(&self, id: &str) -> Result<(), GraphError> {
        self.send(Call::new(
            http::Method::POST,
            self.versioned(&["subscriptions", id, "reauthorize"]),
        ))
        .await?;
        Ok(())
    }

    /// `DELETE /subscriptions/{id}` (204).
    pub async fn delete_subscription(&self, id: &str) -> Result<(), GraphError> {
        self.send(Call::new(
            http::Method::DELETE,
            self.versioned(&["subscriptions", id]),
        ))
        .await?;
        Ok(())
    }

    /// Lists the app's subscriptions.
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, GraphError> {
        self.paged(
            Call::new(http::Method::GET, self.versioned(&["subscriptions"])),
            None,
        )
        .await
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

/// Extracts N from "Subscription expiration can only be N minutes in the future".
pub fn parse_expiration_cap(error: &GraphError) -> Option<i64> {
    if error.kind != GraphErrorKind::BadRequest {
        return None;
    }
    let msg = error.message.as_str();
    let idx = msg.find("can only be ")?;
    let rest = &msg[idx + "can only be ".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    if !rest[digits.len()..].trim_start().starts_with("minutes") {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> RawResponse {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        RawResponse {
            status,
            headers: map,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn hostile_retry_after_headers_do_not_panic() {
        // `Retry-After: 1e20` used to panic in Duration::from_secs_f64.
        let now = Utc::now();
        for (value, expected) in [
            ("1e20", Some(mailroom_http::MAX_RETRY_AFTER)),
            ("inf", None),
            ("NaN", None),
            ("-5", None),
            ("garbage", None),
            (
                "Fri, 31 Dec 9999 23:59:59 GMT",
                Some(mailroom_http::MAX_RETRY_AFTER),
            ),
        ] {
            let e = GraphError::from_response(&resp(429, &[("Retry-After", value)], "{}"), now);
            assert_eq!(e.kind, GraphErrorKind::Throttled);
            assert_eq!(e.retry_after, expected, "{value}");
        }
    }

    #[test]
    fn graph_errors_are_classified() {
        let now = Utc::now();
        let e = GraphError::from_response(
            &resp(
                410,
                &[],
                r#"{"error":{"code":"SyncStateNotFound","message":"The sync state generation is not found"}}"#,
            ),
            now,
        );
        assert_eq!(e.kind, GraphErrorKind::SyncStateNotFound);
        let e = GraphError::from_response(
            &resp(
                429,
                &[("Retry-After", "2.128")],
                r#"{"error":{"code":"TooManyRequests","message":"Please retry again later.","innerError":{"request-id":"r1"}}}"#,
            ),
            now,
        );
        assert_eq!(e.kind, GraphErrorKind::Throttled);
        assert_eq!(e.retry_after, Some(Duration::from_millis(2128)));
        assert_eq!(e.request_id.as_deref(), Some("r1"));
        let e = GraphError::from_response(
            &resp(
                403,
                &[],
                r#"{"error":{"code":"ErrorAccessDenied","message":"Access to OData is disabled."}}"#,
            ),
            now,
        );
        assert_eq!(e.kind, GraphErrorKind::AccessDenied);
        assert!(e.to_string().contains("application access policy"));
        assert!(e.to_string().contains("ErrorAccessDenied"));
    }

    #[test]
    fn expiration_cap_is_parsed() {
        let e = GraphError::from_response(
            &resp(
                400,
                &[],
                r#"{"error":{"code":"ExtensionError","message":"Operation: Create; Exception: [Status Code: BadRequest; Reason: Subscription expiration can only be 10070 minutes in the future.]"}}"#,
            ),
            Utc::now(),
        );
        assert_eq!(parse_expiration_cap(&e), Some(10070));
        let other = GraphError::from_response(
            &resp(
                400,
                &[],
                r#"{"error":{"code":"InvalidRequest","message":"nope"}}"#,
            ),
            Utc::now(),
        );
        assert_eq!(parse_expiration_cap(&other), None);
    }

    #[test]
    fn the_graph_root_is_accepted_with_or_without_the_version() {
        for given in [
            "https://graph.microsoft.com",
            "https://graph.microsoft.com/",
            "https://graph.microsoft.com/v1.0",
            "https://graph.microsoft.com/v1.0/",
            "https://graph.microsoft.com/V1.0",
        ] {
            let root = graph_root(Url::parse(given).unwrap());
            assert_eq!(root.as_str(), "https://graph.microsoft.com/", "{given}");
            let client = GraphClient::new(
                Url::parse(given).unwrap(),
                Arc::new(crate::tokens::StaticToken(Secret::new("t"))),
                MailboxRef::User("a@b.test".into()),
            );
            assert_eq!(
                client.mailbox_url(&["messages"]).as_str(),
                "https://graph.microsoft.com/v1.0/users/a@b.test/messages",
                "{given}"
            );
        }
        // A proxy prefix is kept.
        let proxied = graph_root(Url::parse("https://proxy.test/graph/v1.0/").unwrap());
        assert_eq!(proxied.as_str(), "https://proxy.test/graph");
    }

    #[test]
    fn urls_are_built_per_mailbox() {
        let tokens: Arc<dyn TokenProvider> = Arc::new(crate::tokens::StaticToken(Secret::new("t")));
        let c = GraphClient::new(
            Url::parse("http://127.0.0.1:9/").unwrap(),
            tokens.clone(),
            MailboxRef::User("support@contoso.test".into()),
        );
        assert_eq!(
            c.mailbox_url(&["messages", "AA/B=", "$value"]).as_str(),
            "http://127.0.0.1:9/v1.0/users/support@contoso.test/messages/AA%2FB=/$value"
        );
        assert_eq!(
            c.inbox_resource(),
            "users/support@contoso.test/mailFolders('Inbox')/messages"
        );
        assert!(c
            .checked_link("http://127.0.0.1:9/v1.0/me/messages?$skip=10")
            .is_ok());
        assert!(c.checked_link("https://evil.example/v1.0/me").is_err());
        let me = GraphClient::new(
            Url::parse("https://graph.microsoft.com").unwrap(),
            tokens,
            MailboxRef::Me,
        );
        assert_eq!(
            me.versioned(&["me"]).as_str(),
            "https://graph.microsoft.com/v1.0/me"
        );
    }
}
