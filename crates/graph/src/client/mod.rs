//! The Microsoft Graph client for one mailbox.

mod contacts;
mod directory;
mod error;
mod messages;
mod send;
mod subscriptions;
mod transport;

use std::sync::Arc;

use mailroom_clock::SharedClock;
use url::Url;

use crate::http::{build_client, build_client_with_roots};
use crate::throttle::{MailboxThrottle, ThrottleConfig};
use crate::tokens::TokenProvider;

pub use error::{GraphError, GraphErrorKind};
pub use subscriptions::{parse_expiration_cap, DEFAULT_SUBSCRIPTION_MAX_MINUTES};

/// Which mailbox the client works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxRef {
    /// The signed-in user (`/me`), delegated only.
    Me,
    /// `/users/{upn}`: app-only, or a shared mailbox through delegation.
    User(String),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::RawResponse;
    use crate::secret::Secret;
    use chrono::Utc;
    use std::time::Duration;

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
