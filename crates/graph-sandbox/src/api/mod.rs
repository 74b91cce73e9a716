//! The HTTP surface: request parsing, authentication, authorization, throttling and routing
//! here; the endpoints in one submodule per resource (users and folders, messages, attachments,
//! delta, send/reply, contacts, subscriptions, batch). Requests are turned into [`ApiRequest`]
//! so that `$batch` can run sub-requests through exactly the same code path as top-level
//! requests.

use std::future::Future;
use std::pin::Pin;

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::auth::{AccessGrant, TokenRejection};
use crate::publisher::{Job, LifecycleEvent, NotificationKind};
use crate::query;
use crate::seed::MailboxRight;
use crate::state::{
    self, id_well_formed, make_id, DeltaItem, DeltaPage, DeltaToken, Mailbox, Message, NewMessage,
    State, Subscription,
};
use crate::{b64encode, GraphSandbox, InboundAttachment, SentKind, SentMail, SubscriptionView};

mod attachments;
mod batch;
mod contacts;
mod delta;
mod drafts;
mod messages;
mod send;
mod subscriptions;
mod uploads;
mod users;
use attachments::*;
use batch::*;
use contacts::*;
use delta::*;
use drafts::*;
use messages::*;
use send::*;
use subscriptions::*;
pub(crate) use subscriptions::{lifecycle_job, notifications_for, subscription_view};
use uploads::*;
use users::*;

const JSON_CT: &str = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8";
const WWW_AUTH: &str = "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"";
const ACCESS_DENIED: &str = "Access is denied. Check credentials and try again.";
const ODATA_DISABLED: &str = "Access to OData is disabled.";
const NOT_FOUND: &str = "The specified object was not found in the store.";
const MAX_BATCH: usize = 20;

/// A Graph request, from HTTP or from a `$batch` item.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub method: String,
    /// Path after `/v1.0/`, still percent-encoded.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Lower-cased header names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `{scheme}://{host}:{port}/v1.0`, for building links.
    pub base: String,
}

impl ApiRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// Query option by name, with or without `$`, case-insensitive.
    fn q(&self, name: &str) -> Option<String> {
        let bare = name.trim_start_matches('$');
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k.trim_start_matches('$').eq_ignore_ascii_case(bare))
            .map(|(_, v)| v)
    }

    fn prefer(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("prefer"))
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(|p| p.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn prefers_text(&self) -> bool {
        self.prefer().iter().any(|p| {
            let l = p.to_ascii_lowercase().replace(' ', "");
            l == "outlook.body-content-type=\"text\"" || l == "outlook.body-content-type=text"
        })
    }

    fn prefers_immutable(&self) -> bool {
        self.prefer()
            .iter()
            .any(|p| p.to_ascii_lowercase().replace([' ', '"'], "") == "idtype=immutableid")
    }

    fn max_page_size(&self) -> Option<usize> {
        self.prefer().iter().find_map(|p| {
            let l = p.to_ascii_lowercase().replace(' ', "");
            l.strip_prefix("odata.maxpagesize=")
                .and_then(|n| n.parse().ok())
        })
    }

    /// The JSON body of an OData action (`move`, `sendMail`, `reply`, …) with its parameter
    /// names spelled as `params` spell them: Graph matches action parameters without regard
    /// to case (`{"DestinationId": …}` moves as `{"destinationId": …}` does), as Microsoft's
    /// SDKs rely on.
    fn action_body(&self, params: &[&str]) -> Result<Value, ApiError> {
        let mut body = self.json_body()?;
        if let Value::Object(map) = &mut body {
            for canonical in params {
                let other = map
                    .keys()
                    .find(|k| k.as_str() != *canonical && k.eq_ignore_ascii_case(canonical))
                    .cloned();
                if let Some(key) = other {
                    if !map.contains_key(*canonical) {
                        let value = map.remove(&key).expect("key just found");
                        map.insert((*canonical).to_string(), value);
                    }
                }
            }
        }
        Ok(body)
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "Empty Payload. JSON content expected.",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::new(
                400,
                "BadRequest",
                &format!("Unable to read JSON request payload: {e}"),
            )
        })
    }

    fn link(&self, query: &[(String, String)]) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in query {
            ser.append_pair(k, v);
        }
        format!("{}/{}?{}", self.base, self.path, ser.finish())
    }
}

