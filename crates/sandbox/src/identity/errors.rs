//! AADSTS error responses shaped like the real token endpoint (reference §1.5).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;

/// One AADSTS error, before it is rendered as JSON, an HTML page or a redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AadError {
    /// HTTP status for the JSON form (400 grant errors, 401 `invalid_client`).
    pub status: StatusCode,
    /// OAuth `error` value.
    pub error: &'static str,
    /// AADSTS number.
    pub code: u32,
    /// Text after `AADSTSnnnn: `.
    pub message: String,
    /// `suberror` (e.g. `consent_required`).
    pub suberror: Option<&'static str>,
}

impl AadError {
    /// A 400 error.
    pub fn bad(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            code,
            message: message.into(),
            suberror: None,
        }
    }

    /// A 401 `invalid_client` error.
    pub fn client(code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            code,
            message: message.into(),
            suberror: None,
        }
    }

    /// Adds a `suberror`.
    pub fn with_suberror(mut self, suberror: &'static str) -> Self {
        self.suberror = Some(suberror);
        self
    }

    /// `AADSTS900144` missing parameter.
    pub fn missing(param: &str) -> Self {
        Self::bad(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{param}'."),
        )
    }

    /// The `error_description` text with its trace lines.
    pub fn description(&self, ids: &TraceIds) -> String {
        format!(
            "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            self.code,
            self.message,
            ids.trace_id,
            ids.correlation_id,
            ids.timestamp()
        )
    }

    /// The JSON body and status of a token-endpoint error.
    pub fn to_json_response(&self, ids: &TraceIds, base_url: &str) -> Response {
        let mut body = json!({
            "error": self.error,
            "error_description": self.description(ids),
            "error_codes": [self.code],
            "timestamp": ids.timestamp(),
            "trace_id": ids.trace_id,
            "correlation_id": ids.correlation_id,
            "error_uri": format!("{base_url}/error?code={}", self.code),
        });
        if let Some(sub) = self.suberror {
            body["suberror"] = json!(sub);
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            "cache-control",
            axum::http::HeaderValue::from_static("no-store, no-cache"),
        );
        resp
    }
}

/// Trace id, correlation id and timestamp attached to an error.
#[derive(Debug, Clone)]
pub struct TraceIds {
    /// Server-side request id.
    pub trace_id: String,
    /// The client's `client-request-id`, or a fresh id.
    pub correlation_id: String,
    /// When the error happened (sandbox clock).
    pub at: DateTime<Utc>,
}

impl TraceIds {
    /// New ids for a request.
    pub fn new(correlation: Option<&str>, at: DateTime<Utc>) -> Self {
        Self {
            trace_id: uuid::Uuid::new_v4().to_string(),
            correlation_id: correlation
                .filter(|c| !c.is_empty() && c.len() <= 64)
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            at,
        }
    }

    /// Entra's timestamp format, e.g. `2025-01-15 09:30:12Z`.
    pub fn timestamp(&self) -> String {
        self.at.format("%Y-%m-%d %H:%M:%SZ").to_string()
    }
}
