//! The control API (JSON, its own listener): test and operator switches for the sandbox.
//!
//! | Method & path | Body | Effect |
//! |---|---|---|
//! | `GET /` | | URLs and tenant facts |
//! | `POST /mail/deliver` | `{to, from, from_name, subject, body_html \| body_text, headers: [[name, value]], attachments: [{name, content_type, content_base64, inline, content_id}], in_reply_to, references: []}` | delivers mail into a tenant mailbox (201 + ids) |
//! | `GET /mailboxes/{mailbox}/messages` | | messages of a mailbox (all folders) |
//! | `GET /mailboxes/{mailbox}/sent` | | mail sent from a mailbox |
//! | `GET /graph/subscriptions` | | active Graph subscriptions |
//! | `POST /graph/subscriptions/{id}/lifecycle` | `{event: "reauthorizationRequired" \| "subscriptionRemoved" \| "missed"}` | sends a lifecycle notification |
//! | `GET /graph/notifications` | | publisher log (change and lifecycle notifications) |
//! | `GET /graph/access-policies` · `POST /graph/access-policies` · `DELETE /graph/access-policies/{app_id}` | `POST`: `{appId, accessRight: "RestrictAccess" \| "DenyAccess", mailboxes: [address]}` | Exchange application access policies: list · apply one (201; 400 naming a member that is no mailbox) · lift every policy of an application (204; 404 when it has none). Applied at once (Exchange: up to 30 min); a mailbox out of reach answers app-only requests with the documented 403 `ErrorAccessDenied` "Access to OData is disabled." |
//! | `GET /psa/tickets` · `/psa/actions` · `/psa/users` · `/psa/clients` · `/psa/sites` · `/psa/attachments` · `/psa/webhooks` · `/psa/tabs` | | HaloPSA records |
//! | `POST /psa/tabs/{id}/secure-url` | | turns on the custom tab's *Send secure URL parameter* and answers its Iframe secret (`{tab_id, iframe_secret}`), as HaloPSA's tab screen shows it; the PSA's `GET /ticket?id=N` then frames the tab with the signed parameter |
//! | `GET /stats/requests` · `DELETE /stats/requests` | | request counters per service, method, route · reset |
//! | `GET /faults` · `POST /faults` · `DELETE /faults` · `DELETE /faults/{id}` | `POST`: a [`FaultRule`] | list · add (returns `{id}`) · clear all · remove one |
//! | `POST /faults/expire-tokens` | | expires every issued access token |
//! | `POST /faults` with `{"service":"psa","path":"/auth/token","count":N,"action":{"kind":"fail","status":429,"retryAfter":S?}}` | | N × HaloPSA's plain-text 429 ("Rate Limit Reached - …"), with `Retry-After: S` only when given; any PSA path (`/api/*`, `/token`) works the same ([`FaultRule::psa_rate_limited`]) |
//! | `GET /clock` · `POST /clock/advance` | `{seconds}` | current sandbox time · move it forward |
//! | `GET /identity/apps` | | app registrations (no secret values) |
//! | `POST /identity/users/{upn}/revoke` | | revoke sessions (AADSTS50173) |
//! | `POST /identity/refresh-tokens/inactive` | `{upn?, kind?: "inactive" \| "inactive_token"}` | AADSTS70008 / 700082 |
//! | `POST /identity/apps/{client_id}/consent/withdraw` · `.../consent/grant` | | withdraw consent (65001) · admin-grant again |
//! | `POST /identity/apps/{client_id}/secrets/expire` | `{secretId?}` | AADSTS7000222 |
//! | `POST /identity/apps/{client_id}/certificates` · `DELETE .../certificates/{thumbprint}` | `{pem}` | register (returns `{thumbprint}`) · remove |
//! | `POST /identity/token-lifetime` | `{seconds}` | access-token lifetime |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::faults::FaultRule;
use crate::identity::RefreshTokenFault;
use crate::Shared;

