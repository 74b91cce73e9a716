//! What the guides only advise, checked by *Test connection* (issue 25): the blast radius of a
//! Webhooks mailbox's application, read through a canary mailbox the admin names — refused
//! with Graph's documented answer for an Application Access Policy (green), readable (red, with
//! both remedies), unnamed or not a mailbox (not checked, with what to do). Needs a Secret
//! Service.

mod common;

use common::*;
use mailroom_engine::connect::checks::MailboxCheck;
use mailroom_graph_sandbox::seed::DAEMON_APP_ID;

async fn blast_radius(core: &mailroom_engine::Core, mailbox_id: &str) -> MailboxCheck {
    let test = core.test_connection(mailbox_id).await.unwrap();
    test.checks
        .into_iter()
        .find(|c| c.id == "blast_radius")
        .expect("a Webhooks mailbox has the check")
}

#[tokio::test]
async fn the_application_blast_radius_is_read_through_a_canary_mailbox() {
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;

    let unnamed = blast_radius(&core, &h.mailbox.id).await;
    assert_eq!(unnamed.state, "not_checked");
    assert!(unnamed.fix.unwrap().contains("canary"));

    // Bad input: not an address; the processed mailbox itself.
    let bad = core
        .set_canary_address(&h.mailbox.id, Some("megan at contoso"))
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("is not an email address"), "{bad}");
    let own = core
        .set_canary_address(&h.mailbox.id, Some(SUPPORT))
        .await
        .unwrap_err();
    assert!(own.to_string().contains("another mailbox"), "{own}");

    // The seeded tenant restricts the application to Support and Helpdesk: Megan is out of
    // reach, as Graph says with its documented ErrorAccessDenied.
    core.set_canary_address(&h.mailbox.id, Some("megan@contoso.test"))
        .await
        .unwrap();
    let restricted = blast_radius(&core, &h.mailbox.id).await;
    assert_eq!(restricted.state, "ok", "{restricted:?}");
    assert!(restricted.detail.contains("Restricted"), "{restricted:?}");
    assert!(restricted.request_id.is_some());

    // The policy lifted: the application reads every mailbox — red, with both remedies.
    h.sb.graph().clear_access_policies(DAEMON_APP_ID);
    let open = blast_radius(&core, &h.mailbox.id).await;
    assert_eq!(open.state, "failed", "{open:?}");
    assert!(
        open.detail.contains("every mailbox in your tenant"),
        "{open:?}"
    );
    let fix = open.fix.unwrap();
    assert!(
        fix.contains("New-ApplicationAccessPolicy -AppId c0ffee00-0000-4000-8000-000000000003"),
        "{fix}"
    );
    assert!(
        fix.contains("Test-ApplicationAccessPolicy -Identity megan@contoso.test"),
        "{fix}"
    );
    assert!(fix.contains("New-ManagementRoleAssignment"), "{fix}");

    // A canary that is no mailbox of the tenant is said to be so.
    core.set_canary_address(&h.mailbox.id, Some("nobody@contoso.test"))
        .await
        .unwrap();
    let nobody = blast_radius(&core, &h.mailbox.id).await;
    assert_eq!(nobody.state, "not_checked", "{nobody:?}");
    assert!(
        nobody.detail.contains("is not a mailbox of this tenant"),
        "{nobody:?}"
    );

    // Forgotten again.
    core.set_canary_address(&h.mailbox.id, None).await.unwrap();
    assert_eq!(
        blast_radius(&core, &h.mailbox.id).await.state,
        "not_checked"
    );
}

fn identity_of(test: &mailroom_engine::connect::ConnectionTest) -> MailboxCheck {
    test.checks
        .iter()
        .find(|c| c.id == "identity")
        .cloned()
        .expect("a Webhooks mailbox has the check")
}

