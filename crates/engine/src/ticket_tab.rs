//! The ticket tab: Mailroom's page inside a HaloPSA ticket (a custom tab of type *Iframe* with
//! *Send secure URL parameter*), listing what Mailroom knows of that ticket — the emails that
//! opened and updated it, each attempt with its processing log and requests. Served by the
//! webhook receiver (`GET /halo/tab`), so the public base URL or tunnel that carries Graph's
//! notifications carries the tab too.
//!
//! What HaloPSA appends when *Send secure URL parameter* is on is not documented
//! (`../shared/reference/halopsa-api.md` §5). The verification is therefore a [`TabAuthScheme`]
//! chosen in the settings, over the tab secret the admin pastes from HaloPSA:
//! - [`TabAuthScheme::Jwt`] (the default): a JWT signed with HS256 in the `token` parameter,
//!   carrying `ticket_id` (or `ticketid`), optionally `agent_id`, and `exp`;
//! - [`TabAuthScheme::HmacHex`]: `ticket_id`, `agent_id` and `ts` (Unix seconds) in the query,
//!   and `signature` = hex HMAC-SHA256 of `agent_id={a}&ticket_id={t}&ts={ts}`, at most
//!   [`MAX_AGE_SECS`] old.
//!
//! Every rejected request is recorded with the names of the parameters it carried (never
//! their values), so an admin can see what HaloPSA really sends and pick the scheme.
//!
//! Invariants: the page is read-only and carries no secret or token; it is answered only for a
//! verified request and only for the verified ticket; its CSP allows no script, and only the
//! PSA's own origin may frame it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use mailroom_mailproc::escape_html;
use mailroom_secrets::{SecretKey, SecretKind, SecretValue, Secrets};
use mailroom_store::inbound::{AttemptDetail, InboundEmail};
use mailroom_store::Store;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::psa_connection::PSA_CONNECTION_ID;
use crate::{Core, CoreError};

/// How old a signed request (`ts`, `exp`) may be, in seconds (clock skew included).
pub const MAX_AGE_SECS: i64 = 300;

/// The tab's path on the receiver.
pub const TAB_PATH: &str = "/halo/tab";

/// Settings key of [`TabSettings`]; the secret itself is in the keyring.
pub(crate) const TAB_SETTINGS_KEY: &str = "integration.tab";

/// Settings key of the base URL the running receiver is reached at (kept by the engine).
pub(crate) const RECEIVER_BASE_URL_KEY: &str = "webhooks.receiver_base_url";

/// Settings key of the time of the newest request the tab answered with its page.
const LAST_SHOWN_KEY: &str = "integration.tab.last_shown";

/// Settings key of the kept refusals (the newest [`REJECTIONS_KEPT`]).
const REJECTIONS_KEY: &str = "integration.tab.rejections";
const REJECTIONS_KEPT: usize = 50;

/// The tab's settings (saved with its secret).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TabSettings {
    pub scheme: TabAuthScheme,
}

/// A refused tab request as kept for the admin: when, why, and the names of the query
/// parameters it carried (never their values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TabRejectionRecord {
    pub at: DateTime<Utc>,
    pub reason: String,
    pub parameters: Vec<String>,
}

fn tab_secret_key() -> SecretKey {
    SecretKey::new(PSA_CONNECTION_ID, SecretKind::TabSecret)
}

impl Core {
    /// Saves the tab's *Iframe secret* (keyring) and scheme. The webhook receiver, which serves
    /// the tab, runs from the engine's next start-up round on.
    pub async fn set_ticket_tab(
        &self,
        secret: SecretValue,
        scheme: TabAuthScheme,
    ) -> Result<TabSettings, CoreError> {
        if secret.expose().trim().is_empty() {
            return Err(CoreError::InvalidInput(
                "the tab secret is required: copy the custom tab's Iframe secret from HaloPSA (Configuration > Custom Objects > Custom Tabs)".into(),
            ));
        }
        self.secrets()
            .set(&tab_secret_key(), &SecretValue::new(secret.expose().trim()))
            .await?;
        let settings = TabSettings { scheme };
        self.store()
            .set_setting(TAB_SETTINGS_KEY, &settings)
            .await?;
        Ok(settings)
    }

