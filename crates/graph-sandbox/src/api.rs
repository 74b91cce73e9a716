//! The HTTP surface: request parsing, authentication, authorization, throttling, and every
//! endpoint. Requests are turned into [`ApiRequest`] so that `$batch` can run sub-requests
//! through exactly the same code path as top-level requests.

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
    /// `http://host/v1.0`, for building links.
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
        .with_state(sb)
}

async fn entry(AxState(sb): AxState<GraphSandbox>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 200 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
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
        base: format!("http://{host}/v1.0"),
    };
    handle(&sb, req).await.into_axum()
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

/// Splits a path into segments, turning `name('key')` into `name`, `key`.
fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let seg = percent_decode(raw);
        if let (Some(open), true) = (seg.find('('), seg.ends_with(')')) {
            out.push(seg[..open].to_owned());
            let key = seg[open + 1..seg.len() - 1].trim_matches('\'').to_owned();
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
            None => Err(ApiError::new(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )),
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

async fn user_route(
    sb: &GraphSandbox,
    req: &ApiRequest,
    g: &AccessGrant,
    key: &str,
    rest: &[String],
) -> ApiResult {
    if rest.is_empty() {
        if req.method != "GET" {
            return Err(method_not_allowed(req));
        }
        let st = sb.state();
        let Some(mb) = st.mailbox_index(key) else {
            return Err(ApiError::new(
                404,
                "Request_ResourceNotFound",
                &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
            ));
        };
        let user = &st.mailboxes[mb].user;
        let own = g
            .user_id
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(&user.id));
        let ok = if g.is_app_only() {
            has_any(
                &g.roles,
                &[
                    "User.Read.All",
                    "User.ReadBasic.All",
                    "User.ReadWrite.All",
                    "Directory.Read.All",
                ],
            )
        } else if own {
            has_any(
                &g.scopes,
                &[
                    "User.Read",
                    "User.ReadBasic.All",
                    "User.Read.All",
                    "Directory.Read.All",
                ],
            )
        } else {
            has_any(
                &g.scopes,
                &["User.ReadBasic.All", "User.Read.All", "Directory.Read.All"],
            )
        };
        if !ok {
            return Err(ApiError::new(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ));
        }
        let mut v = user_json(user);
        v["@odata.context"] = json!(format!("{}/$metadata#users/$entity", req.base));
        return Ok(ApiResponse::json(200, apply_select(v, &select_list(req))));
    }
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let need = match (req.method.as_str(), lower[0].as_str()) {
        (_, "contacts") | (_, "contactfolders") => Need::Contacts,
        ("POST", "sendmail") => Need::Send,
        ("POST", _) if lower.last().map(String::as_str) == Some("reply") => Need::Send,
        ("GET", _) => Need::Read,
        _ => Need::Write,
    };
    let mailbox_id = {
        let st = sb.state();
        let mb = st.mailbox_index(key).ok_or_else(|| {
            ApiError::new(
                404,
                "ErrorInvalidUser",
                &format!("The requested user '{key}' is invalid."),
            )
        })?;
        authorize(&st, g, mb, need)?;
        st.mailboxes[mb].user.id.clone()
    };
    let _guard = admit(sb, &g.client_id, &mailbox_id)?;
    let mut hold = sb.inner.hold.subscribe();
    let _ = hold.wait_for(|h| !*h).await;
    mailbox_route(sb, req, g, &mailbox_id, rest, &lower)
}

fn mailbox_route(
    sb: &GraphSandbox,
    req: &ApiRequest,
    g: &AccessGrant,
    mbid: &str,
    rest: &[String],
    lower: &[String],
) -> ApiResult {
    let m = req.method.as_str();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    match l.as_slice() {
        ["mailfolders"] => match m {
            "GET" => list_folders(sb, req, mbid, None),
            "POST" => create_folder(sb, req, mbid, None),
            _ => Err(method_not_allowed(req)),
        },
        ["mailfolders", _] if m == "GET" => get_folder(sb, req, mbid, &rest[1]),
        ["mailfolders", _, "childfolders"] => match m {
            "GET" => list_folders(sb, req, mbid, Some(&rest[1])),
            "POST" => create_folder(sb, req, mbid, Some(&rest[1])),
            _ => Err(method_not_allowed(req)),
        },
        ["mailfolders", _, "messages"] if m == "GET" => list_messages(sb, req, mbid, Some(&rest[1])),
        ["mailfolders", _, "messages", "delta"] if m == "GET" => delta(sb, req, mbid, &rest[1]),
        ["mailfolders", _, "messages", _, ..] => message_route(sb, req, g, mbid, Some(&rest[1]), &rest[3], &rest[4..]),
        ["messages"] if m == "GET" => list_messages(sb, req, mbid, None),
        ["messages", "delta"] => Err(ApiError::bad(
            "Change tracking is not supported against 'microsoft.graph.message'; use /mailFolders/{id}/messages/delta.",
        )),
        ["messages", _, ..] => message_route(sb, req, g, mbid, None, &rest[1], &rest[2..]),
        ["sendmail"] if m == "POST" => send_mail(sb, req, g, mbid),
        ["contacts"] if m == "GET" => list_contacts(sb, req, mbid),
        ["contacts", _] if m == "GET" => get_contact(sb, req, mbid, &rest[1]),
        [first, ..] if ["mailfolders", "messages", "sendmail", "contacts"].contains(first) => {
            Err(method_not_allowed(req))
        }
        [first, ..] => Err(ApiError::bad(&format!("Resource not found for the segment '{first}'."))),
        [] => Err(ApiError::bad("Invalid request.")),
    }
}

fn mbx_index(st: &State, mbid: &str) -> usize {
    st.mailbox_index(mbid)
        .expect("mailbox resolved before routing")
}

fn folder_json(mbx: &Mailbox, f: &state::Folder) -> Value {
    let msgs = mbx.messages.iter().filter(|m| m.folder_id == f.id);
    let total = msgs.clone().count();
    let unread = msgs.filter(|m| !m.is_read).count();
    let children = mbx.folders.iter().filter(|c| c.parent_id == f.id).count();
    json!({
        "id": f.id,
        "displayName": f.display_name,
        "parentFolderId": f.parent_id,
        "childFolderCount": children,
        "unreadItemCount": unread,
        "totalItemCount": total,
        "sizeInBytes": mbx.messages.iter().filter(|m| m.folder_id == f.id).map(|m| m.mime.len()).sum::<usize>(),
        "isHidden": false,
    })
}

fn resolve_folder<'a>(mbx: &'a Mailbox, key: &str) -> Result<&'a state::Folder, ApiError> {
    if let Some(f) = mbx.folder(key) {
        return Ok(f);
    }
    if key.starts_with("AAMk") || key.starts_with("AQMk") {
        if id_well_formed(key) {
            Err(ApiError::not_found())
        } else {
            Err(ApiError::malformed())
        }
    } else if key.chars().all(|c| c.is_ascii_alphabetic()) {
        Err(ApiError::not_found())
    } else {
        Err(ApiError::malformed())
    }
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

fn list_folders(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    parent: Option<&str>,
) -> ApiResult {
    let st = sb.state();
    let mbx = &st.mailboxes[mbx_index(&st, mbid)];
    let parent_id = match parent {
        Some(p) => resolve_folder(mbx, p)?.id.clone(),
        None => mbx.root_id(),
    };
    let (top, skip) = paging(req, 10)?;
    let name_filter = match req.q("$filter") {
        Some(f) => {
            let clauses = query::parse_filter(&f).map_err(|e| ApiError::bad(&e))?;
            let mut name = None;
            for c in clauses {
                match (c.property.as_str(), c.op, c.value) {
                    ("displayName", query::Op::Eq, query::Value::Str(s)) => name = Some(s),
                    _ => return Err(ApiError::bad("Invalid filter clause: only displayName eq '…' is supported on mailFolders.")),
                }
            }
            name
        }
        None => None,
    };
    let all: Vec<Value> = mbx
        .folders
        .iter()
        .filter(|f| f.parent_id == parent_id)
        .filter(|f| {
            name_filter
                .as_ref()
                .is_none_or(|n| f.display_name.eq_ignore_ascii_case(n))
        })
        .map(|f| apply_select(folder_json(mbx, f), &select_list(req)))
        .collect();
    let total = all.len();
    let items = all.into_iter().skip(skip).take(top).collect();
    let ctx = format!("{}/$metadata#users('{}')/mailFolders", req.base, mbid);
    Ok(page_response(req, ctx, items, total, top, skip))
}

