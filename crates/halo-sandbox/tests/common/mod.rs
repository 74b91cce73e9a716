//! Shared helpers: a sandbox on 127.0.0.1 with a frozen clock, and a small HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use mailroom_clock::{ManualClock, SharedClock};
use mailroom_halo_sandbox::{spawn_local, HaloSandbox, HaloSeed};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct Harness {
    pub sandbox: HaloSandbox,
    pub clock: Arc<ManualClock>,
    pub base: String,
    pub http: reqwest::Client,
    pub addr: SocketAddr,
}

pub fn start_instant() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:30:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

impl Harness {
    pub async fn start() -> Self {
        Self::with_seed(HaloSeed::default()).await
    }

    pub async fn with_seed(seed: HaloSeed) -> Self {
        let clock = ManualClock::frozen(start_instant());
        let shared: SharedClock = clock.clone();
        let sandbox = HaloSandbox::new(seed, shared);
        let (addr, _handle) = spawn_local(sandbox.clone()).await.unwrap();
        Harness {
            sandbox,
            clock,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            addr,
        }
    }

    /// Requests a token; returns the HTTP status and JSON body.
    pub async fn token_raw(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/auth/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn token_with_scope(&self, scope: &str) -> String {
        let creds = self.sandbox.credentials();
        let (status, body) = self
            .token_raw(&[
                ("grant_type", "client_credentials"),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("scope", scope),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn token(&self) -> String {
        self.token_with_scope("all").await
    }

    /// Sends an API request; returns status and body (JSON when parseable, else a string).
    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(
                method,
                format!("{}/api/{}", self.base, path.trim_start_matches('/')),
            )
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.call(token, Method::GET, path, None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(token, Method::POST, path, Some(body)).await
    }
}
