//! The PSA integration wizard's checks (issue 11), through the PSA's API on the sandbox: each
//! step green on a correct set-up, and red with the precise item and its fix when the PSA is
//! set up wrong (wrong secret, an agent that is not API-only, a missing permission).

mod common;

use common::*;
use mailroom_engine::integration::Step;
use mailroom_engine::{Core, ErrorCode};
use mailroom_sandbox::{Sandbox, SandboxOptions};
use mailroom_secrets::SecretValue;

async fn core() -> (tempfile::TempDir, Core) {
    let dir = tempfile::tempdir().unwrap();
    let service = format!("mailroom-test-{}", uuid::Uuid::new_v4());
    let core = Core::open_with_secrets(
        dir.path(),
        mailroom_secrets::Secrets::with_service(&service),
    )
    .await
    .unwrap();
    (dir, core)
}

async fn connect(core: &Core, sb: &Sandbox, secret: &str) {
    let creds = &sb.tenant().psa;
    core.set_psa_connection(
        &sb.psa_url(),
        &creds.client_id,
        SecretValue::new(secret),
        Some(&creds.tenant),
    )
    .await
    .unwrap();
}

fn item<'a>(
    result: &'a mailroom_engine::integration::StepResult,
    id: &str,
) -> &'a mailroom_engine::integration::CheckItem {
    result
        .items
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("no item {id} in {result:#?}"))
}

#[tokio::test]
async fn the_steps_before_the_tab_are_green_on_a_correct_set_up_and_kept() {
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    let err = core
        .check_integration_step(Step::Connection)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotConfigured);
    let status = core.integration_status().await.unwrap();
    assert!(!status.connected);
    assert!(status.steps.iter().all(|s| s.result.is_none()));

    connect(&core, &sb, &sb.tenant().psa.client_secret.clone()).await;
    let results = core.check_integration().await.unwrap();
    assert!(results[..3].iter().all(|r| r.ok), "{results:#?}");
    // The ticket tab is not set up yet.
    assert_eq!(results[3].step, Step::Tab);
    assert!(!item(&results[3], "secret").ok);
    assert!(item(&results[0], "sign_in").detail.contains("Mailroom API"));
    let agent = &results[1];
    assert!(item(agent, "api_only").ok);
    for scope in [
        "read:tickets",
        "edit:tickets",
        "read:customers",
        "edit:customers",
        "admin",
    ] {
        let permission = item(agent, &format!("scope:{scope}"));
        assert!(permission.ok, "{permission:?}");
        assert!(permission.why.is_some());
    }
    assert!(item(agent, "scope:read:tickets")
        .detail
        .contains("reading Tickets works"));

    // Kept across a restart of the core, and forgotten when another connection is saved.
    let status = core.integration_status().await.unwrap();
    assert!(status.connected);
    assert!(status.steps[..3]
        .iter()
        .all(|s| s.result.as_ref().is_some_and(|r| r.ok)));
    connect(&core, &sb, &sb.tenant().psa.client_secret.clone()).await;
    let status = core.integration_status().await.unwrap();
    assert!(status.steps.iter().all(|s| s.result.is_none()));
}

#[tokio::test]
async fn a_wrong_secret_fails_the_connection_and_the_later_steps_wait_for_it() {
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    connect(&core, &sb, "not-the-secret").await;
    let results = core.check_integration().await.unwrap();
    let sign_in = item(&results[0], "sign_in");
    assert!(!sign_in.ok);
    assert!(
        sign_in
            .fix
            .as_deref()
            .unwrap()
            .contains("Client ID and secret"),
        "{sign_in:?}"
    );
    assert!(!results[0].ok);
    assert!(results[0]
        .summary
        .starts_with("Sign in as the API application"));
    assert_eq!(results[1].step, Step::Agent);
    assert!(!results[1].ok);
    assert_eq!(
        item(&results[1], "connection").fix.as_deref(),
        Some("Fix the connection (step 1) first.")
    );
}

