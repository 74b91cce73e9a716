//! Authentication (401) and authorization (403 variants) rules, error shape, 404s.

mod common;

use common::*;
use mailroom_graph_sandbox::seed::{AccessRight, ApplicationAccessPolicy, DAEMON_APP_ID};
use serde_json::json;

#[tokio::test]
async fn bad_tokens_get_401_with_www_authenticate() {
    let e = env().await;
    for (tok, msg) in [
        (
            "support-expired",
            "Access token has expired or is not yet valid.",
        ),
        ("nonsense", "Access token validation failure."),
        (
            "revoked",
            "Lifetime validation failed, the token is expired.",
        ),
    ] {
        let r = e.get(tok, "me/messages").await;
        assert_eq!(r.status, 401, "{tok}");
        assert_eq!(r.code(), "InvalidAuthenticationToken");
        assert_eq!(r.message(), msg);
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer realm=\"\""));
    }
    let none = e.send(e.http.get(e.url("me/messages"))).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.message(), "Access token is empty.");
    // Error shape: innerError with request-id and date; request-id header matches.
    let inner = &none.body["error"]["innerError"];
    assert_eq!(
        inner["request-id"].as_str(),
        none.header("request-id").as_deref()
    );
    assert!(inner["date"]
        .as_str()
        .unwrap()
        .starts_with("2026-03-02T09:00:00"));
}

