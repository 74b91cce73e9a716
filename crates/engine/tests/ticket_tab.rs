//! The PSA ticket tab served by the webhook receiver (issue 11 #3): a request carrying a valid
//! secure URL parameter gets the page of its ticket's emails; a missing or forged parameter, or
//! another secret, gets the refusal page, and the refusal is kept with the names (never the
//! values) of what the request carried. Needs a Secret Service (the tab secret is in it).

mod common;

use common::*;
use mailroom_clock::Clock as _;
use mailroom_engine::ticket_tab::{sign, TabAuthScheme, TAB_PATH};
use mailroom_engine::webhooks::{WebhookOptions, Webhooks};
use mailroom_engine::Core;
use mailroom_secrets::{SecretValue, Secrets};

#[tokio::test]
async fn the_tab_shows_a_verified_tickets_emails_and_refuses_everything_else() {
    let h = harness(default_settings()).await;
    let delivered = h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Printer <on> fire"));
    h.scan().await;
    let email = h.email_for(&delivered).await;
    let ticket_id = email.ticket_id.expect("a ticket was logged");

    let secrets = Secrets::with_service(format!("mailroom-test-{}", uuid::Uuid::new_v4()));
    let core = Core::open_with_secrets(h.dir.path(), secrets)
        .await
        .unwrap();
    // The receiver reads the keyring as the engine's does: scoped to this data directory.
    let hooks = Webhooks::start(
        WebhookOptions::default(),
        h.store.clone(),
        core.secrets().clone(),
        h.sb.clock(),
        None,
    )
    .await
    .expect("receiver starts");
    let url = format!("http://{}{TAB_PATH}", hooks.local_addr());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = |query: Vec<(String, String)>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let resp = http.get(&url).query(&query).send().await.unwrap();
            let status = resp.status().as_u16();
            let csp = resp
                .headers()
                .get("content-security-policy")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, resp.text().await.unwrap(), csp)
        }
    };
    let now = h.sb.clock().now();

    // Not set up yet: refused, saying so.
    let (status, page, _) = get(sign(
        TabAuthScheme::Jwt,
        b"tab-secret",
        ticket_id,
        Some(3),
        now,
    ))
    .await;
    assert_eq!(status, 403);
    assert!(
        page.contains("the ticket tab is not set up in Mailroom yet"),
        "{page}"
    );

    let empty = core
        .set_ticket_tab(SecretValue::new("  "), TabAuthScheme::Jwt)
        .await
        .unwrap_err();
    assert!(empty.to_string().contains("Iframe secret"), "{empty}");
    core.set_ticket_tab(SecretValue::new("tab-secret"), TabAuthScheme::Jwt)
        .await
        .unwrap();

    let (status, page, csp) = get(sign(
        TabAuthScheme::Jwt,
        b"tab-secret",
        ticket_id,
        Some(3),
        now,
    ))
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Printer &lt;on&gt; fire"), "{page}");
    assert!(page.contains("opened the ticket"), "{page}");
    assert!(page.contains("Attempt 1"), "{page}");
    assert!(!page.contains("tab-secret"));
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors"),
        "{csp}"
    );

    // Another secret, a bare request, the other scheme's parameters: refused.
    let (status, page, _) = get(sign(
        TabAuthScheme::Jwt,
        b"not-the-secret",
        ticket_id,
        Some(3),
        now,
    ))
    .await;
    assert_eq!(status, 403);
    assert!(page.contains("does not match the tab secret"), "{page}");
    assert!(!page.contains("Printer"), "nothing of the ticket is shown");
    let (status, page, _) = get(vec![("ticket_id".into(), ticket_id.to_string())]).await;
    assert_eq!(status, 403);
    assert!(page.contains("Send secure URL parameter"), "{page}");
    let hmac = sign(
        TabAuthScheme::HmacHex,
        b"tab-secret",
        ticket_id,
        Some(3),
        now,
    );
    assert_eq!(get(hmac.clone()).await.0, 403);

    // The admin switches to the scheme HaloPSA really uses (as the refusals showed).
    let kept = core.ticket_tab_rejections().await.unwrap();
    assert_eq!(kept.len(), 4);
    assert_eq!(
        kept[0].parameters,
        ["agent_id", "signature", "ticket_id", "ts"]
    );
    assert_eq!(kept[1].parameters, ["ticket_id"]);
    let stored = serde_json::to_string(&kept).unwrap();
    assert!(!stored.contains("eyJ"), "no token value is kept: {stored}");
    core.set_ticket_tab(SecretValue::new("tab-secret"), TabAuthScheme::HmacHex)
        .await
        .unwrap();
    let (status, page, _) = get(hmac).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Printer"), "{page}");

    let _ = core
        .secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await;
    hooks.shutdown();
}
