//! The loopback listener on its own: authorize URL shape, favicon and foreign-state requests
//! ignored, error redirects, timeout and cancellation. (Code redemption against the identity
//! emulator is covered in tests/sandbox.rs.)

use std::time::Duration;

use mailroom_graph::{
    AppRegistration, CancellationToken, ClientCredential, Cloud, LoopbackSignIn, RedirectHost,
    SignInError, SignInOptions,
};
use url::Url;

fn app() -> AppRegistration {
    AppRegistration {
        cloud: Cloud::Custom {
            authority_url: Url::parse("http://127.0.0.1:9").unwrap(),
            graph_url: Url::parse("http://127.0.0.1:9").unwrap(),
        },
        tenant: "6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab".into(),
        client_id: "c0ffee00-0000-4000-8000-000000000001".into(),
        credential: ClientCredential::Public,
    }
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn local(redirect: &str, path_and_query: &str) -> String {
    let port = Url::parse(redirect).unwrap().port().unwrap();
    format!("http://127.0.0.1:{port}{path_and_query}")
}

#[tokio::test]
async fn authorize_url_and_ignored_requests_then_error_redirect() {
    let scopes = mailroom_graph::delegated_scopes(true, false);
    let (url, pending) = LoopbackSignIn::start(
        &app(),
        &scopes,
        SignInOptions {
            login_hint: Some("support@contoso.test".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        url.path(),
        "/6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab/oauth2/v2.0/authorize"
    );
    assert_eq!(query(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query(&url, "code_challenge").unwrap().len(), 43);
    assert_eq!(query(&url, "prompt").as_deref(), Some("select_account"));
    assert_eq!(
        query(&url, "login_hint").as_deref(),
        Some("support@contoso.test")
    );
    assert_eq!(query(&url, "scope").unwrap(), scopes.join(" "));
    let redirect = query(&url, "redirect_uri").unwrap();
    assert_eq!(redirect, pending.redirect_uri());
    assert!(redirect.starts_with("http://localhost:"));
    let state = query(&url, "state").unwrap();

    let http = reqwest::Client::new();
    let favicon = http
        .get(local(&redirect, "/favicon.ico"))
        .send()
        .await
        .unwrap();
    assert_eq!(favicon.status(), 404);
    let foreign = http
        .get(local(&redirect, "/?code=stolen&state=someone-else"))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 400);

    let desc = "AADSTS65004: User declined to consent to access the app.";
    let page = http
        .get(local(&redirect, "/"))
        .query(&[
            ("error", "access_denied"),
            ("error_description", desc),
            ("state", state.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign-in failed") && html.contains("access_denied"));

    match pending
        .wait(Duration::from_secs(30), CancellationToken::new())
        .await
    {
        Err(SignInError::Denied(e)) => {
            assert_eq!(e.error, "access_denied");
            assert_eq!(e.aadsts(), Some(65004));
        }
        other => panic!("expected Denied, got {other:?}"),
    }
}

#[tokio::test]
async fn timeout_and_cancel_stop_the_listener() {
    let (_, pending) = LoopbackSignIn::start(
        &app(),
        &["User.Read".to_string()],
        SignInOptions {
            redirect_host: RedirectHost::Loopback,
            select_account: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let redirect = pending.redirect_uri().to_string();
    assert!(redirect.starts_with("http://127.0.0.1:"));
    match pending
        .wait(Duration::from_millis(50), CancellationToken::new())
        .await
    {
        Err(SignInError::TimedOut(_)) => {}
        other => panic!("expected TimedOut, got {other:?}"),
    }

    let (url, pending) =
        LoopbackSignIn::start(&app(), &["User.Read".to_string()], SignInOptions::default())
            .await
            .unwrap();
    assert!(query(&url, "login_hint").is_none());
    let cancel = CancellationToken::new();
    cancel.cancel();
    match pending.wait(Duration::from_secs(60), cancel).await {
        Err(SignInError::Cancelled) => {}
        other => panic!("expected Cancelled, got {other:?}"),
    }
}

#[tokio::test]
async fn dropping_a_pending_sign_in_closes_the_listener() {
    let (_, pending) =
        LoopbackSignIn::start(&app(), &["User.Read".to_string()], SignInOptions::default())
            .await
            .unwrap();
    let target = local(pending.redirect_uri(), "/favicon.ico");
    let http = reqwest::Client::new();
    assert_eq!(http.get(&target).send().await.unwrap().status(), 404);
    drop(pending);
    // Graceful shutdown finishes once the idle keep-alive connection is gone; a fresh client
    // then finds nothing listening (bounded wait, no timing assertion).
    let mut refused = false;
    for _ in 0..200 {
        let fresh = reqwest::Client::new();
        if fresh.get(&target).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "listener still answering after drop");
}
