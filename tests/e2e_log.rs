//! The inbound log as an admin reads it, through the real window on the sandbox tenant
//! (issue 14): a long log keeps only the rows in view in the document; an email opens in a
//! drawer beside the list and the list keeps its scroll position; the drawer's request viewer
//! (headers table, JSON tree, copy buttons); the *Live* tail shows each step of a failing
//! email as it happens, the row turns failed without a reload, and the tail pauses while the
//! admin scrolls up to read. Saves screenshots of the drawer and the tail.

mod support;

use std::time::{Duration, Instant};

use support::Session;

const BULK: usize = 70;
const FAILING: &str = "Invoice portal returns an error page";

async fn deliver(http: &reqwest::Client, control: &str, subject: &str) {
    let mail = serde_json::json!({
        "to": "support@contoso.test",
        "from": "kim@fabrikam.test",
        "from_name": "Kim Lee",
        "subject": subject,
        "body_text": "Details in the attached screenshot.",
    });
    let delivered = http
        .post(format!("{control}/mail/deliver"))
        .json(&mail)
        .send()
        .await
        .unwrap();
    assert!(
        delivered.status().is_success(),
        "{:?}",
        delivered.text().await
    );
}

async fn eval(s: &Session, script: &str) -> serde_json::Value {
    s.client.execute(script, vec![]).await.unwrap()
}

