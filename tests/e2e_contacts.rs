//! Contact imports through the real window, on the sandbox tenant (issue 13): the Support
//! mailbox's *Contact imports* tab shows the default mappings; a HaloPSA field mapped twice is
//! refused with the reason; the default site saved; the preview counts what an import would
//! do; *Import contacts* runs with the progress bar and the users appear in the sandbox's
//! HaloPSA on the site of their domain (or the default site); a second import creates nothing.

mod support;

use std::time::{Duration, Instant};

use support::wizard::control_json;
use support::Session;

/// The sandbox PSA's users by address (lower case) → site ids.
async fn users(http: &reqwest::Client, control: &str) -> Vec<(String, i64)> {
    control_json(http, format!("{control}/psa/users"), false)
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| {
            Some((
                u["emailaddress"].as_str()?.to_lowercase(),
                u["site_id"].as_f64()? as i64,
            ))
        })
        .collect()
}

async fn wait_for_run(s: &Session, runs_before: usize) -> String {
    let start = Instant::now();
    loop {
        let state = s
            .client
            .execute(
                "const rows = document.querySelectorAll('#contacts-runs tr');
                 return rows.length > arguments[0] ? rows[0].dataset.state : '';",
                vec![serde_json::json!(runs_before)],
            )
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !state.is_empty() && state != "running" {
            return state;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the import did not end"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn newest_count(s: &Session, outcome: &str) -> i64 {
    s.text(&format!(
        "#contacts-runs tr:first-child td[data-count='{outcome}']"
    ))
    .await
    .trim()
    .parse()
    .unwrap()
}

#[tokio::test]
async fn contacts_are_previewed_imported_on_their_sites_and_a_second_import_creates_nothing() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("contacts", async |s| {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let control = s.control_url().await;
            s.find("[data-mailbox='Support']").await.click().await.unwrap();
            s.find("#tab-contacts").await.click().await.unwrap();
            s.wait_text("#contacts-permission", "Contacts.Read").await;
            s.wait_text("#contact-imports", "Field mappings").await;
            let mapped = s
                .client
                .execute(
                    "return [...document.querySelectorAll('.mapping-row')].map(r => r.querySelector('.mapping-outlook').value + '>' + r.querySelector('.mapping-psa').value);",
                    vec![],
                )
                .await
                .unwrap();
            assert!(mapped.as_array().unwrap().iter().any(|m| m == "emailAddresses[0]>emailaddress"), "{mapped}");

            // A HaloPSA field mapped twice is refused with the reason.
            s.find("#mapping-add").await.click().await.unwrap();
            s.client
                .execute(
                    "const row = [...document.querySelectorAll('.mapping-row')].pop();
                     row.querySelector('.mapping-outlook').value = 'companyName';
                     row.querySelector('.mapping-psa').value = 'title';",
                    vec![],
                )
                .await
                .unwrap();
            s.find("#contacts-save").await.click().await.unwrap();
            s.wait_text("#contacts-settings-error", "'Job title' is mapped twice").await;
            s.client
                .execute(
                    "[...document.querySelectorAll('.mapping-row')].pop().querySelector('.mapping-remove').click();
                     document.getElementById('contacts-default-site').value = '12';",
                    vec![],
                )
                .await
                .unwrap();
            s.find("#contacts-save").await.click().await.unwrap();
            s.wait_text(".toast", "Contact import settings saved.").await;

            // The preview: what would happen, nothing written.
            let before = users(&http, &control).await.len();
            s.find("#contacts-preview-button").await.click().await.unwrap();
            s.wait_text("#contacts-preview", "Nothing was written").await;
            let chips = s.text("#contacts-preview .log-counts").await;
            assert!(chips.contains("create:"), "{chips}");
            assert_eq!(users(&http, &control).await.len(), before);
            s.screenshot("contacts-preview").await;

            // The import, with its progress bar.
            let runs = 0;
            s.find("#contacts-import").await.click().await.unwrap();
            let state = wait_for_run(s, runs).await;
            assert_eq!(state, "finished");
            let progress = s
                .client
                .execute(
                    "const p = document.getElementById('contacts-progress'); return [p.hidden, p.dataset.done, p.dataset.total];",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(progress[0], false, "{progress}");
            assert_eq!(progress[1], progress[2], "{progress}");
            let created = newest_count(s, "created").await;
            assert!(created > 200, "{created}");
            let after = users(&http, &control).await;
            assert_eq!(after.len(), before + created as usize);
            let site = |a: &str| after.iter().find(|(x, _)| x == a).map(|(_, s)| *s);
            assert_eq!(site("casey@adatum.test"), Some(12));
            assert!(after
                .iter()
                .any(|(a, s)| a.ends_with("@northwind.test") && *s == 11));
            s.client
                .execute("document.getElementById('contacts-import').scrollIntoView();", vec![])
                .await
                .unwrap();
            s.screenshot("contacts-imported").await;

            // Each contact's outcome with its reason.
            s.client
                .execute(
                    "document.querySelector('#contacts-runs tr').click();",
                    vec![],
                )
                .await
                .unwrap();
            s.wait_text("#contacts-run-rows", "No email address").await;

            // A second import creates nothing.
            s.client
                .execute("document.getElementById('contacts-import').scrollIntoView();", vec![])
                .await
                .unwrap();
            s.find("#contacts-import").await.click().await.unwrap();
            assert_eq!(wait_for_run(s, 1).await, "finished");
            assert_eq!(newest_count(s, "created").await, 0);
            assert_eq!(users(&http, &control).await.len(), after.len());
        })
        .await;
}
