//! The outcome of reply actions is picked in the mailbox's Incoming tab from the PSA's own
//! Outcome list (issue 9.1): the sandbox PSA has no "Email Received", so the default shown is
//! the matched "Private Note"; choosing another outcome stores it by id.

mod support;

use support::Session;

#[tokio::test]
async fn the_incoming_tab_offers_the_psa_outcomes_and_saves_the_choice() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("reply_outcome", async |s| {
            s.find("[data-mailbox='Support']").await.click().await.unwrap();
            s.wait_text("#reply-outcome", "Default: Private Note").await;
            let options: String = s
                .client
                .execute(
                    "return [...document.querySelectorAll('#reply-outcome-select option')].map(o => o.value + '=' + o.textContent).join('|');",
                    vec![],
                )
                .await
                .unwrap()
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(!options.contains("Email Received"), "{options}");
            assert!(options.contains("1=Email User"), "{options}");
            assert!(options.contains("7=Private Note (private)"), "{options}");
            s.client
                .execute(
                    "const sel = document.getElementById('reply-outcome-select'); sel.value = '8'; document.getElementById('reply-outcome-save').click();",
                    vec![],
                )
                .await
                .unwrap();
            s.wait_text("#toast", "Outcome for replies saved").await;
            let value = s
                .client
                .execute(
                    "return document.getElementById('reply-outcome-select').value;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(value.as_str(), Some("8"));

            // Issue 23 #6: who sees the reply's action is shown beside the picker and can be
            // set; by default it follows the outcome.
            let follow = s.text("#reply-visibility-select").await;
            assert!(follow.contains("As the outcome says"), "{follow}");
            s.client
                .execute(
                    "const sel = document.getElementById('reply-visibility-select'); sel.value = 'hidden'; sel.dispatchEvent(new Event('change'));",
                    vec![],
                )
                .await
                .unwrap();
            s.wait_text("#toast", "Visibility of replies saved").await;
            let value = s
                .client
                .execute(
                    "return document.getElementById('reply-visibility-select').value;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(value.as_str(), Some("hidden"));
        })
        .await;
}