#[tokio::test]
async fn an_agent_that_is_not_api_only_and_a_missing_permission_are_named() {
    let mut seed = empty_seed();
    // The application logs in as Megan Bowen, a licensed agent, and lacks edit:customers and
    // admin.
    seed.halo.applications[0].agent_id = 2;
    seed.halo.applications[0].scopes = vec![
        "read:tickets".into(),
        "edit:tickets".into(),
        "read:customers".into(),
    ];
    let sb = Sandbox::start(SandboxOptions {
        seed: Some(seed),
        ..Default::default()
    })
    .await
    .unwrap();
    let (_dir, core) = core().await;
    connect(&core, &sb, &sb.tenant().psa.client_secret.clone()).await;
    let agent = core.check_integration_step(Step::Agent).await.unwrap();
    assert!(!agent.ok);
    let api_only = item(&agent, "api_only");
    assert!(!api_only.ok);
    assert!(
        api_only
            .detail
            .contains("Megan Bowen is not an API-only agent"),
        "{api_only:?}"
    );
    assert!(api_only
        .fix
        .as_deref()
        .unwrap()
        .contains("Is an API-only Agent"));
    let edit = item(&agent, "scope:edit:customers");
    assert!(!edit.ok && !edit.optional);
    assert!(
        edit.detail
            .contains("read:tickets edit:tickets read:customers"),
        "{edit:?}"
    );
    assert!(edit
        .fix
        .as_deref()
        .unwrap()
        .contains("allow edit:customers"));
    let admin = item(&agent, "scope:admin");
    assert!(!admin.ok && admin.optional);
    assert!(item(&agent, "scope:read:customers").ok);
    assert_eq!(
        agent.summary,
        "The agent is API-only: Megan Bowen is not an API-only agent: it uses a licence and can sign in to the web app"
    );
}

#[tokio::test]
async fn the_scope_step_keeps_existing_ticket_types_and_refuses_others() {
    use mailroom_engine::integration::ScopeSettings;
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    connect(&core, &sb, &sb.tenant().psa.client_secret.clone()).await;
    let view = core.integration_scope().await.unwrap();
    let names: Vec<&str> = view.ticket_types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["Incident", "Service Request", "Problem"]);
    assert_eq!(view.settings, ScopeSettings::default());

    // Nothing chosen: HaloPSA's default type; the tab's types are optional until the tab step.
    let result = core.check_integration_step(Step::Scope).await.unwrap();
    assert!(result.ok, "{result:#?}");
    assert!(item(&result, "default_ticket_type")
        .detail
        .contains("HaloPSA's own default"));
    assert!(!item(&result, "tab_ticket_types").ok);

    let wrong = core
        .set_integration_scope(ScopeSettings {
            default_ticket_type_id: Some(99),
            tab_ticket_type_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), ErrorCode::InvalidInput);
    assert!(wrong.to_string().contains("Service Request (3)"), "{wrong}");
    assert_eq!(
        core.scope_settings().await.unwrap(),
        ScopeSettings::default()
    );

    let result = core
        .set_integration_scope(ScopeSettings {
            default_ticket_type_id: Some(3),
            tab_ticket_type_ids: vec![4, 1, 4],
        })
        .await
        .unwrap();
    assert!(result.items.iter().all(|i| i.ok), "{result:#?}");
    assert_eq!(
        item(&result, "default_ticket_type").detail,
        "Service Request"
    );
    assert_eq!(
        item(&result, "tab_ticket_types").detail,
        "Incident, Problem"
    );
}

/// A mailbox that names no ticket type logs its new tickets with the integration's default.
#[tokio::test]
async fn new_tickets_from_email_take_the_integration_default_ticket_type() {
    let h = harness(default_settings()).await;
    h.store
        .set_setting(
            "integration.scope",
            &serde_json::json!({ "default_ticket_type_id": 4 }),
        )
        .await
        .unwrap();
    let delivered = h.deliver(mail("pat@fabrikam.test", "Pat Smith", "Printer on fire"));
    h.scan().await;
    let tickets = h.ticket_by_message_id(&delivered.internet_message_id);
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["tickettype_id"], 4, "{:#}", tickets[0]);
}

