//! Connecting mailboxes through the core against the in-process sandbox, with the real keyring
//! (run under `dbus-run-session` with an unlocked gnome-keyring, see the README): delegated
//! sign-in as public and confidential client, app-only with a secret and with certificates
//! (rcgen + p12-keystore, `openssl pkcs12 -export`), Test connection, Disconnect, and each
//! diagnosed failure with its specific code and message. The last step of each flow checks that
//! no token, secret or private key reached the SQLite files or the log files.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mailroom_engine::connect::{credential_warning, PfxImport};
use mailroom_engine::mailboxes::MailboxSetup;
use mailroom_engine::{Core, CoreError, ErrorCode};
use mailroom_sandbox::{Sandbox, SandboxOptions};
use mailroom_secrets::{SecretKey, SecretKind, SecretValue, Secrets};
use url::Url;

const SUPPORT: &str = "support@contoso.test";

/// This test binary's keyring service, passed explicitly (no process-wide environment variable).
fn secrets() -> Secrets {
    Secrets::with_service(format!("mailroom-connect-test-{}", std::process::id()))
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions {
        // The webhook test's receiver listens on 127.0.0.1 (Graph itself requires HTTPS).
        loopback_webhooks: true,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

async fn core() -> (tempfile::TempDir, Core) {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::open_with_secrets(dir.path(), secrets())
        .await
        .unwrap();
    (dir, core)
}

fn setup(
    sb: &Sandbox,
    name: &str,
    method: &str,
    client_id: &str,
    secret: Option<&str>,
) -> MailboxSetup {
    let kind = if secret.is_some() { "secret" } else { "public" };
    serde_json::from_value(serde_json::json!({
        "name": name,
        "method": method,
        "cloud": "custom",
        "authority_url": sb.authority_url(),
        "graph_url": sb.graph_url(),
        "tenant_id": sb.tenant().tenant_id,
        "client_id": client_id,
        "credential_kind": kind,
        "client_secret": secret,
        "mailbox_address": if method == "webhook" { Some(SUPPORT) } else { None },
    }))
    .unwrap()
}

fn cert_setup(sb: &Sandbox, name: &str) -> MailboxSetup {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "method": "webhook",
        "cloud": "custom",
        "authority_url": sb.authority_url(),
        "graph_url": sb.graph_url(),
        "tenant_id": sb.tenant().tenant_id,
        "client_id": sb.tenant().daemon_app.client_id,
        "credential_kind": "certificate",
        "mailbox_address": SUPPORT,
    }))
    .unwrap()
}

/// The test's browser (the sandbox's own stand-in): returns the loopback listener's page, or
/// `Err(page text)` when the sign-in page showed an error instead of a form.
async fn browser_sign_in(authorize: &Url, upn: &str) -> Result<String, String> {
    let landing = mailroom_sandbox::sign_in::complete_sign_in(authorize.as_str(), upn)
        .await
        .map_err(|e| e.to_string())?;
    let back = Url::parse(&landing.redirect).unwrap();
    assert_eq!(
        back.host_str(),
        Some("localhost"),
        "redirect URI is http://localhost:<port>"
    );
    Ok(landing.body)
}

async fn keyring(core: &Core, owner: &str, kind: SecretKind) -> Option<SecretValue> {
    core.secrets()
        .get(&SecretKey::new(owner, kind))
        .await
        .unwrap()
}

fn code_and_diagnosis(err: &CoreError) -> (ErrorCode, String, String) {
    let d = err
        .diagnosis()
        .unwrap_or_else(|| panic!("diagnosis expected: {err:?}"));
    (err.code(), d.code.clone(), err.to_string())
}

/// No file of the data dir (SQLite, WAL, logs) contains any of `needles`.
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
    assert!(!files.is_empty());
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
    }
}

