//! Connecting mailboxes through the real window against the in-process sandbox:
//! - delegated: fill the form (Custom cloud = sandbox URLs, the seeded public client), click
//!   Authorize, read the URL the UI shows (the app runs with `MAILROOM_NO_BROWSER=1`), complete
//!   the sandbox sign-in page as the test's browser, see the connected account, Test
//!   connection, Disconnect;
//! - app-only with a client secret, with a PFX built in the test (rcgen + p12-keystore) and
//!   one from `openssl pkcs12 -export` (a wrong PFX password first shows its specific error);
//! - afterwards, no token, secret or private key appears in any file of the data directory
//!   (SQLite database, WAL, logs).

mod support;

use std::path::Path;
use std::process::Command;

use mailroom_sandbox::{Sandbox, SandboxOptions};
use reqwest::Url;
use support::Session;

const SUPPORT: &str = "support@contoso.test";

async fn fill(s: &Session, css: &str, value: &str) {
    let el = s.find(css).await;
    el.clear().await.unwrap();
    el.send_keys(value).await.unwrap();
}

/// The test-driven browser (the sandbox's own stand-in): completes the sign-in page and
/// follows the redirect to the app's loopback listener; returns its page.
async fn browser_sign_in(authorize: &Url, upn: &str) -> String {
    mailroom_sandbox::sign_in::complete_sign_in(authorize.as_str(), upn)
        .await
        .unwrap_or_else(|e| panic!("sign-in page: {e}"))
        .body
}

async fn choose_custom_cloud(s: &Session, sb: &Sandbox) {
    s.find("#mb-cloud option[value='custom']")
        .await
        .click()
        .await
        .unwrap();
    fill(s, "#mb-authority", &sb.authority_url()).await;
    fill(s, "#mb-graph", &sb.graph_url()).await;
    fill(s, "#mb-tenant", &sb.tenant().tenant_id).await;
}

/// The keyring service the app under test uses (set by the harness per session).
fn app_keyring_service(data_dir: &Path) -> Option<String> {
    let want = format!("MAILROOM_DATA_DIR={}", data_dir.display());
    for entry in std::fs::read_dir("/proc").ok()? {
        let Ok(environ) = std::fs::read(entry.ok()?.path().join("environ")) else {
            continue;
        };
        let vars: Vec<String> = environ
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if vars.contains(&want) {
            if let Some(v) = vars
                .iter()
                .find_map(|v| v.strip_prefix("MAILROOM_KEYRING_SERVICE="))
            {
                return Some(v.to_string());
            }
        }
    }
    None
}

/// The app's keyring, scoped as the app scopes it: by the store id in its database.
async fn app_secrets(data_dir: &Path) -> mailroom_secrets::Secrets {
    let service = app_keyring_service(data_dir).expect("app keyring service");
    let store = mailroom_store::Store::open(data_dir.join(mailroom_store::DATABASE_FILE))
        .await
        .expect("the app's database opens");
    let id = store.store_id().await.expect("store id");
    store.close().await;
    assert!(!id.created, "the app created its store id");
    mailroom_secrets::Secrets::with_service(service).scoped(id.id)
}