/// The tab step: the secret saved, a tab in HaloPSA pointing at Mailroom's tab URL, and every
/// chosen ticket type allowing it; each missing piece named with where to fix it.
#[tokio::test]
async fn the_tab_step_finds_the_tab_and_the_ticket_types_that_allow_it() {
    use mailroom_engine::integration::ScopeSettings;
    use mailroom_engine::ticket_tab::TabAuthScheme;
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    connect(&core, &sb, &sb.tenant().psa.client_secret.clone()).await;
    core.set_integration_scope(ScopeSettings {
        default_ticket_type_id: None,
        tab_ticket_type_ids: vec![1, 3],
    })
    .await
    .unwrap();
    let url = core.ticket_tab_url().await.unwrap();
    assert!(url.ends_with("/halo/tab"), "{url}");

    let result = core.check_integration_step(Step::Tab).await.unwrap();
    assert!(!result.ok);
    assert!(!item(&result, "secret").ok);
    let tab = item(&result, "psa_tab");
    assert_eq!(tab.detail, format!("No custom tab points at {url}"));
    assert!(tab
        .fix
        .as_deref()
        .unwrap()
        .contains("Send secure URL parameter"));

    core.set_ticket_tab(SecretValue::new("tab-secret"), TabAuthScheme::Jwt)
        .await
        .unwrap();
    // The admin creates the tab in HaloPSA and allows it on Incident only.
    let psa = psa_for(&sb);
    let created: serde_json::Value = psa
        .post_one(
            "Tabs",
            &serde_json::json!({ "name": "Mailroom", "url": url, "sequence": 1 }),
        )
        .await
        .unwrap();
    let tab_id = created["id"].as_i64().unwrap();
    let _: serde_json::Value = psa
        .post_one(
            "TicketType",
            &serde_json::json!({ "id": 1, "allowed_iframe_customtabs": [{ "tickettype_id": 1, "iframetab_id": tab_id, "iframetab_name": "Mailroom" }] }),
        )
        .await
        .unwrap();
    let result = core.check_integration_step(Step::Tab).await.unwrap();
    assert!(
        item(&result, "secret").ok && item(&result, "psa_tab").ok,
        "{result:#?}"
    );
    let types = item(&result, "ticket_types");
    assert_eq!(types.detail, "Not allowed on: Service Request", "{types:?}");
    assert!(!result.ok);

    let _: serde_json::Value = psa
        .post_one(
            "TicketType",
            &serde_json::json!({ "id": 3, "allowall_iframe_customtabs": true }),
        )
        .await
        .unwrap();
    let result = core.check_integration_step(Step::Tab).await.unwrap();
    assert!(result.ok, "{result:#?}");
    // Not opened yet: said, but not a failure of the set-up.
    assert!(item(&result, "requests").optional);
    let _ = core
        .secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await;
}

/// *Create it for me* of the tab step creates the tab and allows it on the chosen ticket types,
/// once: a second run finds and reuses what exists.
#[tokio::test]
async fn create_it_for_me_makes_the_tab_once_and_allows_it_on_the_chosen_types() {
    use mailroom_engine::integration::ScopeSettings;
    use mailroom_engine::ticket_tab::TabAuthScheme;
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    connect(&core, &sb, &sb.tenant().psa.client_secret.clone()).await;
    core.set_integration_scope(ScopeSettings {
        default_ticket_type_id: None,
        tab_ticket_type_ids: vec![1, 4],
    })
    .await
    .unwrap();
    core.set_ticket_tab(SecretValue::new("tab-secret"), TabAuthScheme::Jwt)
        .await
        .unwrap();
    let first = core.create_ticket_tab().await.unwrap();
    assert!(first.ok, "{first:#?}");
    let second = core.create_ticket_tab().await.unwrap();
    assert!(second.ok, "{second:#?}");

    let psa = psa_for(&sb);
    let url = core.ticket_tab_url().await.unwrap();
    let tabs: Vec<_> = psa
        .tabs()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.url.as_deref() == Some(url.as_str()))
        .collect();
    assert_eq!(tabs.len(), 1, "one tab, however often it is run");
    let types = psa.ticket_types().await.unwrap();
    for id in [1, 4] {
        let allowed = types
            .iter()
            .find(|t| t.id == id)
            .and_then(|t| t.allowed_iframe_customtabs.clone())
            .unwrap_or_default();
        assert_eq!(
            allowed
                .iter()
                .filter(|a| a.iframetab_id == tabs[0].id)
                .count(),
            1,
            "type {id}: {allowed:?}"
        );
    }
    let untouched = types.iter().find(|t| t.id == 3).unwrap();
    assert!(untouched
        .allowed_iframe_customtabs
        .clone()
        .unwrap_or_default()
        .is_empty());
    let _ = core
        .secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await;
}

