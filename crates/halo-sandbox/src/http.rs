//! HTTP surface: the token endpoints and the case-insensitive `/api` dispatcher.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use base64::Engine as _;
use chrono::Duration;
use serde_json::{json, Value};
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;
use crate::res::{Need, Res};
use crate::state::{Caller, Query, Token};
use crate::Inner;

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/auth/token", post(token))
        .route("/token", post(token))
        .route("/api/{*rest}", any(api))
        // The agent's ticket page with its iframe tabs (crate::agent_page).
        .route(
            "/ticket",
            axum::routing::get(crate::agent_page::ticket_page),
        )
        // Attachments travel base64 in JSON bodies; HaloPSA takes files far beyond axum's
        // 2 MB default.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(inner)
}

/// The largest request body the sandbox PSA takes (64 MB).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

fn parse_pairs(s: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(s.as_bytes())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect()
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn oauth(status: StatusCode, error: &'static str, description: impl Into<String>) -> ApiError {
    ApiError::OAuth {
        status,
        error,
        description: description.into(),
    }
}

/// Whether `granted` covers a permission.
pub(crate) fn allows(granted: &[String], need: Need) -> bool {
    let has = |s: &str| granted.iter().any(|g| g.eq_ignore_ascii_case(s));
    match need {
        Need::Any => true,
        Need::Admin => has("all") || has("admin"),
        Need::Read(area) => has("all") || has("all:standard") || has(&format!("read:{area}")),
        Need::Edit(area) => has("all") || has("all:standard") || has(&format!("edit:{area}")),
    }
}

/// Whether `scope` is a well-formed Halo permission name.
fn known_scope(scope: &str) -> bool {
    matches!(scope, "all" | "admin")
        || ["read:", "edit:", "all:", "access:", "editmine:"]
            .iter()
            .any(|p| scope.to_ascii_lowercase().starts_with(p) && scope.len() > p.len())
}

/// Whether the application's grants cover a requested scope.
fn grant_covers(granted: &[String], requested: &str) -> bool {
    let lower = requested.to_ascii_lowercase();
    granted.iter().any(|g| {
        let g = g.to_ascii_lowercase();
        g == lower || g == "all" || (g == "all:standard" && lower != "admin")
    })
}

async fn token(
    AxState(inner): AxState<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match issue_token(&inner, &uri, &headers, &body) {
        Ok(v) => {
            let mut resp = Json(v).into_response();
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            resp
        }
        Err(e) => e.into_response(),
    }
}

fn issue_token(
    inner: &Inner,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, ApiError> {
    let query = parse_pairs(uri.query().unwrap_or_default());
    let form = parse_pairs(&String::from_utf8_lossy(body));
    let mut state = inner.state.lock().expect("halo sandbox state lock");
    if let Some(tenant) = query.get("tenant").or_else(|| form.get("tenant")) {
        if !tenant.eq_ignore_ascii_case(&state.tenant) {
            return Err(oauth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("The tenant '{tenant}' does not exist on this Halo instance."),
            ));
        }
    }
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant.is_empty() {
        return Err(oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The mandatory 'grant_type' parameter is missing.",
        ));
    }
    if grant != "client_credentials" {
        return Err(oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("The grant type '{grant}' is not supported; use client_credentials."),
        ));
    }
    let (mut client_id, mut secret) = (
        form.get("client_id").cloned(),
        form.get("client_secret").cloned(),
    );
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
    {
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) {
            if let Some((id, pw)) = String::from_utf8_lossy(&decoded).split_once(':') {
                client_id = Some(id.to_string());
                secret = Some(pw.to_string());
            }
        }
    }
    let client_id = client_id.unwrap_or_default();
    let secret = secret.unwrap_or_default();
    let Some(cred) = state
        .creds
        .iter()
        .find(|c| c.client_id == client_id && !client_id.is_empty())
        .cloned()
    else {
        return Err(oauth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The specified client_id is not registered as an API application.",
        ));
    };
    if !bool::from(cred.secret.as_bytes().ct_eq(secret.as_bytes())) {
        return Err(oauth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The specified client credentials are invalid.",
        ));
    }
    let inactive = state
        .find(Res::Application, &cred.app_id, None)
        .and_then(|a| a.get("inactive"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if inactive {
        return Err(oauth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The API application is inactive.",
        ));
    }
    if state.behaviour.rate_limit_token_endpoint {
        let now = inner.clock.now();
        rate_limit(&mut state, &cred.client_id, now)?;
    }
    let requested: Vec<String> = form
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let scopes: Vec<String> = if requested.is_empty() {
        cred.scopes.clone()
    } else {
        requested
            .iter()
            .filter(|s| known_scope(s) && grant_covers(&cred.scopes, s))
            .cloned()
            .collect()
    };
    if scopes.is_empty() {
        return Err(oauth(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!(
                "None of the requested scopes ({}) is granted to this application.",
                requested.join(" ")
            ),
        ));
    }
    let now = inner.clock.now();
    let lifetime = state.behaviour.token_lifetime_secs;
    let random = || {
        let bytes: [u8; 32] = rand::random();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let access = random();
    let refresh = random();
    let issuer = format!("{}/auth", base_url(headers));
    let claims = json!({
        "iss": issuer,
        "sub": cred.agent_id.to_string(),
        "aud": cred.client_id,
        "iat": now.timestamp(),
        "exp": now.timestamp() + lifetime,
        "client_id": cred.client_id,
        "tenant": state.tenant,
    });
    let id_token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&inner.id_token_key),
    )
    .map_err(|e| {
        oauth(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        )
    })?;
    // Expired tokens are dropped lazily here so the map does not grow forever.
    state.tokens.retain(|_, t| t.expires_at > now);
    state.tokens.insert(
        access.clone(),
        Token {
            client_id: cred.client_id.clone(),
            agent_id: cred.agent_id,
            scopes: scopes.clone(),
            expires_at: now + Duration::seconds(lifetime),
        },
    );
    Ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "refresh_token": refresh,
        "id_token": id_token,
        "scope": scopes.join(" "),
    }))
}

