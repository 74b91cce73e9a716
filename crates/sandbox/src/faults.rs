//! Request counters and fault knobs applied to every service router (identity, Graph, PSA).
//!
//! Every request passing through [`Faults::layer`] is counted per service, method and route
//! template (axum's matched path; the raw path when nothing matched). Rules then apply in
//! insertion order: every matching latency rule adds its delay, and the first matching terminal
//! rule (fail or drop) ends the request. A rule with `count` applies to the next N matching
//! requests only. Nothing is random unless a rule sets `rate` (and then its own seeded RNG is
//! used, so runs are reproducible). No rule exists by default.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::identity::{AadError, IdentityPlatform, TraceIds};
use crate::server::ConnectionControl;

/// Which emulated service a rule or counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// The identity platform.
    Identity,
    /// Microsoft Graph.
    Graph,
    /// HaloPSA.
    Psa,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Service::Identity => "identity",
            Service::Graph => "graph",
            Service::Psa => "psa",
        })
    }
}

/// What a rule does to a matching request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FaultAction {
    /// Delay the request by `ms` milliseconds, then handle it normally.
    Latency {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// Answer with `status` and a service-shaped error body instead of handling the request.
    #[serde(rename_all = "camelCase")]
    Fail {
        /// HTTP status.
        status: u16,
        /// `Retry-After` seconds (fractional for Graph, rounded up elsewhere).
        #[serde(default)]
        retry_after: Option<f64>,
        /// Error code (Graph `error.code`, identity `error`, PSA `ClassName`); a default per
        /// status otherwise.
        #[serde(default)]
        code: Option<String>,
        /// Error message; a default per status otherwise.
        #[serde(default)]
        message: Option<String>,
        /// A complete JSON body to send instead of the shaped one.
        #[serde(default)]
        body: Option<Value>,
    },
    /// Close the connection without answering.
    Drop,
    /// Handle the request normally, then hold the answer back `ms` milliseconds: the work is
    /// done (a message sent, an object written) while the client still waits — where a
    /// client that stops loses the answer of something that happened.
    LateAnswer {
        /// Delay of the answer in milliseconds.
        ms: u64,
    },
}

/// A fault rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// Service the rule applies to.
    pub service: Service,
    /// HTTP method (case-insensitive); any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Path glob (`*` matches any characters, including `/`), matched against the request path
    /// and the route template; any when absent.
    #[serde(default)]
    pub path: Option<String>,
    /// What to do.
    pub action: FaultAction,
    /// Apply to the next N matching requests only; every matching request when absent.
    #[serde(default)]
    pub count: Option<u32>,
    /// Let the first M matching requests through before the rule applies (e.g. fail page k of
    /// a paged read: `after = k - 1`).
    #[serde(default)]
    pub after: Option<u32>,
    /// Apply with this probability (0..=1) using an RNG seeded with `seed` (default 0).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Seed for `rate`.
    #[serde(default)]
    pub seed: Option<u64>,
}

impl FaultRule {
    /// "Fail the next `n` matching requests with `status`."
    pub fn fail_next(service: Service, path: &str, n: u32, status: u16) -> Self {
        Self {
            service,
            method: None,
            path: Some(path.into()),
            action: FaultAction::Fail {
                status,
                retry_after: None,
                code: None,
                message: None,
                body: None,
            },
            count: Some(n),
            after: None,
            rate: None,
            seed: None,
        }
    }

    /// Adds `ms` of latency to every matching request.
    pub fn latency(service: Service, path: &str, ms: u64) -> Self {
        Self {
            service,
            method: None,
            path: Some(path.into()),
            action: FaultAction::Latency { ms },
            count: None,
            after: None,
            rate: None,
            seed: None,
        }
    }

    /// Handles every matching request, then holds its answer back `ms` milliseconds.
    pub fn late_answer(service: Service, path: &str, ms: u64) -> Self {
        Self {
            service,
            method: None,
            path: Some(path.into()),
            action: FaultAction::LateAnswer { ms },
            count: None,
            after: None,
            rate: None,
            seed: None,
        }
    }

    /// Drops the connection of the next `n` matching requests.
    pub fn drop_next(service: Service, path: &str, n: u32) -> Self {
        Self {
            service,
            method: None,
            path: Some(path.into()),
            action: FaultAction::Drop,
            count: Some(n),
            after: None,
            rate: None,
            seed: None,
        }
    }