/// The engine checks the integration at start and then periodically: a step that was green and
/// broke since (here the client secret was rotated away) is announced once as an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_breaks_later_is_announced_by_the_periodic_check() {
    use mailroom_engine::engine::{Engine, EngineOptions};
    use mailroom_engine::events::{EngineEvent, EventBus};
    use mailroom_secrets::{SecretKey, SecretKind};
    let sb = sandbox().await;
    let (dir, core) = core().await;
    connect(&core, &sb, &sb.tenant().psa.client_secret.clone()).await;
    assert!(core.check_integration().await.unwrap()[0].ok);

    let lock = mailroom_store::DataDirLock::acquire(dir.path(), "integration test").unwrap();
    let events = EventBus::new();
    let mut rx = events.subscribe();
    let engine = Engine::start(
        core.clone(),
        events,
        &lock,
        EngineOptions {
            webhook_any_port: true,
            integration_check_every: std::time::Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    core.secrets()
        .set(
            &SecretKey::new(
                mailroom_engine::psa_connection::PSA_CONNECTION_ID,
                SecretKind::PsaClientSecret,
            ),
            &SecretValue::new("rotated-away"),
        )
        .await
        .unwrap();
    let broken = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            // A round already under way when the secret changed may announce a later step
            // first; the connection follows in the next round.
            if let Ok(EngineEvent::IntegrationBroken { step, summary, .. }) = rx.recv().await {
                if step == "connection" {
                    break (step, summary);
                }
            }
        }
    })
    .await
    .expect("the broken step is announced");
    assert_eq!(broken.0, "connection");
    assert!(
        broken.1.starts_with("Sign in as the API application"),
        "{}",
        broken.1
    );
    let status = core.integration_status().await.unwrap();
    assert!(!status.steps[0].result.as_ref().unwrap().ok);
    engine.stop().await;
    let _ = core
        .secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await;
}

/// The resolve action: named exactly, its button, the chosen closed status, hidden from the
/// user; Create it for me makes it (or corrects it) once.
#[tokio::test]
async fn the_resolve_action_is_checked_field_by_field_and_created_once() {
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    connect(&core, &sb, &sb.tenant().psa.client_secret.clone()).await;
    let view = core.integration_resolve().await.unwrap();
    assert!(view
        .statuses
        .iter()
        .any(|s| s.name == "Closed" && s.id == 9));

    let result = core.check_integration_step(Step::Resolve).await.unwrap();
    assert!(!result.ok);
    assert_eq!(item(&result, "status").detail, "None chosen");
    assert!(item(&result, "action")
        .detail
        .contains("No action (outcome) named exactly"));
    assert_eq!(
        core.create_resolve_action().await.unwrap_err().code(),
        ErrorCode::InvalidInput
    );
    assert_eq!(
        core.set_resolve_status(99).await.unwrap_err().code(),
        ErrorCode::InvalidInput
    );

    let result = core.set_resolve_status(9).await.unwrap();
    assert_eq!(item(&result, "status").detail, "Closed");
    let made = core.create_resolve_action().await.unwrap();
    assert!(made.ok, "{made:#?}");
    assert_eq!(item(&made, "new_status").detail, "Closed");
    let again = core.create_resolve_action().await.unwrap();
    assert!(again.ok, "{again:#?}");
    let named = psa_for(&sb)
        .outcomes()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.outcome.as_deref() == Some("Mailroom resolve"))
        .count();
    assert_eq!(named, 1, "created once, however often it runs");
}