fn get_folder(sb: &GraphSandbox, req: &ApiRequest, mbid: &str, key: &str) -> ApiResult {
    let st = sb.state();
    let mbx = &st.mailboxes[mbx_index(&st, mbid)];
    let f = resolve_folder(mbx, key)?;
    let mut v = apply_select(folder_json(mbx, f), &select_list(req));
    v["@odata.context"] = json!(format!(
        "{}/$metadata#users('{}')/mailFolders/$entity",
        req.base, mbid
    ));
    Ok(ApiResponse::json(200, v))
}

fn create_folder(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    parent: Option<&str>,
) -> ApiResult {
    let body = req.json_body()?;
    let name = body
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "ErrorInvalidRequest",
                "The folder displayName is required.",
            )
        })?
        .to_owned();
    let mut st = sb.state();
    let mb = mbx_index(&st, mbid);
    let parent_id = match parent {
        Some(p) => resolve_folder(&st.mailboxes[mb], p)?.id.clone(),
        None => st.mailboxes[mb].root_id(),
    };
    if st.mailboxes[mb]
        .folders
        .iter()
        .any(|f| f.parent_id == parent_id && f.display_name.eq_ignore_ascii_case(&name))
    {
        return Err(ApiError::new(
            409,
            "ErrorFolderExists",
            "A folder with the specified name already exists.",
        ));
    }
    let n = st.next_counter();
    let id = make_id("AAMkAD", &format!("folder|{mbid}|custom|{n}"));
    st.mailboxes[mb].folders.push(state::Folder {
        id: id.clone(),
        well_known: None,
        display_name: name,
        parent_id,
    });
    let mbx = &st.mailboxes[mb];
    let f = mbx.folders.last().expect("just pushed");
    let mut v = folder_json(mbx, f);
    v["@odata.context"] = json!(format!(
        "{}/$metadata#users('{}')/mailFolders/$entity",
        req.base, mbid
    ));
    Ok(ApiResponse::json(201, v))
}

struct RenderOpts {
    select: Option<Vec<String>>,
    text: bool,
    immutable: bool,
}

impl RenderOpts {
    fn from(req: &ApiRequest) -> Self {
        Self {
            select: select_list(req),
            text: req.prefers_text(),
            immutable: req.prefers_immutable(),
        }
    }
}

fn recipient(r: &state::Recipient) -> Value {
    json!({"emailAddress": {"name": r.0.clone().unwrap_or_else(|| r.1.clone()), "address": r.1}})
}

fn message_json(m: &Message, mbx: &Mailbox, o: &RenderOpts) -> Value {
    let id = if o.immutable { &m.immutable_id } else { &m.id };
    let body = if o.text {
        json!({"contentType": "text", "content": m.body_text})
    } else {
        json!({"contentType": "html", "content": m.body_html})
    };
    let mut v = json!({
        "@odata.etag": m.etag(),
        "id": id,
        "createdDateTime": fmt_time(m.received),
        "lastModifiedDateTime": fmt_time(m.last_modified),
        "changeKey": format!("CQAAABYAAAA{:016x}", m.change_key),
        "categories": m.categories,
        "receivedDateTime": fmt_time(m.received),
        "sentDateTime": fmt_time(m.sent),
        "hasAttachments": m.has_attachments(),
        "internetMessageId": m.internet_message_id,
        "subject": m.subject,
        "bodyPreview": crate::mime::preview(&m.body_text),
        "importance": m.importance,
        "parentFolderId": m.folder_id,
        "conversationId": m.conversation_id,
        "isDeliveryReceiptRequested": false,
        "isReadReceiptRequested": false,
        "isRead": m.is_read,
        "isDraft": m.is_draft,
        "webLink": format!("https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem", id),
        "inferenceClassification": "focused",
        "body": body,
        "sender": recipient(&m.from),
        "from": recipient(&m.from),
        "toRecipients": m.to.iter().map(recipient).collect::<Vec<_>>(),
        "ccRecipients": m.cc.iter().map(recipient).collect::<Vec<_>>(),
        "bccRecipients": [],
        "replyTo": m.reply_to.iter().map(recipient).collect::<Vec<_>>(),
        "flag": {"flagStatus": m.flag},
    });
    let _ = mbx;
    if let Some(sel) = &o.select {
        if sel
            .iter()
            .any(|s| s.eq_ignore_ascii_case("internetMessageHeaders"))
        {
            v["internetMessageHeaders"] = Value::Array(
                m.headers
                    .iter()
                    .map(|(n, val)| json!({"name": n, "value": val}))
                    .collect(),
            );
        }
    }
    apply_select(v, &o.select)
}

fn preference_applied(req: &ApiRequest, mut r: ApiResponse) -> ApiResponse {
    let mut applied = Vec::new();
    if req.prefers_text() {
        applied.push("outlook.body-content-type=\"text\"".to_owned());
    }
    if req.prefers_immutable() {
        applied.push("IdType=\"ImmutableId\"".to_owned());
    }
    if !applied.is_empty() {
        r.headers
            .push(("Preference-Applied".into(), applied.join(", ")));
    }
    r
}

fn list_messages(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    folder: Option<&str>,
) -> ApiResult {
    let (top, skip) = paging(req, 10)?;
    let filter = match req.q("$filter") {
        Some(f) => query::parse_filter(&f)
            .map_err(|e| ApiError::new(400, "ErrorInvalidUrlQueryFilter", &e))?,
        None => Vec::new(),
    };
    let order = match req.q("$orderby") {
        Some(o) => {
            query::parse_orderby(&o).map_err(|e| ApiError::new(400, "ErrorInvalidUrlQuery", &e))?
        }
        None => Vec::new(),
    };
    if query::inefficient(&filter, &order) {
        return Err(ApiError::new(
            400,
            "InefficientFilter",
            "The restriction or sort order is too complex for this operation.",
        ));
    }
    let st = sb.state();
    let mbx = &st.mailboxes[mbx_index(&st, mbid)];
    let folder_id = match folder {
        Some(f) => Some(resolve_folder(mbx, f)?.id.clone()),
        None => None,
    };
    let mut msgs: Vec<&Message> = mbx
        .messages
        .iter()
        .filter(|m| folder_id.as_ref().is_none_or(|f| &m.folder_id == f))
        .filter(|m| query::matches(m, &filter))
        .collect();
    query::sort(&mut msgs, &order);
    let o = RenderOpts::from(req);
    let total = msgs.len();
    let items = msgs
        .into_iter()
        .skip(skip)
        .take(top)
        .map(|m| message_json(m, mbx, &o))
        .collect();
    let ctx = match &folder_id {
        Some(f) => format!(
            "{}/$metadata#users('{}')/mailFolders('{}')/messages",
            req.base, mbid, f
        ),
        None => format!("{}/$metadata#users('{}')/messages", req.base, mbid),
    };
    Ok(preference_applied(
        req,
        page_response(req, ctx, items, total, top, skip),
    ))
}

/// Finds a message; `folder` (when addressed through a folder) must contain it.
fn find_message(st: &State, mb: usize, folder: Option<&str>, id: &str) -> Result<usize, ApiError> {
    if !id_well_formed(id) {
        return Err(ApiError::malformed());
    }
    let mbx = &st.mailboxes[mb];
    let idx = mbx.message_index(id).ok_or_else(ApiError::not_found)?;
    if let Some(f) = folder {
        let fid = resolve_folder(mbx, f)?.id.clone();
        if mbx.messages[idx].folder_id != fid {
            return Err(ApiError::not_found());
        }
    }
    Ok(idx)
}