    /// Restricts the rule to one method.
    pub fn with_method(mut self, method: &str) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Lets the first `m` matching requests through before the rule applies.
    pub fn after(mut self, m: u32) -> Self {
        self.after = Some(m);
        self
    }

    /// "Answer the next `n` matching PSA requests with HaloPSA's documented 429": plain text
    /// "Rate Limit Reached - 300 Requests per rolling 5 minute window", no `Retry-After` unless
    /// [`FaultRule::with_retry_after`] adds one. Any route, the token endpoints (`/auth/token`,
    /// `/token`) included.
    pub fn psa_rate_limited(path: &str, n: u32) -> Self {
        Self::fail_next(Service::Psa, path, n, 429)
    }

    /// Sets `Retry-After` on a fail rule.
    pub fn with_retry_after(mut self, seconds: f64) -> Self {
        if let FaultAction::Fail { retry_after, .. } = &mut self.action {
            *retry_after = Some(seconds);
        }
        self
    }
}

/// A rule with its bookkeeping.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultStatus {
    /// Id (for removal).
    pub id: u64,
    /// The rule.
    pub rule: FaultRule,
    /// How many requests it was applied to.
    pub applied: u64,
    /// How many more it will apply to (`None` = unlimited).
    pub remaining: Option<u32>,
}

/// One request counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCount {
    /// Service.
    pub service: Service,
    /// HTTP method.
    pub method: String,
    /// Route template (or raw path when no route matched).
    pub route: String,
    /// Requests seen.
    pub count: u64,
}

/// Errors of the fault API.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The path glob could not be compiled.
    #[error("the fault path pattern '{0}' is not valid: {1}")]
    BadPattern(String, String),
    /// A rate outside 0..=1.
    #[error("a fault rate must be between 0 and 1, got {0}")]
    BadRate(f64),
}

struct ActiveRule {
    status: FaultStatus,
    /// Matching requests let through so far because of `after`.
    passed: u32,
    pattern: Option<regex::Regex>,
    rng: Option<rand::rngs::StdRng>,
}

#[derive(Default)]
struct FaultState {
    rules: Vec<ActiveRule>,
    counts: BTreeMap<(Service, String, String), u64>,
    next_id: u64,
}

/// The fault and counter registry shared by all service routers. Cheap to clone.
#[derive(Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
    identity: Arc<OnceLock<IdentityPlatform>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("rules", &self.rules().len())
            .finish()
    }
}

fn glob(p: &str) -> Result<regex::Regex, FaultError> {
    let re = format!("^{}$", regex::escape(p).replace("\\*", ".*"));
    regex::Regex::new(&re).map_err(|e| FaultError::BadPattern(p.into(), e.to_string()))
}

enum Decision {
    Pass,
    Fail(FaultAction),
    Drop,
}

impl Faults {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects the identity platform (for [`Faults::expire_tokens`]).
    pub fn attach_identity(&self, idp: IdentityPlatform) {
        let _ = self.identity.set(idp);
    }

    /// Adds a rule; returns its id.
    pub fn add(&self, rule: FaultRule) -> Result<u64, FaultError> {
        if let Some(r) = rule.rate {
            if !(0.0..=1.0).contains(&r) {
                return Err(FaultError::BadRate(r));
            }
        }
        let pattern = rule.path.as_deref().map(glob).transpose()?;
        let rng = rule
            .rate
            .map(|_| rand::rngs::StdRng::seed_from_u64(rule.seed.unwrap_or(0)));
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        st.rules.push(ActiveRule {
            status: FaultStatus {
                id,
                remaining: rule.count,
                rule,
                applied: 0,
            },
            passed: 0,
            pattern,
            rng,
        });
        Ok(id)
    }

    /// Removes a rule; true if it existed.
    pub fn remove(&self, id: u64) -> bool {
        let mut st = self.lock();
        let before = st.rules.len();
        st.rules.retain(|r| r.status.id != id);
        st.rules.len() != before
    }

    /// Removes all rules (of one service, or all).
    pub fn clear(&self, service: Option<Service>) {
        self.lock()
            .rules
            .retain(|r| service.is_some_and(|s| s != r.status.rule.service));
    }