#[tokio::test]
async fn the_mailbox_identity_is_checked_when_the_application_may_read_the_directory() {
    // Without a directory permission (the seeded application has none): not checked, and why.
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    let plain = identity_of(&core.test_connection(&h.mailbox.id).await.unwrap());
    assert_eq!(plain.state, "not_checked", "{plain:?}");
    assert!(plain.fix.unwrap().contains("User.Read.All"));

    // With User.Read.All: the address is the user's own.
    let mut seed = empty_seed();
    for app in &mut seed.identity.apps {
        if app.client_id == DAEMON_APP_ID {
            app.application_permissions.push("User.Read.All".into());
        }
    }
    let h = harness_with_seed(default_settings(), seed).await;
    let core = core_for(&h).await;
    let ok = identity_of(&core.test_connection(&h.mailbox.id).await.unwrap());
    assert_eq!(ok.state, "ok", "{ok:?}");
    assert!(ok.detail.contains("Contoso Support"), "{ok:?}");

    // A mailbox address no user of the tenant has.
    let wrong = add_mailbox(
        &h.store,
        &h.sb,
        "Typo",
        "suport@contoso.test",
        default_settings(),
    )
    .await;
    core.secrets()
        .set(
            &mailroom_secrets::SecretKey::new(
                &wrong.id,
                mailroom_secrets::SecretKind::ClientSecret,
            ),
            &mailroom_secrets::SecretValue::new(
                h.sb.tenant().daemon_app.client_secret.clone().unwrap(),
            ),
        )
        .unwrap();
    let typo = identity_of(&core.test_connection(&wrong.id).await.unwrap());
    assert_eq!(typo.state, "failed", "{typo:?}");
    assert!(
        typo.detail.contains("No user or shared mailbox"),
        "{typo:?}"
    );
}

#[tokio::test]
async fn a_sign_in_by_another_account_than_the_named_one_is_refused_and_nothing_stored() {
    use mailroom_secrets::{SecretKey, SecretKind};
    use std::time::Duration;
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    let setup: mailroom_engine::mailboxes::MailboxSetup =
        serde_json::from_value(serde_json::json!({
            "name": "Support scan",
            "method": "scan",
            "cloud": "custom",
            "authority_url": h.sb.authority_url(),
            "graph_url": h.sb.graph_url(),
            "tenant_id": h.sb.tenant().tenant_id,
            "client_id": h.sb.tenant().desktop_app.client_id,
            "credential_kind": "public",
        }))
        .unwrap();
    let mailbox = core.add_mailbox(setup).await.unwrap();
    let bad = core
        .set_expected_account(&mailbox.id, Some("support at contoso"))
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("is not an account name"), "{bad}");
    core.set_expected_account(&mailbox.id, Some(SUPPORT))
        .await
        .unwrap();

    // The sign-in page is pre-filled with the account whose inbox is processed …
    let (url, auth) = core.start_authorization(&mailbox.id).await.unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query.get("login_hint").map(String::as_str), Some(SUPPORT));
    // … and Megan, signing in instead, is refused: nothing stored, not connected.
    mailroom_sandbox::sign_in::complete_sign_in(url.as_str(), "megan@contoso.test")
        .await
        .unwrap();
    let refused = core
        .finish_authorization(auth, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("megan@contoso.test signed in, but Support scan processes the inbox of support@contoso.test"),
        "{refused}"
    );
    assert!(core
        .secrets()
        .get(&SecretKey::new(&mailbox.id, SecretKind::RefreshToken))
        .unwrap()
        .is_none());
    assert_eq!(
        core.store()
            .mailbox(&mailbox.id)
            .await
            .unwrap()
            .connected_account,
        None
    );

    // The right account connects.
    let (url, auth) = core.start_authorization(&mailbox.id).await.unwrap();
    mailroom_sandbox::sign_in::complete_sign_in(url.as_str(), SUPPORT)
        .await
        .unwrap();
    let connected = core
        .finish_authorization(auth, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(connected.account, SUPPORT);
    let _ = core.secrets().delete_owner(&mailbox.id);
}
