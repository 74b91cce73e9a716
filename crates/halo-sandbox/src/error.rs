//! Error responses in the shapes Halo uses (reference §2.1).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::schema::FieldError;

/// A failed API or token request.
#[derive(Debug, Clone)]
pub(crate) enum ApiError {
    /// 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
    Unauthorized(String),
    /// 403: the token lacks the permission.
    Forbidden(String),
    /// 404 with an empty body.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 400 with an empty body (Halo's answer to an action without a ticket id).
    BadRequestEmpty,
    /// 400 model-binding errors keyed by JSON path (ASP.NET `SerializableError`).
    ModelState(Vec<FieldError>),
    /// 400 `{"ClassName":"System.Exception","Message":...}`: a business rule.
    Business(String),
    /// 429 plain text.
    RateLimited {
        message: String,
        retry_after: Option<i64>,
    },
    /// RFC 6749 §5.2 token endpoint error.
    OAuth {
        status: StatusCode,
        error: &'static str,
        description: String,
    },
}

impl ApiError {
    /// A single model-state error.
    pub fn model(path: &str, message: impl Into<String>) -> Self {
        ApiError::ModelState(vec![FieldError {
            path: path.to_string(),
            message: message.into(),
        }])
    }

    /// A one-line description (for seed errors and logs).
    pub fn describe(&self) -> String {
        match self {
            ApiError::Unauthorized(m) | ApiError::Forbidden(m) | ApiError::Business(m) => m.clone(),
            ApiError::NotFound => "not found".into(),
            ApiError::MethodNotAllowed => "method not allowed".into(),
            ApiError::BadRequestEmpty => "bad request".into(),
            ApiError::ModelState(errs) => errs
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            ApiError::RateLimited { message, .. } => message.clone(),
            ApiError::OAuth {
                error, description, ..
            } => format!("{error}: {description}"),
        }
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Unauthorized(description) => {
                let mut resp = StatusCode::UNAUTHORIZED.into_response();
                let value = format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    description.replace('"', "'")
                );
                if let Ok(v) = HeaderValue::from_str(&value) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                resp
            }
            ApiError::Forbidden(message) => {
                let mut resp = json_response(
                    StatusCode::FORBIDDEN,
                    json!({"ClassName": "System.UnauthorizedAccessException", "Message": message}),
                );
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"insufficient_scope\""),
                );
                resp
            }
            ApiError::NotFound => StatusCode::NOT_FOUND.into_response(),
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED.into_response(),
            ApiError::BadRequestEmpty => StatusCode::BAD_REQUEST.into_response(),
            ApiError::ModelState(errors) => {
                let mut body = Map::new();
                for e in errors {
                    body.insert(e.path, json!([e.message]));
                }
                json_response(StatusCode::BAD_REQUEST, Value::Object(body))
            }
            ApiError::Business(message) => json_response(
                StatusCode::BAD_REQUEST,
                json!({"ClassName": "System.Exception", "Message": message}),
            ),
            ApiError::RateLimited {
                message,
                retry_after,
            } => {
                let mut resp = (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    message,
                )
                    .into_response();
                if let Some(secs) = retry_after {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                }
                resp
            }
            ApiError::OAuth {
                status,
                error,
                description,
            } => {
                let mut resp = json_response(
                    status,
                    json!({"error": error, "error_description": description}),
                );
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                resp
            }
        }
    }
}
