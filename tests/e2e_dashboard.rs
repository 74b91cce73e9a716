//! The home dashboard through the real window, on the sandbox tenant (issue 14): a card per
//! sandbox mailbox whose totals match the mailbox's inbound log, the two charts drawn, and the
//! log's *Export CSV* writing the filtered rows. Saves a screenshot of the view.

mod support;

use std::time::{Duration, Instant};

use support::Session;

#[tokio::test]
async fn the_dashboard_shows_each_mailbox_with_counts_that_match_its_log() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("dashboard", async |s| {
            s.wait_text("#mailbox-cards", "Support").await;
            // Support's seeded inbox is processed: wait until its card counts some, then
            // compare with its log's own counts.
            let deadline = Instant::now() + Duration::from_secs(60);
            let processed = loop {
                s.reload().await;
                s.wait_text("#mailbox-cards", "Support").await;
                let n: u64 = s
                    .text("[data-card='Support'] [data-count='processed'] .count-n")
                    .await
                    .trim()
                    .parse()
                    .unwrap();
                let pending: u64 = s
                    .text("[data-card='Support'] [data-count='pending'] .count-n")
                    .await
                    .trim()
                    .parse()
                    .unwrap();
                if n > 0 && pending == 0 {
                    break n;
                }
                assert!(Instant::now() < deadline, "Support's mail is processed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let charts = s
                    .client
                    .execute(
                        "return [document.querySelectorAll('#chart-hourly canvas, #chart-daily canvas, #chart-requests canvas').length, document.querySelector('.charts').textContent];",
                        vec![],
                    )
                    .await
                    .unwrap();
                if charts[0] == serde_json::json!(3) {
                    break;
                }
                assert!(Instant::now() < deadline, "the three charts are drawn: {charts}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(s.text("#store-size").await.contains("MB"));
            // The Webhooks mailbox names when its Graph subscription is renewed by.
            s.wait_text("[data-card='Helpdesk (shared)'] [data-subscription]", "renewed before")
                .await;
            // The PSA card: reachable, with the rate limit's headroom once mail was processed.
            s.wait_text("#psa-status", "Reachable").await;
            let headroom = s.text("#psa-headroom").await;
            assert!(headroom.contains("of 300 requests left"), "{headroom}");
            // Retention: bodies kept longer than their attempts is refused and says why; a
            // valid change is saved and read back.
            s.wait_text("#retention-form", "Keep").await;
            let set = |bodies: &str, attempts: &str| {
                format!(
                    "document.querySelector('#retention-bodies').value = '{bodies}';                      document.querySelector('#retention-attempts').value = '{attempts}';                      document.querySelector('#retention-save').click(); return true;"
                )
            };
            s.client.execute(&set("90", "60"), vec![]).await.unwrap();
            s.wait_text("#retention-error", "longer").await;
            s.client.execute(&set("14", "90"), vec![]).await.unwrap();
            s.wait_text("#toast", "Retention saved").await;
            s.reload().await;
            s.wait_text("#retention-form", "Keep").await;
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let values = s
                    .client
                    .execute(
                        "return [document.querySelector('#retention-bodies').value, document.querySelector('#retention-attempts').value];",
                        vec![],
                    )
                    .await
                    .unwrap();
                if values == serde_json::json!(["14", "90"]) {
                    break;
                }
                assert!(Instant::now() < deadline, "the saved retention is read back: {values}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            s.screenshot("dashboard").await;
            // Batched writes: folded under their summary; a change is saved, summarised and
            // read back.
            s.wait_text("#batching-summary", "up to 20 per request").await;
            s.client
                .execute(
                    "document.querySelector('#batching-summary').click();                      document.querySelector('#batching-records').value = '5';                      document.querySelector('#batching-wait').value = '100';                      document.querySelector('#batching-save').click(); return true;",
                    vec![],
                )
                .await
                .unwrap();
            s.wait_text("#toast", "Batching saved").await;
            s.wait_text("#batching-summary", "up to 5 per request, waiting at most 100 ms")
                .await;
            s.client
                .execute(
                    "document.querySelector('#batching').scrollIntoView({block: 'end', behavior: 'instant'}); return true;",
                    vec![],
                )
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            s.screenshot("dashboard-batching").await;
            s.reload().await;
            s.wait_text("#batching-summary", "up to 5 per request").await;
            let total_text = s.text("[data-card='Support'] [data-total]").await;
            let total: u64 = total_text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a total: {total_text}"));
            assert!(total >= processed);

            // The card's count leads to the mailbox's log, whose processed count is the same.
            s.find("[data-card='Support'] [data-count='processed']")
                .await
                .click()
                .await
                .unwrap();
            let chip = s
                .wait_text("#log-counts [data-count='processed']", ":")
                .await;
            assert!(
                chip.ends_with(&format!(": {total}")),
                "the log counts {chip}, the card {total} in all ({processed} in the last 24 hours)"
            );

            // Export CSV writes the rows under the filter: the processed ones, every page.
            s.client
                .execute(
                    "const select = document.getElementById('log-status'); select.value = 'processed'; select.dispatchEvent(new Event('change'));",
                    vec![],
                )
                .await
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let csv_path = dir.path().join("processed.csv");
            s.find("#log-export").await.click().await.unwrap();
            s.answer_native_dialog("Export the inbound log", &csv_path, true)
                .await;
            s.wait_text("#toast", &format!("Exported {total} emails"))
                .await;
            let csv = std::fs::read_to_string(&csv_path).expect("the CSV was written where chosen");
            let lines: Vec<&str> = csv.lines().collect();
            assert!(lines[0].starts_with("received_at,mailbox,from_address"), "{csv}");
            assert_eq!(lines.len() as u64, total + 1, "{csv}");
            assert!(
                lines[1..].iter().all(|l| l.contains(",Support,") && l.contains(",processed,")),
                "{csv}"
            );

            // The keyboard: ↓ to the second row, Enter opens it, Esc closes it and the focus
            // goes back to its row.
            let key = |k: &str| {
                format!(
                    "document.activeElement.dispatchEvent(new KeyboardEvent('keydown', {{key: '{k}', bubbles: true}}));"
                )
            };
            let script = format!(
                "document.querySelector('#log-rows tr.log-row').focus(); {} const second = document.activeElement.dataset.email; {} return second;",
                key("ArrowDown"),
                key("Enter")
            );
            let second = s.client.execute(&script, vec![]).await.unwrap();
            let second = second.as_str().unwrap().to_string();
            s.wait_text("#log-details-slot", "Attempt").await;
            s.client
                .execute(&key("Escape"), vec![])
                .await
                .unwrap();
            let focused = s
                .client
                .execute(
                    "return [document.querySelector('#log-details-slot').childElementCount, document.activeElement.dataset.email];",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(focused, serde_json::json!([0, second]));
        })
        .await;
}