#[tokio::test]
async fn public_client_authorize_test_rotate_and_disconnect() {
    let sb = sandbox().await;
    let (dir, core) = core().await;
    let mailbox = core
        .add_mailbox(setup(
            &sb,
            "Support scan",
            "scan",
            &sb.tenant().desktop_app.client_id,
            None,
        ))
        .await
        .unwrap();
    let not_yet = core.graph_client_for(&mailbox).await.unwrap_err();
    assert_eq!(not_yet.code(), ErrorCode::NotConnected, "{not_yet}");

    let (url, auth) = core.start_authorization(&mailbox.id).await.unwrap();
    assert!(auth.redirect_uri().starts_with("http://localhost:"));
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["scope"].contains("offline_access"));
    let landing = browser_sign_in(&url, SUPPORT).await.expect("sign-in page");
    assert!(!landing.is_empty());
    let connection = core
        .finish_authorization(auth, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(connection.account, SUPPORT);
    assert!(connection.missing.is_empty(), "{:?}", connection.missing);
    let stored = core.store().mailbox(&mailbox.id).await.unwrap();
    assert_eq!(stored.connected_account.as_deref(), Some(SUPPORT));
    let first_rt = keyring(&core, &mailbox.id, SecretKind::RefreshToken)
        .await
        .expect("refresh token in keyring");

    // Test connection refreshes (rotating the refresh token, persisted) and lists the inbox.
    let test = core.test_connection(&mailbox.id).await.unwrap();
    assert!(test.ok, "{test:?}");
    assert_eq!(test.mailbox, "me");
    assert!(!test.messages.is_empty());
    assert!(test.granted.iter().any(|g| g == "Mail.ReadWrite"));
    assert!(test
        .probes
        .iter()
        .any(|p| p.permission == "User.Read" && p.outcome == "ok"));
    let second_rt = keyring(&core, &mailbox.id, SecretKind::RefreshToken)
        .await
        .unwrap();
    assert_ne!(
        first_rt, second_rt,
        "the rotated refresh token was persisted"
    );

    // The pipeline's client works from the stored token.
    let graph = core.graph_client_for(&stored).await.unwrap();
    assert_eq!(
        graph.me().await.unwrap().user_principal_name.as_deref(),
        Some(SUPPORT)
    );
    let current_rt = keyring(&core, &mailbox.id, SecretKind::RefreshToken)
        .await
        .unwrap();

    let after = core.disconnect_mailbox(&mailbox.id).await.unwrap();
    assert_eq!(after.connected_account, None);
    assert_eq!(
        keyring(&core, &mailbox.id, SecretKind::RefreshToken).await,
        None
    );
    assert_eq!(
        core.test_connection(&mailbox.id).await.unwrap_err().code(),
        ErrorCode::NotConnected
    );

    core.store().close().await;
    assert_not_on_disk(
        dir.path(),
        &[
            first_rt.expose().to_string(),
            second_rt.expose().to_string(),
            current_rt.expose().to_string(),
        ],
    );
    core.remove_mailbox(&mailbox.id).await.ok();
}