#[allow(clippy::too_many_arguments)]
fn message_route(
    sb: &GraphSandbox,
    req: &ApiRequest,
    g: &AccessGrant,
    mbid: &str,
    folder: Option<&str>,
    id: &str,
    tail: &[String],
) -> ApiResult {
    let tl: Vec<String> = tail.iter().map(|s| s.to_ascii_lowercase()).collect();
    let tl: Vec<&str> = tl.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    match (m, tl.as_slice()) {
        ("GET", []) => {
            let st = sb.state();
            let mb = mbx_index(&st, mbid);
            let idx = find_message(&st, mb, folder, id)?;
            let mbx = &st.mailboxes[mb];
            let mut v = message_json(&mbx.messages[idx], mbx, &RenderOpts::from(req));
            v["@odata.context"] = json!(format!(
                "{}/$metadata#users('{}')/messages/$entity",
                req.base, mbid
            ));
            Ok(preference_applied(req, ApiResponse::json(200, v)))
        }
        ("PATCH", []) => patch_message(sb, req, mbid, folder, id),
        ("DELETE", []) => delete_message(sb, mbid, folder, id),
        ("GET", ["$value"]) => {
            let st = sb.state();
            let mb = mbx_index(&st, mbid);
            let idx = find_message(&st, mb, folder, id)?;
            let mime = st.mailboxes[mb].messages[idx].mime.clone();
            Ok(ApiResponse {
                status: 200,
                headers: vec![],
                body: RespBody::Raw(mime.into_bytes(), "text/plain".into()),
            })
        }
        ("GET", ["attachments"]) => {
            let st = sb.state();
            let mb = mbx_index(&st, mbid);
            let idx = find_message(&st, mb, folder, id)?;
            let msg = &st.mailboxes[mb].messages[idx];
            let sel = select_list(req);
            let items: Vec<Value> = msg
                .attachments
                .iter()
                .map(|a| apply_select(attachment_json(a, msg), &sel))
                .collect();
            Ok(ApiResponse::json(
                200,
                json!({
                    "@odata.context": format!("{}/$metadata#users('{}')/messages('{}')/attachments", req.base, mbid, id),
                    "value": items
                }),
            ))
        }
        ("GET", ["attachments", _]) | ("GET", ["attachments", _, "$value"]) => {
            let st = sb.state();
            let mb = mbx_index(&st, mbid);
            let idx = find_message(&st, mb, folder, id)?;
            let msg = &st.mailboxes[mb].messages[idx];
            let aid = &tail[1];
            if !id_well_formed(aid) {
                return Err(ApiError::malformed());
            }
            let a = msg
                .attachments
                .iter()
                .find(|a| &a.id == aid)
                .ok_or_else(ApiError::not_found)?;
            if tl.len() == 3 {
                return Ok(ApiResponse {
                    status: 200,
                    headers: vec![],
                    body: RespBody::Raw(a.content.clone(), a.content_type.clone()),
                });
            }
            let mut v = apply_select(attachment_json(a, msg), &select_list(req));
            v["@odata.context"] = json!(format!(
                "{}/$metadata#users('{}')/messages('{}')/attachments/$entity",
                req.base, mbid, id
            ));
            Ok(ApiResponse::json(200, v))
        }
        ("POST", ["move"]) => move_message(sb, req, mbid, folder, id),
        ("POST", ["reply"]) => reply(sb, req, g, mbid, folder, id),
        (_, []) | (_, ["$value"]) | (_, ["attachments", ..]) | (_, ["move"]) | (_, ["reply"]) => {
            Err(method_not_allowed(req))
        }
        (_, [seg, ..]) => Err(ApiError::bad(&format!(
            "Resource not found for the segment '{seg}'."
        ))),
    }
}

fn attachment_json(a: &state::Attachment, m: &Message) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "@odata.mediaContentType": a.content_type,
        "id": a.id,
        "lastModifiedDateTime": fmt_time(m.received),
        "name": a.name,
        "contentType": a.content_type,
        "size": a.content.len(),
        "isInline": a.inline,
        "contentId": a.content_id,
        "contentLocation": null,
        "contentBytes": b64encode(&a.content),
    })
}

fn patch_message(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    folder: Option<&str>,
    id: &str,
) -> ApiResult {
    let body = req.json_body()?;
    let obj = body.as_object().ok_or_else(|| {
        ApiError::bad("Unable to read JSON request payload: an object is expected.")
    })?;
    let now = sb.now();
    let (resp, jobs) = {
        let mut st = sb.state();
        let mb = mbx_index(&st, mbid);
        let idx = find_message(&st, mb, folder, id)?;
        {
            let msg = &mut st.mailboxes[mb].messages[idx];
            for (k, v) in obj {
                match k.as_str() {
                    "isRead" => {
                        msg.is_read = v.as_bool().ok_or_else(|| {
                            ApiError::bad(
                                "Invalid value for property 'isRead': a boolean is expected.",
                            )
                        })?
                    }
                    "categories" => {
                        msg.categories = v
                            .as_array()
                            .ok_or_else(|| {
                                ApiError::bad(
                                "Invalid value for property 'categories': an array is expected.",
                            )
                            })?
                            .iter()
                            .filter_map(|c| c.as_str().map(str::to_owned))
                            .collect()
                    }
                    "flag" => {
                        if let Some(s) = v.get("flagStatus").and_then(Value::as_str) {
                            msg.flag = s.to_owned();
                        }
                    }
                    "importance" => {
                        if let Some(s) = v.as_str() {
                            msg.importance = s.to_ascii_lowercase();
                        }
                    }
                    k if k.starts_with('@') => {}
                    other => {
                        return Err(ApiError::new(
                            400,
                            "ErrorInvalidPropertyRequest",
                            &format!(
                                "The property '{other}' cannot be updated on a received message."
                            ),
                        ))
                    }
                }
            }
        }
        st.touch(mb, idx, now);
        let mbx = &st.mailboxes[mb];
        let msg = &mbx.messages[idx];
        let v = message_json(msg, mbx, &RenderOpts::from(req));
        let (folder_id, mid, imm, etag) = (
            msg.folder_id.clone(),
            msg.id.clone(),
            msg.immutable_id.clone(),
            msg.etag(),
        );
        let jobs = notify(&mut st, mb, &folder_id, &mid, &imm, &etag, "updated", now);
        (v, jobs)
    };
    sb.publish(jobs);
    Ok(preference_applied(req, ApiResponse::json(200, resp)))
}

fn move_message(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    folder: Option<&str>,
    id: &str,
) -> ApiResult {
    let body = req.json_body()?;
    let dest_key = body
        .get("destinationId")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::new(
                400,
                "ErrorInvalidRequest",
                "The destinationId parameter is required.",
            )
        })?
        .to_owned();
    let keep = !sb.behaviour().move_changes_id;
    let now = sb.now();
    let (v, jobs) = {
        let mut st = sb.state();
        let mb = mbx_index(&st, mbid);
        let idx = find_message(&st, mb, folder, id)?;
        let dest = resolve_folder(&st.mailboxes[mb], &dest_key)?.id.clone();
        let (src, old_id, imm, old_etag) = {
            let m = &st.mailboxes[mb].messages[idx];
            (
                m.folder_id.clone(),
                m.id.clone(),
                m.immutable_id.clone(),
                m.etag(),
            )
        };
        st.move_message(mb, idx, &dest, keep, now);
        let mut jobs = notify(&mut st, mb, &src, &old_id, &imm, &old_etag, "deleted", now);
        let (new_id, etag) = {
            let m = &st.mailboxes[mb].messages[idx];
            (m.id.clone(), m.etag())
        };
        jobs.extend(notify(
            &mut st, mb, &dest, &new_id, &imm, &etag, "created", now,
        ));
        let mbx = &st.mailboxes[mb];
        let mut v = message_json(&mbx.messages[idx], mbx, &RenderOpts::from(req));
        v["@odata.context"] = json!(format!(
            "{}/$metadata#users('{}')/messages/$entity",
            req.base, mbid
        ));
        (v, jobs)
    };
    sb.publish(jobs);
    Ok(preference_applied(req, ApiResponse::json(201, v)))
}

fn delete_message(sb: &GraphSandbox, mbid: &str, folder: Option<&str>, id: &str) -> ApiResult {
    let now = sb.now();
    let keep = !sb.behaviour().move_changes_id;
    let jobs = {
        let mut st = sb.state();
        let mb = mbx_index(&st, mbid);
        let idx = find_message(&st, mb, folder, id)?;
        let deleted = st.mailboxes[mb]
            .folder("deleteditems")
            .expect("deleteditems")
            .id
            .clone();
        let (src, old_id, imm, etag) = {
            let m = &st.mailboxes[mb].messages[idx];
            (
                m.folder_id.clone(),
                m.id.clone(),
                m.immutable_id.clone(),
                m.etag(),
            )
        };
        let mut jobs = notify(&mut st, mb, &src, &old_id, &imm, &etag, "deleted", now);
        if src == deleted {
            st.remove_message(mb, idx);
        } else {
            st.move_message(mb, idx, &deleted, keep, now);
            let (nid, netag) = {
                let m = &st.mailboxes[mb].messages[idx];
                (m.id.clone(), m.etag())
            };
            jobs.extend(notify(
                &mut st, mb, &deleted, &nid, &imm, &netag, "created", now,
            ));
        }
        jobs
    };
    sb.publish(jobs);
    Ok(ApiResponse::empty(204))
}

