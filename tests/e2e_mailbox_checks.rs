//! The mailbox checks through the real window, on the sandbox tenant (issue 25): the Webhooks
//! mailbox comes with the seeded canary (the CFO's mailbox), which nothing keeps out of the
//! application's reach, as in a new tenant. *Check now* shows the blast radius red with both
//! remedies and the time of the check; *Test connection* shows the same finding; a restricting
//! policy applied, *Check now* turns it green. The add-mailbox form refuses a canary that is not
//! an address before saving anything.

mod support;

use std::time::Duration;

use support::Session;

#[tokio::test]
async fn the_incoming_tab_shows_the_safety_checks_with_the_time_of_the_last_check() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("mailbox-checks", async |s| {
            s.find("[data-mailbox='Helpdesk (shared)']")
                .await
                .click()
                .await
                .unwrap();
            s.wait_text("#safety-checks", "must not reach").await;
            let canary = s
                .find("#safety-address")
                .await
                .prop("value")
                .await
                .unwrap()
                .unwrap_or_default();
            assert_eq!(canary, "diego@contoso.test");
            s.wait_text("#safety-checked-at", "Not checked yet").await;

            s.find("#safety-check-now").await.click().await.unwrap();
            // The checks read several mailboxes through the sandbox: more than a moment while
            // the engine processes the seeded mail.
            let findings = s
                .wait_text_for(
                    "#safety-check-list",
                    "every mailbox in your tenant",
                    Duration::from_secs(40),
                )
                .await;
            assert!(
                findings.contains("New-ApplicationAccessPolicy"),
                "{findings}"
            );
            assert!(
                findings.contains("New-ManagementRoleAssignment"),
                "{findings}"
            );
            let when = s.wait_text("#safety-checked-at", "Last checked").await;
            assert!(when.contains("next check"), "{when}");
            let state = s
                .find("#safety-check-list [data-check='blast_radius']")
                .await
                .attr("data-state")
                .await
                .unwrap();
            assert_eq!(state.as_deref(), Some("failed"));
            s.client
                .execute(
                    "document.getElementById('safety-checks').scrollIntoView();",
                    vec![],
                )
                .await
                .unwrap();
            s.screenshot("mailbox-checks").await;

            s.find("#test-connection").await.click().await.unwrap();
            s.wait_text("#mailbox-checks", "every mailbox in your tenant")
                .await;

            // The tenant's admin restricts the application (the control API stands in for
            // New-ApplicationAccessPolicy): Check now turns the finding green.
            let control = s.control_url().await;
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let applied = http
                .post(format!("{control}/graph/access-policies"))
                .json(&serde_json::json!({
                    "appId": "c0ffee00-0000-4000-8000-000000000003",
                    "accessRight": "RestrictAccess",
                    "mailboxes": ["support@contoso.test", "helpdesk@contoso.test"],
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(applied.status(), 201);
            s.find("#safety-check-now").await.click().await.unwrap();
            s.wait_text("#safety-check-list", "Restricted").await;

            // The add-mailbox form: a canary that is no address is refused before saving.
            s.find("#add-mailbox").await.click().await.unwrap();
            s.find("#method-webhook").await.click().await.unwrap();
            // The advice beside the form leads to the field of the live check.
            s.find("#access-policy-check-link")
                .await
                .click()
                .await
                .unwrap();
            let focused = s
                .client
                .execute("return document.activeElement.id;", vec![])
                .await
                .unwrap();
            assert_eq!(focused, serde_json::json!("mb-canary"));
            s.find("#mb-canary")
                .await
                .send_keys("the ceo")
                .await
                .unwrap();
            s.find("#mb-name").await.send_keys("Sales").await.unwrap();
            s.find("#mb-tenant")
                .await
                .send_keys("6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab")
                .await
                .unwrap();
            s.find("#mb-client")
                .await
                .send_keys("c0ffee00-0000-4000-8000-000000000003")
                .await
                .unwrap();
            s.find("#mb-secret").await.send_keys("x").await.unwrap();
            s.find("#mb-address")
                .await
                .send_keys("sales@contoso.test")
                .await
                .unwrap();
            s.find("#mb-save").await.click().await.unwrap();
            s.wait_text("#mailbox-form-error", "is not an email address")
                .await;
            s.screenshot("add-mailbox-canary").await;
        })
        .await;
}