#[tokio::test]
async fn delegated_rules() {
    let e = env().await;
    assert_eq!(
        e.get("support", "me").await.body["userPrincipalName"],
        SUPPORT
    );
    assert_eq!(e.get("support", "me/mailFolders/inbox").await.status, 200);
    // Read-only scope cannot PATCH.
    let id = e.sb.messages(SUPPORT)[0].id.clone();
    let r = e
        .patch(
            "support-readonly",
            &format!("me/messages/{id}"),
            json!({"isRead": true}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "ErrorAccessDenied");
    assert_eq!(
        r.message(),
        "Access is denied. Check credentials and try again."
    );
    // Megan has FullAccess + SendAs on helpdesk; Alex has the scopes but no grant.
    assert_eq!(
        e.get(
            "megan",
            &format!("users/{HELPDESK}/mailFolders('Inbox')/messages")
        )
        .await
        .status,
        200
    );
    let r = e
        .get(
            "alex",
            &format!("users/{HELPDESK}/mailFolders('Inbox')/messages"),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "ErrorAccessDenied"));
    let send = json!({"message": {"subject": "hi", "body": {"contentType": "Text", "content": "x"}, "toRecipients": [{"emailAddress": {"address": "pat@fabrikam.test"}}]}});
    assert_eq!(
        e.post("megan", &format!("users/{HELPDESK}/sendMail"), send.clone())
            .await
            .status,
        202
    );
    let r = e
        .post("alex", &format!("users/{HELPDESK}/sendMail"), send.clone())
        .await;
    assert_eq!((r.status, r.code()), (403, "ErrorSendAsDenied"));
    // Support has no .Shared grant on Megan's mailbox either.
    let r = e.get("support", "users/megan@contoso.test/messages").await;
    assert_eq!(r.status, 403);
    // Reading another user's profile needs User.ReadBasic.All.
    let r = e.get("support", "users/megan@contoso.test").await;
    assert_eq!((r.status, r.code()), (403, "Authorization_RequestDenied"));
    assert_eq!(
        e.get(
            "support",
            &format!("users/{}", mailroom_graph_sandbox::seed::SUPPORT_USER_ID)
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn app_only_rules_and_access_policy() {
    let e = env().await;
    let r = e.get("daemon", "me/messages").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.message(),
        "/me request is only valid with delegated authentication flow."
    );
    // A new tenant restricts nothing: the application reads every mailbox, the canary too.
    for open in [
        SUPPORT,
        HELPDESK,
        mailroom_graph_sandbox::seed::CANARY_MAILBOX,
    ] {
        let r = e.get("daemon", &format!("users/{open}/messages")).await;
        assert_eq!(r.status, 200, "{open}");
    }
    assert!(e.sb.access_policies().is_empty());
    e.sb.try_add_access_policy(ApplicationAccessPolicy {
        app_id: DAEMON_APP_ID.into(),
        access_right: AccessRight::RestrictAccess,
        mailboxes: vec![SUPPORT.into(), HELPDESK.into()],
    })
    .unwrap();
    assert_eq!(
        e.get(
            "daemon",
            &format!("users/{SUPPORT}/mailFolders/inbox/messages")
        )
        .await
        .status,
        200
    );
    assert_eq!(
        e.get("daemon", &format!("users/{HELPDESK}/messages"))
            .await
            .status,
        200
    );
    for blocked in [
        "megan@contoso.test",
        "alex@contoso.test",
        mailroom_graph_sandbox::seed::CANARY_MAILBOX,
    ] {
        let r = e.get("daemon", &format!("users/{blocked}/messages")).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.code(), "ErrorAccessDenied");
        assert_eq!(r.message(), "Access to OData is disabled.");
    }
    let r = e.get("noroles", &format!("users/{SUPPORT}/messages")).await;
    assert_eq!(
        r.message(),
        "Access is denied. Check credentials and try again."
    );
    // A policy scope group must resolve.
    let unknown = e.sb.try_add_access_policy(ApplicationAccessPolicy {
        app_id: DAEMON_APP_ID.into(),
        access_right: AccessRight::RestrictAccess,
        mailboxes: vec!["nobody@contoso.test".into()],
    });
    assert_eq!(
        unknown.unwrap_err(),
        "nobody@contoso.test is no mailbox of the tenant"
    );
    // DenyAccess policies block only the listed mailboxes.
    e.sb.clear_access_policies(DAEMON_APP_ID);
    e.sb.add_access_policy(ApplicationAccessPolicy {
        app_id: DAEMON_APP_ID.into(),
        access_right: AccessRight::DenyAccess,
        mailboxes: vec![SUPPORT.into()],
    });
    assert_eq!(
        e.get("daemon", "users/megan@contoso.test/messages")
            .await
            .status,
        200
    );
    assert_eq!(
        e.get("daemon", &format!("users/{SUPPORT}/messages"))
            .await
            .message(),
        "Access to OData is disabled."
    );
    // App-only cannot read user profiles without User.Read.All.
    assert_eq!(
        e.get("daemon", &format!("users/{HELPDESK}")).await.status,
        403
    );
}

#[tokio::test]
async fn not_found_variants() {
    let e = env().await;
    let r = e.get("daemon", "users/nobody@contoso.test/messages").await;
    assert_eq!((r.status, r.code()), (404, "ErrorInvalidUser"));
    let r = e
        .get(
            "support",
            "me/messages/AAMkADAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "ErrorItemNotFound"));
    assert_eq!(
        r.message(),
        "The specified object was not found in the store."
    );
    let r = e.get("support", "me/messages/12345").await;
    assert_eq!((r.status, r.code()), (400, "ErrorInvalidIdMalformed"));
    let r = e.get("support", "me/mailFolders/nosuch").await;
    assert_eq!(r.status, 404);
    let r = e.get("support", "me/bogus").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn the_users_collection_pages_and_needs_a_directory_permission() {
    let e = env().await;
    // Mail permissions alone do not list the directory.
    let r = e.get("daemon", "users").await;
    assert_eq!((r.status, r.code()), (403, "Authorization_RequestDenied"));
    // Delegated: User.Read is the signed-in user's own object only.
    assert_eq!(e.get("support-readonly", "users").await.status, 403);

    let first = e
        .get(
            "directory",
            "users?$top=2&$select=id,userPrincipalName,proxyAddresses",
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let page = first.body["value"].as_array().unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["userPrincipalName"], SUPPORT);
    assert_eq!(page[0]["proxyAddresses"][0], format!("SMTP:{SUPPORT}"));
    assert!(
        page[0].get("displayName").is_none(),
        "only what is selected"
    );
    let next = first.body["@odata.nextLink"].as_str().unwrap();
    assert!(next.contains("%24skiptoken="), "{next}");
    let mut seen: Vec<String> = page
        .iter()
        .map(|u| u["userPrincipalName"].as_str().unwrap().to_string())
        .collect();
    let mut link = Some(next.to_string());
    while let Some(url) = link {
        let r = e.get("directory", &url).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for u in r.body["value"].as_array().unwrap() {
            seen.push(u["userPrincipalName"].as_str().unwrap().to_string());
        }
        link = r.body["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(
        seen,
        [
            SUPPORT,
            "megan@contoso.test",
            "alex@contoso.test",
            HELPDESK,
            mailroom_graph_sandbox::seed::CANARY_MAILBOX
        ]
    );
    let bad = e.get("directory", "users?$top=1000").await;
    assert_eq!((bad.status, bad.code()), (400, "Request_BadRequest"));
}
