//! The app shell through the real window: it starts, every navigation area opens, and each
//! shows an empty state that says what to do next.

mod support;

use mailroom_store::{Cloud, CredentialKind, MailboxMethod, NewMailbox, Store};
use support::Session;

#[tokio::test]
async fn first_start_shows_the_add_mailbox_empty_state() {
    Session::start()
        .await
        .run("first_start", async |s| {
            let title = s.client.title().await.unwrap();
            assert_eq!(title, "Mailroom");
            let empty = s.text("#empty-mailboxes").await;
            assert!(empty.contains("Connect your first mailbox"), "{empty}");
            let hidden = s
                .find("#mailbox-list-empty")
                .await
                .attr("hidden")
                .await
                .unwrap();
            assert_eq!(hidden, None, "the sidebar says there are no mailboxes");
            s.find("#empty-add-mailbox").await.click().await.unwrap();
            assert!(s.text("#add-mailbox-view").await.contains("Add a mailbox"));
        })
        .await;
}

#[tokio::test]
async fn monitoring_and_integration_open_with_their_empty_states() {
    Session::start()
        .await
        .run("service_views", async |s| {
            s.find("#nav-monitoring").await.click().await.unwrap();
            // (Read once it has its text: the view fills in after the click.)
            s.wait_text("#empty-monitoring", "Add a mailbox first")
                .await;
            s.find("#nav-integration").await.click().await.unwrap();
            // No PSA yet: the wizard opens on its first step, the connection form, with the
            // agent step's instructions (and the permissions Mailroom needs) below it.
            s.find("#psa-form").await;
            let connection = s.find("#step-connection").await;
            assert_eq!(
                connection.attr("data-state").await.unwrap().as_deref(),
                Some("unchecked")
            );
            s.wait_text("#step-agent", "Is an API-only Agent").await;
            let permissions = s.text("#permissions").await;
            assert!(permissions.contains("edit:tickets"), "{permissions}");
            assert!(permissions.contains("admin optional"), "{permissions}");
        })
        .await;
}

#[tokio::test]
async fn a_mailbox_has_incoming_contact_imports_and_inbound_log_tabs() {
    let session = Session::start_with(|dir| async move {
        let store = Store::open(dir.join(mailroom_store::DATABASE_FILE))
            .await
            .unwrap();
        store
            .add_mailbox(&NewMailbox {
                name: "Helpdesk".into(),
                method: MailboxMethod::Scan,
                cloud: Cloud::Global,
                authority_url: None,
                graph_url: None,
                tenant_id: "6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab".into(),
                client_id: "c0ffee00-0000-4000-8000-000000000001".into(),
                credential_kind: CredentialKind::Public,
                shared_mailbox: Some("helpdesk@contoso.test".into()),
                mailbox_address: None,
            })
            .await
            .unwrap();
        store.close().await;
    })
    .await;
    session
        .run("mailbox_tabs", async |s| {
            // The first view is the dashboard, with a card for the mailbox.
            s.wait_text("#mailbox-cards", "Helpdesk").await;
            let card = s.text("[data-card='Helpdesk']").await;
            assert!(card.contains("Not connected"), "{card}");
            s.find("[data-mailbox='Helpdesk']")
                .await
                .click()
                .await
                .unwrap();
            assert!(s.text("#incoming-panel").await.contains("Not connected"));
            s.find("#tab-contacts").await.click().await.unwrap();
            s.wait_text("#contacts-permission", "Contacts.Read.Shared")
                .await;
            s.find("#tab-log").await.click().await.unwrap();
            assert!(s
                .text("#empty-inbound-log")
                .await
                .contains("No email processed yet"));
            s.find("#tab-incoming").await.click().await.unwrap();
            assert!(s.text("#incoming-panel").await.contains("Authorize"));
        })
        .await;
}

#[tokio::test]
async fn the_webhook_receiver_settings_are_validated_and_kept() {
    Session::start()
        .await
        .run("receiver_settings", async |s| {
            s.find("#nav-monitoring").await.click().await.unwrap();
            let url = s.find("#receiver-url").await;
            url.send_keys("http://hooks.example.com").await.unwrap();
            s.find("#receiver-save").await.click().await.unwrap();
            s.wait_text("#receiver-error", "must be an https:// URL")
                .await;

            url.clear().await.unwrap();
            url.send_keys("https://hooks.example.com/mailroom")
                .await
                .unwrap();
            s.find("#receiver-port")
                .await
                .send_keys("48000")
                .await
                .unwrap();
            // Issue 23 #1: the fallback scan interval, in minutes.
            s.find("#receiver-fallback")
                .await
                .send_keys("5")
                .await
                .unwrap();
            s.find("#receiver-save").await.click().await.unwrap();
            s.wait_text("#toast", "Receiver settings saved").await;

            // Leave and come back: the values come from the store.
            s.find("#nav-integration").await.click().await.unwrap();
            s.find("#nav-monitoring").await.click().await.unwrap();
            let start = std::time::Instant::now();
            loop {
                let value = s.find("#receiver-url").await.prop("value").await.unwrap();
                if value.as_deref() == Some("https://hooks.example.com/mailroom") {
                    break;
                }
                assert!(
                    start.elapsed().as_secs() < 10,
                    "saved URL not shown: {value:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let port = s.find("#receiver-port").await.prop("value").await.unwrap();
            assert_eq!(port.as_deref(), Some("48000"));
            let fallback = s
                .find("#receiver-fallback")
                .await
                .prop("value")
                .await
                .unwrap();
            assert_eq!(fallback.as_deref(), Some("5"));
        })
        .await;
}