    /// The tab's URL for `ticket_id` with the secure parameter signed as HaloPSA would sign it
    /// (the end-to-end test opens it); `None` until the tab secret is saved.
    pub(crate) async fn signed_ticket_tab_url(
        &self,
        ticket_id: i64,
        agent_id: Option<i64>,
    ) -> Result<Option<String>, CoreError> {
        let Some(settings) = self.ticket_tab_settings().await? else {
            return Ok(None);
        };
        let Some(secret) = self.secrets().get(&tab_secret_key()).await? else {
            return Ok(None);
        };
        let mut url = url::Url::parse(&self.ticket_tab_url().await?).map_err(|e| {
            CoreError::InvalidInput(format!("the ticket tab's URL is not valid: {e}"))
        })?;
        url.query_pairs_mut().extend_pairs(sign(
            settings.scheme,
            secret.expose().as_bytes(),
            ticket_id,
            agent_id,
            Utc::now(),
        ));
        Ok(Some(url.to_string()))
    }

    /// The tab's settings, `None` until its secret was saved.
    pub async fn ticket_tab_settings(&self) -> Result<Option<TabSettings>, CoreError> {
        Ok(self.store().setting(TAB_SETTINGS_KEY).await?)
    }

    /// The URL to give the custom tab in HaloPSA: [`Core::receiver_url`] of [`TAB_PATH`].
    pub async fn ticket_tab_url(&self) -> Result<String, CoreError> {
        self.receiver_url(TAB_PATH).await
    }

    /// A URL on the webhook receiver: its base URL (as it last ran, else as the webhook
    /// settings say) and `path`.
    pub async fn receiver_url(&self, path: &str) -> Result<String, CoreError> {
        let running: Option<String> = self.store().setting(RECEIVER_BASE_URL_KEY).await?;
        let base = match running {
            Some(base) => base,
            None => {
                let options = self
                    .webhook_settings()
                    .await?
                    .options()
                    .map_err(CoreError::InvalidInput)?;
                match options.public_base_url {
                    Some(url) => url.to_string(),
                    None => format!("http://{}/", options.bind),
                }
            }
        };
        Ok(format!("{}{}", base.trim_end_matches('/'), path))
    }

    /// When the tab last showed a ticket's page.
    pub async fn ticket_tab_last_shown(&self) -> Result<Option<DateTime<Utc>>, CoreError> {
        Ok(self.store().setting(LAST_SHOWN_KEY).await?)
    }

    /// The newest refused tab requests, newest first.
    pub async fn ticket_tab_rejections(&self) -> Result<Vec<TabRejectionRecord>, CoreError> {
        Ok(self
            .store()
            .setting(REJECTIONS_KEY)
            .await?
            .unwrap_or_default())
    }
}

/// Answers one tab request (the receiver's `GET /halo/tab`): the ticket's page, or the refusal
/// page (kept in the refusals log). Returns the status, the page and its CSP.
pub(crate) async fn answer(
    store: &Store,
    secrets: &Secrets,
    query: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> (u16, String, String) {
    let frame_ancestor = store
        .psa_connection(PSA_CONNECTION_ID)
        .await
        .ok()
        .flatten()
        .and_then(|c| url::Url::parse(&c.base_url).ok())
        .map(|u| u.origin().ascii_serialization());
    let csp = content_security_policy(frame_ancestor.as_deref());
    let settings: Option<TabSettings> = store.setting(TAB_SETTINGS_KEY).await.ok().flatten();
    let secret = match settings {
        Some(_) => secrets.get(&tab_secret_key()).await.ok().flatten(),
        None => None,
    };
    let scheme = settings.unwrap_or_default().scheme;
    let verified = match &secret {
        Some(secret) => verify(scheme, secret.expose().as_bytes(), query, now),
        None => Err(TabRejection::NotConfigured),
    };
    let request = match verified {
        Ok(request) => request,
        Err(rejection) => {
            tracing::warn!(reason = %rejection, parameters = ?query.keys().collect::<Vec<_>>(), "ticket tab request refused");
            let record = TabRejectionRecord {
                at: now,
                reason: rejection.to_string(),
                parameters: query.keys().cloned().collect(),
            };
            let mut kept: Vec<TabRejectionRecord> = store
                .setting(REJECTIONS_KEY)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            kept.insert(0, record);
            kept.truncate(REJECTIONS_KEPT);
            let _ = store.set_setting(REJECTIONS_KEY, &kept).await;
            return (403, render_refusal(&rejection), csp);
        }
    };
    let emails = match store.emails_for_ticket(request.ticket_id).await {
        Ok(emails) => emails,
        Err(e) => {
            tracing::error!("ticket tab: {e}");
            return (
                500,
                render_refusal_text("Mailroom could not read its records; see its log."),
                csp,
            );
        }
    };
    let mut with_attempts = Vec::with_capacity(emails.len());
    for email in emails {
        let attempts = store.attempts(email.id).await.unwrap_or_default();
        with_attempts.push((email, attempts));
    }
    let _ = store.set_setting(LAST_SHOWN_KEY, &now).await;
    (200, render_ticket(request.ticket_id, &with_attempts), csp)
}

/// How the secure URL parameter is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TabAuthScheme {
    /// HS256 JWT in `token` with `ticket_id` and `exp`.
    #[default]
    Jwt,
    /// Hex HMAC-SHA256 in `signature` over `agent_id`, `ticket_id` and `ts`.
    HmacHex,
}