fn bad(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": msg.to_string()}))).into_response()
}

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/mail/deliver", post(deliver))
        .route("/mailboxes/{mailbox}/messages", get(messages))
        .route("/mailboxes/{mailbox}/sent", get(sent))
        .route("/graph/subscriptions", get(subscriptions))
        .route("/graph/subscriptions/{id}/lifecycle", post(lifecycle))
        .route("/graph/notifications", get(notifications))
        .route(
            "/graph/access-policies",
            get(access_policies).post(apply_access_policy),
        )
        .route(
            "/graph/access-policies/{app_id}",
            delete(lift_access_policies),
        )
        .route(
            "/psa/behaviour",
            get(psa_behaviour).post(change_psa_behaviour),
        )
        .route("/psa/{what}", get(psa))
        .route("/psa/tabs/{id}/secure-url", post(tab_secure_url))
        .route("/stats/requests", get(stats).delete(reset_stats))
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/faults/{id}", delete(remove_fault))
        .route("/faults/expire-tokens", post(expire_tokens))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance))
        .route("/identity/apps", get(apps))
        .route("/identity/users/{upn}/revoke", post(revoke_user))
        .route("/identity/refresh-tokens/inactive", post(inactive))
        .route(
            "/identity/apps/{client_id}/consent/withdraw",
            post(withdraw),
        )
        .route("/identity/apps/{client_id}/consent/grant", post(grant))
        .route(
            "/identity/apps/{client_id}/secrets/expire",
            post(expire_secret),
        )
        .route("/identity/apps/{client_id}/certificates", post(add_cert))
        .route(
            "/identity/apps/{client_id}/certificates/{thumbprint}",
            delete(remove_cert),
        )
        .route("/identity/token-lifetime", post(token_lifetime))
        .with_state(shared)
}

async fn root(State(s): State<Shared>) -> Response {
    Json(json!({
        "authority": s.urls.authority, "graph": s.urls.graph, "psa": s.urls.psa,
        "control": s.urls.control, "tenantId": s.tenant.tenant_id, "domain": s.tenant.domain,
        "openidConfiguration": s.identity.openid_configuration_url(),
    }))
    .into_response()
}