#[tokio::test]
async fn the_certificate_is_generated_uploaded_once_and_a_replaced_one_is_named() {
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    connect(&core, &sb, &sb.tenant().psa.client_secret.clone()).await;
    let result = core
        .check_integration_step(Step::Certificate)
        .await
        .unwrap();
    assert!(!result.ok);
    assert_eq!(item(&result, "saved").detail, "No certificate yet");
    assert_eq!(
        core.upload_webhook_certificate().await.unwrap_err().code(),
        ErrorCode::InvalidInput
    );

    // Generated: the PFX opens with the password shown once; the key is in the keyring only.
    let generated = core.generate_webhook_certificate().await.unwrap();
    let cred = mailroom_graph::CertificateCredential::from_pfx(&generated.pfx, &generated.password)
        .unwrap();
    assert_eq!(cred.thumbprint_sha1_hex(), generated.certificate.thumbprint);
    let kept = core.webhook_certificate().await.unwrap().unwrap();
    assert_eq!(kept, generated.certificate);
    assert!(!kept.cert_pem.contains("PRIVATE KEY"));
    let settings_text = serde_json::to_string(&kept).unwrap();
    assert!(!settings_text.contains(&generated.password));
    let result = core
        .check_integration_step(Step::Certificate)
        .await
        .unwrap();
    assert!(item(&result, "saved").ok, "{result:#?}");
    assert!(item(&result, "validity").ok);
    assert_eq!(item(&result, "psa_certificate").detail, "Not uploaded yet");

    // Create it for me: uploaded once, however often it runs; the PSA shows the thumbprint.
    let uploaded = core.upload_webhook_certificate().await.unwrap();
    assert!(uploaded.ok, "{uploaded:#?}");
    assert!(core.upload_webhook_certificate().await.unwrap().ok);
    let in_psa = psa_for(&sb).certificates().await.unwrap();
    assert_eq!(in_psa.len(), 1, "{in_psa:?}");
    assert_eq!(in_psa[0].name.as_deref(), Some("Mailroom"));
    assert_eq!(
        in_psa[0].thumbprint.as_deref(),
        Some(kept.thumbprint.as_str())
    );

    // A new certificate in Mailroom: HaloPSA's "Mailroom" is now another one, named as such;
    // uploading again updates that record instead of adding a second.
    let renewed = core.generate_webhook_certificate().await.unwrap();
    let result = core
        .check_integration_step(Step::Certificate)
        .await
        .unwrap();
    assert!(!result.ok);
    let detail = &item(&result, "psa_certificate").detail;
    assert!(detail.contains("is another certificate"), "{detail}");
    assert!(detail.contains(&kept.thumbprint), "{detail}");
    assert!(core.upload_webhook_certificate().await.unwrap().ok);
    let in_psa = psa_for(&sb).certificates().await.unwrap();
    assert_eq!(in_psa.len(), 1);
    assert_eq!(
        in_psa[0].thumbprint.as_deref(),
        Some(renewed.certificate.thumbprint.as_str())
    );
}

#[tokio::test]
async fn an_imported_pfx_with_a_wrong_password_or_no_key_is_refused_and_the_kept_one_stays() {
    let (_dir, core) = core().await;
    let generated = core.generate_webhook_certificate().await.unwrap();
    let wrong = core
        .import_webhook_certificate(&generated.pfx, "not-the-password")
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), ErrorCode::CertificateInvalid);
    assert!(wrong.to_string().contains("password is wrong"), "{wrong}");
    let garbage = core
        .import_webhook_certificate(b"not a pfx", "x")
        .await
        .unwrap_err();
    assert!(garbage.to_string().contains("PKCS#12"), "{garbage}");
    assert_eq!(
        core.webhook_certificate().await.unwrap(),
        Some(generated.certificate.clone())
    );
    let imported = core
        .import_webhook_certificate(&generated.pfx, &generated.password)
        .await
        .unwrap();
    assert_eq!(imported.thumbprint, generated.certificate.thumbprint);
    assert_eq!(
        imported.origin,
        mailroom_engine::integration::CertificateOrigin::Imported
    );
}