/// A verified tab request: the ticket it is for and the agent who opened it (when said).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabRequest {
    pub ticket_id: i64,
    pub agent_id: Option<i64>,
}

/// Why a tab request was refused. The text is shown in the tab and logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TabRejection {
    #[error("the ticket tab is not set up in Mailroom yet (no tab secret saved)")]
    NotConfigured,
    #[error("the request carries no secure URL parameter ({0}); turn on \"Send secure URL parameter\" on the custom tab in HaloPSA")]
    Missing(&'static str),
    #[error("the secure URL parameter does not match the tab secret: copy the tab's Iframe secret from HaloPSA into Mailroom again")]
    BadSignature,
    #[error(
        "the secure URL parameter has expired (older than {MAX_AGE_SECS} s): reload the ticket"
    )]
    Expired,
    #[error("the secure URL parameter names no ticket")]
    NoTicket,
}

type HmacSha256 = Hmac<Sha256>;

#[derive(Deserialize)]
struct Claims {
    #[serde(alias = "ticketid")]
    ticket_id: Option<serde_json::Value>,
    #[serde(alias = "agentid")]
    agent_id: Option<serde_json::Value>,
}

fn as_id(value: Option<&serde_json::Value>) -> Option<i64> {
    match value? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn param_id(query: &BTreeMap<String, String>, names: &[&str]) -> Option<i64> {
    names
        .iter()
        .find_map(|n| query.get(*n))
        .and_then(|v| v.trim().parse().ok())
}

/// The message the HMAC scheme signs.
fn hmac_message(agent_id: Option<i64>, ticket_id: i64, ts: i64) -> String {
    format!(
        "agent_id={}&ticket_id={ticket_id}&ts={ts}",
        agent_id.map(|a| a.to_string()).unwrap_or_default()
    )
}

/// Checks a tab request's query against the tab secret.
pub fn verify(
    scheme: TabAuthScheme,
    secret: &[u8],
    query: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Result<TabRequest, TabRejection> {
    if secret.is_empty() {
        return Err(TabRejection::NotConfigured);
    }
    match scheme {
        TabAuthScheme::Jwt => {
            let token = query.get("token").ok_or(TabRejection::Missing("token"))?;
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            validation.leeway = 60;
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["exp"]);
            let data = jsonwebtoken::decode::<Claims>(
                token,
                &jsonwebtoken::DecodingKey::from_secret(secret),
                &validation,
            )
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TabRejection::Expired,
                _ => TabRejection::BadSignature,
            })?;
            let ticket_id = as_id(data.claims.ticket_id.as_ref()).ok_or(TabRejection::NoTicket)?;
            Ok(TabRequest {
                ticket_id,
                agent_id: as_id(data.claims.agent_id.as_ref()),
            })
        }
        TabAuthScheme::HmacHex => {
            let signature = query
                .get("signature")
                .ok_or(TabRejection::Missing("signature"))?;
            let ticket_id =
                param_id(query, &["ticket_id", "ticketid"]).ok_or(TabRejection::NoTicket)?;
            let agent_id = param_id(query, &["agent_id", "agentid"]);
            let ts: i64 = query
                .get("ts")
                .and_then(|t| t.trim().parse().ok())
                .ok_or(TabRejection::Missing("ts"))?;
            let given = hex::decode(signature.trim()).map_err(|_| TabRejection::BadSignature)?;
            let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
            mac.update(hmac_message(agent_id, ticket_id, ts).as_bytes());
            // Constant-time comparison (hmac's verify_slice).
            mac.verify_slice(&given)
                .map_err(|_| TabRejection::BadSignature)?;
            if (now.timestamp() - ts).abs() > MAX_AGE_SECS {
                return Err(TabRejection::Expired);
            }
            Ok(TabRequest {
                ticket_id,
                agent_id,
            })
        }
    }
}