#[tokio::test]
async fn confidential_client_with_secret_signs_in_and_mismatches_are_diagnosed() {
    let sb = sandbox().await;
    let (dir, core) = core().await;
    let web_id = sb.tenant().web_app.client_id.clone();
    let web_secret = sb.tenant().web_app.client_secret.clone().unwrap();
    let desktop_id = sb.tenant().desktop_app.client_id.clone();

    let web = core
        .add_mailbox(setup(&sb, "Web scan", "scan", &web_id, Some(&web_secret)))
        .await
        .unwrap();
    let (url, auth) = core.start_authorization(&web.id).await.unwrap();
    browser_sign_in(&url, "megan@contoso.test").await.unwrap();
    let connection = core
        .finish_authorization(auth, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(connection.account, "megan@contoso.test");

    // Public client (Mobile and desktop) configured with a secret → AADSTS700025.
    let public_with_secret = core
        .add_mailbox(setup(
            &sb,
            "Public+secret",
            "scan",
            &desktop_id,
            Some("some-secret-value"),
        ))
        .await
        .unwrap();
    let (url, auth) = core
        .start_authorization(&public_with_secret.id)
        .await
        .unwrap();
    browser_sign_in(&url, SUPPORT).await.unwrap();
    let err = core
        .finish_authorization(auth, Duration::from_secs(60))
        .await
        .unwrap_err();
    let (code, diag, message) = code_and_diagnosis(&err);
    assert_eq!(code, ErrorCode::AuthFailed);
    assert_eq!(diag, "public_client_sent_secret");
    assert!(message.contains("AADSTS700025"), "{message}");
    assert!(message.contains("Remove the client secret"), "{message}");

    // Confidential (Web) client without a secret → AADSTS7000218.
    let web_without = core
        .add_mailbox(setup(&sb, "Web no secret", "scan", &web_id, None))
        .await
        .unwrap();
    let (url, auth) = core.start_authorization(&web_without.id).await.unwrap();
    browser_sign_in(&url, SUPPORT).await.unwrap();
    let err = core
        .finish_authorization(auth, Duration::from_secs(60))
        .await
        .unwrap_err();
    let (code, diag, message) = code_and_diagnosis(&err);
    assert_eq!(code, ErrorCode::AuthFailed);
    assert_eq!(diag, "confidential_client_no_secret");
    assert!(message.contains("AADSTS7000218"), "{message}");

    let unconnected = core.store().mailbox(&web_without.id).await.unwrap();
    assert_eq!(unconnected.connected_account, None);
    assert_eq!(
        keyring(&core, &web_without.id, SecretKind::RefreshToken).await,
        None
    );

    core.store().close().await;
    assert_not_on_disk(
        dir.path(),
        &[web_secret.clone(), "some-secret-value".into()],
    );
    for id in [web.id, public_with_secret.id, web_without.id] {
        core.remove_mailbox(&id).await.ok();
    }
}

#[tokio::test]
async fn unregistered_redirect_uri_and_cancel() {
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    // The daemon registration has no redirect URI at all.
    let daemon_secret = sb.tenant().daemon_app.client_secret.clone().unwrap();
    let mailbox = core
        .add_mailbox(setup(
            &sb,
            "No redirect",
            "scan",
            &sb.tenant().daemon_app.client_id,
            Some(&daemon_secret),
        ))
        .await
        .unwrap();
    let (url, auth) = core.start_authorization(&mailbox.id).await.unwrap();
    let page = browser_sign_in(&url, SUPPORT).await.unwrap_err();
    let diagnosis =
        mailroom_engine::connect::diagnose_text(&page).expect("AADSTS code on the page");
    assert_eq!(diagnosis.code, "redirect_uri_not_registered");
    assert!(diagnosis.fix.contains("http://localhost"));
    // The browser never comes back; the app's wait ends with a diagnosis naming AADSTS50011.
    let err = core
        .finish_authorization(auth, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SignInTimedOut);
    assert!(err.to_string().contains("AADSTS50011"), "{err}");

    // Cancel ends a pending sign-in.
    let (_url, auth) = core.start_authorization(&mailbox.id).await.unwrap();
    auth.canceller().cancel();
    let err = core
        .finish_authorization(auth, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SignInCancelled);
    core.remove_mailbox(&mailbox.id).await.ok();
}

#[tokio::test]
async fn revoked_grant_and_withdrawn_consent_need_reauthorization() {
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    let desktop_id = sb.tenant().desktop_app.client_id.clone();
    let mailbox = core
        .add_mailbox(setup(&sb, "Revoked", "scan", &desktop_id, None))
        .await
        .unwrap();
    let (url, auth) = core.start_authorization(&mailbox.id).await.unwrap();
    browser_sign_in(&url, SUPPORT).await.unwrap();
    core.finish_authorization(auth, Duration::from_secs(60))
        .await
        .unwrap();

    sb.identity().revoke_user_sessions(SUPPORT).unwrap();
    let err = core.test_connection(&mailbox.id).await.unwrap_err();
    let (code, diag, message) = code_and_diagnosis(&err);
    assert_eq!(code, ErrorCode::AuthFailed);
    assert_eq!(diag, "grant_revoked");
    assert!(message.contains("Authorize"), "{message}");

    // Re-authorize, then an admin withdraws consent.
    let (url, auth) = core.start_authorization(&mailbox.id).await.unwrap();
    browser_sign_in(&url, SUPPORT).await.unwrap();
    core.finish_authorization(auth, Duration::from_secs(60))
        .await
        .unwrap();
    sb.identity().withdraw_consent(&desktop_id).unwrap();
    let err = core.test_connection(&mailbox.id).await.unwrap_err();
    let (_, diag, message) = code_and_diagnosis(&err);
    assert_eq!(diag, "consent_missing", "{message}");
    assert!(message.contains("AADSTS65001"), "{message}");
    core.remove_mailbox(&mailbox.id).await.ok();
}

#[tokio::test]
async fn app_only_secret_connect_and_secret_failures() {
    let sb = sandbox().await;
    let (dir, core) = core().await;
    let daemon_id = sb.tenant().daemon_app.client_id.clone();
    let secret = sb.tenant().daemon_app.client_secret.clone().unwrap();

    let mut good_setup = setup(&sb, "Webhooks", "webhook", &daemon_id, Some(&secret));
    good_setup.client_secret = Some(SecretValue::new(secret.clone()));
    let soon = chrono::Utc::now() + chrono::Duration::days(10);
    let mailbox = core
        .add_mailbox_with_credentials(good_setup, Some(soon), None)
        .await
        .unwrap();
    let warning = credential_warning(&mailbox, chrono::Utc::now()).expect("expiry warning");
    assert_eq!(warning.code, "secret_expiring");
    assert!(warning.message.contains("days left"));

    let connection = core.connect_app_only(&mailbox.id).await.unwrap();
    assert_eq!(connection.account, SUPPORT);
    assert!(connection.missing.is_empty(), "{:?}", connection.missing);
    let test = core.test_connection(&mailbox.id).await.unwrap();
    assert!(test.ok, "{test:?}");
    assert_eq!(test.mailbox, format!("users/{SUPPORT}"));
    assert!(!test.messages.is_empty());
    assert!(test.granted.iter().any(|r| r == "Mail.Send"));
    assert_eq!(
        test.warning.as_ref().map(|w| w.code.as_str()),
        Some("secret_expiring")
    );

    // Wrong secret → AADSTS7000215.
    let wrong = core
        .add_mailbox(setup(
            &sb,
            "Wrong secret",
            "webhook",
            &daemon_id,
            Some("not-the-secret-value"),
        ))
        .await
        .unwrap();
    let err = core.connect_app_only(&wrong.id).await.unwrap_err();
    let (code, diag, message) = code_and_diagnosis(&err);
    assert_eq!(code, ErrorCode::AuthFailed);
    assert_eq!(diag, "wrong_secret");
    assert!(message.contains("VALUE"), "{message}");

    // Expired secret → AADSTS7000222.
    sb.identity().expire_app_secret(&daemon_id, None).unwrap();
    let err = core.connect_app_only(&mailbox.id).await.unwrap_err();
    let (_, diag, message) = code_and_diagnosis(&err);
    assert_eq!(diag, "expired_secret", "{message}");
    assert!(message.contains("AADSTS7000222"), "{message}");

    // A fresh secret works; then consent is withdrawn → the token carries no roles.
    sb.identity()
        .add_app_secret(&daemon_id, "fresh-secret-value-123", 30)
        .unwrap();
    let fresh = core
        .add_mailbox(setup(
            &sb,
            "Fresh",
            "webhook",
            &daemon_id,
            Some("fresh-secret-value-123"),
        ))
        .await
        .unwrap();
    core.connect_app_only(&fresh.id).await.unwrap();
    sb.identity().withdraw_consent(&daemon_id).unwrap();
    let err = core.connect_app_only(&fresh.id).await.unwrap_err();
    let (_, diag, message) = code_and_diagnosis(&err);
    assert_eq!(diag, "consent_missing", "{message}");
    assert!(message.contains("Mail.ReadWrite"), "{message}");

    core.store().close().await;
    assert_not_on_disk(
        dir.path(),
        &[
            secret,
            "not-the-secret-value".into(),
            "fresh-secret-value-123".into(),
        ],
    );
    for id in [mailbox.id, wrong.id, fresh.id] {
        core.remove_mailbox(&id).await.ok();
    }
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

/// A PFX built in-process: rcgen certificate, p12-keystore writer. Returns (pfx, cert PEM, key PEM).
fn rcgen_pfx(dir: &Path, password: &str) -> (Vec<u8>, String, String) {
    rcgen_pfx_valid_until(dir, password, None)
}

/// Like [`rcgen_pfx`], with the certificate's validity ending at `not_after` (y, m, d).
fn rcgen_pfx_valid_until(
    dir: &Path,
    password: &str,
    not_after: Option<(i32, u8, u8)>,
) -> (Vec<u8>, String, String) {
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
        .push(rcgen::DnType::CommonName, "Mailroom rcgen daemon");
    if let Some((y, m, d)) = not_after {
        params.not_before = rcgen::date_time_ymd(y - 1, m, d);
        params.not_after = rcgen::date_time_ymd(y, m, d);
    }
    let cert = params.self_signed(&key_pair).unwrap();
    let chain = p12_keystore::PrivateKeyChain::new(
        vec![7u8, 7, 7, 7],
        p12_keystore::PrivateKey::from_der(&key_pair.serialize_der()).unwrap(),
        [p12_keystore::Certificate::from_der(cert.der()).unwrap()],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "mailroom",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    (store.writer(password).write().unwrap(), cert.pem(), key_pem)
}

/// A PFX from `openssl pkcs12 -export` (`legacy` adds `-legacy`: 3DES/RC2). Returns (pfx, cert PEM, key PEM).
fn openssl_pfx(dir: &Path, password: &str, legacy: bool) -> (Vec<u8>, String, String) {
    let tag = if legacy { "legacy" } else { "modern" };
    let key = format!("{tag}.key");
    let crt = format!("{tag}.crt");
    let pfx = format!("{tag}.pfx");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-subj",
            "/CN=Mailroom openssl daemon",
            "-days",
            "20",
        ],
    );
    let pass = format!("pass:{password}");
    let mut args = vec![
        "pkcs12", "-export", "-in", &crt, "-inkey", &key, "-out", &pfx, "-passout", &pass,
    ];
    if legacy {
        args.push("-legacy");
    }
    openssl(dir, &args);
    (
        std::fs::read(dir.join(&pfx)).unwrap(),
        std::fs::read_to_string(dir.join(&crt)).unwrap(),
        std::fs::read_to_string(dir.join(&key)).unwrap(),
    )
}

fn key_body(pem: &str) -> String {
    // A distinctive line of the base64 body of the private key.
    pem.lines().nth(3).unwrap().to_string()
}

#[tokio::test]
async fn app_only_certificates_from_rcgen_and_openssl() {
    let sb = sandbox().await;
    let (dir, core) = core().await;
    let work = tempfile::tempdir().unwrap();
    let daemon_id = sb.tenant().daemon_app.client_id.clone();
    let mut needles = Vec::new();
    for (i, (pfx, cert_pem, key_pem)) in [
        rcgen_pfx(work.path(), "rc-pass"),
        openssl_pfx(work.path(), "ossl-pass", false),
        openssl_pfx(work.path(), "ossl-pass", true),
    ]
    .into_iter()
    .enumerate()
    {
        let password = if i == 0 { "rc-pass" } else { "ossl-pass" };
        needles.push(key_body(&key_pem));
        needles.push(password.to_string());

        // Wrong password: a specific message, and nothing is stored.
        let before = core.mailboxes().await.unwrap().len();
        let err = core
            .add_mailbox_with_credentials(
                cert_setup(&sb, &format!("Cert {i}")),
                None,
                Some(PfxImport {
                    bytes: pfx.clone(),
                    password: SecretValue::new("wrong password"),
                }),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PfxPasswordWrong, "{err}");
        assert!(err.to_string().contains("PFX password is wrong"), "{err}");
        assert_eq!(core.mailboxes().await.unwrap().len(), before);

        let mailbox = core
            .add_mailbox_with_credentials(
                cert_setup(&sb, &format!("Cert {i}")),
                None,
                Some(PfxImport {
                    bytes: pfx,
                    password: SecretValue::new(password),
                }),
            )
            .await
            .unwrap();
        let thumbprint = mailbox
            .certificate_thumbprint
            .clone()
            .expect("thumbprint stored");
        assert!(mailbox.credential_expires_at.is_some());
        assert!(keyring(&core, &mailbox.id, SecretKind::Certificate)
            .await
            .unwrap()
            .expose()
            .contains("PRIVATE KEY"));

        // Not registered in Entra yet → the assertion is refused.
        let err = core.connect_app_only(&mailbox.id).await.unwrap_err();
        let (_, diag, _) = code_and_diagnosis(&err);
        assert_eq!(diag, "invalid_certificate");

        let registered = sb
            .identity()
            .add_app_certificate(&daemon_id, &cert_pem)
            .unwrap();
        assert!(registered.eq_ignore_ascii_case(&thumbprint));
        let connection = core.connect_app_only(&mailbox.id).await.unwrap();
        assert_eq!(connection.account, SUPPORT);
        let test = core.test_connection(&mailbox.id).await.unwrap();
        assert!(test.ok, "{test:?}");
        if i > 0 {
            // openssl certificates were made for 20 days: the expiry warning shows.
            assert_eq!(
                test.warning.as_ref().map(|w| w.code.as_str()),
                Some("certificate_expiring")
            );
        }
        core.remove_mailbox(&mailbox.id).await.unwrap();
        assert_eq!(
            keyring(&core, &mailbox.id, SecretKind::Certificate).await,
            None
        );
    }
    core.store().close().await;
    assert_not_on_disk(dir.path(), &needles);
}

/// Issue 9 #12: an already expired certificate is refused at import, with its expiry date, and
/// nothing is stored.
#[tokio::test]
async fn an_expired_certificate_is_refused_with_its_expiry_date() {
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    let work = tempfile::tempdir().unwrap();
    let (pfx, _, _) = rcgen_pfx_valid_until(work.path(), "pass", Some((2024, 3, 1)));
    let err = core
        .add_mailbox_with_credentials(
            cert_setup(&sb, "Expired cert"),
            None,
            Some(PfxImport {
                bytes: pfx,
                password: SecretValue::new("pass"),
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CertificateExpired, "{err}");
    let text = err.to_string();
    assert!(text.contains("expired on 2024-03-01"), "{text}");
    assert!(
        text.contains("Expired cert"),
        "the mailbox is named: {text}"
    );
    assert!(core.mailboxes().await.unwrap().is_empty(), "nothing stored");
}

#[tokio::test]
async fn shared_mailbox_through_a_delegate_and_without_access() {
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    let desktop_id = sb.tenant().desktop_app.client_id.clone();
    let mut shared = setup(&sb, "Helpdesk", "scan", &desktop_id, None);
    shared.shared_mailbox = Some("helpdesk@contoso.test".into());
    let mailbox = core.add_mailbox(shared).await.unwrap();

    // The authorize request asks for the .Shared scopes.
    let (url, auth) = core.start_authorization(&mailbox.id).await.unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(
        query["scope"].contains("Mail.ReadWrite.Shared"),
        "{}",
        query["scope"]
    );
    // Megan holds FullAccess on the shared mailbox.
    browser_sign_in(&url, "megan@contoso.test").await.unwrap();
    let connection = core
        .finish_authorization(auth, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(connection.account, "megan@contoso.test");
    let test = core.test_connection(&mailbox.id).await.unwrap();
    assert_eq!(test.mailbox, "users/helpdesk@contoso.test");
    assert!(test.ok, "{test:?}");
    assert!(!test.messages.is_empty());

    // Alex has no grant on it: the inbox probe fails with a specific diagnosis.
    core.disconnect_mailbox(&mailbox.id).await.unwrap();
    let (url, auth) = core.start_authorization(&mailbox.id).await.unwrap();
    browser_sign_in(&url, "alex@contoso.test").await.unwrap();
    core.finish_authorization(auth, Duration::from_secs(60))
        .await
        .unwrap();
    let test = core.test_connection(&mailbox.id).await.unwrap();
    assert!(!test.ok);
    let probe = test
        .probes
        .iter()
        .find(|p| p.permission == "Mail.ReadWrite.Shared")
        .unwrap();
    assert_eq!(probe.outcome, "failed");
    assert!(probe.detail.contains("Full Access"), "{}", probe.detail);
    core.remove_mailbox(&mailbox.id).await.ok();
}

#[tokio::test]
async fn disconnecting_a_webhooks_mailbox_cancels_its_subscription() {
    use mailroom_engine::webhooks::WebhookOptions;
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    let daemon_id = sb.tenant().daemon_app.client_id.clone();
    let secret = sb.tenant().daemon_app.client_secret.clone().unwrap();
    let mailbox = core
        .add_mailbox(setup(&sb, "Webhooks", "webhook", &daemon_id, Some(&secret)))
        .await
        .unwrap();
    core.connect_app_only(&mailbox.id).await.unwrap();
    let options = WebhookOptions {
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        fallback_interval: Duration::from_secs(24 * 3600),
        renew_check_every: Duration::from_secs(24 * 3600),
        ..Default::default()
    };
    let (hooks, skipped) = core
        .start_webhooks(options, sb.clock(), None)
        .await
        .unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    let record = hooks.create_subscription(&mailbox.id).await.unwrap();
    assert_eq!(sb.graph().subscriptions().len(), 1);

    let after = core.disconnect_mailbox(&mailbox.id).await.unwrap();
    assert!(after.connected_account.is_none());
    assert!(
        sb.graph().subscriptions().is_empty(),
        "the subscription is deleted at Graph"
    );
    assert_eq!(hooks.subscription(&mailbox.id).await.unwrap(), None);
    let events = hooks.events(&mailbox.id).await.unwrap();
    let last = events.last().expect("an event");
    assert_eq!(last.kind.as_str(), "cancelled");
    assert!(last.detail.contains(&record.subscription_id), "{last:?}");
    assert!(last.detail.contains("disconnected"), "{last:?}");
    // The Monitoring view's list (every mailbox, newest first) shows it too.
    let all = core.subscription_events_all(10).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        vec!["cancelled", "created"]
    );
    // Disconnecting again (no subscription left) is fine.
    core.disconnect_mailbox(&mailbox.id).await.unwrap();
    hooks.remove_mailbox(&mailbox.id);
    assert!(hooks.create_subscription(&mailbox.id).await.is_err());
    hooks.shutdown();
}
