//! Fidelity test: Microsoft's Graph SDK for Python (`msgraph-sdk`, with an app-only token from
//! MSAL) against the sandbox over HTTPS, through the SDK's typed request builders: paging,
//! two delta rounds, attachments, move and sendMail (`tests/msgraph/fidelity.py`).
//!
//! The SDK lives in its own virtual environment under the target directory
//! (`target/msgraph-venv`), created and filled from PyPI on first use with pinned versions.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use mailroom_sandbox::{Sandbox, SandboxOptions};

/// Pinned: the SDK generation the test was written against, and the MSAL of the MSAL test.
const PACKAGES: &[&str] = &["msgraph-sdk==1.65.0", "msal==1.39.0"];

/// The venv's python, with the SDK installed (created on first use).
fn sdk_python() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let venv = target.join("msgraph-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(format!("installed-{}", PACKAGES.join("+")));
    if ready.exists() {
        return python;
    }
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 is required for the msgraph-sdk fidelity test");
    assert!(
        created.success(),
        "could not create a venv with `python3 -m venv` (Debian: apt-get install python3-venv)"
    );
    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PACKAGES)
        .status()
        .expect("run pip");
    assert!(
        installed.success(),
        "could not install {PACKAGES:?} from PyPI into {}",
        venv.display()
    );
    std::fs::write(&ready, "").unwrap();
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsofts_graph_sdk_pages_deltas_moves_sends_and_reads_attachments() {
    let python = tokio::task::spawn_blocking(sdk_python).await.unwrap();
    let sb = Sandbox::start(SandboxOptions {
        tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sb.ca_certificate_pem().unwrap()).unwrap();
    let graph_url = url::Url::parse(&sb.graph_url()).unwrap();
    let tenant = sb.tenant();
    let cfg = serde_json::json!({
        "authority": format!("{}/{}", sb.authority_url(), tenant.tenant_id),
        "ca_file": ca,
        "daemon_id": tenant.daemon_app.client_id,
        "daemon_secret": tenant.daemon_app.client_secret,
        "graph_root": format!("{}/v1.0", sb.graph_url()),
        "graph_host": graph_url.host_str().unwrap(),
        "control_url": sb.control_url(),
        "mailbox": format!("support@{}", tenant.domain),
    });
    let cfg_path = dir.path().join("cfg.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let stdout = common::run_fidelity_script(python, "msgraph/fidelity.py", cfg_path).await;
    eprintln!("{stdout}");
    sb.shutdown().await;
}
