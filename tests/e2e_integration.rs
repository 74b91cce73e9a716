//! The Integration area through the real window, on the sandbox tenant (issue 11): sandbox mode
//! starts with the PSA connected, so step 1 shows the connection; *Check* turns the agent step
//! green with each permission and why Mailroom needs it; the scope step offers the PSA's ticket
//! types and keeps the chosen ones; saving a wrong client secret turns the
//! connection red with the fix, and the right one green again. Results survive a reload. The
//! tab, framed by the sandbox's agent ticket page, shows the ticket's emails with the right
//! Iframe secret and only an error with a wrong one, which turns the tab step red.

mod support;

use support::wizard::*;
use support::Session;

#[tokio::test]
async fn the_wizard_checks_the_connection_and_the_agent_through_the_psa() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("integration", async |s| {
            s.find("#nav-integration").await.click().await.unwrap();
            s.wait_text("#step-connection", "client mailroom-sandbox")
                .await;

            click_and_wait_for_check(s, "agent", "#check-agent").await;
            wait_state(s, "#step-agent", "ok").await;
            let agent = s.text("#step-agent .step-results").await;
            assert!(
                agent.contains("Mailroom API is an API-only agent"),
                "{agent}"
            );
            assert!(agent.contains("Permission edit:customers"), "{agent}");
            assert!(agent.contains("Match each sender to a user"), "{agent}");
            s.screenshot("integration-agent").await;

            // Scope: the ticket types come from the PSA; a default type and the tab's types.
            // (The engine checked every step when it started: a green one is folded.)
            s.wait_text("#scope-default-type", "Service Request").await;
            open_step(s, "scope").await;
            s.find("#scope-default-type option[value='3']")
                .await
                .click()
                .await
                .unwrap();
            for id in ["1", "3"] {
                s.find(&format!("#scope-tab-types input[value='{id}']"))
                    .await
                    .click()
                    .await
                    .unwrap();
            }
            click_and_wait_for_check(s, "scope", "#scope-save").await;
            // (The engine's start-up check already made this step green: wait for the new result.)
            let scope = s
                .wait_text(
                    "#step-scope .step-results",
                    "Default type of tickets from email — Service Request",
                )
                .await;
            assert_eq!(state(s, "#step-scope").await, "ok");
            assert!(
                scope.contains("Default type of tickets from email — Service Request"),
                "{scope}"
            );
            assert!(scope.contains("Incident, Service Request"), "{scope}");
            s.screenshot("integration-scope").await;

            // Ticket tab: the secret saved; the PSA has no tab yet, which the check names. The
            // app's receiver serves the tab: a bare request is refused (and shown as such), a
            // request signed with the secret gets Mailroom's page.
            open_step(s, "tab").await;
            fill(s, "#tab-secret", "tab-secret").await;
            click_and_wait_for_check(s, "tab", "#tab-save").await;
            wait_state(s, "#step-tab", "failed").await;
            let tab = s.text("#step-tab .step-results").await;
            assert!(tab.contains("Tab secret saved in Mailroom"), "{tab}");
            assert!(tab.contains("No custom tab points at"), "{tab}");
            let url = s.text("#copy-tab-url code").await;
            assert!(url.ends_with("/halo/tab"), "{url}");
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let bare = http
                .get(&url)
                .query(&[("ticket_id", "1")])
                .send()
                .await
                .unwrap();
            assert_eq!(bare.status().as_u16(), 403);
            let signed = mailroom_engine::ticket_tab::sign(
                mailroom_engine::ticket_tab::TabAuthScheme::Jwt,
                b"tab-secret",
                1,
                Some(2),
                chrono::Utc::now(),
            );
            let page = http.get(&url).query(&signed).send().await.unwrap();
            assert_eq!(page.status().as_u16(), 200);
            assert!(page.text().await.unwrap().contains("Mailroom · ticket 1"));
            click_and_wait_for_check(s, "tab", "#check-tab").await;
            s.wait_text("#step-tab .step-results", "A ticket was last shown")
                .await;
            // Create it for me: the tab in HaloPSA, allowed on the scope's types: all green.
            click_and_wait_for_check(s, "tab", "#tab-create").await;
            wait_state(s, "#step-tab", "ok").await;
            let tab = s.text("#step-tab .step-results").await;
            assert!(tab.contains("All 2 chosen type(s) allow it"), "{tab}");
            s.screenshot("integration-tab").await;

            // Resolve action: the closed status chosen, then Create it for me.
            open_step(s, "resolve").await;
            s.wait_text("#resolve-status", "Closed").await;
            s.find("#resolve-status option[value='9']")
                .await
                .click()
                .await
                .unwrap();
            click_and_wait_for_check(s, "resolve", "#resolve-save").await;
            click_and_wait_for_check(s, "resolve", "#resolve-create").await;
            assert_eq!(state(s, "#step-resolve").await, "ok");
            let resolve = s.text("#step-resolve .step-results").await;
            assert!(
                resolve.contains("Status After Action — Closed"),
                "{resolve}"
            );
            // Closing by the requester's email: off by default, turned on with its phrases.
            open_step(s, "resolve").await;
            let phrases = s.text("#close-phrases").await;
            assert!(phrases.contains("please close"), "{phrases}");
            s.find("#close-on-request").await.click().await.unwrap();
            s.find("#close-save").await.click().await.unwrap();
            s.wait_text(".toast", "Requesters can now close their tickets by email")
                .await;
            s.screenshot("integration-resolve").await;

            // A wrong secret: saved, and the connection step says what to fix.
            let base_url = s
                .client
                .execute("return document.getElementById('psa-url').value;", vec![])
                .await
                .unwrap();
            let base_url = base_url.as_str().unwrap().to_string();
            assert!(base_url.starts_with("http://127.0.0.1:"), "{base_url}");
            open_step(s, "connection").await;
            fill(s, "#psa-secret", "not-the-secret").await;
            s.find("#psa-save").await.click().await.unwrap();
            wait_state(s, "#step-connection", "failed").await;
            let failed = s.text("#step-connection .step-results").await;
            assert!(
                failed.contains("Fix: Check the Client ID and secret"),
                "{failed}"
            );
            // Saving another connection forgot the agent step's result.
            assert_eq!(state(s, "#step-agent").await, "unchecked");

            // The right secret (the sandbox's seeded application) makes it green again, and
            // the results are still there after a reload.
            open_step(s, "connection").await;
            fill(s, "#psa-secret", "halo-sandbox-secret-5b1f0c2e9d7a").await;
            s.find("#psa-save").await.click().await.unwrap();
            wait_state(s, "#step-connection", "ok").await;
            s.reload().await;
            s.find("#nav-integration").await.click().await.unwrap();
            s.wait_text("#step-connection", "Connected").await;
            assert_eq!(state(s, "#step-connection").await, "ok");

            // The tab inside HaloPSA: the sandbox's agent ticket page frames Mailroom's tab
            // with the secure URL parameter, signed with the tab's Iframe secret; pasted into
            // Mailroom, the frame shows that ticket's emails.
            let control = s.control_url().await;
            let root = control_json(&http, control.clone(), false).await;
            let psa_url = root["psa"].as_str().unwrap().to_string();
            let tabs = control_json(&http, format!("{control}/psa/tabs"), false).await;
            let tab_id = tabs
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["url"].as_str() == Some(url.as_str()))
                .and_then(|t| t["id"].as_i64())
                .expect("Create it for me made the tab");
            let secret = control_json(
                &http,
                format!("{control}/psa/tabs/{tab_id}/secure-url"),
                true,
            )
            .await;
            s.client
                .execute(
                    "document.querySelector('#step-tab details').open = true;",
                    vec![],
                )
                .await
                .unwrap();
            fill(s, "#tab-secret", secret["iframe_secret"].as_str().unwrap()).await;
            click_and_wait_for_check(s, "tab", "#tab-save").await;
            wait_state(s, "#step-tab", "ok").await;
            let tickets = control_json(&http, format!("{control}/psa/tickets"), false).await;
            let ticket = tickets
                .as_array()
                .unwrap()
                .iter()
                .find(|t| {
                    t["email_message_id"].is_string()
                        && [1, 3].contains(&t["tickettype_id"].as_i64().unwrap_or(0))
                })
                .expect("a ticket from email of a type with the tab")
                .clone();
            let ticket_id = ticket["id"].as_i64().unwrap();
            s.client
                .goto(&format!("{psa_url}/ticket?id={ticket_id}"))
                .await
                .unwrap();
            s.find(&format!("#tab-{tab_id}"))
                .await
                .enter_frame()
                .await
                .unwrap();
            let framed = s
                .wait_text("body", &format!("Mailroom · ticket {ticket_id}"))
                .await;
            assert!(
                framed.contains(ticket["summary"].as_str().unwrap()),
                "{framed}"
            );
            s.screenshot("integration-tab-in-psa").await;

            // A wrong tab secret in Mailroom: HaloPSA's next request is refused, the frame
            // shows nothing but the error, and the tab step turns red naming the refusal.
            s.back().await;
            s.find("#nav-integration").await.click().await.unwrap();
            open_step(s, "tab").await;
            fill(s, "#tab-secret", "not-the-iframe-secret").await;
            click_and_wait_for_check(s, "tab", "#tab-save").await;
            s.client
                .goto(&format!("{psa_url}/ticket?id={ticket_id}"))
                .await
                .unwrap();
            s.find(&format!("#tab-{tab_id}"))
                .await
                .enter_frame()
                .await
                .unwrap();
            let refused = s
                .wait_text("body", "Mailroom cannot show this ticket")
                .await;
            assert!(
                !refused.contains(ticket["summary"].as_str().unwrap()),
                "{refused}"
            );
            s.back().await;
            s.find("#nav-integration").await.click().await.unwrap();
            click_and_wait_for_check(s, "tab", "#check-tab").await;
            wait_state(s, "#step-tab", "failed").await;
            s.wait_text("#step-tab .step-results", "was refused").await;
        })
        .await;
}
