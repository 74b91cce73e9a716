//! What the guides only advise, checked by *Test connection* (issue 25): the blast radius of a
//! Webhooks mailbox's application, read through a canary mailbox the admin names — refused
//! with Graph's documented answer for an Application Access Policy (green), readable (red, with
//! both remedies), unnamed or not a mailbox (not checked, with what to do). Needs a Secret
//! Service.

mod common;

use common::*;
use mailroom_engine::connect::checks::MailboxCheck;
use mailroom_graph_sandbox::seed::{CANARY_MAILBOX, DAEMON_APP_ID};

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

    // The seeded tenant, like a new one, restricts nothing: the application reads the
    // seeded canary (the CFO's inbox) — red, with both remedies.
    core.set_canary_address(&h.mailbox.id, Some(CANARY_MAILBOX))
        .await
        .unwrap();
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
        fix.contains("Test-ApplicationAccessPolicy -Identity diego@contoso.test"),
        "{fix}"
    );
    assert!(fix.contains("New-ManagementRoleAssignment"), "{fix}");

    // The admin applies a restricting policy (through the sandbox's control API, as the
    // Exchange cmdlet would): the canary is out of reach, as Graph says with its documented
    // ErrorAccessDenied — green.
    let http = reqwest::Client::new();
    let policies = format!("{}/graph/access-policies", h.sb.control_url());
    let applied = http
        .post(&policies)
        .json(&serde_json::json!({
            "appId": DAEMON_APP_ID,
            "accessRight": "RestrictAccess",
            "mailboxes": [SUPPORT, HELPDESK],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(applied.status(), 201);
    let restricted = blast_radius(&core, &h.mailbox.id).await;
    assert_eq!(restricted.state, "ok", "{restricted:?}");
    assert!(restricted.detail.contains("Restricted"), "{restricted:?}");
    assert!(restricted.request_id.is_some());

    // Lifted again: red again.
    let lifted = http
        .delete(format!("{policies}/{DAEMON_APP_ID}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lifted.status(), 204);
    assert_eq!(blast_radius(&core, &h.mailbox.id).await.state, "failed");

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

/// A scan mailbox (delegated sign-in with the sandbox's desktop app) named `name`.
async fn add_scan_mailbox(
    core: &mailroom_engine::Core,
    h: &Harness,
    name: &str,
) -> mailroom_store::Mailbox {
    let setup: mailroom_engine::mailboxes::MailboxSetup =
        serde_json::from_value(serde_json::json!({
            "name": name,
            "method": "scan",
            "cloud": "custom",
            "authority_url": h.sb.authority_url(),
            "graph_url": h.sb.graph_url(),
            "tenant_id": h.sb.tenant().tenant_id,
            "client_id": h.sb.tenant().desktop_app.client_id,
            "credential_kind": "public",
        }))
        .unwrap();
    core.add_mailbox(setup).await.unwrap()
}

/// The sandbox daemon app's client secret, in the keyring for mailbox `id`.
async fn give_daemon_secret(core: &mailroom_engine::Core, h: &Harness, id: &str) {
    core.secrets()
        .set(
            &mailroom_secrets::SecretKey::new(id, mailroom_secrets::SecretKind::ClientSecret),
            &mailroom_secrets::SecretValue::new(
                h.sb.tenant().daemon_app.client_secret.clone().unwrap(),
            ),
        )
        .await
        .unwrap();
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
    let test = core.test_connection(&h.mailbox.id).await.unwrap();
    let ok = identity_of(&test);
    assert_eq!(ok.state, "ok", "{ok:?}");
    assert!(ok.detail.contains("is the user Contoso Support"), "{ok:?}");

    // No canary named, but the application may read the directory: a few other mailboxes
    // are sampled instead, and named.
    let sampled = test
        .checks
        .iter()
        .find(|c| c.id == "blast_radius")
        .unwrap()
        .clone();
    assert_eq!(sampled.state, "failed", "{sampled:?}");
    assert!(
        sampled
            .detail
            .contains("sampled from the directory: megan@contoso.test, alex@contoso.test, helpdesk@contoso.test"),
        "{sampled:?}"
    );
    // Helpdesk, served by Mailroom with the same application, is in its reach on purpose: a
    // policy for both keeps the others out, and Helpdesk is no longer sampled.
    add_mailbox(&h.store, &h.sb, "Helpdesk", HELPDESK, default_settings()).await;
    restrict_daemon_to_support(&h.sb);
    let restricted = blast_radius(&core, &h.mailbox.id).await;
    assert_eq!(restricted.state, "ok", "{restricted:?}");
    assert!(
        restricted.detail.contains(
            "reading megan@contoso.test, alex@contoso.test, diego@contoso.test was refused"
        ),
        "{restricted:?}"
    );
    assert!(restricted.detail.contains("sampled from the directory"));

    // A shared mailbox is named as such.
    let helpdesk = h.store.mailboxes().await.unwrap();
    let helpdesk = helpdesk.iter().find(|m| m.name == "Helpdesk").unwrap();
    give_daemon_secret(&core, &h, &helpdesk.id).await;
    let shared = identity_of(&core.test_connection(&helpdesk.id).await.unwrap());
    assert!(
        shared
            .detail
            .contains("is the shared mailbox Contoso Helpdesk"),
        "{shared:?}"
    );

    // A mailbox address no user of the tenant has.
    let wrong = add_mailbox(
        &h.store,
        &h.sb,
        "Typo",
        "suport@contoso.test",
        default_settings(),
    )
    .await;
    give_daemon_secret(&core, &h, &wrong.id).await;
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
    let mailbox = add_scan_mailbox(&core, &h, "Support scan").await;
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
        .await
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
    let _ = core.secrets().delete_owner(&mailbox.id).await;
}

#[tokio::test]
async fn the_checks_are_recorded_and_run_again_once_a_day() {
    use chrono::{Duration, Utc};
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    core.set_canary_address(&h.mailbox.id, Some(CANARY_MAILBOX))
        .await
        .unwrap();
    let never = core.mailbox_checks(&h.mailbox.id).await.unwrap();
    assert_eq!((never.checked_at, never.checks.len()), (None, 0));

    // Check now: recorded, with the time of the next re-check.
    h.store
        .set_mailbox_connection(&h.mailbox.id, Some(SUPPORT))
        .await
        .unwrap();
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
    let first = core.check_mailbox(&h.mailbox.id, now).await.unwrap();
    assert_eq!(first.checked_at, Some(now));
    assert_eq!(first.next_check_at, Some(now + Duration::hours(24)));
    let ids: Vec<&str> = first.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["identity", "blast_radius"]);
    let stored = core.mailbox_checks(&h.mailbox.id).await.unwrap();
    assert_eq!(stored.checks, first.checks);

    // Within the day nothing is due; a day on, the re-check runs and hands back what is red.
    assert!(core
        .recheck_due_mailboxes(now + Duration::hours(23))
        .await
        .unwrap()
        .is_empty());
    let later = now + Duration::hours(24);
    let red = core.recheck_due_mailboxes(later).await.unwrap();
    assert_eq!(red.len(), 1, "{red:?}");
    assert_eq!(red[0].1.id, "blast_radius");
    assert_eq!(
        core.mailbox_checks(&h.mailbox.id).await.unwrap().checked_at,
        Some(later)
    );

    // Restricted since: the next day's re-check is green and says so.
    restrict_daemon_to_support(&h.sb);
    let next = later + Duration::hours(24);
    assert!(core.recheck_due_mailboxes(next).await.unwrap().is_empty());
    let green = core.mailbox_checks(&h.mailbox.id).await.unwrap();
    assert_eq!(green.checked_at, Some(next));
    assert!(green
        .checks
        .iter()
        .any(|c| c.id == "blast_radius" && c.state == "ok"));
}

#[tokio::test]
async fn a_scan_mailbox_says_who_signs_in() {
    use std::time::Duration;
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    let mailbox = add_scan_mailbox(&core, &h, "Megan's inbox").await;
    let sign_in = |checks: mailroom_engine::connect::checks::MailboxChecks| {
        checks
            .checks
            .into_iter()
            .find(|c| c.id == "sign_in")
            .unwrap()
    };
    let now = chrono::Utc::now();
    let nobody = sign_in(core.check_mailbox(&mailbox.id, now).await.unwrap());
    assert_eq!(nobody.state, "not_checked");
    assert!(
        nobody.detail.contains("whoever completes the sign-in"),
        "{nobody:?}"
    );

    // Megan signs in before anyone is named; naming someone else afterwards turns it red.
    let (url, auth) = core.start_authorization(&mailbox.id).await.unwrap();
    mailroom_sandbox::sign_in::complete_sign_in(url.as_str(), "megan@contoso.test")
        .await
        .unwrap();
    core.finish_authorization(auth, Duration::from_secs(30))
        .await
        .unwrap();
    let unnamed = sign_in(core.check_mailbox(&mailbox.id, now).await.unwrap());
    assert_eq!(unnamed.state, "not_checked");
    assert!(unnamed.fix.unwrap().contains("Name megan@contoso.test"));
    core.set_expected_account(&mailbox.id, Some("megan@contoso.test"))
        .await
        .unwrap();
    assert_eq!(
        sign_in(core.check_mailbox(&mailbox.id, now).await.unwrap()).state,
        "ok"
    );
    core.set_expected_account(&mailbox.id, Some("alex@contoso.test"))
        .await
        .unwrap();
    let wrong = sign_in(core.check_mailbox(&mailbox.id, now).await.unwrap());
    assert_eq!(wrong.state, "failed", "{wrong:?}");
    assert!(
        wrong.detail.contains("megan@contoso.test is signed in, but the account named for this mailbox is alex@contoso.test"),
        "{wrong:?}"
    );
    let _ = core.secrets().delete_owner(&mailbox.id).await;
}