/// The query a PSA sends under `scheme` for `ticket_id` (what `verify` accepts): used by the
/// integration's end-to-end check to open the tab as the PSA would.
pub fn sign(
    scheme: TabAuthScheme,
    secret: &[u8],
    ticket_id: i64,
    agent_id: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    match scheme {
        TabAuthScheme::Jwt => {
            let claims = serde_json::json!({
                "ticket_id": ticket_id,
                "agent_id": agent_id,
                "iat": now.timestamp(),
                "exp": now.timestamp() + MAX_AGE_SECS,
            });
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(secret),
            )
            .expect("HS256 signing cannot fail");
            vec![("token".into(), token)]
        }
        TabAuthScheme::HmacHex => {
            let ts = now.timestamp();
            let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
            mac.update(hmac_message(agent_id, ticket_id, ts).as_bytes());
            let mut query = vec![("ticket_id".into(), ticket_id.to_string())];
            if let Some(agent) = agent_id {
                query.push(("agent_id".into(), agent.to_string()));
            }
            query.push(("ts".into(), ts.to_string()));
            query.push(("signature".into(), hex::encode(mac.finalize().into_bytes())));
            query
        }
    }
}

/// The CSP of every tab response: no script, no subresource but inline style, framed only by
/// `frame_ancestor` (the PSA's origin) when known.
pub fn content_security_policy(frame_ancestor: Option<&str>) -> String {
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors {}",
        frame_ancestor.unwrap_or("'none'")
    )
}

const STYLE: &str = "body{font:14px system-ui,-apple-system,'Segoe UI',sans-serif;color:#1b1f24;margin:16px;background:#fff}\
h1{font-size:16px;margin:0 0 12px}.email{border:1px solid #e2e5ea;border-radius:8px;padding:10px 14px;margin:0 0 12px}\
.meta{color:#5b6470;font-size:12px}.status{font-weight:600}.ok{color:#1a7f37}.failed{color:#c62828}\
details{margin-top:6px}summary{cursor:pointer;color:#1f4fd1}ol{margin:6px 0;padding-left:20px}\
code{font-size:12px}.error{border-left:4px solid #c62828;background:#fdecea;padding:10px 14px}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape_html(title)
    )
}

/// The page shown instead of the tab's content when a request is refused.
pub fn render_refusal(rejection: &TabRejection) -> String {
    render_refusal_text(&rejection.to_string())
}

fn render_refusal_text(reason: &str) -> String {
    page(
        "Mailroom",
        &format!(
            "<div class=\"error\"><strong>Mailroom cannot show this ticket.</strong><br>{}</div>",
            escape_html(reason)
        ),
    )
}

