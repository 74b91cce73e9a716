//! Issue 24 #5: the sandbox's Graph builds its absolute links on the root it is served at, as
//! real Graph does on `https://graph.microsoft.com`: under `--tls` they are `https` with the
//! port, so an SDK that follows `@odata.nextLink` stays on the sandbox.

use mailroom_sandbox::{Sandbox, SandboxOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_point_at_the_served_root_under_tls() {
    let sb = Sandbox::start(SandboxOptions {
        tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let ca = reqwest::Certificate::from_pem(sb.ca_certificate_pem().unwrap().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let t = sb.tenant();
    let token: serde_json::Value = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sb.authority_url(),
            t.tenant_id
        ))
        .form(&[
            ("client_id", t.daemon_app.client_id.as_str()),
            (
                "client_secret",
                t.daemon_app.client_secret.as_deref().unwrap(),
            ),
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().expect("a token");
    let root = sb.graph_url();
    assert!(root.starts_with("https://127.0.0.1:"), "{root}");

    let page: serde_json::Value = http
        .get(format!(
            "{root}/v1.0/users/support@contoso.test/mailFolders/inbox/messages?$top=2"
        ))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let next = page["@odata.nextLink"].as_str().expect("a next page");
    assert!(next.starts_with(&format!("{root}/v1.0/")), "{next}");
    // Following it works (same scheme, host and port).
    let second = http.get(next).bearer_auth(access).send().await.unwrap();
    assert_eq!(second.status(), 200);

    let delta: serde_json::Value = http
        .get(format!(
            "{root}/v1.0/users/support@contoso.test/mailFolders/inbox/messages/delta"
        ))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let link = delta["@odata.nextLink"]
        .as_str()
        .or(delta["@odata.deltaLink"].as_str())
        .expect("a delta link");
    assert!(link.starts_with(&format!("{root}/v1.0/")), "{link}");
    sb.shutdown().await;
}