/// Waits until `script` returns true.
async fn wait_until(s: &Session, script: &str, what: &str, limit: Duration) {
    let start = Instant::now();
    while eval(s, script).await != serde_json::json!(true) {
        assert!(start.elapsed() < limit, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn import_now(s: &Session) {
    s.find("#import-now").await.click().await.unwrap();
    s.wait_text("#toast", "Import finished").await;
}

#[tokio::test]
async fn the_log_scrolls_lightly_opens_a_drawer_and_tails_live() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("log", async |s| {
            let control = s.control_url().await;
            let http = reqwest::Client::new();
            for n in 1..=BULK {
                deliver(&http, &control, &format!("Printer queue stuck on floor {n}")).await;
            }
            s.find("[data-mailbox='Support']").await.click().await.unwrap();
            s.find("#tab-log").await.click().await.unwrap();
            s.wait_text("#log-rows", "processed").await;
            import_now(s).await;
            // Every delivered email is listed and handled.
            wait_until(
                s,
                &format!(
                    "const chips = [...document.querySelectorAll('#log-counts [data-count]')]; \
                     const n = chips.reduce((a, c) => a + Number(c.textContent.split(': ')[1]), 0); \
                     return n >= {BULK} && !document.querySelector('#log-counts [data-count=\"pending\"]') \
                        && document.querySelector('#log-footer').textContent.includes(n + ' emails');"
                ),
                "the bulk mail is listed and processed",
                Duration::from_secs(90),
            )
            .await;

            // Only the rows in view (and a few around them) are in the document.
            let rendered = eval(s, "return document.querySelectorAll('#log-rows tr.log-row').length;").await;
            let rendered = rendered.as_u64().unwrap() as usize;
            assert!(rendered < BULK, "{rendered} rows rendered for more than {BULK} emails");

            // Scroll down, open a row: the drawer opens beside the list, which stays put.
            eval(s, "document.querySelector('#log-scroll').scrollTop = 900; return true;").await;
            wait_until(
                s,
                "return !!document.querySelector('#log-rows tr.log-row[data-index=\"30\"]');",
                "the rows further down are rendered after scrolling",
                Duration::from_secs(5),
            )
            .await;
            let opened = eval(
                s,
                "const row = document.querySelector('#log-rows tr.log-row[data-index=\"30\"]'); row.click(); return row.dataset.email;",
            )
            .await;
            s.wait_text("#log-details", "Attempt 1").await;
            let layout = eval(
                s,
                "const list = document.querySelector('#log-scroll').getBoundingClientRect(); \
                 const drawer = document.querySelector('#log-details-slot').getBoundingClientRect(); \
                 return [document.querySelector('#log-scroll').scrollTop, drawer.left >= list.right, \
                         document.querySelector('#log-details').dataset.email];",
            )
            .await;
            assert_eq!(layout, serde_json::json!([900, true, opened]), "drawer beside, list kept");

            // The request viewer: a request opens onto a headers table, its JSON as a tree, and
            // copy buttons.
            eval(s, "document.querySelector('#log-details .request summary').click(); return true;").await;
            wait_until(
                s,
                "const r = document.querySelector('#log-details .request[open]'); \
                 return !!r && !!r.querySelector('.headers-table th') && !!r.querySelector('[data-copy]');",
                "an opened request shows its headers and copy buttons",
                Duration::from_secs(5),
            )
            .await;
            let json_bodies = eval(s, "return document.querySelectorAll('#log-details .json-view .json-node').length;").await;
            assert!(json_bodies.as_u64().unwrap() > 0, "a JSON body is shown as a tree");
            s.screenshot("log-drawer").await;

            s.find("#log-details-close").await.click().await.unwrap();
            let closed = eval(
                s,
                "return [document.querySelector('#log-details-slot').childElementCount, document.querySelector('#log-scroll').scrollTop];",
            )
            .await;
            assert_eq!(closed, serde_json::json!([0, 900]));

            // Filters: the drawer's "All from this sender" keeps that sender's mail only; a
            // ticket number keeps its email; a ticket that is not a number says so.
            eval(s, "document.querySelector('#log-rows tr.log-row[data-index=\"30\"]').click(); return true;").await;
            s.find("#filter-sender").await.click().await.unwrap();
            wait_until(
                s,
                "const rows = [...document.querySelectorAll('#log-rows tr.log-row')];                  return document.querySelector('#log-sender').value === 'kim@fabrikam.test' && rows.length > 0                     && rows.every(r => r.querySelector('td[title]').title.includes('kim@fabrikam.test') || r.textContent.includes('Kim Lee'));",
                "only Kim's mail is listed",
                Duration::from_secs(10),
            )
            .await;
            s.find("#log-clear-filters").await.click().await.unwrap();
            let ticket = eval(s, "return document.querySelector('#log-rows [data-ticket]').dataset.ticket;").await;
            let ticket = ticket.as_str().unwrap().to_string();
            s.find("#log-ticket").await.send_keys(&ticket).await.unwrap();
            wait_until(
                s,
                &format!(
                    "const rows = [...document.querySelectorAll('#log-rows tr.log-row')];                      return rows.length === 1 && rows[0].querySelector('[data-ticket]')?.dataset.ticket === '{ticket}';"
                ),
                "the ticket's one email is listed",
                Duration::from_secs(10),
            )
            .await;
            s.find("#log-ticket").await.send_keys("x").await.unwrap();
            s.wait_text("#log-filter-error", "digits only").await;
            s.find("#log-clear-filters").await.click().await.unwrap();
            wait_until(
                s,
                "return document.querySelector('#log-footer').textContent.includes('emails')                     && document.querySelectorAll('#log-rows tr.log-row').length > 1                     && document.querySelector('#log-filter-error').hidden                     && document.querySelector('#log-clear-filters').hidden;",
                "clearing the filters lists everything again",
                Duration::from_secs(10),
            )
            .await;
            s.find("#log-details-close").await.click().await.unwrap();

            // Live: a failing email's steps show as they happen, and its row turns failed.
            // (The webview remembers the toggle between runs: turn it on only if it is off.)
            let live = s.find("#log-live").await;
            if live.attr("aria-pressed").await.unwrap().as_deref() != Some("true") {
                live.click().await.unwrap();
            }
            s.find("#live-tail-clear").await.click().await.unwrap();
            s.wait_text("#live-tail", "Waiting for the next email").await;
            let fault = serde_json::json!({
                "service": "psa", "method": "POST", "path": "/api/Tickets", "count": 1,
                "action": { "kind": "fail", "status": 400 }
            });
            let added = http.post(format!("{control}/faults")).json(&fault).send().await.unwrap();
            assert!(added.status().is_success(), "{:?}", added.text().await);
            deliver(&http, &control, FAILING).await;
            import_now(s).await;
            s.wait_text("#live-tail-lines", FAILING).await;
            wait_until(
                s,
                "return !!document.querySelector('#live-tail-lines .log-error');",
                "the failure's step shows in the tail",
                Duration::from_secs(30),
            )
            .await;
            let script = format!(
                "const row = [...document.querySelectorAll('#log-rows tr.log-row')].find(r => r.textContent.includes('{FAILING}')); \
                 return !!row && row.querySelector('[data-status]').dataset.status === 'failed';"
            );
            wait_until(s, &script, "the failed row appears without a reload", Duration::from_secs(30)).await;
            s.screenshot("log-live-tail").await;

            // Scrolling the tail up pauses it; new steps are counted, Resume follows again.
            for n in 1..=3 {
                deliver(&http, &control, &format!("Projector in room {n} flickers")).await;
            }
            import_now(s).await;
            wait_until(
                s,
                "const b = document.querySelector('#live-tail-scroll'); return b.scrollHeight > b.clientHeight + 20;",
                "the tail fills beyond its height",
                Duration::from_secs(30),
            )
            .await;
            eval(s, "const b = document.querySelector('#live-tail-scroll'); b.scrollTop = 0; b.dispatchEvent(new Event('scroll')); return true;").await;
            s.wait_text("#live-tail-state", "Paused").await;
            deliver(&http, &control, "Badge reader at the side door").await;
            import_now(s).await;
            s.wait_text("#live-tail-state", "new").await;
            s.find("#live-tail-resume").await.click().await.unwrap();
            s.wait_text("#live-tail-state", "Following").await;
        })
        .await;
}