async fn deliver(
    State(s): State<Shared>,
    Json(mail): Json<mailroom_graph_sandbox::InboundMail>,
) -> Response {
    match s.graph.deliver(mail) {
        Ok(d) => (StatusCode::CREATED, Json(d)).into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

async fn messages(State(s): State<Shared>, Path(mailbox): Path<String>) -> Response {
    Json(s.graph.messages(&mailbox)).into_response()
}

async fn sent(State(s): State<Shared>, Path(mailbox): Path<String>) -> Response {
    Json(s.graph.sent_mail(&mailbox)).into_response()
}

async fn subscriptions(State(s): State<Shared>) -> Response {
    Json(s.graph.subscriptions()).into_response()
}

#[derive(Deserialize)]
struct LifecycleBody {
    event: mailroom_graph_sandbox::LifecycleEvent,
}

async fn lifecycle(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Json(b): Json<LifecycleBody>,
) -> Response {
    match s.graph.fire_lifecycle(&id, b.event) {
        Ok(sent) => Json(json!({"sent": sent})).into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

async fn access_policies(State(s): State<Shared>) -> Response {
    Json(s.graph.access_policies()).into_response()
}

async fn apply_access_policy(
    State(s): State<Shared>,
    Json(policy): Json<mailroom_graph_sandbox::ApplicationAccessPolicy>,
) -> Response {
    let shown = json!(policy);
    match s.graph.try_add_access_policy(policy) {
        Ok(()) => (StatusCode::CREATED, Json(shown)).into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

async fn lift_access_policies(State(s): State<Shared>, Path(app_id): Path<String>) -> Response {
    let had = s
        .graph
        .access_policies()
        .iter()
        .any(|p| p.app_id.eq_ignore_ascii_case(&app_id));
    if !had {
        return bad(
            StatusCode::NOT_FOUND,
            format!("no application access policy for {app_id}"),
        );
    }
    s.graph.clear_access_policies(&app_id);
    StatusCode::NO_CONTENT.into_response()
}

async fn notifications(State(s): State<Shared>) -> Response {
    Json(s.graph.notification_log()).into_response()
}

async fn psa(State(s): State<Shared>, Path(what): Path<String>) -> Response {
    let v: Value = match what.as_str() {
        "tickets" => json!(s.halo.tickets()),
        "actions" => json!(s.halo.actions()),
        "users" => json!(s.halo.users()),
        "clients" => json!(s.halo.clients()),
        "sites" => json!(s.halo.sites()),
        "attachments" => json!(s.halo.attachments()),
        "webhooks" => json!(s.halo.webhook_deliveries()),
        "tabs" => json!(s.halo.tabs()),
        other => {
            return bad(
                StatusCode::NOT_FOUND,
                format!("unknown PSA collection '{other}'"),
            )
        }
    };
    Json(v).into_response()
}

async fn psa_behaviour(State(s): State<Shared>) -> Response {
    Json(s.halo.behaviour()).into_response()
}

/// Changes the PSA's behaviour switches: the posted fields replace the current ones (e.g.
/// `{"post_answer": "first_record", "reject_whole_batch": false}`); answers the result.
async fn change_psa_behaviour(State(s): State<Shared>, Json(change): Json<Value>) -> Response {
    let Value::Object(change) = change else {
        return bad(
            StatusCode::BAD_REQUEST,
            "post a JSON object of behaviour fields",
        );
    };
    let mut current = serde_json::to_value(s.halo.behaviour()).unwrap_or_default();
    for (key, value) in change {
        if current.get(&key).is_none() {
            return bad(
                StatusCode::BAD_REQUEST,
                format!("'{key}' is not a PSA behaviour switch"),
            );
        }
        current[&key] = value;
    }
    match serde_json::from_value::<mailroom_halo_sandbox::HaloBehaviour>(current) {
        Ok(next) => {
            s.halo.update_behaviour(|b| *b = next.clone());
            Json(next).into_response()
        }
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

async fn tab_secure_url(State(s): State<Shared>, Path(id): Path<i64>) -> Response {
    match s.halo.enable_secure_url(id) {
        Some(secret) => Json(json!({ "tab_id": id, "iframe_secret": secret })).into_response(),
        None => bad(StatusCode::NOT_FOUND, format!("no custom tab {id}")),
    }
}

async fn stats(State(s): State<Shared>) -> Response {
    Json(s.faults.request_counts()).into_response()
}

async fn reset_stats(State(s): State<Shared>) -> Response {
    s.faults.reset_counts();
    StatusCode::NO_CONTENT.into_response()
}

async fn list_faults(State(s): State<Shared>) -> Response {
    Json(s.faults.rules()).into_response()
}

async fn add_fault(State(s): State<Shared>, Json(rule): Json<FaultRule>) -> Response {
    match s.faults.add(rule) {
        Ok(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

async fn clear_faults(State(s): State<Shared>) -> Response {
    s.faults.clear(None);
    StatusCode::NO_CONTENT.into_response()
}

async fn remove_fault(State(s): State<Shared>, Path(id): Path<u64>) -> Response {
    if s.faults.remove(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        bad(StatusCode::NOT_FOUND, format!("no fault rule {id}"))
    }
}

async fn expire_tokens(State(s): State<Shared>) -> Response {
    Json(json!({"expired": s.faults.expire_tokens()})).into_response()
}

async fn clock(State(s): State<Shared>) -> Response {
    use mailroom_clock::Clock;
    Json(json!({"now": s.clock.now()})).into_response()
}

#[derive(Deserialize)]
struct Seconds {
    seconds: i64,
}

async fn advance(State(s): State<Shared>, Json(b): Json<Seconds>) -> Response {
    use mailroom_clock::Clock;
    s.clock.advance(chrono::Duration::seconds(b.seconds));
    Json(json!({"now": s.clock.now()})).into_response()
}

async fn apps(State(s): State<Shared>) -> Response {
    Json(s.identity.apps()).into_response()
}

async fn revoke_user(State(s): State<Shared>, Path(upn): Path<String>) -> Response {
    match s.identity.revoke_user_sessions(&upn) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InactiveBody {
    upn: Option<String>,
    kind: Option<RefreshTokenFault>,
}

async fn inactive(State(s): State<Shared>, body: Option<Json<InactiveBody>>) -> Response {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    match s.identity.set_refresh_tokens_inactive(
        b.upn.as_deref(),
        b.kind.unwrap_or(RefreshTokenFault::Inactive),
    ) {
        Ok(n) => Json(json!({"marked": n})).into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

async fn withdraw(State(s): State<Shared>, Path(cid): Path<String>) -> Response {
    match s.identity.withdraw_consent(&cid) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

async fn grant(State(s): State<Shared>, Path(cid): Path<String>) -> Response {
    match s.identity.grant_admin_consent(&cid) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ExpireSecret {
    secret_id: Option<String>,
}

async fn expire_secret(
    State(s): State<Shared>,
    Path(cid): Path<String>,
    body: Option<Json<ExpireSecret>>,
) -> Response {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    match s.identity.expire_app_secret(&cid, b.secret_id.as_deref()) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

#[derive(Deserialize)]
struct CertBody {
    pem: String,
}

async fn add_cert(
    State(s): State<Shared>,
    Path(cid): Path<String>,
    Json(b): Json<CertBody>,
) -> Response {
    match s.identity.add_app_certificate(&cid, &b.pem) {
        Ok(t) => (StatusCode::CREATED, Json(json!({"thumbprint": t}))).into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

async fn remove_cert(
    State(s): State<Shared>,
    Path((cid, thumb)): Path<(String, String)>,
) -> Response {
    match s.identity.remove_app_certificate(&cid, &thumb) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => bad(
            StatusCode::NOT_FOUND,
            format!("no certificate {thumb} on {cid}"),
        ),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

async fn token_lifetime(State(s): State<Shared>, Json(b): Json<Seconds>) -> Response {
    s.identity.set_access_token_lifetime(b.seconds);
    StatusCode::NO_CONTENT.into_response()
}