fn delta(sb: &GraphSandbox, req: &ApiRequest, mbid: &str, folder_key: &str) -> ApiResult {
    let gone = || {
        ApiError::new(
            410,
            "SyncStateNotFound",
            "The sync state generation is not found; the delta token has expired or is invalid. Restart the synchronization without a delta token.",
        )
    };
    let page_size = req.max_page_size().unwrap_or(10).clamp(1, 1000);
    // Delta supports $filter only as receivedDateTime ge|gt {value}.
    let filter = match req.q("$filter") {
        Some(f) => {
            let clauses = query::parse_filter(&f)
                .map_err(|e| ApiError::new(400, "ErrorInvalidUrlQueryFilter", &e))?;
            if clauses.iter().any(|c| {
                c.property != "receivedDateTime" || !matches!(c.op, query::Op::Ge | query::Op::Gt)
            }) {
                return Err(ApiError::new(
                    400,
                    "ErrorInvalidUrlQueryFilter",
                    "Delta query supports $filter only as 'receivedDateTime ge|gt {value}'.",
                ));
            }
            clauses
        }
        None => Vec::new(),
    };
    let now = sb.now();
    let ttl = sb.behaviour().delta_token_ttl;
    let o = RenderOpts::from(req);
    let mut st = sb.state();
    let mb = mbx_index(&st, mbid);
    let folder_id = resolve_folder(&st.mailboxes[mb], folder_key)?.id.clone();
    let page = if let Some(skip) = req.q("$skiptoken") {
        let p = st.delta_pages.get(&skip).cloned().ok_or_else(gone)?;
        if p.mailbox != mbid || p.folder_id != folder_id {
            return Err(gone());
        }
        p
    } else if let Some(tok) = req.q("$deltatoken") {
        let t = st.delta_tokens.get(&tok).cloned().ok_or_else(gone)?;
        if t.mailbox != mbid || t.folder_id != folder_id {
            return Err(gone());
        }
        if ttl.is_some_and(|ttl| now - t.issued > ttl) {
            st.delta_tokens.remove(&tok);
            return Err(gone());
        }
        DeltaPage {
            mailbox: mbid.to_owned(),
            folder_id: folder_id.clone(),
            items: st.changes_since(mb, &folder_id, t.watermark),
            offset: 0,
            watermark: st.next_seq - 1,
        }
    } else {
        let mbx = &st.mailboxes[mb];
        let mut msgs: Vec<&Message> = mbx
            .messages
            .iter()
            .filter(|m| m.folder_id == folder_id)
            .filter(|m| query::matches(m, &filter))
            .collect();
        query::sort(&mut msgs, &[]);
        if !filter.is_empty() {
            // A filtered delta returns at most 5,000 messages.
            msgs.truncate(5000);
        }
        DeltaPage {
            mailbox: mbid.to_owned(),
            folder_id: folder_id.clone(),
            items: msgs.iter().map(|m| DeltaItem::Upsert(m.key)).collect(),
            offset: 0,
            watermark: st.next_seq - 1,
        }
    };
    let mbx = &st.mailboxes[mb];
    let end = (page.offset + page_size).min(page.items.len());
    let values: Vec<Value> = page.items[page.offset..end]
        .iter()
        .map(|it| match it {
            DeltaItem::Upsert(k) => match mbx
                .messages
                .iter()
                .find(|m| m.key == *k && m.folder_id == folder_id)
            {
                Some(m) => message_json(m, mbx, &o),
                None => removed_json(mbx, *k, &o),
            },
            DeltaItem::Removed { id, immutable_id } => json!({
                "@odata.type": "#microsoft.graph.message",
                "id": if o.immutable { immutable_id } else { id },
                "@removed": {"reason": "deleted"},
            }),
        })
        .collect();
    let keep: Vec<(String, String)> = req
        .query_pairs()
        .into_iter()
        .filter(|(k, _)| {
            let k = k.trim_start_matches('$').to_ascii_lowercase();
            k != "skiptoken" && k != "deltatoken"
        })
        .collect();
    let n = st.next_counter();
    let token = make_id("", &format!("delta|{mbid}|{n}"))
        .trim_end_matches('=')
        .to_owned();
    let mut body = json!({
        "@odata.context": format!("{}/$metadata#Collection(message)", req.base),
        "value": values,
    });
    if end < page.items.len() {
        let mut next = page.clone();
        next.offset = end;
        st.delta_pages.insert(token.clone(), next);
        let mut q = keep;
        q.push(("$skiptoken".into(), token));
        body["@odata.nextLink"] = json!(req.link(&q));
    } else {
        st.delta_tokens.insert(
            token.clone(),
            DeltaToken {
                mailbox: mbid.to_owned(),
                folder_id,
                watermark: page.watermark,
                issued: now,
            },
        );
        let mut q = keep;
        q.push(("$deltatoken".into(), token));
        body["@odata.deltaLink"] = json!(req.link(&q));
    }
    let mut r = preference_applied(req, ApiResponse::json(200, body));
    if let Some(n) = req.max_page_size() {
        r.headers.push((
            "Preference-Applied".into(),
            format!("odata.maxpagesize={n}"),
        ));
    }
    Ok(r)
}

fn removed_json(mbx: &Mailbox, key: u64, o: &RenderOpts) -> Value {
    let id = mbx
        .log
        .iter()
        .rev()
        .find(|e| e.key == key)
        .map(|e| {
            if o.immutable {
                e.immutable_id.clone()
            } else {
                e.id_then.clone()
            }
        })
        .unwrap_or_default();
    json!({"@odata.type": "#microsoft.graph.message", "id": id, "@removed": {"reason": "deleted"}})
}

fn parse_recipients(v: Option<&Value>) -> Result<Vec<state::Recipient>, ApiError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let arr = v.as_array().ok_or_else(|| {
        ApiError::new(
            400,
            "ErrorInvalidRecipients",
            "Recipients must be an array of recipient objects.",
        )
    })?;
    arr.iter()
        .map(|r| {
            let e = r.get("emailAddress");
            let address = e
                .and_then(|e| e.get("address"))
                .and_then(Value::as_str)
                .filter(|a| a.contains('@'))
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        "ErrorInvalidRecipients",
                        "At least one recipient is not valid., A message can't be sent because it contains no recipients.",
                    )
                })?;
            let name = e.and_then(|e| e.get("name")).and_then(Value::as_str).map(str::to_owned);
            Ok((name, address.to_owned()))
        })
        .collect()
}

struct Outgoing {
    /// `message.from` when it differs from the mailbox (send as / on behalf).
    from: Option<state::Recipient>,
    subject: String,
    html: bool,
    content: String,
    to: Vec<state::Recipient>,
    cc: Vec<state::Recipient>,
    bcc: Vec<state::Recipient>,
    reply_to: Vec<state::Recipient>,
    headers: Vec<(String, String)>,
    attachments: Vec<InboundAttachment>,
}

