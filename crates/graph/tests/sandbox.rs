//! End-to-end against the in-process emulator (`mailroom-sandbox`): delegated sign-in through
//! the sandbox sign-in page and the loopback listener, refresh rotation, client credentials
//! (secret and certificate), each diagnosed failure, and the Graph mail operations including
//! delta, move, attachments and throttling.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailroom_clock::Clock as _;
use mailroom_graph::*;
use mailroom_graph_sandbox::InboundMail;
use mailroom_sandbox::{FaultRule, Sandbox, SandboxOptions, Service as FaultService};
use mailroom_trace::{Collector, Service};
use url::Url;

const SUPPORT: &str = "support@contoso.test";

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions {
        // The subscription tests validate against an http://127.0.0.1 endpoint.
        loopback_webhooks: true,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

fn cloud(sb: &Sandbox) -> Cloud {
    Cloud::Custom {
        authority_url: Url::parse(&sb.authority_url()).unwrap(),
        graph_url: Url::parse(&sb.graph_url()).unwrap(),
    }
}

fn app(sb: &Sandbox, client_id: &str, credential: ClientCredential) -> AppRegistration {
    AppRegistration {
        cloud: cloud(sb),
        tenant: sb.tenant().tenant_id.clone(),
        client_id: client_id.to_string(),
        credential,
    }
}

fn desktop(sb: &Sandbox) -> AppRegistration {
    app(
        sb,
        &sb.tenant().desktop_app.client_id,
        ClientCredential::Public,
    )
}

fn web(sb: &Sandbox) -> AppRegistration {
    let secret = sb.tenant().web_app.client_secret.clone().unwrap();
    app(
        sb,
        &sb.tenant().web_app.client_id,
        ClientCredential::Secret(Secret::new(secret)),
    )
}

fn daemon(sb: &Sandbox) -> AppRegistration {
    let secret = sb.tenant().daemon_app.client_secret.clone().unwrap();
    app(
        sb,
        &sb.tenant().daemon_app.client_id,
        ClientCredential::Secret(Secret::new(secret)),
    )
}

fn identity(sb: &Sandbox) -> IdentityClient {
    IdentityClient::new(sb.clock())
}

/// The sandbox's own browser stand-in; returns the loopback listener's status, or the page
/// text when no sign-in form was shown.
async fn complete_sign_in(authorize: &Url, upn: &str) -> Result<u16, String> {
    mailroom_sandbox::sign_in::complete_sign_in(authorize.as_str(), upn)
        .await
        .map(|landing| landing.status)
        .map_err(|e| e.to_string())
}

async fn sign_in(
    app: &AppRegistration,
    upn: &str,
    scopes: &[String],
    clock: mailroom_clock::SharedClock,
) -> Result<TokenSet, SignInError> {
    let (url, pending) = LoopbackSignIn::start(
        app,
        scopes,
        SignInOptions {
            login_hint: Some(upn.into()),
            clock,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let landing = complete_sign_in(&url, upn).await.expect("sign-in page");
    assert_eq!(landing, 200);
    pending
        .wait(Duration::from_secs(30), CancellationToken::new())
        .await
}

fn graph_for(sb: &Sandbox, tokens: Arc<dyn TokenProvider>, mailbox: MailboxRef) -> GraphClient {
    GraphClient::new(Url::parse(&sb.graph_url()).unwrap(), tokens, mailbox).with_clock(sb.clock())
}

fn app_only_graph(sb: &Sandbox, mailbox: &str) -> GraphClient {
    let tokens = Arc::new(AppOnlyTokens::new(identity(sb), daemon(sb)));
    graph_for(sb, tokens, MailboxRef::User(mailbox.into()))
}

#[tokio::test]
async fn public_sign_in_refresh_rotation_and_graph_me() {
    let sb = sandbox().await;
    let app = desktop(&sb);
    let scopes = delegated_scopes(false, true);
    let collector = Collector::new();
    let tokens = mailroom_trace::with_sink(
        collector.clone(),
        sign_in(&app, SUPPORT, &scopes, sb.clock()),
    )
    .await
    .expect("signed in");
    // The token request was recorded, without the code or the tokens.
    let exchanges = collector.drain();
    let token_call = exchanges
        .iter()
        .find(|e| e.service == Service::Identity && e.url.ends_with("/oauth2/v2.0/token"))
        .expect("token exchange recorded");
    assert_eq!(token_call.status, Some(200));
    assert!(!token_call
        .response_body
        .as_deref()
        .unwrap()
        .contains(tokens.access_token.expose()));

    let account = tokens.account.clone().expect("id_token account");
    assert_eq!(account.upn.as_deref(), Some(SUPPORT));
    assert_eq!(
        account.tenant.as_deref(),
        Some(sb.tenant().tenant_id.as_str())
    );
    assert!(tokens.refresh_token.is_some());
    let missing = missing_permissions(
        &granted_permissions(&tokens),
        &required_permissions(AccessMethod::MailboxScan {
            shared_mailbox: false,
            contacts: true,
        }),
    );
    assert!(missing.is_empty(), "missing {missing:?}");

    // Explicit refresh rotates the refresh token.
    let first_rt = tokens.refresh_token.clone().unwrap();
    let refreshed = identity(&sb).refresh(&app, &first_rt).await.unwrap();
    let second_rt = refreshed.refresh_token.clone().unwrap();
    assert_ne!(second_rt, first_rt);

    // DelegatedTokens: a 401 from Graph (all access tokens expired server-side) triggers one
    // refresh, the rotation callback, and a successful retry.
    let rotations: Arc<Mutex<Vec<TokenSet>>> = Arc::default();
    let seen = rotations.clone();
    let provider = Arc::new(DelegatedTokens::new(
        identity(&sb),
        app.clone(),
        refreshed,
        Arc::new(move |t: TokenSet| {
            seen.lock().unwrap().push(t);
            Box::pin(async {})
        }),
    ));
    let graph = graph_for(&sb, provider.clone(), MailboxRef::Me);
    let me = graph.me().await.unwrap();
    assert_eq!(me.user_principal_name.as_deref(), Some(SUPPORT));
    assert!(rotations.lock().unwrap().is_empty());
    sb.identity().expire_all_access_tokens();
    let me = graph.me().await.unwrap();
    assert_eq!(me.user_principal_name.as_deref(), Some(SUPPORT));
    let rotated = rotations.lock().unwrap().clone();
    assert_eq!(rotated.len(), 1);
    let third_rt = rotated[0].refresh_token.clone().unwrap();
    assert_ne!(third_rt, second_rt);
    assert_eq!(provider.current().await.refresh_token, Some(third_rt));
    assert_eq!(
        rotated[0].account.as_ref().and_then(|a| a.upn.as_deref()),
        Some(SUPPORT)
    );

    // Refreshing 5 minutes before expiry, driven by the clock.
    sb.clock().advance(chrono::Duration::hours(3));
    graph.me().await.unwrap();
    assert_eq!(rotations.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn confidential_sign_in_and_client_type_mistakes() {
    let sb = sandbox().await;
    let scopes = delegated_scopes(false, false);
    let tokens = sign_in(&web(&sb), "megan@contoso.test", &scopes, sb.clock())
        .await
        .expect("confidential sign-in");
    assert_eq!(
        tokens.account.unwrap().upn.as_deref(),
        Some("megan@contoso.test")
    );

    // Public client sending a secret → AADSTS700025.
    let mut public_with_secret = desktop(&sb);
    public_with_secret.credential = web(&sb).credential;
    let err = sign_in(&public_with_secret, SUPPORT, &scopes, sb.clock())
        .await
        .unwrap_err();
    assert_eq!(
        diagnose_sign_in(&err).kind,
        DiagnosisKind::PublicClientSentSecret,
        "{err:?}"
    );

    // Confidential (Web platform) client sending nothing → AADSTS7000218.
    let mut web_without_secret = web(&sb);
    web_without_secret.credential = ClientCredential::Public;
    let err = sign_in(&web_without_secret, SUPPORT, &scopes, sb.clock())
        .await
        .unwrap_err();
    let diag = diagnose_sign_in(&err);
    assert_eq!(
        diag.kind,
        DiagnosisKind::ConfidentialClientNoSecret,
        "{err:?}"
    );
    assert!(diag.cause.contains("AADSTS7000218"));
}

#[tokio::test]
async fn unregistered_redirect_shows_aadsts50011() {
    let sb = sandbox().await;
    let (url, pending) = LoopbackSignIn::start(
        &desktop(&sb),
        &delegated_scopes(false, false),
        SignInOptions {
            redirect_host: RedirectHost::Loopback,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let page = complete_sign_in(&url, SUPPORT).await.unwrap_err();
    let error = AadError::from_text(&page).expect("AADSTS code on the page");
    assert_eq!(error.aadsts(), Some(50011));
    assert_eq!(
        diagnose_aad(&error, None).kind,
        DiagnosisKind::RedirectUriNotRegistered
    );
    // Nothing reaches the listener; the wait ends by cancellation.
    let cancel = CancellationToken::new();
    cancel.cancel();
    assert!(matches!(
        pending.wait(Duration::from_secs(5), cancel).await,
        Err(SignInError::Cancelled)
    ));
}

#[tokio::test]
async fn revoked_and_inactive_grants_need_reauthorization() {
    let sb = sandbox().await;
    let app = desktop(&sb);
    let tokens = sign_in(&app, SUPPORT, &delegated_scopes(false, false), sb.clock())
        .await
        .unwrap();
    let rt = tokens.refresh_token.unwrap();

    sb.identity()
        .set_refresh_tokens_inactive(
            Some(SUPPORT),
            mailroom_sandbox::identity::RefreshTokenFault::Inactive,
        )
        .unwrap();
    let err = identity(&sb).refresh(&app, &rt).await.unwrap_err();
    let diag = diagnose(&err);
    assert_eq!(diag.kind, DiagnosisKind::GrantRevoked, "{err:?}");
    assert!(diag.cause.contains("AADSTS70008"));

    let tokens = sign_in(&app, SUPPORT, &delegated_scopes(false, false), sb.clock())
        .await
        .unwrap();
    sb.identity().revoke_user_sessions(SUPPORT).unwrap();
    let err = identity(&sb)
        .refresh(&app, tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(diagnose(&err).kind, DiagnosisKind::GrantRevoked, "{err:?}");
    assert!(
        matches!(&err, IdentityError::Rejected { status: 400, error } if error.error == "invalid_grant")
    );
}

#[tokio::test]
async fn client_credentials_with_secret_roles_and_access_policy() {
    let sb = sandbox().await;
    let tokens = identity(&sb)
        .client_credentials(&daemon(&sb))
        .await
        .unwrap();
    assert!(tokens.refresh_token.is_none());
    let granted = granted_permissions(&tokens);
    assert!(
        missing_permissions(
            &granted,
            &required_permissions(AccessMethod::Webhooks { contacts: true })
        )
        .is_empty(),
        "{granted:?}"
    );

    let graph = app_only_graph(&sb, SUPPORT);
    let inbox = graph
        .list_messages(
            "inbox",
            &MessageQuery {
                top: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(inbox.len() > 5, "paging follows nextLink: {}", inbox.len());

    // An application access policy keeps the application to the support mailboxes.
    sb.graph()
        .try_add_access_policy(mailroom_graph_sandbox::ApplicationAccessPolicy {
            app_id: mailroom_graph_sandbox::seed::DAEMON_APP_ID.into(),
            access_right: mailroom_graph_sandbox::AccessRight::RestrictAccess,
            mailboxes: vec![
                "support@contoso.test".into(),
                "helpdesk@contoso.test".into(),
            ],
        })
        .unwrap();
    let denied = app_only_graph(&sb, "megan@contoso.test")
        .list_messages("inbox", &MessageQuery::default())
        .await
        .unwrap_err();
    assert_eq!(denied.kind, GraphErrorKind::AccessDenied, "{denied}");
    assert_eq!(denied.code.as_deref(), Some("ErrorAccessDenied"));
}

#[tokio::test]
async fn client_credentials_failures_are_diagnosed() {
    let sb = sandbox().await;
    let id = identity(&sb);

    let mut wrong = daemon(&sb);
    wrong.credential = ClientCredential::Secret(Secret::new("not-the-secret"));
    let err = id.client_credentials(&wrong).await.unwrap_err();
    assert!(
        matches!(&err, IdentityError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(diagnose(&err).kind, DiagnosisKind::WrongSecret);

    let daemon_id = sb.tenant().daemon_app.client_id.clone();
    sb.identity().expire_app_secret(&daemon_id, None).unwrap();
    let err = id.client_credentials(&daemon(&sb)).await.unwrap_err();
    assert_eq!(diagnose(&err).kind, DiagnosisKind::ExpiredSecret, "{err:?}");

    // A new secret works again; then consent is withdrawn.
    sb.identity()
        .add_app_secret(&daemon_id, "fresh-secret-value", 30)
        .unwrap();
    let mut fresh = daemon(&sb);
    fresh.credential = ClientCredential::Secret(Secret::new("fresh-secret-value"));
    id.client_credentials(&fresh).await.unwrap();
    sb.identity().withdraw_consent(&daemon_id).unwrap();
    match id.client_credentials(&fresh).await {
        Err(err) => assert_eq!(
            diagnose(&err).kind,
            DiagnosisKind::ConsentMissing,
            "{err:?}"
        ),
        Ok(tokens) => {
            // Entra issues a token without roles; the permission check reports what is missing.
            let missing = missing_permissions(
                &granted_permissions(&tokens),
                &required_permissions(AccessMethod::Webhooks { contacts: false }),
            );
            assert_eq!(missing, vec!["Mail.ReadWrite", "Mail.Send"]);
        }
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
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

#[tokio::test]
async fn client_credentials_with_certificate_ps256_and_rs256() {
    let sb = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=Mailroom Daemon",
            "-days",
            "30",
        ],
    );
    openssl(
        dir.path(),
        &[
            "pkcs12",
            "-export",
            "-in",
            "cert.pem",
            "-inkey",
            "key.pem",
            "-out",
            "d.pfx",
            "-passout",
            "pass:pfx-pw",
        ],
    );
    let cred = CertificateCredential::from_pfx(
        &std::fs::read(dir.path().join("d.pfx")).unwrap(),
        "pfx-pw",
    )
    .unwrap();
    let daemon_id = sb.tenant().daemon_app.client_id.clone();
    let id = identity(&sb);

    // Not registered yet → the assertion is refused.
    let unregistered = app(
        &sb,
        &daemon_id,
        ClientCredential::Certificate(Box::new(cred.clone())),
    );
    let err = id.client_credentials(&unregistered).await.unwrap_err();
    assert_eq!(
        diagnose(&err).kind,
        DiagnosisKind::InvalidCertificate,
        "{err:?}"
    );

    let cert_pem = std::fs::read_to_string(dir.path().join("cert.pem")).unwrap();
    let thumb = sb
        .identity()
        .add_app_certificate(&daemon_id, &cert_pem)
        .unwrap();
    assert!(thumb.eq_ignore_ascii_case(&cred.thumbprint_sha1_hex()));
    for algorithm in [
        AssertionAlgorithm::Ps256X5tS256,
        AssertionAlgorithm::Rs256X5t,
    ] {
        let app = app(
            &sb,
            &daemon_id,
            ClientCredential::Certificate(Box::new(cred.clone().with_algorithm(algorithm))),
        );
        let tokens = id.client_credentials(&app).await.unwrap();
        assert!(granted_permissions(&tokens)
            .iter()
            .any(|r| r == "Mail.ReadWrite"));
        let graph = graph_for(
            &sb,
            Arc::new(AppOnlyTokens::new(id.clone(), app)),
            MailboxRef::User(SUPPORT.into()),
        );
        let page = graph
            .list_messages(
                "inbox",
                &MessageQuery {
                    top: Some(1),
                    max_pages: Some(1),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
    }
}

#[tokio::test]
async fn delta_initial_idle_delivery_and_expired_state() {
    let sb = sandbox().await;
    let graph = app_only_graph(&sb, SUPPORT).with_delta_page_size(3);
    let first = graph
        .delta_round("inbox", &DeltaCursor::Initial)
        .await
        .unwrap();
    assert!(first.round_complete);
    let seeded = sb
        .graph()
        .messages(SUPPORT)
        .into_iter()
        .filter(|m| m.folder == "inbox")
        .count();
    assert_eq!(first.messages.len(), seeded);
    assert!(seeded > 3, "several pages were followed");

    let idle = graph.delta_round("inbox", &first.next).await.unwrap();
    assert!(idle.messages.is_empty() && idle.removed_ids.is_empty());

    sb.graph()
        .deliver(InboundMail {
            to: SUPPORT.into(),
            from: "pat@fabrikam.test".into(),
            from_name: Some("Pat Smith".into()),
            subject: "Printer on fire".into(),
            body_text: Some("Please help".into()),
            ..Default::default()
        })
        .unwrap();
    let after = graph.delta_round("inbox", &idle.next).await.unwrap();
    assert_eq!(after.messages.len(), 1);
    assert_eq!(
        after.messages[0].subject.as_deref(),
        Some("Printer on fire")
    );

    sb.graph().invalidate_delta_tokens();
    let gone = graph.delta("inbox", &after.next).await.unwrap_err();
    assert_eq!(gone.kind, GraphErrorKind::SyncStateNotFound, "{gone}");
    assert_eq!(gone.status, Some(410));
}

#[tokio::test]
async fn message_headers_mime_move_mark_read_and_attachments() {
    let sb = sandbox().await;
    let graph = app_only_graph(&sb, SUPPORT);
    let delivered = sb
        .graph()
        .deliver(InboundMail {
            to: SUPPORT.into(),
            from: "lee@fabrikam.test".into(),
            subject: "Invoice".into(),
            body_html: Some("<p>See <img src=\"cid:logo@x\"></p>".into()),
            headers: vec![("X-Custom-Test".into(), "42".into())],
            attachments: vec![
                mailroom_graph_sandbox::InboundAttachment {
                    name: "invoice.pdf".into(),
                    content_type: "application/pdf".into(),
                    content: b"%PDF-1.4 test".to_vec(),
                    ..Default::default()
                },
                mailroom_graph_sandbox::InboundAttachment {
                    name: "logo.png".into(),
                    content_type: "image/png".into(),
                    content: vec![0x89, b'P', b'N', b'G', 1, 2, 3],
                    inline: true,
                    content_id: Some("logo@x".into()),
                },
            ],
            ..Default::default()
        })
        .unwrap();
    let id = delivered.id.clone();

    let msg = graph
        .message(&id, &["subject", "isRead", "internetMessageHeaders"])
        .await
        .unwrap();
    assert_eq!(msg.subject.as_deref(), Some("Invoice"));
    assert_eq!(msg.header("x-custom-test"), Some("42"));
    let mime = String::from_utf8(graph.mime(&id).await.unwrap()).unwrap();
    assert!(mime.contains("Subject: Invoice"));

    let atts = graph.attachments(&id).await.unwrap();
    let pdf = atts
        .iter()
        .find(|a| a.name.as_deref() == Some("invoice.pdf"))
        .unwrap();
    assert_eq!(pdf.bytes, b"%PDF-1.4 test");
    assert!(!pdf.is_inline);
    let png = atts
        .iter()
        .find(|a| a.name.as_deref() == Some("logo.png"))
        .unwrap();
    assert!(png.is_inline);
    assert_eq!(
        png.content_id
            .as_deref()
            .map(|c| c.trim_matches(['<', '>'])),
        Some("logo@x")
    );
    assert_eq!(png.bytes, vec![0x89, b'P', b'N', b'G', 1, 2, 3]);

    graph.mark_read(&id).await.unwrap();
    let processed = graph.ensure_folder("Mailroom Processed").await.unwrap();
    assert_eq!(
        graph.ensure_folder("mailroom processed").await.unwrap(),
        processed
    );
    let new_id = graph.move_to(&id, &processed).await.unwrap();
    assert_ne!(new_id, id);
    let moved = graph
        .message(&new_id, &["isRead", "parentFolderId"])
        .await
        .unwrap();
    assert_eq!(moved.is_read, Some(true));
    assert_eq!(moved.parent_folder_id.as_deref(), Some(processed.as_str()));
    let old = graph.message(&id, &[]).await.unwrap_err();
    assert_eq!(old.kind, GraphErrorKind::NotFound);
}

#[tokio::test]
async fn send_reply_contacts_and_batch() {
    let sb = sandbox().await;
    let graph = app_only_graph(&sb, SUPPORT);
    graph
        .send_mail(
            &OutgoingMessage {
                subject: "Ticket 1 logged".into(),
                body: ItemBody {
                    content_type: "Text".into(),
                    content: "We got it".into(),
                },
                to: vec!["pat@fabrikam.test".into()],
                headers: vec![("x-mailroom-ticket".into(), "1".into())],
                attachments: vec![OutgoingAttachment {
                    name: "a.txt".into(),
                    content_type: "text/plain".into(),
                    bytes: b"hello".to_vec(),
                    content_id: None,
                }],
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap();
    let first = sb.graph().messages(SUPPORT)[0].id.clone();
    graph.reply(&first, "Thanks, on it").await.unwrap();
    assert_eq!(sb.graph().sent_mail(SUPPORT).len(), 2);

    let contacts = graph.contacts().await.unwrap();
    assert!(contacts
        .iter()
        .flat_map(|c| c.email_addresses.iter())
        .any(|e| e
            .address
            .as_deref()
            .is_some_and(|a| a.ends_with("@fabrikam.test"))));

    let responses = graph
        .batch(&[
            BatchRequest {
                id: "1".into(),
                method: "GET".into(),
                url: format!(
                    "/users/{SUPPORT}/mailFolders/inbox/messages?$top=2&$select=id,subject"
                ),
                headers: Default::default(),
                body: None,
                depends_on: vec![],
            },
            BatchRequest {
                id: "2".into(),
                method: "PATCH".into(),
                url: format!("/users/{SUPPORT}/messages/{first}"),
                headers: serde_json::from_value(
                    serde_json::json!({"Content-Type": "application/json"}),
                )
                .unwrap(),
                body: Some(serde_json::json!({"isRead": true})),
                depends_on: vec![],
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        responses.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert!(responses.iter().all(|r| r.status == 200), "{responses:?}");
}

#[tokio::test]
async fn throttling_retry_after_is_honoured() {
    let sb = sandbox().await;
    let graph = app_only_graph(&sb, SUPPORT);
    graph.contacts().await.unwrap(); // token fetched outside the measured exchanges
    sb.faults()
        .add(
            FaultRule::fail_next(
                FaultService::Graph,
                "/v1.0/users/*/mailFolders/*/messages",
                2,
                429,
            )
            .with_retry_after(0.2),
        )
        .unwrap();
    let collector = Collector::new();
    let messages = mailroom_trace::with_sink(
        collector.clone(),
        graph.list_messages(
            "inbox",
            &MessageQuery {
                top: Some(50),
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    assert!(!messages.is_empty());
    let statuses: Vec<Option<u16>> = collector
        .drain()
        .iter()
        .filter(|e| e.service == Service::Graph)
        .map(|e| e.status)
        .collect();
    assert_eq!(statuses, [Some(429), Some(429), Some(200)]);

    // 503 without Retry-After: exponential backoff, then success; attempts are bounded.
    let bounded = graph.clone().with_throttle_config(ThrottleConfig {
        max_attempts: 2,
        base_backoff: Duration::from_millis(10),
        ..Default::default()
    });
    sb.faults()
        .add(FaultRule::fail_next(
            FaultService::Graph,
            "/v1.0/users/*/mailFolders/*/messages",
            5,
            503,
        ))
        .unwrap();
    let err = bounded
        .list_messages("inbox", &MessageQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, GraphErrorKind::Server);
    assert_eq!(err.status, Some(503));
}

/// A notification endpoint that answers Graph's validation handshake (echoes the token).
async fn validation_endpoint() -> String {
    use axum::extract::Query;
    async fn echo(
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> (
        axum::http::StatusCode,
        [(&'static str, &'static str); 1],
        String,
    ) {
        match q.get("validationToken") {
            Some(t) => (
                axum::http::StatusCode::OK,
                [("content-type", "text/plain")],
                t.clone(),
            ),
            None => (
                axum::http::StatusCode::ACCEPTED,
                [("content-type", "text/plain")],
                String::new(),
            ),
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(echo);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{port}/graph/notify?tenant=contoso")
}

#[tokio::test]
async fn subscriptions_are_clamped_renewed_reauthorized_and_deleted() {
    let sb = sandbox().await;
    let mut opts = sb.graph().publisher_options();
    opts.max_expiration_minutes = 100;
    sb.graph().set_publisher_options(opts);
    let graph = app_only_graph(&sb, SUPPORT);
    let notify = validation_endpoint().await;
    let lifecycle = notify.replace("/notify", "/lifecycle");
    let client_state = Secret::new("client-state-1234567890");
    let now = sb.clock().now();

    // Asks for the configured default (4,230 min), gets ExtensionError "… 100 minutes …",
    // and retries at the cap.
    let sub = graph
        .create_subscription(
            &graph.inbox_resource(),
            &notify,
            Some(&lifecycle),
            &client_state,
            now + chrono::Duration::days(7),
        )
        .await
        .unwrap();
    let expires = sub.expiration_date_time.unwrap();
    assert!(expires <= now + chrono::Duration::minutes(100) + chrono::Duration::seconds(5));
    assert!(expires >= now + chrono::Duration::minutes(90));
    assert_eq!(graph.list_subscriptions().await.unwrap().len(), 1);

    let renewed = graph
        .renew_subscription(&sub.id, sb.clock().now() + chrono::Duration::days(3))
        .await
        .unwrap();
    assert!(renewed.expiration_date_time.unwrap() >= expires);
    graph.reauthorize_subscription(&sub.id).await.unwrap();
    graph.delete_subscription(&sub.id).await.unwrap();
    assert!(graph.list_subscriptions().await.unwrap().is_empty());
    let gone = graph.delete_subscription(&sub.id).await.unwrap_err();
    assert_eq!(gone.kind, GraphErrorKind::NotFound);
}

#[tokio::test]
async fn withdrawn_delegated_consent_is_diagnosed_on_refresh() {
    let sb = sandbox().await;
    let app = desktop(&sb);
    let tokens = sign_in(&app, SUPPORT, &delegated_scopes(false, false), sb.clock())
        .await
        .unwrap();
    sb.identity().withdraw_consent(&app.client_id).unwrap();
    let err = identity(&sb)
        .refresh(&app, tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    let diag = diagnose(&err);
    assert_eq!(diag.kind, DiagnosisKind::ConsentMissing, "{err:?}");
    assert!(!diag.fix.is_empty());
}

#[tokio::test]
async fn works_against_the_sandbox_over_https() {
    let sb = Sandbox::start(SandboxOptions {
        tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let ca = sb.ca_certificate_pem().expect("CA with tls: true");
    assert!(sb.authority_url().starts_with("https://"));
    // Without the CA the token endpoint is not trusted.
    let err = identity(&sb)
        .client_credentials(&daemon(&sb))
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::Transport(_)), "{err:?}");

    let id = identity(&sb)
        .with_root_certificates(std::slice::from_ref(&ca))
        .unwrap();
    let graph = graph_for(
        &sb,
        Arc::new(AppOnlyTokens::new(id, daemon(&sb))),
        MailboxRef::User(SUPPORT.into()),
    )
    .with_root_certificates(&[ca])
    .unwrap();
    let page = graph
        .list_messages(
            "inbox",
            &MessageQuery {
                top: Some(2),
                max_pages: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
}

#[tokio::test]
async fn at_most_four_requests_per_mailbox_are_in_flight() {
    let sb = sandbox().await;
    let graph = app_only_graph(&sb, SUPPORT);
    graph.contacts().await.unwrap(); // token cached before the burst
    let daemon_id = sb.tenant().daemon_app.client_id.clone();
    sb.graph().hold_requests(true);
    let collector = Collector::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let g = graph.clone();
        let c = collector.clone();
        tasks.spawn(mailroom_trace::with_sink(c, async move {
            g.list_messages(
                "inbox",
                &MessageQuery {
                    top: Some(1),
                    max_pages: Some(1),
                    ..Default::default()
                },
            )
            .await
        }));
    }
    // Wait (bounded) until the client has filled its four slots.
    for _ in 0..500 {
        if sb.graph().in_flight(&daemon_id, SUPPORT) >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sb.graph().in_flight(&daemon_id, SUPPORT), 4);
    sb.graph().hold_requests(false);
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.unwrap().unwrap().len(), 1);
    }
    // No request was ever over the MailboxConcurrency limit (it would have been a 429).
    let statuses: Vec<Option<u16>> = collector.drain().iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![Some(200); 8]);
}

/// Drafts: a reply draft threaded to the message, its Internet Message-ID chosen while it is
/// a draft, sent once, then found in Sent Items by that id (and no longer in Drafts); a sent
/// message's id cannot change, and it cannot be sent again.
#[tokio::test]
async fn reply_drafts_carry_a_chosen_message_id_into_sent_items() {
    let sb = sandbox().await;
    let graph = app_only_graph(&sb, SUPPORT);
    let first = sb.graph().messages(SUPPORT)[0].clone();
    let draft = graph.create_reply_draft(&first.id).await.unwrap();
    assert_eq!(draft.is_draft, Some(true));
    assert!(draft.subject.as_deref().unwrap().starts_with("RE: "));
    let chosen = "<outbound-42.ticket-7@mailroom.invalid>";
    graph
        .update_draft(
            &draft.id,
            serde_json::json!({
                "internetMessageId": chosen,
                "body": {"contentType": "HTML", "content": "<p>Fixed, please check.</p>"},
            }),
        )
        .await
        .unwrap();
    let in_drafts = graph
        .find_by_internet_message_id("drafts", chosen)
        .await
        .unwrap()
        .expect("the draft is found by the chosen id");
    assert_eq!(in_drafts.id, draft.id);
    assert!(graph
        .find_by_internet_message_id("sentitems", chosen)
        .await
        .unwrap()
        .is_none());

    graph.send_draft(&draft.id).await.unwrap();
    let sent = sb.graph().sent_mail(SUPPORT);
    let last = sent.last().unwrap();
    assert_eq!(last.internet_message_id, chosen);
    assert_eq!(
        last.in_reply_to
            .as_deref()
            .map(|r| r.trim_matches(['<', '>'])),
        Some(first.internet_message_id.trim_matches(['<', '>']))
    );
    assert!(last.body.contains("Fixed, please check."));
    assert!(graph
        .find_by_internet_message_id("drafts", chosen)
        .await
        .unwrap()
        .is_none());
    let copy = graph
        .find_by_internet_message_id("sentitems", chosen)
        .await
        .unwrap()
        .expect("the sent copy keeps the id");
    assert_eq!(copy.is_draft, Some(false));
    let again = graph.send_draft(&copy.id).await.unwrap_err();
    assert_eq!(again.kind, GraphErrorKind::BadRequest, "{again:?}");
    let renamed = graph
        .update_draft(&copy.id, serde_json::json!({"internetMessageId": "<x@y>"}))
        .await
        .unwrap_err();
    assert!(renamed.to_string().contains("sent message"), "{renamed}");
}

/// The address book through the client: every folder (nested ones too), each folder's
/// contacts, and contact delta per folder — an unchanged folder costs one request; a change
/// and a deletion come back in the next round.
#[tokio::test]
async fn contact_folders_contacts_and_contact_delta() {
    let sb = sandbox().await;
    let graph = app_only_graph(&sb, SUPPORT);
    let folders = graph.contact_folders().await.unwrap();
    let mut names: Vec<&str> = folders.iter().map(|f| f.display_name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["Customers", "Key accounts", "Suppliers"]);
    let default_id = graph
        .probe_contacts()
        .await
        .unwrap()
        .and_then(|c| c.parent_folder_id)
        .unwrap();
    let mut total = graph.contacts().await.unwrap().len();
    for f in &folders {
        total += graph.folder_contacts(Some(&f.id)).await.unwrap().len();
    }
    assert_eq!(total, sb.graph().contacts(SUPPORT).len());

    let first = graph
        .contact_delta_round(&default_id, &DeltaCursor::Initial)
        .await
        .unwrap();
    assert!(first.round_complete);
    assert_eq!(first.contacts.len(), graph.contacts().await.unwrap().len());
    let collector = Collector::new();
    let idle = mailroom_trace::with_sink(
        collector.clone(),
        graph.contact_delta_round(&default_id, &first.next),
    )
    .await
    .unwrap();
    assert!(idle.contacts.is_empty() && idle.removed_ids.is_empty());
    assert_eq!(
        collector.drain().len(),
        1,
        "an unchanged folder costs one request"
    );

    let changed = first.contacts[0].id.clone();
    let deleted = first.contacts[1].id.clone();
    sb.graph()
        .update_contact(SUPPORT, &changed, |c| c.job_title = Some("Buyer".into()));
    sb.graph().delete_contact(SUPPORT, &deleted);
    let next = graph
        .contact_delta_round(&default_id, &idle.next)
        .await
        .unwrap();
    assert_eq!(next.contacts.len(), 1);
    assert_eq!(next.contacts[0].job_title.as_deref(), Some("Buyer"));
    assert_eq!(next.removed_ids, [deleted]);
}

/// Every folder's delta round continued together: an unchanged address book costs one
/// `$batch` request; changes in two folders come back, each under its folder.
#[tokio::test]
async fn contact_delta_rounds_of_every_folder_in_one_batch() {
    let sb = sandbox().await;
    let graph = app_only_graph(&sb, SUPPORT);
    let mut folders: Vec<String> = graph
        .contact_folders()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    folders.push(
        graph
            .probe_contacts()
            .await
            .unwrap()
            .and_then(|c| c.parent_folder_id)
            .unwrap(),
    );
    let initial: Vec<(String, DeltaCursor)> = folders
        .iter()
        .map(|f| (f.clone(), DeltaCursor::Initial))
        .collect();
    let first = graph.contact_delta_rounds(&initial).await.unwrap();
    let total: usize = first
        .iter()
        .map(|(_, r)| r.as_ref().unwrap().contacts.len())
        .sum();
    assert_eq!(total, sb.graph().contacts(SUPPORT).len());
    let links: Vec<(String, DeltaCursor)> = first
        .iter()
        .map(|(f, r)| (f.clone(), r.as_ref().unwrap().next.clone()))
        .collect();

    let collector = Collector::new();
    let idle = mailroom_trace::with_sink(collector.clone(), graph.contact_delta_rounds(&links))
        .await
        .unwrap();
    assert_eq!(
        collector.drain().len(),
        1,
        "an unchanged address book costs one request"
    );
    assert!(idle
        .iter()
        .all(|(_, r)| r.as_ref().unwrap().contacts.is_empty()));

    let all = sb.graph().contacts(SUPPORT);
    let in_a = &all[0];
    let in_b = all.iter().find(|c| c.folder_id != in_a.folder_id).unwrap();
    sb.graph()
        .update_contact(SUPPORT, &in_a.id, |c| c.job_title = Some("Buyer".into()));
    sb.graph().delete_contact(SUPPORT, &in_b.id);
    let links: Vec<(String, DeltaCursor)> = idle
        .iter()
        .map(|(f, r)| (f.clone(), r.as_ref().unwrap().next.clone()))
        .collect();
    let changed = graph.contact_delta_rounds(&links).await.unwrap();
    let of = |f: &str| {
        changed
            .iter()
            .find(|(x, _)| x == f)
            .unwrap()
            .1
            .as_ref()
            .unwrap()
    };
    assert_eq!(of(&in_a.folder_id).contacts[0].id, in_a.id);
    assert_eq!(
        of(&in_b.folder_id).removed_ids,
        std::slice::from_ref(&in_b.id)
    );
}
