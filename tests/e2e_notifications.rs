//! Error notifications through the real window, on the sandbox tenant (issue 12): Monitoring
//! lists the PSA's agents; an agent and the sending mailbox chosen, *Send a test digest* sends
//! one email to that agent, which the outbound log shows as sent.

mod support;

use support::Session;

#[tokio::test]
async fn a_test_digest_goes_to_the_chosen_agent_and_shows_in_the_outbound_log() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("notifications", async |s| {
            s.find("#nav-monitoring").await.click().await.unwrap();
            s.wait_text("#notify-agents", "@").await;
            s.client
                .execute(
                    "document.querySelector('#notify-agents input[name=notify-agent]').click();
                     const from = document.getElementById('notify-from');
                     from.value = from.options[1].value;",
                    vec![],
                )
                .await
                .unwrap();
            s.find("#notify-test").await.click().await.unwrap();
            s.wait_text(".toast", "Test digest sent to 1 agent(s).")
                .await;
            let start = std::time::Instant::now();
            loop {
                let rows = s.text("#outbound-rows").await;
                if rows.contains("Mailroom: test notification") && rows.contains("sent") {
                    break;
                }
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(20),
                    "not in the outbound log: {rows}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            s.client
                .execute(
                    "document.getElementById('monitoring-notifications').scrollIntoView();",
                    vec![],
                )
                .await
                .unwrap();
            s.screenshot("notifications").await;
            // Kept: after a reload the agent is still chosen.
            s.reload().await;
            s.find("#nav-monitoring").await.click().await.unwrap();
            s.wait_text("#notify-agents", "@").await;
            let checked = s
                .client
                .execute(
                    "return document.querySelectorAll('#notify-agents input:checked').length;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(checked.as_i64(), Some(1));
        })
        .await;
}