    /// The rules with their bookkeeping.
    pub fn rules(&self) -> Vec<FaultStatus> {
        self.lock().rules.iter().map(|r| r.status.clone()).collect()
    }

    /// All request counters.
    pub fn request_counts(&self) -> Vec<RequestCount> {
        self.lock()
            .counts
            .iter()
            .map(|((service, method, route), count)| RequestCount {
                service: *service,
                method: method.clone(),
                route: route.clone(),
                count: *count,
            })
            .collect()
    }

    /// Requests seen for one service/method/route template.
    pub fn count(&self, service: Service, method: &str, route: &str) -> u64 {
        self.lock()
            .counts
            .get(&(service, method.to_ascii_uppercase(), route.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Total requests seen by a service.
    pub fn total(&self, service: Service) -> u64 {
        self.lock()
            .counts
            .iter()
            .filter(|((s, _, _), _)| *s == service)
            .map(|(_, c)| *c)
            .sum()
    }

    /// Resets all counters.
    pub fn reset_counts(&self) {
        self.lock().counts.clear();
    }

    /// Token expiry knob: makes every access token issued so far expired. Returns how many.
    pub fn expire_tokens(&self) -> usize {
        self.identity
            .get()
            .map(|i| i.expire_all_access_tokens())
            .unwrap_or(0)
    }

    /// Wraps a service router with counting and fault injection.
    pub fn layer(&self, service: Service, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            (self.clone(), service),
            middleware,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().expect("fault state lock")
    }

    fn decide(
        &self,
        service: Service,
        method: &str,
        path: &str,
        route: &str,
    ) -> (u64, u64, Decision) {
        let mut st = self.lock();
        *st.counts
            .entry((service, method.to_owned(), route.to_owned()))
            .or_insert(0) += 1;
        let mut latency = 0;
        let mut late = 0;
        for r in st.rules.iter_mut() {
            let rule = &r.status.rule;
            if rule.service != service
                || rule
                    .method
                    .as_deref()
                    .is_some_and(|m| !m.eq_ignore_ascii_case(method))
                || r.pattern
                    .as_ref()
                    .is_some_and(|p| !p.is_match(path) && !p.is_match(route))
                || r.status.remaining == Some(0)
            {
                continue;
            }
            if rule.after.is_some_and(|after| r.passed < after) {
                r.passed += 1;
                continue;
            }
            if let (Some(rate), Some(rng)) = (rule.rate, r.rng.as_mut()) {
                if rng.gen::<f64>() >= rate {
                    continue;
                }
            }
            if let Some(n) = r.status.remaining.as_mut() {
                *n -= 1;
            }
            r.status.applied += 1;
            match &rule.action {
                FaultAction::Latency { ms } => latency += ms,
                FaultAction::LateAnswer { ms } => late += ms,
                FaultAction::Drop => return (latency, late, Decision::Drop),
                f @ FaultAction::Fail { .. } => return (latency, late, Decision::Fail(f.clone())),
            }
        }
        (latency, late, Decision::Pass)
    }
}

/// The route of a path no specific template matched (a catch-all such as HaloPSA's
/// `/api/{*rest}`): the path with its numeric segments as `{id}`, so that counts per route
/// name the call (`GET /api/Tickets/{id}`) without one key per object.
fn route_of(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                "{id}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn middleware(
    State((faults, service)): State<(Faults, Service)>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .filter(|template| !template.contains("{*"))
        .unwrap_or_else(|| route_of(&path));
    let (latency, late, decision) = faults.decide(service, &method, &path, &route);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    match decision {
        Decision::Pass => {
            let answer = next.run(req).await;
            if late > 0 {
                tokio::time::sleep(Duration::from_millis(late)).await;
            }
            answer
        }
        Decision::Drop => match req.extensions().get::<ConnectionControl>() {
            Some(ctl) => {
                ctl.drop_connection();
                std::future::pending::<Response>().await
            }
            None => StatusCode::BAD_GATEWAY.into_response(),
        },
        Decision::Fail(action) => {
            let correlation = req
                .headers()
                .get("client-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            fail_response(service, &action, correlation.as_deref(), &faults)
        }
    }
}

fn default_graph_code(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("BadRequest", "The request is malformed or incorrect."),
        401 => (
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ),
        403 => (
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ),
        404 => (
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        ),
        410 => (
            "SyncStateNotFound",
            "The sync state generation is not found.",
        ),
        429 => ("TooManyRequests", "Please retry again later."),
        503 => (
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        504 => (
            "GatewayTimeout",
            "The gateway did not receive a timely response.",
        ),
        _ => ("InternalServerError", "An internal server error occurred."),
    }
}

fn fail_response(
    service: Service,
    action: &FaultAction,
    correlation: Option<&str>,
    faults: &Faults,
) -> Response {
    let FaultAction::Fail {
        status,
        retry_after,
        code,
        message,
        body,
    } = action
    else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let status_code = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let now = faults
        .identity
        .get()
        .map(|i| i.now())
        .unwrap_or_else(chrono::Utc::now);
    let request_id = uuid::Uuid::new_v4().to_string();
    let json_body = match (body, service) {
        (Some(b), _) => b.clone(),
        (None, Service::Graph) => {
            let (c, m) = default_graph_code(*status);
            json!({"error": {
                "code": code.clone().unwrap_or_else(|| c.into()),
                "message": message.clone().unwrap_or_else(|| m.into()),
                "innerError": {
                    "date": now.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "request-id": request_id,
                    "client-request-id": correlation.unwrap_or(&request_id),
                }
            }})
        }
        (None, Service::Psa) => json!({
            "ClassName": code.clone().unwrap_or_else(|| "HaloException".into()),
            "Message": message.clone().unwrap_or_else(|| format!("The request failed with status {status}.")),
        }),
        (None, Service::Identity) => {
            let err = AadError {
                status: status_code,
                error: match *status {
                    401 => "invalid_client",
                    429 | 503 => "temporarily_unavailable",
                    400 => "invalid_request",
                    _ => "server_error",
                },
                code: 90033,
                message: message
                    .clone()
                    .unwrap_or_else(|| "A transient error has occurred. Please try again.".into()),
                suberror: None,
            };
            let ids = TraceIds::new(correlation, now);
            let base = faults
                .identity
                .get()
                .map(|i| i.base_url())
                .unwrap_or_default();
            let mut resp = err.to_json_response(&ids, &base);
            if let Some(code) = code {
                // Replace the `error` value when the rule names one.
                if let Ok(bytes) = serde_json::to_vec(&{
                    let mut v = json!({
                        "error": code,
                        "error_description": err.description(&ids),
                        "error_codes": [err.code],
                        "timestamp": ids.timestamp(),
                        "trace_id": ids.trace_id,
                        "correlation_id": ids.correlation_id,
                    });
                    v["error_uri"] = json!(format!("{base}/error?code={}", err.code));
                    v
                }) {
                    *resp.body_mut() = Body::from(bytes);
                }
            }
            add_retry_after(&mut resp, service, *retry_after);
            return resp;
        }
    };
    if service == Service::Psa && *status == 429 && body.is_none() && code.is_none() {
        // HaloPSA's documented 429 is plain text (reference §2.2).
        let text = message.clone().unwrap_or_else(|| {
            "Rate Limit Reached - 300 Requests per rolling 5 minute window".into()
        });
        let mut resp = (
            status_code,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            text,
        )
            .into_response();
        add_retry_after(&mut resp, service, *retry_after);
        return resp;
    }
    let mut resp = (status_code, axum::Json(json_body)).into_response();
    if service == Service::Graph {
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("request-id", v);
        }
    }
    add_retry_after(&mut resp, service, *retry_after);
    resp
}

fn add_retry_after(resp: &mut Response, service: Service, retry_after: Option<f64>) {
    let Some(secs) = retry_after else { return };
    let text = if service == Service::Graph {
        let s = format!("{secs:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        format!("{}", secs.ceil() as u64)
    };
    if let Ok(v) = HeaderValue::from_str(&text) {
        resp.headers_mut().insert("retry-after", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_all_paths_count_per_resource() {
        assert_eq!(route_of("/api/Tickets/1000"), "/api/Tickets/{id}");
        assert_eq!(route_of("/api/Actions"), "/api/Actions");
        assert_eq!(route_of("/api/Users/100/x1"), "/api/Users/{id}/x1");
    }
}