async fn mailbox_id(s: &Session, name: &str) -> String {
    let href = s
        .find(&format!("[data-mailbox='{name}']"))
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let after = href.split("mailboxes/").nth(1).expect("mailbox link");
    after.split('/').next().unwrap().to_string()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Clicks *Choose…* and picks `path` in the native file picker the backend opens, as a user
/// would with the keyboard (GTK's file chooser: Ctrl+L, the path, Enter), through xdotool on
/// the session's display. The form then shows the chosen path.
async fn choose_in_native_picker(s: &Session, path: &Path) {
    s.find("#mb-pfx-choose").await.click().await.unwrap();
    s.answer_native_dialog("Choose the certificate", path, false)
        .await;
    let typed_back = path.display().to_string();
    // The form shows the chosen path (read as textContent: WebKitWebDriver's element text
    // comes back empty for it).
    let start = std::time::Instant::now();
    loop {
        let shown = s
            .client
            .execute(
                "return document.getElementById('mb-pfx-path').textContent;",
                vec![],
            )
            .await
            .unwrap();
        if shown.as_str() == Some(typed_back.as_str()) {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the form never showed the chosen file; it shows {shown}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A PFX built in the test: rcgen certificate, p12-keystore writer. (pfx path, cert PEM, key PEM)
fn rcgen_pfx(dir: &Path, password: &str) -> (std::path::PathBuf, String, String) {
    openssl(dir, &["genrsa", "-out", "rc.key", "2048"]);
    openssl(
        dir,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "rc.key", "-out", "rc.p8",
        ],
    );
    let key_pem = std::fs::read_to_string(dir.join("rc.p8")).unwrap();
    let key_pair =
        rcgen::KeyPair::from_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["mailroom.test".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Mailroom e2e rcgen");
    let cert = params.self_signed(&key_pair).unwrap();
    let chain = p12_keystore::PrivateKeyChain::new(
        vec![1u8, 2, 3, 4],
        p12_keystore::PrivateKey::from_der(&key_pair.serialize_der()).unwrap(),
        [p12_keystore::Certificate::from_der(cert.der()).unwrap()],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "mailroom",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    let path = dir.join("rcgen.pfx");
    std::fs::write(&path, store.writer(password).write().unwrap()).unwrap();
    (path, cert.pem(), key_pem)
}

/// A PFX from `openssl pkcs12 -export`. (pfx path, cert PEM, key PEM)
fn openssl_pfx(dir: &Path, password: &str) -> (std::path::PathBuf, String, String) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "os.key",
            "-out",
            "os.crt",
            "-subj",
            "/CN=Mailroom e2e openssl",
            "-days",
            "90",
        ],
    );
    let pass = format!("pass:{password}");
    openssl(
        dir,
        &[
            "pkcs12", "-export", "-in", "os.crt", "-inkey", "os.key", "-out", "os.pfx", "-passout",
            &pass,
        ],
    );
    (
        dir.join("os.pfx"),
        std::fs::read_to_string(dir.join("os.crt")).unwrap(),
        std::fs::read_to_string(dir.join("os.key")).unwrap(),
    )
}

/// Distinctive base64 lines of a PEM private key.
fn key_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .take(4)
        .map(str::to_string)
        .collect()
}

fn assert_not_on_disk(dir: &Path, needles: &[String]) {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("mailroom.log")),
        "the log file is checked too: {files:?}"
    );
    for file in files {
        // A file removed since the listing (SQLite's -journal/-shm) holds nothing any more.
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", file.display()),
        };
        for needle in needles.iter().filter(|n| n.len() >= 8) {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!found, "a credential was found in {}", file.display());
        }
        // No JWT (access/id token) either.
        let jwt = bytes.windows(4).any(|w| w == b"eyJ0");
        assert!(!jwt, "a JWT was found in {}", file.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_delegated_and_app_only_through_the_window() {
    let sb = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let daemon_id = sb.tenant().daemon_app.client_id.clone();
    let daemon_secret = sb.tenant().daemon_app.client_secret.clone().unwrap();
    let session = Session::start().await;
    let data_dir = session.data_dir.path().to_path_buf();
    let mut needles: Vec<String> = vec![daemon_secret.clone()];
    let needles_ref = &mut needles;
    let sb_ref = &sb;
    let data_dir = data_dir.clone();
    let work_ref = work.path();
    session
        .run("connect", async move |s| {
            let sb = sb_ref;
            // ---- Delegated (public client) ----
            s.find("#add-mailbox").await.click().await.unwrap();
            fill(s, "#mb-name", "Support scan").await;
            choose_custom_cloud(s, sb).await;
            fill(s, "#mb-client", &sb.tenant().desktop_app.client_id).await;
            s.find("#mb-save").await.click().await.unwrap();
            s.wait_text("#connection-status", "Not connected").await;
            let warning = s.text("#authorize-warning").await;
            assert!(
                warning.contains("inbox of the account that signs in"),
                "{warning}"
            );
            s.find("#authorize").await.click().await.unwrap();
            let url = s
                .find("#authorize-url")
                .await
                .prop("value")
                .await
                .unwrap()
                .expect("the authorize URL is shown");
            assert!(s.text("#authorize-status").await.contains("Open this link"));
            let landing = browser_sign_in(&Url::parse(&url).unwrap(), SUPPORT).await;
            assert!(!landing.is_empty());
            s.wait_text("#connection-status", &format!("Connected as {SUPPORT}"))
                .await;
            assert!(s.text("#locked-note").await.contains("Disconnect first"));
            let id = mailbox_id(s, "Support scan").await;
            // The refresh token is in the app's keyring: remember it to look for it on disk.
            let secrets = app_secrets(&data_dir).await;
            let rt = secrets
                .get(&mailroom_secrets::SecretKey::new(
                    &id,
                    mailroom_secrets::SecretKind::RefreshToken,
                ))
                .await
                .unwrap()
                .expect("refresh token in the keyring");
            needles_ref.push(rt.expose().to_string());

            s.find("#test-connection").await.click().await.unwrap();
            s.wait_text("#test-result", "Connection works").await;
            assert!(s
                .text("#permission-probes")
                .await
                .contains("Mail.ReadWrite"));
            assert!(!s.text("#inbox-messages").await.is_empty());
            // Test connection refreshed, so the rotated token is in the keyring now.
            let rotated = secrets
                .get(&mailroom_secrets::SecretKey::new(
                    &id,
                    mailroom_secrets::SecretKind::RefreshToken,
                ))
                .await
                .unwrap()
                .expect("rotated refresh token");
            needles_ref.push(rotated.expose().to_string());

            s.find("#disconnect").await.click().await.unwrap();
            s.wait_text("#connection-status", "Not connected").await;
            assert!(secrets
                .get(&mailroom_secrets::SecretKey::new(
                    &id,
                    mailroom_secrets::SecretKind::RefreshToken,
                ))
                .await
                .unwrap()
                .is_none());

            // ---- Delegated as a confidential client (Web platform, client secret) ----
            let web_secret = sb.tenant().web_app.client_secret.clone().unwrap();
            needles_ref.push(web_secret.clone());
            s.find("#add-mailbox").await.click().await.unwrap();
            fill(s, "#mb-name", "Web scan").await;
            choose_custom_cloud(s, sb).await;
            fill(s, "#mb-client", &sb.tenant().web_app.client_id).await;
            s.find("#credential_kind-secret")
                .await
                .click()
                .await
                .unwrap();
            fill(s, "#mb-secret", &web_secret).await;
            s.find("#mb-save").await.click().await.unwrap();
            s.wait_text("#connection-status", "Not connected").await;
            s.find("#authorize").await.click().await.unwrap();
            let url = s
                .find("#authorize-url")
                .await
                .prop("value")
                .await
                .unwrap()
                .expect("the authorize URL is shown");
            browser_sign_in(&Url::parse(&url).unwrap(), "megan@contoso.test").await;
            s.wait_text("#connection-status", "Connected as megan@contoso.test")
                .await;
            s.find("#disconnect").await.click().await.unwrap();
            s.wait_text("#connection-status", "Not connected").await;

            // ---- A wrong client secret is diagnosed in the window ----
            s.find("#add-mailbox").await.click().await.unwrap();
            fill(s, "#mb-name", "Wrong secret").await;
            s.find("#method-webhook").await.click().await.unwrap();
            choose_custom_cloud(s, sb).await;
            fill(s, "#mb-client", &daemon_id).await;
            fill(s, "#mb-secret", "definitely-not-the-secret").await;
            fill(s, "#mb-address", SUPPORT).await;
            s.find("#mb-save").await.click().await.unwrap();
            s.find("#connect").await.click().await.unwrap();
            s.wait_text("#diagnosis", "AADSTS7000215").await;
            let code = s.find("#diagnosis").await.attr("data-code").await.unwrap();
            assert_eq!(code.as_deref(), Some("wrong_secret"));
            assert!(s.text("#diagnosis-fix").await.contains("VALUE"));
            assert!(s.text("#connection-status").await.contains("Not connected"));

            // ---- App-only with a client secret ----
            s.find("#add-mailbox").await.click().await.unwrap();
            fill(s, "#mb-name", "Support webhooks").await;
            s.find("#method-webhook").await.click().await.unwrap();
            choose_custom_cloud(s, sb).await;
            fill(s, "#mb-client", &daemon_id).await;
            fill(s, "#mb-secret", &daemon_secret).await;
            fill(s, "#mb-address", SUPPORT).await;
            s.find("#mb-save").await.click().await.unwrap();
            s.wait_text("#connection-status", "Not connected").await;
            s.find("#connect").await.click().await.unwrap();
            s.wait_text("#connection-status", &format!("Connected as {SUPPORT}"))
                .await;
            s.find("#disconnect").await.click().await.unwrap();
            s.wait_text("#connection-status", "Not connected").await;

            // ---- App-only with certificates: rcgen-built and openssl-exported PFX ----
            for (n, (pfx, cert_pem, key_pem), password) in [
                (1, rcgen_pfx(work_ref, "rcgen-pfx-pass"), "rcgen-pfx-pass"),
                (
                    2,
                    openssl_pfx(work_ref, "openssl-pfx-pass"),
                    "openssl-pfx-pass",
                ),
            ] {
                needles_ref.extend(key_lines(&key_pem));
                needles_ref.push(password.to_string());
                let thumb = sb
                    .identity()
                    .add_app_certificate(&daemon_id, &cert_pem)
                    .unwrap();
                let name = format!("Cert {n}");
                s.find("#add-mailbox").await.click().await.unwrap();
                fill(s, "#mb-name", &name).await;
                s.find("#method-webhook").await.click().await.unwrap();
                choose_custom_cloud(s, sb).await;
                fill(s, "#mb-client", &daemon_id).await;
                s.find("#credential_kind-certificate")
                    .await
                    .click()
                    .await
                    .unwrap();
                choose_in_native_picker(s, &pfx).await;
                fill(s, "#mb-pfx-password", "not the password").await;
                fill(s, "#mb-address", SUPPORT).await;
                s.find("#mb-save").await.click().await.unwrap();
                s.wait_text("#mailbox-form-error", "PFX password is wrong")
                    .await;
                let code = s
                    .find("#mailbox-form-error")
                    .await
                    .attr("data-code")
                    .await
                    .unwrap();
                assert_eq!(code.as_deref(), Some("pfx_password_wrong"));
                fill(s, "#mb-pfx-password", password).await;
                s.find("#mb-save").await.click().await.unwrap();
                s.wait_text("#connection-status", "Not connected").await;
                let details = s.text("#connection-details").await;
                assert!(
                    details
                        .to_ascii_uppercase()
                        .contains(&thumb.to_ascii_uppercase()),
                    "{details}"
                );
                s.find("#connect").await.click().await.unwrap();
                s.wait_text("#connection-status", &format!("Connected as {SUPPORT}"))
                    .await;
                s.find("#test-connection").await.click().await.unwrap();
                s.wait_text("#test-result", "Connection works").await;
                s.find("#disconnect").await.click().await.unwrap();
                s.wait_text("#connection-status", "Not connected").await;
            }

            // ---- Nothing secret on disk: SQLite (with its WAL) and the log files ----
            assert_not_on_disk(&data_dir, needles_ref);
        })
        .await;
}