/// The tab's page for one ticket: its emails, oldest first, each with its attempts.
pub fn render_ticket(ticket_id: i64, emails: &[(InboundEmail, Vec<AttemptDetail>)]) -> String {
    let mut body = format!("<h1>Mailroom · ticket {ticket_id}</h1>");
    if emails.is_empty() {
        body.push_str(
            "<p class=\"meta\">No email of Mailroom's opened or updated this ticket.</p>",
        );
    }
    for (email, attempts) in emails {
        let what = if email.action_id.is_some() {
            "updated the ticket"
        } else {
            "opened the ticket"
        };
        let status = format!("{:?}", email.status).to_lowercase();
        let class = if email.error_code.is_some() {
            "failed"
        } else {
            "ok"
        };
        body.push_str(&format!(
            "<section class=\"email\"><div><strong>{}</strong></div><div class=\"meta\">From {} &lt;{}&gt; · received {} · {}</div><div class=\"status {class}\">{}</div>",
            escape_html(&email.subject),
            escape_html(&email.from_name),
            escape_html(&email.from_address),
            email.received_at.format("%Y-%m-%d %H:%M UTC"),
            what,
            escape_html(&status),
        ));
        if let Some(message) = &email.error_message {
            body.push_str(&format!(
                "<div class=\"failed\">{}</div>",
                escape_html(message)
            ));
        }
        for attempt in attempts {
            body.push_str(&format!(
                "<details><summary>Attempt {} ({}) · {}</summary><ol>",
                attempt.number,
                escape_html(&attempt.trigger),
                escape_html(attempt.result.as_deref().unwrap_or("running"))
            ));
            for line in &attempt.log {
                body.push_str(&format!(
                    "<li><span class=\"meta\">{}</span> {}</li>",
                    line.at.format("%H:%M:%S"),
                    escape_html(&line.message)
                ));
            }
            body.push_str("</ol>");
            for request in &attempt.requests {
                body.push_str(&format!(
                    "<div><code>{} {} → {}</code></div>",
                    escape_html(&request.method),
                    escape_html(&request.url),
                    request
                        .status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "no answer".into())
                ));
            }
            body.push_str("</details>");
        }
        body.push_str("</section>");
    }
    page(&format!("Mailroom · ticket {ticket_id}"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: Vec<(String, String)>) -> BTreeMap<String, String> {
        pairs.into_iter().collect()
    }

    #[test]
    fn both_schemes_accept_what_they_sign_and_refuse_another_secret() {
        let now = Utc::now();
        for scheme in [TabAuthScheme::Jwt, TabAuthScheme::HmacHex] {
            let q = query(sign(scheme, b"tab-secret", 4242, Some(3), now));
            assert_eq!(
                verify(scheme, b"tab-secret", &q, now).unwrap(),
                TabRequest {
                    ticket_id: 4242,
                    agent_id: Some(3)
                },
                "{scheme:?}"
            );
            assert_eq!(
                verify(scheme, b"another-secret", &q, now).unwrap_err(),
                TabRejection::BadSignature,
                "{scheme:?}"
            );
            assert_eq!(
                verify(scheme, b"", &q, now).unwrap_err(),
                TabRejection::NotConfigured
            );
        }
    }

    #[test]
    fn a_tampered_ticket_an_old_request_or_no_parameter_is_refused() {
        let now = Utc::now();
        let mut q = query(sign(TabAuthScheme::HmacHex, b"s", 7, None, now));
        q.insert("ticket_id".into(), "8".into());
        assert_eq!(
            verify(TabAuthScheme::HmacHex, b"s", &q, now).unwrap_err(),
            TabRejection::BadSignature
        );
        let old = now - chrono::Duration::seconds(MAX_AGE_SECS + 120);
        for scheme in [TabAuthScheme::Jwt, TabAuthScheme::HmacHex] {
            let q = query(sign(scheme, b"s", 7, None, old));
            assert_eq!(
                verify(scheme, b"s", &q, now).unwrap_err(),
                TabRejection::Expired,
                "{scheme:?}"
            );
        }
        let bare = query(vec![("ticket_id".into(), "7".into())]);
        assert_eq!(
            verify(TabAuthScheme::Jwt, b"s", &bare, now).unwrap_err(),
            TabRejection::Missing("token")
        );
        assert_eq!(
            verify(TabAuthScheme::HmacHex, b"s", &bare, now).unwrap_err(),
            TabRejection::Missing("signature")
        );
    }

    #[test]
    fn the_page_escapes_what_mail_brought_and_allows_no_script() {
        let email = InboundEmail {
            id: 1,
            mailbox_id: "m".into(),
            graph_message_id: "g".into(),
            internet_message_id: None,
            conversation_id: None,
            received_at: Utc::now(),
            from_address: "pat@fabrikam.test".into(),
            from_name: "<script>alert(1)</script>".into(),
            subject: "Printer <b>on fire</b>".into(),
            state: mailroom_store::inbound::EmailState::Done,
            status: mailroom_store::inbound::LogStatus::Processed,
            outcome: None,
            skip_reason: None,
            skip_detail: None,
            ticket_id: Some(4242),
            action_id: None,
            attempts: 1,
            next_attempt_at: None,
            error_code: None,
            error_message: None,
            updated_at: Utc::now(),
            claimed_from: None,
        };
        let html = render_ticket(4242, &[(email, Vec::new())]);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(
            html.contains("Printer &lt;b&gt;on fire&lt;/b&gt;"),
            "{html}"
        );
        assert!(html.contains("opened the ticket"));
        let csp = content_security_policy(Some("https://contoso.halopsa.com"));
        assert!(csp.contains("default-src 'none'"));
        assert!(csp.contains("frame-ancestors https://contoso.halopsa.com"));
        assert!(!csp.contains("script-src"));
    }
}