fn parse_outgoing(msg: &Value) -> Result<Outgoing, ApiError> {
    let body = msg.get("body");
    let html = body
        .and_then(|b| b.get("contentType"))
        .and_then(Value::as_str)
        .is_some_and(|c| c.eq_ignore_ascii_case("html"));
    let content = body
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut headers = Vec::new();
    if let Some(hs) = msg.get("internetMessageHeaders").and_then(Value::as_array) {
        for h in hs {
            let name = h.get("name").and_then(Value::as_str).unwrap_or("");
            let value = h.get("value").and_then(Value::as_str).unwrap_or("");
            if !name.to_ascii_lowercase().starts_with("x-") {
                return Err(ApiError::new(
                    400,
                    "InvalidInternetMessageHeader",
                    &format!(
                        "The internet message header name '{name}' should start with 'x-' or 'X-'."
                    ),
                ));
            }
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let mut attachments = Vec::new();
    if let Some(atts) = msg.get("attachments").and_then(Value::as_array) {
        for a in atts {
            let bytes = a.get("contentBytes").and_then(Value::as_str).unwrap_or("");
            let content = base64::engine::general_purpose::STANDARD
                .decode(bytes)
                .map_err(|_| {
                    ApiError::new(
                        400,
                        "ErrorInvalidRequest",
                        "The attachment contentBytes is not valid base64.",
                    )
                })?;
            attachments.push(InboundAttachment {
                name: a
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("attachment")
                    .to_owned(),
                content_type: a
                    .get("contentType")
                    .and_then(Value::as_str)
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
                content,
                inline: a.get("isInline").and_then(Value::as_bool).unwrap_or(false),
                content_id: a
                    .get("contentId")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
    }
    let from = match msg.get("from") {
        Some(f) if !f.is_null() => parse_recipients(Some(&json!([f])))?.into_iter().next(),
        _ => None,
    };
    Ok(Outgoing {
        from,
        subject: msg
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        html,
        content,
        to: parse_recipients(msg.get("toRecipients"))?,
        cc: parse_recipients(msg.get("ccRecipients"))?,
        bcc: parse_recipients(msg.get("bccRecipients"))?,
        reply_to: parse_recipients(msg.get("replyTo"))?,
        headers,
        attachments,
    })
}

/// Records and transmits an outgoing message: Sent Items copy, tenant-internal delivery,
/// sent-mail log. Returns notification jobs.
#[allow(clippy::too_many_arguments)]
fn transmit(
    st: &mut State,
    mb: usize,
    out: Outgoing,
    kind: SentKind,
    in_reply_to: Option<String>,
    references: Vec<String>,
    save: bool,
    now: DateTime<Utc>,
) -> Result<Vec<Job>, ApiError> {
    if out.to.is_empty() && out.cc.is_empty() && out.bcc.is_empty() {
        return Err(ApiError::new(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient is not valid., A message can't be sent because it contains no recipients.",
        ));
    }
    let user = st.mailboxes[mb].user.clone();
    let sender: state::Recipient = out
        .from
        .clone()
        .unwrap_or_else(|| (Some(user.display_name.clone()), user.mail.clone()));
    let n = st.next_counter();
    let mid = format!(
        "{}@{}",
        &make_id("", &format!("sent|{}|{n}", user.id))[..28].replace(['-', '_'], "x"),
        user.mail.split('@').nth(1).unwrap_or("contoso.test")
    );
    let (html, text) = if out.html {
        (Some(out.content.clone()), None)
    } else {
        (None, Some(out.content.clone()))
    };
    let new = |received: DateTime<Utc>, is_read: bool| NewMessage {
        from: sender.clone(),
        to: out.to.clone(),
        cc: out.cc.clone(),
        reply_to: out.reply_to.clone(),
        subject: out.subject.clone(),
        html: html.clone(),
        text: text.clone(),
        headers: out.headers.clone(),
        attachments: out.attachments.clone(),
        message_id: Some(mid.clone()),
        in_reply_to: in_reply_to.clone(),
        references: references.clone(),
        report: None,
        received,
        is_read,
    };
    let mime = crate::mime::build(&crate::mime::MimeSpec {
        from: &sender.1,
        from_name: sender.0.as_deref(),
        to: &out.to,
        cc: &out.cc,
        subject: &out.subject,
        text: text.as_deref(),
        html: html.as_deref(),
        message_id: &mid,
        in_reply_to: in_reply_to.as_deref().map(|s| s.trim_matches(['<', '>'])),
        references: &references
            .iter()
            .map(|r| r.trim_matches(['<', '>']).to_owned())
            .collect::<Vec<_>>(),
        date: now,
        headers: &out.headers,
        attachments: &out.attachments,
        report: None,
    });
    let mut jobs = Vec::new();
    let mut sent_items_id = None;
    if save {
        let sent = st.mailboxes[mb]
            .folder("sentitems")
            .expect("sentitems")
            .id
            .clone();
        let idx = st.insert_message(mb, &sent, new(now, true));
        let m = &st.mailboxes[mb].messages[idx];
        sent_items_id = Some(m.id.clone());
        let (id, imm, etag) = (m.id.clone(), m.immutable_id.clone(), m.etag());
        jobs.extend(notify(st, mb, &sent, &id, &imm, &etag, "created", now));
    }
    // Tenant-internal recipients receive the message in their inbox.
    let mut delivered = Vec::new();
    for (_, addr) in out.to.iter().chain(&out.cc).chain(&out.bcc) {
        if let Some(rmb) = st.mailbox_index(addr) {
            if delivered.contains(&rmb) {
                continue;
            }
            delivered.push(rmb);
            let inbox = st.mailboxes[rmb].folder("inbox").expect("inbox").id.clone();
            let idx = st.insert_message(rmb, &inbox, new(now, false));
            let m = &st.mailboxes[rmb].messages[idx];
            let (id, imm, etag) = (m.id.clone(), m.immutable_id.clone(), m.etag());
            jobs.extend(notify(st, rmb, &inbox, &id, &imm, &etag, "created", now));
        }
    }
    let addrs = |v: &[state::Recipient]| v.iter().map(|r| r.1.clone()).collect::<Vec<_>>();
    st.mailboxes[mb].sent.push(SentMail {
        kind,
        mailbox_id: user.id.clone(),
        from: sender.1.clone(),
        to: addrs(&out.to),
        cc: addrs(&out.cc),
        bcc: addrs(&out.bcc),
        subject: out.subject.clone(),
        body_content_type: if out.html {
            "html".into()
        } else {
            "text".into()
        },
        body: out.content.clone(),
        internet_message_id: format!("<{mid}>"),
        in_reply_to,
        references,
        headers: out.headers.clone(),
        attachments: out.attachments.clone(),
        mime,
        sent_at: now,
        sent_items_id,
    });
    Ok(jobs)
}

/// `message.from` naming another mailbox needs SendAs/SendOnBehalf on it (delegated) or the
/// application access policy to allow it (app-only).
fn check_send_as(st: &State, g: &AccessGrant, mb: usize, out: &Outgoing) -> Result<(), ApiError> {
    let Some((_, addr)) = &out.from else {
        return Ok(());
    };
    let own = &st.mailboxes[mb].user;
    if own.mail.eq_ignore_ascii_case(addr) || own.user_principal_name.eq_ignore_ascii_case(addr) {
        return Ok(());
    }
    let denied = || {
        ApiError::new(
            403,
            "ErrorSendAsDenied",
            "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.",
        )
    };
    let target = st.mailbox_index(addr).ok_or_else(denied)?;
    let target_user = &st.mailboxes[target].user;
    let ok = if g.is_app_only() {
        st.policy_allows(&g.client_id, target_user)
    } else {
        let me = g.user_id.clone().unwrap_or_default();
        st.has_right(target_user, &me, MailboxRight::SendAs)
            || st.has_right(target_user, &me, MailboxRight::SendOnBehalf)
    };
    if ok {
        Ok(())
    } else {
        Err(denied())
    }
}

fn send_mail(sb: &GraphSandbox, req: &ApiRequest, g: &AccessGrant, mbid: &str) -> ApiResult {
    let ct = req
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let (out, save) = if ct.starts_with("text/plain") {
        // MIME format: base64 of an RFC 5322 message.
        let raw = String::from_utf8_lossy(&req.body).replace(['\r', '\n'], "");
        let mime = base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| {
                ApiError::new(
                    400,
                    "ErrorMimeContentInvalidBase64String",
                    "Invalid base64 string for MIME content.",
                )
            })?;
        let mime = String::from_utf8_lossy(&mime).into_owned();
        let headers = crate::mime::header_block(&mime);
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let list = |n: &str| -> Vec<state::Recipient> {
            get(n)
                .map(|v| {
                    v.split(',')
                        .filter_map(|a| {
                            let a = a.trim();
                            let addr = a
                                .rsplit('<')
                                .next()
                                .unwrap_or(a)
                                .trim_end_matches('>')
                                .trim();
                            addr.contains('@').then(|| (None, addr.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let body = mime
            .split_once("\r\n\r\n")
            .or_else(|| mime.split_once("\n\n"))
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (
            Outgoing {
                from: None,
                subject: get("Subject").unwrap_or_default(),
                html: false,
                content: body,
                to: list("To"),
                cc: list("Cc"),
                bcc: list("Bcc"),
                reply_to: list("Reply-To"),
                headers: headers
                    .iter()
                    .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-"))
                    .cloned()
                    .collect(),
                attachments: Vec::new(),
            },
            true,
        )
    } else {
        let body = req.json_body()?;
        let msg = body.get("message").ok_or_else(|| {
            ApiError::new(
                400,
                "ErrorInvalidRequest",
                "The message parameter is required.",
            )
        })?;
        let save = body
            .get("saveToSentItems")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        (parse_outgoing(msg)?, save)
    };
    let now = sb.now();
    let jobs = {
        let mut st = sb.state();
        let mb = mbx_index(&st, mbid);
        check_send_as(&st, g, mb, &out)?;
        transmit(
            &mut st,
            mb,
            out,
            SentKind::SendMail,
            None,
            Vec::new(),
            save,
            now,
        )?
    };
    sb.publish(jobs);
    Ok(ApiResponse::empty(202))
}

fn reply(
    sb: &GraphSandbox,
    req: &ApiRequest,
    g: &AccessGrant,
    mbid: &str,
    folder: Option<&str>,
    id: &str,
) -> ApiResult {
    let body = if req.body.is_empty() {
        json!({})
    } else {
        req.json_body()?
    };
    let comment = body
        .get("comment")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let given = body.get("message");
    let given_body = given
        .and_then(|m| m.get("body"))
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str);
    if comment.is_some() && given_body.is_some() {
        return Err(ApiError::new(
            400,
            "ErrorInvalidRequest",
            "Specifying both the comment and the message body is not supported.",
        ));
    }
    let now = sb.now();
    let jobs = {
        let mut st = sb.state();
        let mb = mbx_index(&st, mbid);
        let idx = find_message(&st, mb, folder, id)?;
        let orig = st.mailboxes[mb].messages[idx].clone();
        let mut out = match given {
            Some(m) => parse_outgoing(m)?,
            None => parse_outgoing(&json!({}))?,
        };
        if out.to.is_empty() {
            out.to = if orig.reply_to.is_empty() {
                vec![orig.from.clone()]
            } else {
                orig.reply_to.clone()
            };
        }
        if out.subject.is_empty() {
            out.subject = if orig.subject.to_ascii_lowercase().starts_with("re:") {
                orig.subject.clone()
            } else {
                format!("RE: {}", orig.subject)
            };
        }
        if given_body.is_none() {
            let comment_html = comment
                .unwrap_or_default()
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('\n', "<br>");
            out.html = true;
            out.content = format!(
                "<html><body><div>{comment_html}</div><hr><div><b>From:</b> {} &lt;{}&gt;<br><b>Sent:</b> {}<br><b>Subject:</b> {}</div>{}</body></html>",
                orig.from.0.clone().unwrap_or_default(),
                orig.from.1,
                orig.sent.to_rfc2822(),
                orig.subject,
                orig.body_html
            );
        }
        let mut references: Vec<String> = orig
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("References"))
            .map(|(_, v)| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        references.push(orig.internet_message_id.clone());
        check_send_as(&st, g, mb, &out)?;
        transmit(
            &mut st,
            mb,
            out,
            SentKind::Reply,
            Some(orig.internet_message_id.clone()),
            references,
            true,
            now,
        )?
    };
    sb.publish(jobs);
    Ok(ApiResponse::empty(202))
}

fn contact_json(c: &state::Contact, mbx: &Mailbox) -> Value {
    let s = &c.seed;
    json!({
        "@odata.etag": format!("W/\"EQAAABYAAAA{}\"", &c.id[6..20]),
        "id": c.id,
        "createdDateTime": fmt_time(c.created),
        "lastModifiedDateTime": fmt_time(c.created),
        "changeKey": "EQAAABYAAAA",
        "categories": [],
        "parentFolderId": make_id("AAMkAD", &format!("folder|{}|contacts", mbx.user.id)),
        "birthday": null,
        "fileAs": "",
        "displayName": s.display_name,
        "givenName": s.given_name,
        "initials": null,
        "middleName": null,
        "nickName": null,
        "surname": s.surname,
        "title": null,
        "yomiGivenName": null,
        "yomiSurname": null,
        "yomiCompanyName": null,
        "generation": null,
        "imAddresses": [],
        "jobTitle": s.job_title,
        "companyName": s.company_name,
        "department": null,
        "officeLocation": null,
        "profession": null,
        "businessHomePage": null,
        "assistantName": null,
        "manager": null,
        "homePhones": [],
        "mobilePhone": s.mobile_phone,
        "businessPhones": s.business_phones,
        "spouseName": null,
        "personalNotes": "",
        "children": [],
        "emailAddresses": s.email_addresses.iter().map(|(n, a)| json!({"name": n, "address": a})).collect::<Vec<_>>(),
        "homeAddress": {},
        "businessAddress": {},
        "otherAddress": {},
    })
}

fn list_contacts(sb: &GraphSandbox, req: &ApiRequest, mbid: &str) -> ApiResult {
    let (top, skip) = paging(req, 10)?;
    let st = sb.state();
    let mbx = &st.mailboxes[mbx_index(&st, mbid)];
    let sel = select_list(req);
    let total = mbx.contacts.len();
    let items = mbx
        .contacts
        .iter()
        .skip(skip)
        .take(top)
        .map(|c| apply_select(contact_json(c, mbx), &sel))
        .collect();
    let ctx = format!("{}/$metadata#users('{}')/contacts", req.base, mbid);
    Ok(page_response(req, ctx, items, total, top, skip))
}

fn get_contact(sb: &GraphSandbox, req: &ApiRequest, mbid: &str, id: &str) -> ApiResult {
    if !id_well_formed(id) {
        return Err(ApiError::malformed());
    }
    let st = sb.state();
    let mbx = &st.mailboxes[mbx_index(&st, mbid)];
    let c = mbx
        .contacts
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(ApiError::not_found)?;
    let mut v = apply_select(contact_json(c, mbx), &select_list(req));
    v["@odata.context"] = json!(format!(
        "{}/$metadata#users('{}')/contacts/$entity",
        req.base, mbid
    ));
    Ok(ApiResponse::json(200, v))
}

// ---------------------------------------------------------------- notifications

/// Change notifications for subscriptions on mailbox `mb` watching `folder_id`.
#[allow(clippy::too_many_arguments)]
fn notify(
    st: &mut State,
    mb: usize,
    folder_id: &str,
    id: &str,
    immutable_id: &str,
    etag: &str,
    change: &str,
    now: DateTime<Utc>,
) -> Vec<Job> {
    st.subscriptions.retain(|s| s.expiration > now);
    let uid = st.mailboxes[mb].user.id.clone();
    let tenant = st.tenant_id.clone();
    st.subscriptions
        .iter()
        .filter(|s| s.mailbox == uid)
        .filter(|s| s.folder_id.as_deref().is_none_or(|f| f == folder_id))
        .filter(|s| s.change_types.iter().any(|c| c == change))
        .map(|s| {
            let rid = if s.immutable_ids { immutable_id } else { id };
            let resource = format!("Users/{uid}/Messages/{rid}");
            let body = json!({"value": [{
                "subscriptionId": s.id,
                "subscriptionExpirationDateTime": s.expiration.to_rfc3339_opts(SecondsFormat::Secs, false),
                "changeType": change,
                "resource": resource,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Message",
                    "@odata.id": resource,
                    "@odata.etag": etag,
                    "id": rid,
                },
                "clientState": s.client_state,
                "tenantId": tenant,
            }]});
            Job {
                subscription_id: s.id.clone(),
                url: s.notification_url.clone(),
                kind: NotificationKind::Change(change.to_owned()),
                body,
                missed: lifecycle_job(s, &tenant, LifecycleEvent::Missed).map(|j| (j.url, j.body)),
            }
        })
        .collect()
}

/// Change notifications for a newly created message (used by [`GraphSandbox::deliver`]).
pub(crate) fn notifications_for(
    st: &mut State,
    mb: usize,
    idx: usize,
    change: &str,
    now: DateTime<Utc>,
) -> Vec<Job> {
    let m = &st.mailboxes[mb].messages[idx];
    let (folder, id, imm, etag) = (
        m.folder_id.clone(),
        m.id.clone(),
        m.immutable_id.clone(),
        m.etag(),
    );
    notify(st, mb, &folder, &id, &imm, &etag, change, now)
}

pub(crate) fn lifecycle_job(s: &Subscription, tenant: &str, event: LifecycleEvent) -> Option<Job> {
    let url = s.lifecycle_url.clone()?;
    Some(Job {
        subscription_id: s.id.clone(),
        url,
        kind: NotificationKind::Lifecycle(event),
        body: json!({"value": [{
            "subscriptionId": s.id,
            "subscriptionExpirationDateTime": s.expiration.to_rfc3339_opts(SecondsFormat::Secs, false),
            "tenantId": tenant,
            "clientState": s.client_state,
            "lifecycleEvent": event.as_str(),
        }]}),
        missed: None,
    })
}

pub(crate) fn subscription_view(s: &Subscription) -> SubscriptionView {
    SubscriptionView {
        id: s.id.clone(),
        resource: s.resource.clone(),
        change_type: s.change_types.join(","),
        notification_url: s.notification_url.clone(),
        lifecycle_notification_url: s.lifecycle_url.clone(),
        client_state: s.client_state.clone(),
        expiration: s.expiration,
        application_id: s.app_id.clone(),
        creator_id: s.creator_id.clone(),
        needs_reauthorization: s.needs_reauthorization,
    }
}

fn subscription_json(req: &ApiRequest, s: &Subscription) -> Value {
    json!({
        "@odata.context": format!("{}/$metadata#subscriptions/$entity", req.base),
        "id": s.id,
        "resource": s.resource,
        "applicationId": s.app_id,
        "changeType": s.change_types.join(","),
        "clientState": s.client_state,
        "notificationUrl": s.notification_url,
        "notificationQueryOptions": null,
        "lifecycleNotificationUrl": s.lifecycle_url,
        "expirationDateTime": s.expiration.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "creatorId": s.creator_id,
        "includeResourceData": false,
        "latestSupportedTlsVersion": s.tls,
        "encryptionCertificate": null,
        "encryptionCertificateId": null,
        "notificationUrlAppId": null,
    })
}

// ---------------------------------------------------------------- subscriptions

fn encode_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs the validation handshake against one URL.
async fn validate_endpoint(sb: &GraphSandbox, url: &str) -> Result<(), ApiError> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid::Uuid::new_v4()
    );
    let sep = if url.contains('?') { '&' } else { '?' };
    let target = format!("{url}{sep}validationToken={}", encode_component(&token));
    let timeout = sb.publisher_options().validation_timeout;
    let failed = || {
        ApiError::new(
            400,
            "ValidationError",
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
        )
    };
    let resp = sb
        .inner
        .http
        .post(&target)
        .header("content-type", "text/plain; charset=utf-8")
        .timeout(timeout)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Err(ApiError::new(
                400,
                "InvalidRequest",
                "Subscription validation request timed out.",
            ))
        }
        Err(_) => return Err(failed()),
    };
    if resp.status().as_u16() != 200 {
        return Err(failed());
    }
    let body = match tokio::time::timeout(timeout, resp.text()).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return Err(failed()),
        Err(_) => {
            return Err(ApiError::new(
                400,
                "InvalidRequest",
                "Subscription validation request timed out.",
            ))
        }
    };
    if body != token {
        return Err(ApiError::new(
            400,
            "ValidationError",
            "Subscription validation request failed. Response must exactly match validationToken query parameter.",
        ));
    }
    Ok(())
}

fn check_url(sb: &GraphSandbox, name: &str, raw: &str) -> Result<(), ApiError> {
    let u = url::Url::parse(raw).map_err(|_| {
        ApiError::new(
            400,
            "InvalidRequest",
            &format!("Invalid '{name}': '{raw}' is not an absolute URL."),
        )
    })?;
    let loopback = matches!(
        u.host_str(),
        Some("localhost") | Some("127.0.0.1") | Some("[::1]")
    );
    let require = sb.behaviour().require_https_except_loopback;
    if u.scheme() == "https" || (u.scheme() == "http" && (loopback || !require)) {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "InvalidRequest",
            &format!("The {name} must use the HTTPS protocol."),
        ))
    }
}

fn check_expiry(sb: &GraphSandbox, v: Option<&Value>) -> Result<DateTime<Utc>, ApiError> {
    let raw = v
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::new(400, "InvalidRequest", "expirationDateTime is required."))?;
    let at = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| {
            ApiError::new(
                400,
                "InvalidRequest",
                &format!("Invalid expirationDateTime '{raw}'."),
            )
        })?
        .with_timezone(&Utc);
    let now = sb.now();
    if at <= now {
        return Err(ApiError::new(
            400,
            "InvalidRequest",
            "Subscription expiration must be in the future.",
        ));
    }
    let max = sb.publisher_options().max_expiration_minutes;
    if at > now + chrono::Duration::minutes(max) {
        return Err(ApiError::new(
            400,
            "ExtensionError",
            &format!("Subscription expiration can only be {max} minutes in the future."),
        ));
    }
    Ok(at)
}

