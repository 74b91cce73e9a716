//! Fidelity test: Microsoft's MSAL for Python against the sandbox identity platform over HTTPS.
mod common;

use std::process::Command;

use mailroom_sandbox::{identity::DAEMON_APP_ID, Sandbox, SandboxOptions};

fn python() -> String {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 is required for the MSAL fidelity test; install Python 3 and re-run"
    );
    let has = |m: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {m}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !has("msal") || !has("requests") {
        let st = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "msal", "requests"])
            .status()
            .expect("run pip");
        assert!(
            st.success(),
            "could not install msal with pip; run `python3 -m pip install msal requests`"
        );
    }
    "python3".into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_python_acquires_tokens() {
    let py = python();
    let sb = Sandbox::start(SandboxOptions {
        tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sb.ca_certificate_pem().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mailroom-daemon".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let thumb = sb
        .identity()
        .add_app_certificate(DAEMON_APP_ID, &cert.pem())
        .unwrap();
    let cfg = serde_json::json!({
        "authority": format!("{}/{}", sb.authority_url(), sb.tenant().tenant_id),
        "ca_file": ca, "daemon_id": DAEMON_APP_ID,
        "daemon_secret": sb.tenant().daemon_app.client_secret,
        "desktop_id": sb.tenant().desktop_app.client_id,
        "cert_key_pem": key.serialize_pem(), "cert_thumbprint": thumb,
    });
    let cfg_path = dir.path().join("cfg.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    common::run_fidelity_script(py.into(), "msal/fidelity.py", cfg_path).await;
    sb.shutdown().await;
}