async fn api(
    AxState(inner): AxState<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle_api(&inner, &method, &uri, &headers, &body) {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

fn authenticate(inner: &Inner, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized("No access token was provided.".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized("Malformed Authorization header.".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized(
            "The Authorization header must use the Bearer scheme.".into(),
        ));
    }
    let now = inner.clock.now();
    let mut state = inner.state.lock().expect("halo sandbox state lock");
    let Some(t) = state.tokens.get(token.trim()).cloned() else {
        return Err(ApiError::Unauthorized(
            "The access token is not valid.".into(),
        ));
    };
    if t.expires_at <= now {
        state.tokens.remove(token.trim());
        return Err(ApiError::Unauthorized(
            "The access token has expired.".into(),
        ));
    }
    rate_limit(&mut state, &t.client_id, now)?;
    Ok(Caller {
        client_id: t.client_id,
        agent_id: t.agent_id,
        scopes: t.scopes,
    })
}

/// The rolling-window rate limit per client id (API calls and, with
/// `rate_limit_token_endpoint`, token requests): 429 with Halo's plain-text message, and
/// `Retry-After` only with `retry_after_header`.
fn rate_limit(
    state: &mut crate::state::State,
    client_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ApiError> {
    let Some(limit) = state.behaviour.rate_limit else {
        return Ok(());
    };
    let retry_after_header = state.behaviour.retry_after_header;
    let window = Duration::seconds(limit.window_secs);
    let log = state.windows.entry(client_id.to_string()).or_default();
    while log.front().is_some_and(|at| *at <= now - window) {
        log.pop_front();
    }
    if log.len() >= limit.requests as usize {
        let retry = log
            .front()
            .map(|oldest| (*oldest + window - now).num_seconds() + 1);
        let minutes = limit.window_secs / 60;
        let span = if limit.window_secs % 60 == 0 {
            format!("{minutes} minute")
        } else {
            format!("{} second", limit.window_secs)
        };
        return Err(ApiError::RateLimited {
            message: format!(
                "Rate Limit Reached - {} Requests per rolling {span} window",
                limit.requests
            ),
            retry_after: if retry_after_header { retry } else { None },
        });
    }
    log.push_back(now);
    Ok(())
}

fn require(caller: &Caller, need: Need, res: Res) -> Result<(), ApiError> {
    if allows(&caller.scopes, need) {
        return Ok(());
    }
    let what = match need {
        Need::Read(area) => format!("read:{area}"),
        Need::Edit(area) => format!("edit:{area}"),
        Need::Admin => "admin".into(),
        Need::Any => String::new(),
    };
    Err(ApiError::Forbidden(format!(
        "You don't have permission to access {}: the token lacks the '{what}' permission. Grant it to the API application and request it in the token's scope.",
        res.path()
    )))
}

fn handle_api(
    inner: &Arc<Inner>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let rest = uri.path().trim_start_matches("/api");
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let Some(first) = segments.first() else {
        return Err(ApiError::NotFound);
    };
    if first.eq_ignore_ascii_case("authinfo") && *method == Method::GET {
        let state = inner.state.lock().expect("halo sandbox state lock");
        return Ok(Json(json!({
            "auth_url": format!("{}/auth", base_url(headers)),
            "tenant_id": state.tenant,
        }))
        .into_response());
    }
    let caller = authenticate(inner, headers)?;
    let res = Res::from_segment(first).ok_or(ApiError::NotFound)?;
    let query: Query = parse_pairs(uri.query().unwrap_or_default());
    let ticket_scope = query.get("ticket_id").and_then(|t| t.parse::<i64>().ok());
    let now = inner.clock.now();
    match (method.clone(), segments.len()) {
        (Method::GET, 1) => {
            require(&caller, res.read_need(), res)?;
            let state = inner.state.lock().expect("halo sandbox state lock");
            Ok(Json(state.list(res, &query, &caller)?).into_response())
        }
        (Method::GET, 2) if segments[1].eq_ignore_ascii_case("me") => {
            let state = inner.state.lock().expect("halo sandbox state lock");
            match res {
                Res::Agent => {
                    let rec = state
                        .find(Res::Agent, &caller.agent_id.to_string(), None)
                        .ok_or(ApiError::NotFound)?;
                    Ok(Json(state.present(Res::Agent, rec, true)).into_response())
                }
                // The API application logs in as an agent, so there is no user/client "me".
                _ => Err(ApiError::NotFound),
            }
        }
        (Method::GET, 2) => {
            require(&caller, res.read_need(), res)?;
            let state = inner.state.lock().expect("halo sandbox state lock");
            let rec = state
                .find(res, segments[1], ticket_scope)
                .ok_or(ApiError::NotFound)?;
            if res == Res::Attachment
                && query.get("includedetails").map(String::as_str) != Some("true")
            {
                // Without includedetails the attachment endpoint streams the file itself.
                let id = crate::state::int(rec, "id").unwrap_or_default();
                let bytes = state.attachment_bytes.get(&id).cloned().unwrap_or_default();
                let ctype = rec
                    .get("content_type")
                    .and_then(Value::as_str)
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let name = rec
                    .get("filename")
                    .and_then(Value::as_str)
                    .unwrap_or("attachment")
                    .replace('"', "");
                return Ok((
                    [
                        (header::CONTENT_TYPE, ctype),
                        (
                            header::CONTENT_DISPOSITION,
                            format!("attachment; filename=\"{name}\""),
                        ),
                    ],
                    bytes,
                )
                    .into_response());
            }
            Ok(Json(state.present(res, rec, true)).into_response())
        }
        (Method::POST, 1) | (Method::POST, 2) => {
            require(&caller, res.edit_need(), res)?;
            if res == Res::WebhookEvent {
                return Err(ApiError::MethodNotAllowed);
            }
            let body: Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::model("", format!("The request body is not valid JSON: {e}"))
            })?;
            let path_id = segments.get(1).copied();
            let (items, jobs, answer) = {
                let mut state = inner.state.lock().expect("halo sandbox state lock");
                let (items, events) = state.post(res, body, &caller, now, path_id)?;
                let jobs = state.jobs_for(&events, caller.agent_id, now);
                (items, jobs, state.behaviour.post_answer)
            };
            crate::spawn_deliveries(inner, jobs);
            let status = if res == Res::Actions {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let body = if items.len() == 1 || answer == crate::seed::PostAnswer::FirstRecord {
                items.into_iter().next().unwrap_or(Value::Null)
            } else {
                Value::Array(items)
            };
            Ok((status, Json(body)).into_response())
        }
        (Method::DELETE, 2) => {
            require(&caller, res.edit_need(), res)?;
            let jobs = {
                let mut state = inner.state.lock().expect("halo sandbox state lock");
                let events = state.delete(res, segments[1], ticket_scope)?;
                state.jobs_for(&events, caller.agent_id, now)
            };
            crate::spawn_deliveries(inner, jobs);
            Ok(StatusCode::OK.into_response())
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}