/// Parses `users/{id}/mailFolders('inbox')/messages` and friends.
fn parse_resource(
    st: &State,
    g: &AccessGrant,
    resource: &str,
) -> Result<(usize, Option<String>), ApiError> {
    let path = resource.split('?').next().unwrap_or("");
    let segs = segments(path);
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let unsupported = || {
        ApiError::new(
            400,
            "InvalidRequest",
            &format!("Resource '{resource}' is not supported; use me/mailFolders('Inbox')/messages, users/{{id}}/messages or users/{{id}}/mailFolders/{{id}}/messages."),
        )
    };
    let (owner, rest) = match lower.first().map(String::as_str) {
        Some("me") => (
            g.user_id.clone().ok_or_else(|| {
                ApiError::new(
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                )
            })?,
            &segs[1..],
        ),
        Some("users") if segs.len() > 1 => (segs[1].clone(), &segs[2..]),
        _ => return Err(unsupported()),
    };
    let mb = st.mailbox_index(&owner).ok_or_else(|| {
        ApiError::new(
            404,
            "ErrorInvalidUser",
            &format!("The requested user '{owner}' is invalid."),
        )
    })?;
    let rl: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let rl: Vec<&str> = rl.iter().map(String::as_str).collect();
    let folder = match rl.as_slice() {
        ["messages"] => None,
        ["mailfolders", _, "messages"] => {
            Some(resolve_folder(&st.mailboxes[mb], &rest[1])?.id.clone())
        }
        _ => return Err(unsupported()),
    };
    Ok((mb, folder))
}