/// Response body kinds.
#[derive(Debug, Clone)]
pub(crate) enum RespBody {
    Empty,
    Json(Value),
    Raw(Vec<u8>, String),
}

#[derive(Debug, Clone)]
pub(crate) struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: RespBody,
}

impl ApiResponse {
    fn json(status: u16, v: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: RespBody::Json(v),
        }
    }

    fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: RespBody::Empty,
        }
    }

    fn into_axum(self) -> Response {
        let mut b = Response::builder().status(self.status);
        for (n, v) in &self.headers {
            b = b.header(n.as_str(), v.as_str());
        }
        let body = match self.body {
            RespBody::Empty => Body::empty(),
            RespBody::Json(v) => {
                b = b.header("content-type", JSON_CT);
                Body::from(v.to_string())
            }
            RespBody::Raw(bytes, ct) => {
                b = b.header("content-type", ct);
                Body::from(bytes)
            }
        };
        b.body(body).expect("valid response")
    }
}

/// A Graph error (rendered in Graph's error shape).
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub headers: Vec<(String, String)>,
    pub inner_code: Option<String>,
}

impl ApiError {
    fn new(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
            headers: Vec::new(),
            inner_code: None,
        }
    }

    fn header(mut self, n: &str, v: &str) -> Self {
        self.headers.push((n.to_owned(), v.to_owned()));
        self
    }

    fn not_found() -> Self {
        Self::new(404, "ErrorItemNotFound", NOT_FOUND)
    }

    fn malformed() -> Self {
        Self::new(400, "ErrorInvalidIdMalformed", "Id is malformed.")
    }

    fn denied() -> Self {
        Self::new(403, "ErrorAccessDenied", ACCESS_DENIED)
    }

    fn bad(message: &str) -> Self {
        Self::new(400, "BadRequest", message)
    }

    fn into_response(
        self,
        request_id: &str,
        client_request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> ApiResponse {
        let mut inner = json!({
            "date": now.format("%Y-%m-%dT%H:%M:%S").to_string(),
            "request-id": request_id,
            "client-request-id": client_request_id.unwrap_or(request_id),
        });
        if let Some(c) = &self.inner_code {
            inner["code"] = json!(c);
        }
        ApiResponse {
            status: self.status,
            headers: self.headers,
            body: RespBody::Json(
                json!({"error": {"code": self.code, "message": self.message, "innerError": inner}}),
            ),
        }
    }
}

type ApiResult = Result<ApiResponse, ApiError>;

pub(crate) fn router(sb: GraphSandbox) -> Router {
    Router::new()
        .route("/v1.0/{*rest}", any(entry))
        .route("/api/v2.0/{*rest}", any(upload_entry))
        .with_state(sb)
}

async fn entry(AxState(sb): AxState<GraphSandbox>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 200 * 1024 * 1024)
        .await
        .unwrap_or_default();
    // The configured root; else the request's authority (HTTP/2 carries it in the URI, not in
    // a Host header), over http.
    let root = request_root(&sb, &parts);
    let req = ApiRequest {
        method: parts.method.as_str().to_ascii_uppercase(),
        path: parts
            .uri
            .path()
            .strip_prefix("/v1.0/")
            .unwrap_or("")
            .to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_owned(),
                )
            })
            .collect(),
        body: bytes.to_vec(),
        base: format!("{root}/v1.0"),
    };
    handle(&sb, req).await.into_axum()
}

/// The root URL the client used: the configured one; else the request's authority (HTTP/2
/// carries it in the URI, not in a Host header), over http.
fn request_root(sb: &GraphSandbox, parts: &axum::http::request::Parts) -> String {
    let configured = sb.inner.base_url.lock().expect("base url lock").clone();
    configured.unwrap_or_else(|| {
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        format!("http://{host}")
    })
}

type BoxedResponse = Pin<Box<dyn Future<Output = ApiResponse> + Send>>;

