#![allow(dead_code)]
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mailroom_sandbox::{Sandbox, SandboxOptions};
use sha2::Digest;

pub async fn start() -> Sandbox {
    let clock = mailroom_clock::ManualClock::frozen(
        chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .unwrap()
            .to_utc(),
    );
    Sandbox::start(SandboxOptions {
        clock: Some(clock),
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

pub fn pkce() -> (String, String) {
    let verifier = "verifier-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG".to_string();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Drives GET + POST /authorize like a person; returns the Location of the final redirect.
pub async fn sign_in(
    sb: &Sandbox,
    client_id: &str,
    redirect: &str,
    scope: &str,
    challenge: Option<&str>,
    user: &str,
    action: &str,
) -> reqwest::Response {
    let tenant = &sb.tenant().tenant_id;
    let mut params = vec![
        ("client_id", client_id.to_string()),
        ("response_type", "code".into()),
        ("redirect_uri", redirect.into()),
        ("scope", scope.into()),
        ("state", "st-42".into()),
        ("nonce", "n-1".into()),
    ];
    if let Some(c) = challenge {
        params.push(("code_challenge", c.into()));
        params.push(("code_challenge_method", "S256".into()));
    }
    let url = format!("{}/{tenant}/oauth2/v2.0/authorize", sb.authority_url());
    let page = http().get(&url).query(&params).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"accept\"") && html.contains("id=\"user-megan\""));
    params.push(("username", user.into()));
    params.push(("action", action.into()));
    http().post(&url).form(&params).send().await.unwrap()
}

pub fn query_of(resp: &reqwest::Response) -> std::collections::HashMap<String, String> {
    let loc = resp.headers()["location"].to_str().unwrap();
    url::Url::parse(loc)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

pub async fn token(sb: &Sandbox, tenant: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let r = http()
        .post(format!("{}/{tenant}/oauth2/v2.0/token", sb.authority_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

pub fn code_of(body: &serde_json::Value) -> u64 {
    body["error_codes"][0].as_u64().unwrap_or(0)
}

/// Runs one of Microsoft's clients as a fidelity script (`tests/<script>` with `python`, its
/// configuration in `cfg`) and fails unless it prints `ALL OK`; answers what it printed. The
/// CA-bundle variables are removed: requests and httpx would let them override the sandbox CA.
pub async fn run_fidelity_script(
    python: std::path::PathBuf,
    script: &str,
    cfg: std::path::PathBuf,
) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .env_remove("SSL_CERT_FILE")
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE")
            .arg(&script)
            .arg(cfg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "the fidelity script failed:\n{stdout}\n{stderr}"
    );
    stdout
}