async fn subscriptions_route(
    sb: &GraphSandbox,
    req: &ApiRequest,
    g: &AccessGrant,
    rest: &[String],
) -> ApiResult {
    let now = sb.now();
    sb.state().subscriptions.retain(|s| s.expiration > now);
    let owned = |s: &Subscription| {
        s.app_id.eq_ignore_ascii_case(&g.client_id)
            && (g.is_app_only()
                || g.user_id
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(&s.creator_id)))
    };
    let sub_not_found = || ApiError::new(404, "ResourceNotFound", "The object was not found.");
    match (req.method.as_str(), rest) {
        ("POST", []) => create_subscription(sb, req, g).await,
        ("GET", []) => {
            let st = sb.state();
            let items: Vec<Value> = st
                .subscriptions
                .iter()
                .filter(|s| owned(s))
                .map(|s| {
                    let mut v = subscription_json(req, s);
                    v.as_object_mut().expect("object").remove("@odata.context");
                    v
                })
                .collect();
            Ok(ApiResponse::json(
                200,
                json!({"@odata.context": format!("{}/$metadata#subscriptions", req.base), "value": items}),
            ))
        }
        ("GET", [id]) => {
            let st = sb.state();
            let s = st
                .subscriptions
                .iter()
                .find(|s| &s.id == id && owned(s))
                .ok_or_else(sub_not_found)?;
            Ok(ApiResponse::json(200, subscription_json(req, s)))
        }
        ("PATCH", [id]) => {
            let body = req.json_body()?;
            let at = check_expiry(sb, body.get("expirationDateTime"))?;
            let mut st = sb.state();
            let s = st
                .subscriptions
                .iter_mut()
                .find(|s| &s.id == id && owned(s))
                .ok_or_else(sub_not_found)?;
            s.expiration = at;
            s.needs_reauthorization = false;
            let v = subscription_json(req, s);
            Ok(ApiResponse::json(200, v))
        }
        ("DELETE", [id]) => {
            let mut st = sb.state();
            let pos = st
                .subscriptions
                .iter()
                .position(|s| &s.id == id && owned(s))
                .ok_or_else(sub_not_found)?;
            st.subscriptions.remove(pos);
            Ok(ApiResponse::empty(204))
        }
        ("POST", [id, action]) if action.eq_ignore_ascii_case("reauthorize") => {
            let mut st = sb.state();
            let s = st
                .subscriptions
                .iter_mut()
                .find(|s| &s.id == id && owned(s))
                .ok_or_else(sub_not_found)?;
            s.needs_reauthorization = false;
            Ok(ApiResponse::empty(204))
        }
        _ => Err(method_not_allowed(req)),
    }
}

async fn create_subscription(sb: &GraphSandbox, req: &ApiRequest, g: &AccessGrant) -> ApiResult {
    let body = req.json_body()?;
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let change = s("changeType")
        .ok_or_else(|| ApiError::new(400, "InvalidRequest", "changeType is required."))?;
    let change_types: Vec<String> = change.split(',').map(|c| c.trim().to_owned()).collect();
    if let Some(bad) = change_types
        .iter()
        .find(|c| !["created", "updated", "deleted"].contains(&c.as_str()))
    {
        return Err(ApiError::new(
            400,
            "InvalidRequest",
            &format!("Invalid 'changeType' attribute: '{bad}'."),
        ));
    }
    let notification_url = s("notificationUrl")
        .ok_or_else(|| ApiError::new(400, "InvalidRequest", "notificationUrl is required."))?;
    check_url(sb, "notificationUrl", &notification_url)?;
    let lifecycle_url = s("lifecycleNotificationUrl");
    if let Some(l) = &lifecycle_url {
        check_url(sb, "lifecycleNotificationUrl", l)?;
    }
    let resource = s("resource")
        .ok_or_else(|| ApiError::new(400, "InvalidRequest", "resource is required."))?;
    let client_state = s("clientState");
    if client_state
        .as_ref()
        .is_some_and(|c| c.chars().count() > 128)
    {
        return Err(ApiError::new(
            400,
            "InvalidRequest",
            "clientState must be at most 128 characters.",
        ));
    }
    if body.get("includeResourceData").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::new(
            400,
            "InvalidRequest",
            "includeResourceData (rich notifications) is not supported for Outlook messages on v1.0 by this sandbox.",
        ));
    }
    let expiration = check_expiry(sb, body.get("expirationDateTime"))?;
    let (mbid, folder_id) = {
        let st = sb.state();
        let (mb, folder) = parse_resource(&st, g, &resource)?;
        let user = &st.mailboxes[mb].user;
        if g.is_app_only() {
            if !has_any(
                &g.roles,
                &[
                    "Mail.Read",
                    "Mail.ReadWrite",
                    "Mail.ReadBasic.All",
                    "Mail.ReadBasic",
                ],
            ) {
                return Err(ApiError::denied());
            }
            if !st.policy_allows(&g.client_id, user) {
                return Err(ApiError::new(403, "ErrorAccessDenied", ODATA_DISABLED));
            }
        } else {
            // Delegated subscriptions: own mailbox only; the .Shared scopes do not count.
            let own = g
                .user_id
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(&user.id));
            if !own
                || !has_any(
                    &g.scopes,
                    &["Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic"],
                )
            {
                return Err(ApiError::denied());
            }
        }
        let max = sb.behaviour().max_subscriptions_per_mailbox;
        if st
            .subscriptions
            .iter()
            .filter(|s| s.mailbox == user.id)
            .count()
            >= max
        {
            return Err(ApiError::new(
                403,
                "ExtensionError",
                &format!("The mailbox has reached the maximum of {max} active subscriptions."),
            ));
        }
        (user.id.clone(), folder)
    };
    validate_endpoint(sb, &notification_url).await?;
    if let Some(l) = &lifecycle_url {
        validate_endpoint(sb, l).await?;
    }
    let sub = Subscription {
        id: uuid::Uuid::new_v4().to_string(),
        resource,
        mailbox: mbid,
        folder_id,
        change_types,
        notification_url,
        lifecycle_url,
        client_state,
        expiration,
        app_id: g.client_id.clone(),
        creator_id: g.user_id.clone().unwrap_or_else(|| g.client_id.clone()),
        immutable_ids: req.prefers_immutable(),
        tls: s("latestSupportedTlsVersion").unwrap_or_else(|| "v1_2".into()),
        needs_reauthorization: false,
    };
    let v = subscription_json(req, &sub);
    sb.state().subscriptions.push(sub);
    Ok(ApiResponse::json(201, v))
}

