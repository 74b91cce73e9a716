//! Mailbox setup through the real window: the guidance follows the chosen method, mistakes get
//! a specific message, a saved mailbox appears in the list, and removing it clears it.

mod support;

use support::Session;

async fn fill(s: &Session, css: &str, value: &str) {
    let el = s.find(css).await;
    el.clear().await.unwrap();
    el.send_keys(value).await.unwrap();
}

#[tokio::test]
async fn add_a_webhook_mailbox_then_remove_it() {
    Session::start()
        .await
        .run("mailbox_setup", async |s| {
            s.find("#add-mailbox").await.click().await.unwrap();
            // Mailbox scan is the default: delegated permissions, desktop redirect guidance.
            let perms = s.text("#required-permissions").await;
            assert!(perms.contains("offline_access"), "{perms}");
            let steps = s.text("#registration-steps").await;
            assert!(steps.contains("Mobile and desktop applications"), "{steps}");

            s.find("#method-webhook").await.click().await.unwrap();
            let perms = s.text("#required-permissions").await;
            assert!(!perms.contains("offline_access"), "{perms}");
            assert!(s
                .text("#access-policy-advice")
                .await
                .contains("RestrictAccess"));

            fill(s, "#mb-name", "Support").await;
            fill(s, "#mb-tenant", "6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab").await;
            fill(s, "#mb-client", "not-a-guid").await;
            fill(s, "#mb-secret", "Wq8~e2e.secret").await;
            fill(s, "#mb-address", "support@contoso.test").await;
            s.find("#mb-save").await.click().await.unwrap();
            s.wait_text("#mailbox-form-error", "Application (client) ID")
                .await;
            let code = s
                .find("#mailbox-form-error")
                .await
                .attr("data-code")
                .await
                .unwrap();
            assert_eq!(code.as_deref(), Some("invalid_input"));

            fill(s, "#mb-client", "c0ffee00-0000-4000-8000-000000000003").await;
            s.find("#mb-save").await.click().await.unwrap();
            s.wait_text(".view-header h1", "Support").await;
            s.find("[data-mailbox='Support']").await;
            s.wait_text("#incoming-panel", "Create a subscription")
                .await;

            // Issue 23 #11: Remove is in the "More" menu and asks in the app itself, naming what
            // is lost; Cancel keeps everything.
            s.find("#mailbox-menu-button").await.click().await.unwrap();
            s.find("#remove-mailbox").await.click().await.unwrap();
            let asked = s.wait_text("#confirm-dialog", "Remove Support?").await;
            assert!(asked.contains("keyring"), "{asked}");
            assert!(asked.contains("subscription is cancelled"), "{asked}");
            assert!(asked.contains("inbound log is kept"), "{asked}");
            s.screenshot("remove-mailbox-dialog").await;
            s.find("#confirm-cancel").await.click().await.unwrap();
            assert!(s.text("#mailbox-list").await.contains("Support"));
            let gone = s
                .client
                .execute(
                    "return document.getElementById('confirm-dialog') === null;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(gone, serde_json::json!(true), "the dialog closed");

            s.find("#mailbox-menu-button").await.click().await.unwrap();
            s.find("#remove-mailbox").await.click().await.unwrap();
            s.wait_text("#confirm-dialog", "Remove Support?").await;
            s.find("#confirm-ok").await.click().await.unwrap();
            s.wait_text("#empty-mailboxes", "Connect your first mailbox")
                .await;
        })
        .await;
}
