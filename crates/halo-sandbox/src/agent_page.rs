//! The agent's ticket page, minimal: what HaloPSA shows an agent who opens a ticket, reduced to
//! its custom tabs of type Iframe. Each tab allowed on the ticket's type (`allowall_iframe_
//! customtabs`, or the tab in `allowed_iframe_customtabs`) is an `<iframe>` of the tab's URL;
//! when *Send secure URL parameter* is on for the tab (the control API's
//! `POST /psa/tabs/{id}/secure-url`, since HaloPSA's API has no field for it) the URL carries
//! the parameter, signed with the tab's Iframe secret.
//!
//! What HaloPSA really appends is unconfirmed (halopsa-api.md §5), so it follows
//! [`crate::HaloBehaviour::tab_parameter`]: an HS256 JWT in `token` with `ticket_id`,
//! `agent_id` and `exp` (default), or `ticket_id`, `agent_id`, `ts` and a hex HMAC-SHA256
//! `signature` of `agent_id={a}&ticket_id={t}&ts={ts}`. This is the sandbox's own code, kept
//! apart from Mailroom's verifier on purpose.

use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::res::Res;
use crate::state::{int, string};
use crate::Inner;

/// The agent the page is shown to (the seed's first licensed agent).
const VIEWING_AGENT_ID: i64 = 2;

/// How the secure URL parameter is made ([U]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TabParameter {
    #[default]
    Jwt,
    HmacHex,
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    id: i64,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn signed_query(scheme: TabParameter, secret: &str, ticket_id: i64, now: i64) -> String {
    match scheme {
        TabParameter::Jwt => {
            let claims = serde_json::json!({
                "ticket_id": ticket_id,
                "agent_id": VIEWING_AGENT_ID,
                "iat": now,
                "exp": now + 300,
            });
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            )
            .expect("HS256 signing cannot fail");
            format!("token={token}")
        }
        TabParameter::HmacHex => {
            use hmac::Mac as _;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
                .expect("HMAC takes any key length");
            mac.update(
                format!("agent_id={VIEWING_AGENT_ID}&ticket_id={ticket_id}&ts={now}").as_bytes(),
            );
            let signature: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!(
                "ticket_id={ticket_id}&agent_id={VIEWING_AGENT_ID}&ts={now}&signature={signature}"
            )
        }
    }
}

/// `GET /ticket?id=N` on the PSA's listener.
pub(crate) async fn ticket_page(
    AxState(inner): AxState<Arc<Inner>>,
    Query(q): Query<PageQuery>,
) -> Response {
    let now = inner.clock.now().timestamp();
    let secrets = inner.tab_secrets.lock().expect("tab secrets lock").clone();
    let state = inner.state.lock().expect("halo sandbox state lock");
    let Some(ticket) = state.records[&Res::Tickets]
        .iter()
        .find(|t| int(t, "id") == Some(q.id))
        .cloned()
    else {
        return (StatusCode::NOT_FOUND, format!("No ticket {}", q.id)).into_response();
    };
    let type_id = int(&ticket, "tickettype_id");
    let ticket_type = state.records[&Res::TicketType]
        .iter()
        .find(|t| int(t, "id") == type_id)
        .cloned()
        .unwrap_or_default();
    let allow_all = ticket_type
        .get("allowall_iframe_customtabs")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let allowed: Vec<i64> = ticket_type
        .get("allowed_iframe_customtabs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("iframetab_id").and_then(Value::as_i64))
                .collect()
        })
        .unwrap_or_default();
    let scheme = state.behaviour.tab_parameter;
    let mut frames = String::new();
    for tab in &state.records[&Res::Tabs] {
        let (Some(id), Some(url)) = (int(tab, "id"), string(tab, "url")) else {
            continue;
        };
        if !allow_all && !allowed.contains(&id) {
            continue;
        }
        let src = match secrets.get(&id) {
            Some(secret) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}{}", signed_query(scheme, secret, q.id, now))
            }
            None => url.clone(),
        };
        frames.push_str(&format!(
            "<section><h2>{}</h2><iframe id=\"tab-{id}\" src=\"{}\" width=\"900\" height=\"500\"></iframe></section>",
            escape(&string(tab, "name").unwrap_or_default()),
            escape(&src)
        ));
    }
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Ticket {id} - HaloPSA (sandbox)</title></head><body><h1 id=\"ticket-summary\">{id}: {summary}</h1>{frames}</body></html>",
        id = q.id,
        summary = escape(&string(&ticket, "summary").unwrap_or_default()),
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}