// ---------------------------------------------------------------- $batch

struct BatchItem {
    id: String,
    req: ApiRequest,
    depends_on: Vec<String>,
}

async fn batch(sb: &GraphSandbox, req: &ApiRequest, _g: &AccessGrant) -> ApiResult {
    let invalid = |m: &str| ApiError::new(400, "BadRequest", m);
    let body = req.json_body()?;
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("Invalid batch payload format: 'requests' array is required."))?;
    if requests.is_empty() {
        return Err(invalid(
            "Invalid batch payload format: 'requests' must not be empty.",
        ));
    }
    if requests.len() > MAX_BATCH {
        return Err(invalid(&format!(
            "The number of requests in the batch ({}) exceeds the limit of {MAX_BATCH}.",
            requests.len()
        )));
    }
    let mut items: Vec<BatchItem> = Vec::new();
    for r in requests {
        let id = match r.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(invalid(
                    "Invalid batch payload format: every request needs an 'id'.",
                ))
            }
        };
        if items.iter().any(|i| i.id == id) {
            return Err(invalid(&format!(
                "Batch request ids must be unique; '{id}' is repeated."
            )));
        }
        let method = r
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid("Invalid batch payload format: every request needs a 'method'.")
            })?
            .to_ascii_uppercase();
        let url = r
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("Invalid batch payload format: every request needs a 'url'."))?;
        if url.starts_with("http://") || url.starts_with("https://") {
            return Err(invalid(
                "Batch request urls must be relative (e.g. /me/messages).",
            ));
        }
        let url = url.trim_start_matches('/');
        let url = url.strip_prefix("v1.0/").unwrap_or(url);
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let mut headers: Vec<(String, String)> = req
            .headers
            .iter()
            .filter(|(n, _)| matches!(n.as_str(), "authorization" | "host" | "client-request-id"))
            .cloned()
            .collect();
        if let Some(h) = r.get("headers").and_then(Value::as_object) {
            for (k, v) in h {
                headers.push((k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_owned()));
            }
        }
        let body_bytes = match r.get("body") {
            None | Some(Value::Null) => Vec::new(),
            Some(b) => {
                let ct = headers
                    .iter()
                    .find(|(n, _)| n == "content-type")
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        invalid(&format!(
                            "Request '{id}' has a body but no Content-Type header."
                        ))
                    })?;
                match b {
                    Value::String(s) if !ct.contains("json") => {
                        base64::engine::general_purpose::STANDARD
                            .decode(s)
                            .unwrap_or_else(|_| s.clone().into_bytes())
                    }
                    other => other.to_string().into_bytes(),
                }
            }
        };
        let depends_on = match r.get("dependsOn") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(_) => {
                return Err(invalid(
                    "Invalid batch payload format: 'dependsOn' must be an array.",
                ))
            }
        };
        items.push(BatchItem {
            id,
            req: ApiRequest {
                method,
                path: path.to_owned(),
                query: query.to_owned(),
                headers,
                body: body_bytes,
                base: req.base.clone(),
            },
            depends_on,
        });
    }
    for it in &items {
        for d in &it.depends_on {
            if !items.iter().any(|o| &o.id == d) || d == &it.id {
                return Err(invalid(&format!(
                    "Request '{}' depends on unknown request '{d}'.",
                    it.id
                )));
            }
        }
    }
    let order = sequencing(&items)
        .ok_or_else(|| invalid("Batch should be either fully sequential or fully parallel"))?;
    let mut responses: Vec<(String, ApiResponse)> = Vec::new();
    match order {
        None => {
            // Outlook runs 4 sub-requests in parallel.
            let mut rest = items.into_iter();
            loop {
                let chunk: Vec<BatchItem> = rest.by_ref().take(4).collect();
                if chunk.is_empty() {
                    break;
                }
                let mut set = tokio::task::JoinSet::new();
                for (i, it) in chunk.into_iter().enumerate() {
                    let fut = handle_boxed(sb.clone(), it.req);
                    let id = it.id;
                    set.spawn(async move { (i, id, fut.await) });
                }
                let mut done = Vec::new();
                while let Some(r) = set.join_next().await {
                    done.push(r.map_err(|e| {
                        ApiError::new(
                            500,
                            "InternalServerError",
                            &format!("batch item failed: {e}"),
                        )
                    })?);
                }
                done.sort_by_key(|d| d.0);
                responses.extend(done.into_iter().map(|(_, id, r)| (id, r)));
            }
        }
        Some(chain) => {
            let mut failed = false;
            let mut by_id: std::collections::HashMap<String, BatchItem> =
                items.into_iter().map(|i| (i.id.clone(), i)).collect();
            for id in chain {
                let it = by_id.remove(&id).expect("chain ids exist");
                if failed {
                    let e = ApiError::new(
                        424,
                        "FailedDependency",
                        "The request could not be executed because a request it depends on failed.",
                    );
                    responses.push((
                        id,
                        e.into_response(&uuid::Uuid::new_v4().to_string(), None, sb.now()),
                    ));
                    continue;
                }
                let r = handle_boxed(sb.clone(), it.req).await;
                failed = r.status >= 400;
                responses.push((id, r));
            }
        }
    }
    let out: Vec<Value> = responses
        .into_iter()
        .map(|(id, r)| {
            let mut headers = Map::new();
            for (n, v) in &r.headers {
                if n.eq_ignore_ascii_case("request-id")
                    || n.eq_ignore_ascii_case("client-request-id")
                {
                    continue;
                }
                headers.insert(n.clone(), json!(v));
            }
            let mut item = json!({"id": id, "status": r.status});
            match r.body {
                RespBody::Empty => {}
                RespBody::Json(v) => {
                    headers.insert("Content-Type".into(), json!(JSON_CT));
                    item["body"] = v;
                }
                RespBody::Raw(bytes, ct) => {
                    headers.insert("Content-Type".into(), json!(ct));
                    item["body"] = json!(b64encode(&bytes));
                }
            }
            item["headers"] = Value::Object(headers);
            item
        })
        .collect();
    Ok(ApiResponse::json(200, json!({"responses": out})))
}

/// `Some(None)`: fully parallel; `Some(Some(chain))`: fully sequential in chain order;
/// `None`: a mix (rejected).
fn sequencing(items: &[BatchItem]) -> Option<Option<Vec<String>>> {
    if items.iter().all(|i| i.depends_on.is_empty()) {
        return Some(None);
    }
    if items.iter().any(|i| i.depends_on.len() > 1) {
        return None;
    }
    let roots: Vec<&BatchItem> = items.iter().filter(|i| i.depends_on.is_empty()).collect();
    if roots.len() != 1 {
        return None;
    }
    let mut chain = vec![roots[0].id.clone()];
    while chain.len() < items.len() {
        let last = chain.last().expect("non-empty");
        let next: Vec<&BatchItem> = items
            .iter()
            .filter(|i| i.depends_on.first() == Some(last))
            .collect();
        if next.len() != 1 {
            return None;
        }
        chain.push(next[0].id.clone());
    }
    Some(Some(chain))
}