fn handle_boxed(sb: GraphSandbox, req: ApiRequest) -> BoxedResponse {
    Box::pin(async move { handle(&sb, req).await })
}

/// Handles one request end to end (errors become Graph error bodies).
pub(crate) async fn handle(sb: &GraphSandbox, req: ApiRequest) -> ApiResponse {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = req.header("client-request-id").map(str::to_owned);
    let mut resp = match dispatch(sb, &req).await {
        Ok(r) => r,
        Err(e) => e.into_response(&request_id, client_request_id.as_deref(), sb.now()),
    };
    resp.headers.push(("request-id".into(), request_id.clone()));
    resp.headers.push((
        "client-request-id".into(),
        client_request_id.unwrap_or(request_id),
    ));
    resp
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a path into segments, turning `name('key')` into `name`, `key`, and an OData
/// function call without parameters (`delta()`, `microsoft.graph.delta()`) into its bare name.
fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let seg = percent_decode(raw);
        if let (Some(open), true) = (seg.find('('), seg.ends_with(')')) {
            let name = &seg[..open];
            let key = seg[open + 1..seg.len() - 1].trim_matches('\'').to_owned();
            if key.is_empty() {
                out.push(
                    name.strip_prefix("microsoft.graph.")
                        .unwrap_or(name)
                        .to_owned(),
                );
                continue;
            }
            out.push(name.to_owned());
            out.push(key);
        } else {
            out.push(seg);
        }
    }
    out
}

