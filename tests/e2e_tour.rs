//! A tour of the window in sandbox mode, as a new user takes it: screenshots of each view are
//! saved under `tests/artifacts/tour-*.png` so that the look of the product can be judged (and
//! compared between changes), with the assertions a user would make on the way.

mod support;

use support::Session;

#[tokio::test]
async fn tour_of_the_sandbox_window() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("tour", async |s| {
            s.wait_text("#sandbox-banner", "Nothing leaves this computer")
                .await;
            s.find("#sandbox-send-test").await.click().await.unwrap();
            s.wait_text("#toast", "to support@contoso.test").await;
            s.screenshot("tour-1-start").await;

            s.find("[data-mailbox='Support']")
                .await
                .click()
                .await
                .unwrap();
            s.wait_text("#connection-status", "Connected as").await;
            // The reply-outcome picker loads the PSA's outcomes.
            s.wait_text("#reply-outcome", "Outcome of the action").await;
            let incoming = s.text("#incoming-panel").await;
            assert!(
                !incoming.contains("null") && !incoming.contains("undefined"),
                "no placeholder text leaks into the Incoming tab: {incoming}"
            );
            s.screenshot("tour-2-incoming").await;

            s.client
                .execute(
                    "location.hash = location.hash.replace('/incoming', '/log');",
                    vec![],
                )
                .await
                .unwrap();
            s.wait_text("#log-rows", "processed").await;
            s.screenshot("tour-3-inbound-log").await;
            // The other tabs of a mailbox, and the add-mailbox form.
            s.find("#tab-outbound").await.click().await.unwrap();
            s.find("#outbound-log").await;
            s.screenshot("tour-3b-outbound-log").await;
            s.find("#tab-contacts").await.click().await.unwrap();
            s.wait_text(".view", "Import").await;
            s.screenshot("tour-3c-contact-imports").await;
            s.client
                .execute("location.hash = '#/add-mailbox';", vec![])
                .await
                .unwrap();
            s.find("#mailbox-form").await;
            s.screenshot("tour-3d-add-mailbox").await;

            s.client
                .execute("location.hash = '#/monitoring';", vec![])
                .await
                .unwrap();
            s.wait_text("#engine-status", "Support").await;
            let status = s.text("#engine-status").await;
            assert!(!status.contains("Not processing"), "{status}");
            // Issue 23 #4: the PSA connection's Test connection, each check green.
            s.find("#psa-test").await.click().await.unwrap();
            s.wait_text("#psa-checks", "Reply outcome of Support").await;
            let failed = s
                .client
                .execute(
                    "return [...document.querySelectorAll('#psa-checks [data-ok=\"false\"]')].map(e => e.textContent);",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(failed, serde_json::json!([]), "every PSA check passes in the sandbox");
            s.screenshot("tour-4-monitoring").await;

            // The Integration area: the engine checked every step when it started; the
            // sandbox is connected, so the first steps are green and the ticket tab waits.
            s.find("#nav-integration").await.click().await.unwrap();
            s.wait_text("#step-connection", "Connected").await;
            s.wait_text("#step-agent .pill", "Done").await;
            s.wait_text("#step-tab .pill", "Needs attention").await;
            s.screenshot("tour-6-integration").await;

            // Issue 23 #15: the sign-in is revoked (a password reset); Test connection must
            // turn the page to its sign-in state, not leave "Connected as …" beside the error.
            let control = s.control_url().await;
            let revoked = reqwest::Client::new()
                .post(format!(
                    "{control}/identity/users/support@contoso.test/revoke"
                ))
                .send()
                .await
                .unwrap();
            assert!(revoked.status().is_success());
            s.find("[data-mailbox='Support']")
                .await
                .click()
                .await
                .unwrap();
            s.wait_text("#connection-status", "Connected as").await;
            s.find("#test-connection").await.click().await.unwrap();
            s.wait_text("#sign-in-again", "Sign in again").await;
            s.wait_text("#connection-status", "Not connected").await;
            s.find("#authorize").await;
            s.screenshot("tour-5-sign-in-again").await;
        })
        .await;
}
