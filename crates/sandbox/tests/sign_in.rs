//! `complete_sign_in` does what a browser does: the code reaches the client's redirect URI.

use mailroom_sandbox::sign_in::{complete_sign_in, SignInDriveError};
use mailroom_sandbox::{Sandbox, SandboxOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn authorize_url(sandbox: &Sandbox, port: u16, client_id: &str) -> String {
    let mut url = url::Url::parse(&format!(
        "{}/{}/oauth2/v2.0/authorize",
        sandbox.authority_url(),
        sandbox.tenant().tenant_id
    ))
    .unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &format!("http://localhost:{port}"))
        .append_pair(
            "scope",
            "offline_access https://graph.microsoft.com/Mail.ReadWrite",
        )
        .append_pair("state", "st&ate\"1")
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

#[tokio::test]
async fn the_code_reaches_the_redirect_uri() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = socket.read(&mut buf).await.unwrap();
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    });
    let url = authorize_url(&sandbox, port, &sandbox.tenant().desktop_app.client_id);
    let landing = complete_sign_in(&url, "support@contoso.test")
        .await
        .unwrap();
    assert_eq!((landing.status, landing.body.as_str()), (200, "ok"));
    let request = received.await.unwrap();
    let request_line = request.lines().next().unwrap();
    assert!(request_line.starts_with("GET /?code="), "{request_line}");
    let redirect = url::Url::parse(&landing.redirect).unwrap();
    let state = redirect
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        state.as_deref(),
        Some("st&ate\"1"),
        "hidden inputs are unescaped"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_error_page_is_reported_with_its_text() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let url = authorize_url(&sandbox, 1, "00000000-0000-4000-8000-00000000dead");
    let err = complete_sign_in(&url, "support@contoso.test")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SignInDriveError::NoForm(text) if text.contains("AADSTS700016")),
        "{err}"
    );
    sandbox.shutdown().await;
}
