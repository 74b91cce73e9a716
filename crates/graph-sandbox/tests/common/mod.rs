//! Shared test harness: the default seed, a table of real bearer tokens, a frozen clock and an
//! HTTP client talking to the emulator over 127.0.0.1.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use mailroom_clock::{Clock, ManualClock};
use mailroom_graph_sandbox::seed::{self, DAEMON_APP_ID, DESKTOP_APP_ID};
use mailroom_graph_sandbox::{
    spawn_local, AccessGrant, GraphSandbox, GraphSeed, StaticTokens, TokenRejection,
};
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const SUPPORT: &str = "support@contoso.test";
pub const HELPDESK: &str = "helpdesk@contoso.test";

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub struct Env {
    pub sb: GraphSandbox,
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub tokens: Arc<StaticTokens>,
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
    pub fn header(&self, n: &str) -> Option<String> {
        self.headers.get(n).map(|v| v.to_str().unwrap().to_owned())
    }
}

fn delegated(user: &str, upn: &str, scopes: &[&str], exp: DateTime<Utc>) -> AccessGrant {
    AccessGrant {
        tenant_id: seed::TENANT_ID.into(),
        client_id: DESKTOP_APP_ID.into(),
        user_id: Some(user.into()),
        user_principal_name: Some(upn.into()),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        roles: vec![],
        expires_at: exp,
    }
}

fn app(client: &str, roles: &[&str], exp: DateTime<Utc>) -> AccessGrant {
    AccessGrant {
        tenant_id: seed::TENANT_ID.into(),
        client_id: client.into(),
        user_id: None,
        user_principal_name: None,
        scopes: vec![],
        roles: roles.iter().map(|s| s.to_string()).collect(),
        expires_at: exp,
    }
}

const DESKTOP_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "offline_access",
    "User.Read",
    "Mail.ReadWrite",
    "Mail.Send",
    "Mail.ReadWrite.Shared",
    "Mail.Send.Shared",
    "Contacts.Read",
];

/// (Re)issues the test tokens, valid for an hour from `now`.
pub fn install_tokens(tokens: &StaticTokens, now: DateTime<Utc>) {
    let exp = now + Duration::hours(1);
    tokens.insert(
        "support",
        delegated(seed::SUPPORT_USER_ID, SUPPORT, DESKTOP_SCOPES, exp),
    );
    tokens.insert(
        "megan",
        delegated(
            seed::MEGAN_USER_ID,
            "megan@contoso.test",
            DESKTOP_SCOPES,
            exp,
        ),
    );
    tokens.insert(
        "alex",
        delegated(seed::ALEX_USER_ID, "alex@contoso.test", DESKTOP_SCOPES, exp),
    );
    tokens.insert(
        "support-readonly",
        delegated(
            seed::SUPPORT_USER_ID,
            SUPPORT,
            &["User.Read", "Mail.Read"],
            exp,
        ),
    );
    tokens.insert(
        "support-expired",
        delegated(
            seed::SUPPORT_USER_ID,
            SUPPORT,
            DESKTOP_SCOPES,
            now - Duration::minutes(1),
        ),
    );
    tokens.insert(
        "daemon",
        app(
            DAEMON_APP_ID,
            &["Mail.ReadWrite", "Mail.Send", "Contacts.Read"],
            exp,
        ),
    );
    tokens.insert(
        "directory",
        app(DAEMON_APP_ID, &["Mail.ReadWrite", "User.Read.All"], exp),
    );
    tokens.insert(
        "noroles",
        app("c0ffee00-0000-4000-8000-0000000000ff", &[], exp),
    );
    tokens.reject("revoked", TokenRejection::Revoked);
}

pub async fn env() -> Env {
    env_with(GraphSeed::default()).await
}

pub async fn env_with(seed: GraphSeed) -> Env {
    let clock = ManualClock::frozen(start_time());
    let tokens = Arc::new(StaticTokens::new());
    install_tokens(&tokens, start_time());
    let sb = GraphSandbox::new(seed, tokens.clone(), clock.clone());
    // The tests' receivers listen on http://127.0.0.1 (Graph itself requires HTTPS).
    sb.set_behaviour(mailroom_graph_sandbox::GraphBehaviour {
        loopback_http_notification_urls: true,
        ..Default::default()
    });
    let (addr, _h) = spawn_local(sb.clone()).await.unwrap();
    Env {
        sb,
        base: format!("http://{addr}/v1.0"),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        clock,
        tokens,
    }
}

impl Env {
    /// Moves the clock and reissues tokens so they are valid at the new time.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        install_tokens(&self.tokens, self.clock.now());
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, token: &str, path: &str) -> Resp {
        self.send(self.http.get(self.url(path)).bearer_auth(token))
            .await
    }

    pub async fn get_with(&self, token: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut rb = self.http.get(self.url(path)).bearer_auth(token);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.send(rb).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Resp {
        self.send(
            self.http
                .post(self.url(path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    pub async fn patch(&self, token: &str, path: &str, body: Value) -> Resp {
        self.send(
            self.http
                .patch(self.url(path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    pub async fn delete(&self, token: &str, path: &str) -> Resp {
        self.send(self.http.delete(self.url(path)).bearer_auth(token))
            .await
    }

    /// Follows @odata.nextLink to the end; returns all items.
    pub async fn collect(&self, token: &str, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = Some(self.url(path));
        while let Some(url) = next {
            let r = self.get(token, &url).await;
            assert_eq!(r.status, 200, "{}", r.text);
            out.extend(r.body["value"].as_array().unwrap().iter().cloned());
            next = r.body["@odata.nextLink"].as_str().map(str::to_owned);
        }
        out
    }
}
