//! The mailbox checks through the real window, on the sandbox tenant (issue 25): the Webhooks
//! mailbox names a canary its application must not reach; *Test connection* shows the blast
//! radius restricted (the seeded Application Access Policy keeps Megan's mailbox out).

mod support;

use support::Session;

#[tokio::test]
async fn a_canary_named_on_the_incoming_tab_is_tried_by_test_connection() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("mailbox-checks", async |s| {
            s.find("[data-mailbox='Helpdesk (shared)']")
                .await
                .click()
                .await
                .unwrap();
            s.wait_text("#safety-checks", "must not reach").await;
            let input = s.find("#safety-address").await;
            input.send_keys("megan@contoso.test").await.unwrap();
            s.find("#safety-save").await.click().await.unwrap();
            s.wait_text(".toast", "Saved.").await;
            s.find("#test-connection").await.click().await.unwrap();
            let checks = s.wait_text("#mailbox-checks", "Restricted").await;
            assert!(checks.contains("megan@contoso.test"), "{checks}");
            s.client
                .execute(
                    "document.getElementById('mailbox-checks').scrollIntoView();",
                    vec![],
                )
                .await
                .unwrap();
            s.screenshot("mailbox-checks").await;
        })
        .await;
}
