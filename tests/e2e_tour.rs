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

            s.client
                .execute("location.hash = '#/monitoring';", vec![])
                .await
                .unwrap();
            s.wait_text("#engine-status", "Support").await;
            let status = s.text("#engine-status").await;
            assert!(!status.contains("Not processing"), "{status}");
            s.screenshot("tour-4-monitoring").await;
        })
        .await;
}