fn take_fault(sb: &GraphSandbox, path: &str) -> Option<ApiError> {
    let mut faults = sb.inner.faults.lock().expect("faults lock");
    let lower = path.to_ascii_lowercase();
    let pos = faults.iter().position(|f| {
        f.path_contains
            .as_ref()
            .is_none_or(|p| lower.contains(&p.to_ascii_lowercase()))
    })?;
    let f = faults.remove(pos)?;
    let (code, msg) = match f.status {
        503 => (
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        504 => (
            "UnknownError",
            "The gateway did not receive a timely response from the service.",
        ),
        429 => ("TooManyRequests", "Please retry again later."),
        _ => ("UnknownError", "An injected fault occurred."),
    };
    let mut e = ApiError::new(f.status, code, msg);
    if let Some(ra) = f.retry_after {
        e = e.header("Retry-After", &format_retry(ra));
    }
    Some(e)
}

fn format_retry(secs: f64) -> String {
    let s = format!("{secs:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".into()
    } else {
        s.to_owned()
    }
}

fn authenticate(sb: &GraphSandbox, req: &ApiRequest) -> Result<AccessGrant, ApiError> {
    let unauth = |m: &str| {
        ApiError::new(401, "InvalidAuthenticationToken", m).header("WWW-Authenticate", WWW_AUTH)
    };
    let token = match req.header("authorization") {
        Some(v) if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") => v[7..].trim(),
        _ => return Err(unauth("Access token is empty.")),
    };
    let grant = sb.inner.validator.validate(token).map_err(|r| {
        unauth(match r {
            TokenRejection::Expired => "Access token has expired or is not yet valid.",
            TokenRejection::Unknown => "Access token validation failure.",
            TokenRejection::WrongAudience => "Access token validation failure. Invalid audience.",
            TokenRejection::Revoked => "Lifetime validation failed, the token is expired.",
        })
    })?;
    if grant.expires_at <= sb.now() {
        return Err(unauth("Access token has expired or is not yet valid."));
    }
    if !grant.tenant_id.eq_ignore_ascii_case(&sb.state().tenant_id) {
        return Err(unauth("Access token validation failure. Invalid issuer."));
    }
    Ok(grant)
}

async fn dispatch(sb: &GraphSandbox, req: &ApiRequest) -> ApiResult {
    if let Some(f) = take_fault(sb, &req.path) {
        return Err(f);
    }
    let segs = segments(&req.path);
    let grant = authenticate(sb, req)?;
    let Some(first) = segs.first() else {
        return Err(ApiError::bad("Invalid request: no resource path."));
    };
    match first.to_ascii_lowercase().as_str() {
        "$batch" if segs.len() == 1 => {
            if req.method != "POST" {
                return Err(method_not_allowed(req));
            }
            batch(sb, req, &grant).await
        }
        "me" => {
            let Some(uid) = grant.user_id.clone() else {
                return Err(ApiError::new(
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                ));
            };
            user_route(sb, req, &grant, &uid, &segs[1..]).await
        }
        "users" => match segs.get(1) {
            Some(u) => user_route(sb, req, &grant, u, &segs[2..]).await,
            None => list_users(sb, req, &grant),
        },
        "subscriptions" => subscriptions_route(sb, req, &grant, &segs[1..]).await,
        other => Err(ApiError::bad(&format!(
            "Resource not found for the segment '{other}'."
        ))),
    }
}

fn method_not_allowed(req: &ApiRequest) -> ApiError {
    ApiError::new(
        405,
        "Request_BadRequest",
        &format!(
            "The HTTP method '{}' is not supported for this resource.",
            req.method
        ),
    )
}

fn has_any(list: &[String], wanted: &[&str]) -> bool {
    list.iter()
        .any(|s| wanted.iter().any(|w| s.eq_ignore_ascii_case(w)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Read,
    Write,
    Send,
    Contacts,
}

/// Decides whether `g` may do `need` on mailbox `mb` (reference §3.1, §3.10, §7).
fn authorize(st: &State, g: &AccessGrant, mb: usize, need: Need) -> Result<(), ApiError> {
    let user = &st.mailboxes[mb].user;
    if g.is_app_only() {
        let ok = match need {
            Need::Read => has_any(&g.roles, &["Mail.Read", "Mail.ReadWrite"]),
            Need::Write => has_any(&g.roles, &["Mail.ReadWrite"]),
            Need::Send => has_any(&g.roles, &["Mail.Send"]),
            Need::Contacts => has_any(&g.roles, &["Contacts.Read", "Contacts.ReadWrite"]),
        };
        if !ok {
            return Err(ApiError::denied());
        }
        if !st.policy_allows(&g.client_id, user) {
            return Err(ApiError::new(403, "ErrorAccessDenied", ODATA_DISABLED));
        }
        return Ok(());
    }
    let own = g
        .user_id
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case(&user.id));
    if own {
        let ok = match need {
            Need::Read => has_any(&g.scopes, &["Mail.Read", "Mail.ReadWrite"]),
            Need::Write => has_any(&g.scopes, &["Mail.ReadWrite"]),
            Need::Send => has_any(&g.scopes, &["Mail.Send"]),
            Need::Contacts => has_any(&g.scopes, &["Contacts.Read", "Contacts.ReadWrite"]),
        };
        return if ok { Ok(()) } else { Err(ApiError::denied()) };
    }
    let delegate = g.user_id.clone().unwrap_or_default();
    let (scope_ok, right_ok) = match need {
        Need::Read => (
            has_any(&g.scopes, &["Mail.Read.Shared", "Mail.ReadWrite.Shared"]),
            st.has_right(user, &delegate, MailboxRight::FullAccess),
        ),
        Need::Write => (
            has_any(&g.scopes, &["Mail.ReadWrite.Shared"]),
            st.has_right(user, &delegate, MailboxRight::FullAccess),
        ),
        Need::Send => (
            has_any(&g.scopes, &["Mail.Send.Shared"]),
            st.has_right(user, &delegate, MailboxRight::SendAs)
                || st.has_right(user, &delegate, MailboxRight::SendOnBehalf),
        ),
        Need::Contacts => (
            has_any(
                &g.scopes,
                &["Contacts.Read.Shared", "Contacts.ReadWrite.Shared"],
            ),
            st.has_right(user, &delegate, MailboxRight::FullAccess),
        ),
    };
    if !scope_ok {
        return Err(ApiError::denied());
    }
    if !right_ok {
        if need == Need::Send {
            return Err(ApiError::new(
                403,
                "ErrorSendAsDenied",
                "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.",
            ));
        }
        return Err(ApiError::denied());
    }
    Ok(())
}

/// Keeps a request counted as in flight for its app+mailbox until dropped.
struct FlightGuard {
    sb: GraphSandbox,
    key: (String, String),
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if let Ok(mut st) = self.sb.inner.state.lock() {
            if let Some(l) = st.limiters.get_mut(&self.key) {
                l.in_flight = l.in_flight.saturating_sub(1);
            }
        }
    }
}

fn admit(sb: &GraphSandbox, app: &str, mailbox_id: &str) -> Result<Option<FlightGuard>, ApiError> {
    let limits = sb.inner.limits.lock().expect("limits lock").clone();
    if !limits.enabled {
        return Ok(None);
    }
    let now = sb.now();
    let key = (app.to_ascii_lowercase(), mailbox_id.to_owned());
    let mut st = sb.state();
    let l = st.limiters.entry(key.clone()).or_default();
    while l.window.front().is_some_and(|t| *t <= now - limits.window) {
        l.window.pop_front();
    }
    l.window.push_back(now);
    if l.window.len() > limits.window_requests {
        let oldest = l.window[l.window.len() - 1 - limits.window_requests];
        let wait = (oldest + limits.window - now).num_milliseconds().max(1) as f64 / 1000.0;
        let mut e = ApiError::new(429, "TooManyRequests", "Please retry again later.")
            .header("Retry-After", &format_retry(wait));
        e.inner_code = Some("429".into());
        return Err(e);
    }
    if l.in_flight >= limits.max_concurrent {
        let mut e = ApiError::new(
            429,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        )
        .header("Retry-After", "1");
        e.inner_code = Some("429".into());
        return Err(e);
    }
    l.in_flight += 1;
    Ok(Some(FlightGuard {
        sb: sb.clone(),
        key,
    }))
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn user_json(u: &crate::SeedUser) -> Value {
    json!({
        "businessPhones": [],
        "displayName": u.display_name,
        "givenName": u.given_name,
        "jobTitle": u.job_title,
        "mail": u.mail,
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": "en-US",
        "surname": u.surname,
        "userPrincipalName": u.user_principal_name,
        "id": u.id,
    })
}

fn select_list(req: &ApiRequest) -> Option<Vec<String>> {
    req.q("$select").map(|s| {
        s.split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect()
    })
}

/// Keeps only `$select`ed properties (plus `id` and `@odata.*` annotations).
fn apply_select(v: Value, select: &Option<Vec<String>>) -> Value {
    let (Some(sel), Value::Object(map)) = (select, &v) else {
        return v;
    };
    let out: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| {
            k.starts_with('@')
                || k.as_str() == "id"
                || sel.iter().any(|s| s.eq_ignore_ascii_case(k))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(out)
}

fn mbx_index(st: &State, mbid: &str) -> usize {
    st.mailbox_index(mbid)
        .expect("mailbox resolved before routing")
}

fn paging(req: &ApiRequest, default_top: usize) -> Result<(usize, usize), ApiError> {
    let top = match req.q("$top") {
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    400,
                    "ErrorInvalidUrlQuery",
                    &format!(
                    "The value '{t}' of $top is invalid; it must be an integer between 1 and 1000."
                ),
                ))
            }
        },
        None => default_top,
    };
    let skip = match req.q("$skip") {
        Some(s) => s.parse::<usize>().map_err(|_| {
            ApiError::new(
                400,
                "ErrorInvalidUrlQuery",
                &format!("The value '{s}' of $skip is invalid."),
            )
        })?,
        None => 0,
    };
    Ok((top, skip))
}

fn page_response(
    req: &ApiRequest,
    context: String,
    items: Vec<Value>,
    total: usize,
    top: usize,
    skip: usize,
) -> ApiResponse {
    let mut body = json!({"@odata.context": context, "value": items});
    if skip + top < total {
        let mut q: Vec<(String, String)> = req
            .query_pairs()
            .into_iter()
            .filter(|(k, _)| !k.trim_start_matches('$').eq_ignore_ascii_case("skip"))
            .collect();
        q.push(("$skip".into(), (skip + top).to_string()));
        body["@odata.nextLink"] = json!(req.link(&q));
    }
    ApiResponse::json(200, body)
}
