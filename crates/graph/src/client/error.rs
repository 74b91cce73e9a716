//! Graph failures, classified: what kind of failure, whether and when to retry, and
//! the message an admin reads.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::http::RawResponse;
use crate::identity::IdentityError;
use crate::throttle::parse_retry_after;

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
    pub(super) fn new(kind: GraphErrorKind, message: impl Into<String>) -> Self {
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

    pub(super) fn describe(&self) -> String {
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

    pub(super) fn from_identity(e: IdentityError) -> Self {
        let mut err = GraphError::new(GraphErrorKind::Identity, e.to_string());
        err.identity = Some(Arc::new(e));
        err
    }

    pub(super) fn from_response(resp: &RawResponse, now: DateTime<Utc>) -> Self {
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