/// Starts a receiver on a free port and points the webhook settings at it (what the engine
/// does when it runs), so the wizard's URLs name it.
async fn receiver(core: &Core, sb: &Sandbox) -> mailroom_engine::webhooks::Webhooks {
    use mailroom_engine::webhooks::{WebhookOptions, WebhookSettings, Webhooks};
    let hooks = Webhooks::start(
        WebhookOptions::default(),
        core.store().clone(),
        core.secrets().clone(),
        sb.clock(),
        None,
    )
    .await
    .expect("receiver starts");
    core.set_webhook_settings(&WebhookSettings {
        port: Some(hooks.local_addr().port()),
        ..Default::default()
    })
    .await
    .unwrap();
    hooks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_psa_webhook_is_created_signed_and_the_end_to_end_test_goes_green_then_red() {
    let sb = sandbox().await;
    let (_dir, core) = core().await;
    connect(&core, &sb, &sb.tenant().psa.client_secret.clone()).await;
    let _hooks = receiver(&core, &sb).await;

    let result = core.check_integration_step(Step::Webhook).await.unwrap();
    assert!(!result.ok);
    assert!(item(&result, "psa_webhook")
        .detail
        .starts_with("No webhook posts to http://127.0.0.1:"));
    assert_eq!(
        core.create_psa_webhook().await.unwrap_err().code(),
        ErrorCode::InvalidInput,
        "the certificate comes first"
    );
    let test = core.check_integration_step(Step::Test).await.unwrap();
    assert_eq!(item(&test, "not_run").detail, "Not run yet");

    core.generate_webhook_certificate().await.unwrap();
    assert!(core.upload_webhook_certificate().await.unwrap().ok);
    let made = core.create_psa_webhook().await.unwrap();
    // Everything but a delivery, which only the test (or a real ticket) brings.
    assert!(made.ok, "{made:#?}");
    assert!(!item(&made, "deliveries").ok && item(&made, "deliveries").optional);
    assert!(core.create_psa_webhook().await.unwrap().ok, "idempotent");
    let hooks_in_psa = psa_for(&sb).webhooks().await.unwrap();
    assert_eq!(hooks_in_psa.len(), 1, "{hooks_in_psa:?}");
    assert_eq!(hooks_in_psa[0].authentication_type, Some(4));
    assert_eq!(
        hooks_in_psa[0].log_retention_policy_days,
        Some(180),
        "HaloPSA keeps its delivery log as long as Mailroom keeps attempts"
    );

    core.set_ticket_tab(SecretValue::new("tab-secret"), Default::default())
        .await
        .unwrap();
    let run = core
        .run_end_to_end_test(mailroom_engine::integration::DELIVERY_WAIT)
        .await
        .unwrap();
    assert!(run.ok, "{run:#?}");
    for id in ["ticket", "delivery", "psa_log", "tab", "cleanup"] {
        assert!(item(&run, id).ok, "{id}: {run:#?}");
    }
    assert!(item(&run, "delivery").detail.contains("verified"));
    let ticket_id: i64 = item(&run, "ticket").detail["Ticket ".len()..]
        .parse()
        .unwrap();
    assert!(
        psa_for(&sb).get_ticket(ticket_id).await.is_err(),
        "the test ticket was deleted"
    );
    // The check keeps the test's result instead of running it again.
    let kept = core.check_integration_step(Step::Test).await.unwrap();
    assert_eq!(kept, run);
    let webhook = core.check_integration_step(Step::Webhook).await.unwrap();
    assert!(item(&webhook, "deliveries").ok, "{webhook:#?}");

    // Broken in the PSA: the webhook switched off, and signing with another certificate.
    let id = hooks_in_psa[0].id.clone().unwrap();
    let _: serde_json::Value = psa_for(&sb)
        .post_one("Webhook", &serde_json::json!({"id": id, "active": false}))
        .await
        .unwrap();
    let result = core.check_integration_step(Step::Webhook).await.unwrap();
    assert!(!result.ok);
    assert_eq!(item(&result, "active").detail, "It is switched off");
    assert!(
        core.create_psa_webhook().await.unwrap().ok,
        "Create it for me mends it"
    );

    // A certificate replaced in Mailroom only: HaloPSA signs with the old one, so the test's
    // delivery is refused and the run names why.
    core.generate_webhook_certificate().await.unwrap();
    let run = core
        .run_end_to_end_test(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!run.ok);
    let delivery = item(&run, "delivery");
    assert!(delivery.detail.contains("refused"), "{delivery:?}");
    assert!(!item(&run, "psa_log").ok, "HaloPSA logged the 401 too");
}
