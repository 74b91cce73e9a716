//! The Integration area's webhook half through the real window, on the sandbox tenant (issue
//! 11 #5, #6, #8): *Generate certificate* asks where to save the PFX in the native save dialog
//! and shows its password once; *Create it for me* uploads it and creates the signed webhook;
//! *Run the test* follows a test ticket through HaloPSA's signed delivery, HaloPSA's delivery
//! log and the ticket tab, and the delivery shows in the list. Then the PSA is broken — the
//! webhook switched off, the certificate replaced, a permission taken away, the tab deleted —
//! and the steps turn red with the reason. Last, the interface switches to German and back.

mod support;

use support::wizard::*;
use support::Session;

/// A token for the sandbox PSA's seeded API application, with `admin`, as any API client gets
/// one; used to break the set-up the way an admin could in HaloPSA.
async fn psa_token(http: &reqwest::Client, psa: &str) -> String {
    let token: serde_json::Value = http
        .post(format!("{psa}/auth/token?tenant=sandbox"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "mailroom-sandbox"),
            ("client_secret", "halo-sandbox-secret-5b1f0c2e9d7a"),
            ("scope", "admin read:tickets edit:tickets"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token: {token}"))
        .to_string()
}

#[tokio::test]
async fn the_certificate_webhook_and_end_to_end_test_go_green_and_red_in_the_window() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("integration-webhook", async |s| {
            s.find("#nav-integration").await.click().await.unwrap();
            s.wait_text("#step-connection", "client mailroom-sandbox")
                .await;

            // The tab secret, so the test can open the tab.
            open_step(s, "tab").await;
            fill(s, "#tab-secret", "tab-secret").await;
            click_and_wait_for_check(s, "tab", "#tab-save").await;

            // Generate: saved where the admin says, password shown once, opens the PFX.
            let dir = tempfile::tempdir().unwrap();
            let pfx_path = dir.path().join("mailroom-webhooks.pfx");
            open_step(s, "certificate").await;
            s.find("#certificate-generate").await.click().await.unwrap();
            s.answer_native_dialog("Save Mailroom's webhook certificate", &pfx_path, true)
                .await;
            s.wait_text("#certificate-password", "shown only now").await;
            let password = s.text("#copy-certificate-password code").await;
            assert_eq!(password.len(), 24, "{password}");
            let pfx = std::fs::read(&pfx_path).expect("the PFX was written where chosen");
            let store = p12_keystore::KeyStore::from_pkcs12(
                &pfx,
                &password,
                p12_keystore::Pkcs12ImportPolicy::Strict,
            )
            .expect("the PFX opens with the password shown");
            assert!(store.private_key_chain().is_some());
            let thumbprint = s.text("#certificate-thumbprint").await;
            assert_eq!(thumbprint.len(), 40, "{thumbprint}");

            click_and_wait_for_check(s, "certificate", "#check-certificate").await;
            wait_state(s, "#step-certificate", "failed").await;
            s.wait_text("#step-certificate .step-results", "Not uploaded yet")
                .await;
            click_and_wait_for_check(s, "certificate", "#certificate-upload").await;
            wait_state(s, "#step-certificate", "ok").await;
            s.screenshot("integration-certificate").await;

            // The webhook, created signed with it.
            open_step(s, "webhook").await;
            click_and_wait_for_check(s, "webhook", "#webhook-create").await;
            wait_state(s, "#step-webhook", "ok").await;
            let webhook = s.text("#step-webhook .step-results").await;
            assert!(
                webhook.contains("Signed with Mailroom's certificate"),
                "{webhook}"
            );
            let url = s.text("#copy-webhook-url code").await;
            assert!(url.ends_with("/halo/webhook"), "{url}");

            // The end-to-end test: every link green; the delivery listed as verified.
            click_and_wait_for_check(s, "test", "#check-test").await;
            wait_state(s, "#step-test", "ok").await;
            let test = s.text("#step-test .step-results").await;
            for link in [
                "Test ticket logged in HaloPSA",
                "Mailroom received the webhook",
                "HaloPSA's delivery log — Response 200",
                "The ticket tab opens",
                "Test ticket deleted",
            ] {
                assert!(test.contains(link), "{link}: {test}");
            }
            s.screenshot("integration-test").await;
            click_and_wait_for_check(s, "webhook", "#check-webhook").await;
            open_step(s, "webhook").await;
            // The list re-renders after the check; click the row once it has settled.
            s.wait_text("#psa-deliveries", "Verified").await;
            s.client
                .execute(
                    "document.querySelector(\"#psa-deliveries tr[data-verification='verified']\").click();",
                    vec![],
                )
                .await
                .unwrap();
            let detail = s.wait_text("#psa-delivery-detail", "verified").await;
            assert!(detail.contains("new ticket logged"), "{detail}");
            s.screenshot("integration-deliveries").await;

            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let control = s.control_url().await;
            let root = control_json(&http, control.clone(), false).await;
            let psa = root["psa"]
                .as_str()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
            let token = psa_token(&http, &psa).await;

            // Two-way mail: an agent emails the customer from a ticket that came in by email;
            // Mailroom sends exactly one email from that mailbox, threaded, and the customer's
            // answer lands on the same ticket.
            let tickets = control_json(&http, format!("{control}/psa/tickets"), false).await;
            let ticket = tickets
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["email_message_id"].is_string())
                .expect("a ticket from email")
                .clone();
            let ticket_id = ticket["id"].as_i64().unwrap();
            let customer = ticket["user_email"]
                .as_str()
                .filter(|a| a.contains('@'))
                .unwrap_or("pat@fabrikam.test")
                .to_string();
            let action = http
                .post(format!("{psa}/api/Actions"))
                .bearer_auth(&token)
                .json(&serde_json::json!([{
                    "ticket_id": ticket_id, "outcome_id": 7, "sendemail": true,
                    "hiddenfromuser": false, "emailto": customer,
                    "note_html": "<p>We replaced the toner; please try again.</p>",
                }]))
                .send()
                .await
                .unwrap();
            assert!(action.status().is_success(), "{}", action.text().await.unwrap());
            s.find("#nav-monitoring").await.click().await.unwrap();
            let start = std::time::Instant::now();
            loop {
                let rows = s.text("#outbound-rows").await;
                if rows.contains(&format!("Ticket {ticket_id}")) && rows.contains("sent") {
                    break;
                }
                assert!(start.elapsed() < std::time::Duration::from_secs(40), "not sent: {rows}");
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            // (The list refreshes every few seconds: click the row in the page.)
            s.client
                .execute(
                    "[...document.querySelectorAll('#outbound-rows tr')].find(r => r.textContent.includes(arguments[0])).click();",
                    vec![serde_json::json!(format!("Ticket {ticket_id}"))],
                )
                .await
                .unwrap();
            let details = s.wait_text("#outbound-details", "Sent").await;
            assert!(details.contains("Created a reply draft threaded"), "{details}");
            s.client
                .execute("document.getElementById('monitoring-outbound').scrollIntoView();", vec![])
                .await
                .unwrap();
            s.screenshot("outbound-log").await;
            let mut sent = Vec::new();
            for mailbox in ["support@contoso.test", "helpdesk@contoso.test"] {
                let list = control_json(&http, format!("{control}/mailboxes/{mailbox}/sent"), false).await;
                for m in list.as_array().unwrap() {
                    if m["subject"].as_str().unwrap_or_default().contains(&format!("[ID:{ticket_id}]")) {
                        sent.push((mailbox, m.clone()));
                    }
                }
            }
            assert_eq!(sent.len(), 1, "exactly one email: {sent:?}");
            let (mailbox, reply) = &sent[0];
            assert!(reply["in_reply_to"].is_string(), "threaded: {reply}");
            let answer = http
                .post(format!("{control}/mail/deliver"))
                .json(&serde_json::json!({
                    "to": mailbox, "from": customer,
                    "subject": format!("RE: {}", reply["subject"].as_str().unwrap()),
                    "body_html": "<p>Works now, thanks.</p>",
                    "in_reply_to": reply["internet_message_id"],
                }))
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success(), "{}", answer.text().await.unwrap());
            let start = std::time::Instant::now();
            loop {
                let actions = control_json(&http, format!("{control}/psa/actions"), false).await;
                let on_ticket = actions.as_array().unwrap().iter().any(|a| {
                    a["ticket_id"] == ticket_id
                        && a["note_html"].as_str().is_some_and(|n| n.contains("Works now, thanks."))
                });
                if on_ticket {
                    break;
                }
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(40),
                    "the answer did not land on ticket {ticket_id}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            s.find("#nav-integration").await.click().await.unwrap();
            // The area renders again: wait for its cards before checking one.
            s.wait_text("#step-webhook", "Signed with Mailroom's certificate")
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;

            // Broken in HaloPSA: the webhook switched off → red, with the reason.
            let hooks: serde_json::Value = http
                .get(format!("{psa}/api/Webhook"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = hooks
                .as_array()
                .unwrap()
                .iter()
                .find(|w| w["url"].as_str() == Some(url.as_str()))
                .expect("Create it for me made the webhook")["id"]
                .clone();
            let off = http
                .post(format!("{psa}/api/Webhook"))
                .bearer_auth(&token)
                .json(&serde_json::json!([{ "id": id, "active": false }]))
                .send()
                .await
                .unwrap();
            assert!(off.status().is_success(), "{}", off.text().await.unwrap());
            click_and_wait_for_check(s, "webhook", "#check-webhook").await;
            wait_state(s, "#step-webhook", "failed").await;
            s.wait_text("#step-webhook .step-results", "It is switched off")
                .await;

            // The certificate replaced in Mailroom only: HaloPSA holds the old one → red.
            open_step(s, "certificate").await;
            let second = dir.path().join("second.pfx");
            s.client
                .execute("window.confirm = () => true;", vec![])
                .await
                .unwrap();
            s.find("#certificate-generate").await.click().await.unwrap();
            s.answer_native_dialog("Save Mailroom's webhook certificate", &second, true)
                .await;
            s.wait_text("#certificate-password", "second.pfx").await;
            click_and_wait_for_check(s, "certificate", "#check-certificate").await;
            wait_state(s, "#step-certificate", "failed").await;
            s.wait_text("#step-certificate .step-results", "is another certificate")
                .await;

            // A permission taken from the API application → the agent step names it.
            let apps: serde_json::Value = http
                .get(format!("{psa}/api/Application"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let apps = apps.get("applications").cloned().unwrap_or(apps);
            let app = apps
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["clientId"] == "mailroom-sandbox")
                .expect("the seeded API application")
                .clone();
            let set_scopes = |scopes: Vec<&str>| {
                let body = serde_json::json!([{
                    "id": app["id"],
                    "clientId": "mailroom-sandbox",
                    "scopes": scopes.iter().map(|s| serde_json::json!({ "name": s })).collect::<Vec<_>>(),
                }]);
                let (http, url, token) = (http.clone(), format!("{psa}/api/Application"), token.clone());
                async move {
                    let r = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
                }
            };
            set_scopes(vec!["read:tickets", "edit:tickets", "read:customers", "admin"]).await;
            open_step(s, "agent").await;
            click_and_wait_for_check(s, "agent", "#check-agent").await;
            wait_state(s, "#step-agent", "failed").await;
            let agent = s.text("#step-agent .step-results").await;
            assert!(agent.contains("Permission edit:customers"), "{agent}");
            set_scopes(vec!["read:tickets", "edit:tickets", "read:customers", "edit:customers", "admin"]).await;
            click_and_wait_for_check(s, "agent", "#check-agent").await;
            wait_state(s, "#step-agent", "ok").await;

            // The tab made by Create it for me, then deleted in HaloPSA → the tab step says so.
            open_step(s, "tab").await;
            click_and_wait_for_check(s, "tab", "#tab-create").await;
            s.wait_text("#step-tab .step-results", "points at").await;
            let tabs: serde_json::Value = http
                .get(format!("{psa}/api/Tabs"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let tabs = tabs.get("tabs").cloned().unwrap_or(tabs);
            let tab_id = tabs
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["url"].as_str().is_some_and(|u| u.ends_with("/halo/tab")))
                .expect("the tab")["id"]
                .clone();
            let deleted = http
                .delete(format!("{psa}/api/Tabs/{tab_id}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert!(deleted.status().is_success(), "{}", deleted.text().await.unwrap());
            click_and_wait_for_check(s, "tab", "#check-tab").await;
            wait_state(s, "#step-tab", "failed").await;
            s.wait_text("#step-tab .step-results", "No custom tab points at")
                .await;

            // The interface language (step 1): German at once, everywhere, and after a reload;
            // HaloPSA's own names stay as HaloPSA shows them.
            s.find("#ui-language option[value='de']")
                .await
                .click()
                .await
                .unwrap();
            s.wait_text("#nav-monitoring", "Überwachung").await;
            s.wait_text("#step-webhook .pill", "Handlungsbedarf").await;
            assert_eq!(s.text("#check-webhook").await, "Prüfen");
            assert_eq!(s.text("#step-test h2").await, "End-to-End-Test");
            open_step(s, "webhook").await;
            let webhook = s.text("#step-webhook .step-body").await;
            assert!(webhook.contains("Sign Request Body with a X.509 Certificate"), "{webhook}");
            assert!(webhook.to_lowercase().contains("empfangene zustellungen"), "{webhook}");
            s.screenshot("integration-german").await;
            s.reload().await;
            s.wait_text("#nav-integration", "Integration").await;
            s.wait_text("#nav-monitoring", "Überwachung").await;
            s.find("#nav-integration").await.click().await.unwrap();
            s.find("#ui-language option[value='en']")
                .await
                .click()
                .await
                .unwrap();
            s.wait_text("#nav-monitoring", "Monitoring").await;
        })
        .await;
}
