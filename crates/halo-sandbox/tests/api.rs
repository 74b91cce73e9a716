//! Behaviour of the emulated HaloPSA API over real HTTP on 127.0.0.1.

mod common;

use chrono::Duration;
use common::Harness;
use mailroom_halo_sandbox::RateLimit;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn token_endpoint_issues_bearer_tokens_and_rfc6749_errors() {
    let h = Harness::start().await;
    let creds = h.sandbox.credentials();
    let (status, body) = h
        .token_raw(&[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("scope", "read:tickets edit:tickets read:customers"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read:tickets edit:tickets read:customers");
    for field in ["access_token", "refresh_token", "id_token"] {
        assert!(
            body[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}"
        );
    }
    assert_eq!(body["id_token"].as_str().unwrap().split('.').count(), 3);

    let (status, body) = h
        .token_raw(&[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", "wrong"),
        ])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");

    let (status, body) = h
        .token_raw(&[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
            ("client_secret", "x"),
        ])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");

    let (status, body) = h
        .token_raw(&[
            ("grant_type", "password"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");

    let (status, body) = h
        .token_raw(&[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("scope", "bogus"),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");

    // Hosted form: POST /token?tenant=.
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", creds.client_id.as_str()),
        ("client_secret", creds.client_secret.as_str()),
    ];
    let ok = h
        .http
        .post(format!("{}/token?tenant={}", h.base, creds.tenant))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.json::<Value>().await.unwrap()["scope"], "all");
    let wrong = h
        .http
        .post(format!("{}/token?tenant=elsewhere", h.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn scopes_are_intersected_with_the_grant() {
    let mut seed = mailroom_halo_sandbox::HaloSeed::default();
    seed.applications[0].scopes = vec!["read:tickets".into(), "edit:tickets".into()];
    let h = Harness::with_seed(seed).await;
    let creds = h.sandbox.credentials();
    let (status, body) = h
        .token_raw(&[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("scope", "read:tickets read:customers admin"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["scope"], "read:tickets");
}

#[tokio::test]
async fn bearer_is_required_and_expires_on_the_clock() {
    let h = Harness::start().await;
    let resp = h
        .http
        .get(format!("{}/api/Tickets", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key("www-authenticate"));
    let (status, _) = h.get("not-a-token", "Tickets").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let token = h.token().await;
    let (status, _) = h.get(&token, "Tickets").await;
    assert_eq!(status, StatusCode::OK);
    h.clock.advance(Duration::seconds(3599));
    assert_eq!(h.get(&token, "Tickets").await.0, StatusCode::OK);
    h.clock.advance(Duration::seconds(1));
    assert_eq!(h.get(&token, "Tickets").await.0, StatusCode::UNAUTHORIZED);

    h.sandbox.set_token_lifetime(60);
    let (_, body) = h
        .token_raw(&[
            ("grant_type", "client_credentials"),
            ("client_id", &h.sandbox.credentials().client_id),
            ("client_secret", &h.sandbox.credentials().client_secret),
        ])
        .await;
    assert_eq!(body["expires_in"], 60);
}

#[tokio::test]
async fn authinfo_points_at_the_auth_server() {
    let h = Harness::start().await;
    let body: Value = h
        .http
        .get(format!("{}/api/authinfo", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["tenant_id"], "sandbox");
    assert_eq!(body["auth_url"], format!("{}/auth", h.base));
}

#[tokio::test]
async fn permissions_are_enforced_per_resource() {
    let h = Harness::start().await;
    let read_only = h.token_with_scope("read:tickets").await;
    assert_eq!(h.get(&read_only, "Tickets").await.0, StatusCode::OK);
    let (status, _) = h
        .post(
            &read_only,
            "Tickets",
            json!([{"summary": "x", "client_id": 1}]),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(h.get(&read_only, "Users").await.0, StatusCode::FORBIDDEN);
    assert_eq!(h.get(&read_only, "Webhook").await.0, StatusCode::FORBIDDEN);
    // Lookups only need a valid token.
    assert_eq!(h.get(&read_only, "Status").await.0, StatusCode::OK);

    let customers = h.token_with_scope("read:customers edit:customers").await;
    assert_eq!(h.get(&customers, "Users").await.0, StatusCode::OK);
    let (status, _) = h
        .post(
            &customers,
            "Users",
            json!([{"name": "New Person", "site_id": 10}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.get(&customers, "Tickets").await.0, StatusCode::FORBIDDEN);

    let admin = h.token_with_scope("admin").await;
    assert_eq!(h.get(&admin, "Webhook").await.0, StatusCode::OK);
}

#[tokio::test]
async fn resource_names_are_case_insensitive() {
    let h = Harness::start().await;
    let token = h.token().await;
    let a = h.get(&token, "tickettype").await;
    let b = h.get(&token, "TicketType").await;
    let c = h.get(&token, "TICKETTYPE").await;
    assert_eq!(a.0, StatusCode::OK);
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(h.get(&token, "nosuchthing").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tickets_get_sequential_ids_dates_and_names() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (status, t) = h
        .post(
            &token,
            "tickets",
            json!([{"summary": "Printer on fire", "details_html": "<p>Help</p>",
                    "client_id": 1, "site_id": 10, "user_id": 100,
                    "email_message_id": "<abc@fabrikam.test>"}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["id"], 1000);
    assert_eq!(t["client_name"], "Fabrikam");
    assert_eq!(t["site_name"], "Fabrikam HQ");
    assert_eq!(t["user_name"], "Pat Smith");
    assert_eq!(t["user_email"], "pat@fabrikam.test");
    assert_eq!(t["status_name"], "New");
    assert_eq!(t["tickettype_name"], "Incident");
    assert_eq!(t["details"], "Help");
    assert_eq!(t["dateoccurred"], "2026-03-02T09:30:00.000Z");
    assert_eq!(t["datecreated"], t["dateoccurred"]);

    // A bare object is accepted too and ids keep counting.
    let (_, t2) = h
        .post(
            &token,
            "Tickets",
            json!({"summary": "Second", "client_id": 2}),
        )
        .await;
    assert_eq!(t2["id"], 1001);
    let (status, got) = h.get(&token, "Tickets/1000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["summary"], "Printer on fire");
    assert_eq!(h.get(&token, "Tickets/4242").await.0, StatusCode::NOT_FOUND);

    // Update via an element with id; several elements answer with an array.
    let (status, many) = h
        .post(
            &token,
            "Tickets",
            json!([{"id": 1000, "status_id": 2}, {"summary": "Third", "client_id": 3}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let many = many.as_array().unwrap();
    assert_eq!(many[0]["id"], 1000);
    assert_eq!(many[0]["status_name"], "In Progress");
    assert_eq!(many[0]["summary"], "Printer on fire");
    assert_eq!(many[1]["id"], 1002);
    assert_eq!(h.sandbox.tickets().len(), 3);

    // Delete.
    let (status, _) = h.call(&token, Method::DELETE, "Tickets/1002", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.get(&token, "Tickets/1002").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ticket_validation_matches_halo() {
    let h = Harness::start().await;
    let token = h.token().await;
    // A user without a site.
    let (status, body) = h
        .post(
            &token,
            "Tickets",
            json!([{"summary": "x", "client_id": 1, "user_id": 100}]),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["Message"],
        "Please select a Site when a User is specified"
    );
    // Float-formatted ids.
    for bad in [json!("10.0"), json!(10.0)] {
        let (status, body) = h
            .post(
                &token,
                "Tickets",
                json!([{"summary": "x", "client_id": 1, "site_id": bad}]),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["[0].site_id"][0].as_str().unwrap().contains("integer"),
            "{body}"
        );
    }
    assert!(h.sandbox.tickets().is_empty());
}

#[tokio::test]
async fn paging_reports_the_total_record_count() {
    let h = Harness::start().await;
    let token = h.token().await;
    let batch: Vec<Value> = (0..7)
        .map(|i| json!({"summary": format!("Ticket {i}"), "client_id": 1}))
        .collect();
    let (status, _) = h.post(&token, "Tickets", Value::Array(batch)).await;
    assert_eq!(status, StatusCode::OK);

    let (_, page) = h
        .get(&token, "Tickets?pageinate=true&page_size=3&page_no=3")
        .await;
    assert_eq!(page["page_no"], 3);
    assert_eq!(page["page_size"], 3);
    assert_eq!(page["record_count"], 7);
    let ids: Vec<i64> = page["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1006]);
    let (_, page) = h.get(&token, "Tickets?pageinate=true&page_size=500").await;
    assert_eq!(page["page_size"], 100);
    let (_, counted) = h.get(&token, "Tickets?count=2").await;
    assert_eq!(counted["record_count"], 7);
    assert_eq!(counted["tickets"].as_array().unwrap().len(), 2);
    assert!(counted.get("page_no").is_none());

    // Lookups are bare arrays.
    let (_, statuses) = h.get(&token, "Status").await;
    assert!(statuses.is_array());
}

#[tokio::test]
async fn ticket_filters_find_by_client_user_ids_and_message_id() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.post(
        &token,
        "Tickets",
        json!([
            {"summary": "VPN down", "client_id": 1, "site_id": 10, "user_id": 101,
             "email_message_id": "<m1@fabrikam.test>"},
            {"summary": "Invoice question", "client_id": 2},
            {"summary": "Closed one", "client_id": 1, "status_id": 9}
        ]),
    )
    .await;
    let ids = |v: &Value| -> Vec<i64> {
        v["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(&h.get(&token, "Tickets?search=vpn").await.1),
        vec![1000]
    );
    assert_eq!(
        ids(&h.get(&token, "Tickets?client_id=1").await.1),
        vec![1000, 1002]
    );
    assert_eq!(
        ids(&h.get(&token, "Tickets?user_id=101").await.1),
        vec![1000]
    );
    assert_eq!(
        ids(&h.get(&token, "Tickets?ticketids=1001,1002").await.1),
        vec![1001, 1002]
    );
    assert_eq!(
        ids(&h.get(&token, "Tickets?client_id=1&open_only=true").await.1),
        vec![1000]
    );
    let adv = urlencode(
        r#"[{"filter_name":"email_message_id","filter_type":2,"filter_value":"<m1@fabrikam.test>"}]"#,
    );
    assert_eq!(
        ids(&h
            .get(&token, &format!("Tickets?advanced_search={adv}"))
            .await
            .1),
        vec![1000]
    );
    let bad = urlencode(r#"[{"filter_name":"summary","filter_type":2,"filter_value":"x"}]"#);
    let (status, body) = h
        .get(&token, &format!("Tickets?advanced_search={bad}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["Message"], "Invalid advanced search parameter");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn actions_need_an_outcome_and_update_the_ticket() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.post(
        &token,
        "Tickets",
        json!([{"summary": "Mail", "client_id": 1}]),
    )
    .await;
    let (status, body) = h
        .post(
            &token,
            "Actions",
            json!([{"ticket_id": 1000, "note": "no outcome"}]),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["ClassName"], "System.Exception");
    assert_eq!(
        body["Message"],
        "An Outcome must be entered for this Action"
    );
    // A name or an id that is no outcome of this instance counts as no outcome (the seeded
    // instance, like a real one, has no "Email Received").
    for bad in [
        json!([{"ticket_id": 1000, "outcome": "Email Received", "note": "x"}]),
        json!([{"ticket_id": 1000, "outcome_id": 2, "note": "x"}]),
        json!([{"ticket_id": 1000, "outcome": "", "note": "x"}]),
    ] {
        let (status, body) = h.post(&token, "Actions", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
        assert_eq!(
            body["Message"], "An Outcome must be entered for this Action",
            "{bad}"
        );
    }

    h.clock.advance(Duration::minutes(5));
    let (status, a) = h
        .post(
            &token,
            "Actions",
            json!([{"ticket_id": 1000, "outcome": "private note", "note_html": "<b>internal</b>"}]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    assert_eq!(a["id"], 1);
    assert_eq!(a["outcome_id"], 7);
    assert_eq!(a["outcome"], "Private Note");
    assert_eq!(a["hiddenfromuser"], true);
    assert_eq!(a["note"], "internal");
    assert_eq!(a["actionby_agent_id"], 1);
    assert_eq!(a["datetime"], "2026-03-02T09:35:00.000Z");

    let (_, a2) = h
        .post(
            &token,
            "Actions",
            json!([{"ticket_id": 1000, "outcome_id": 7, "note": "reply",
                    "hiddenfromuser": false, "emailfrom": "pat@fabrikam.test"}]),
        )
        .await;
    assert_eq!(a2["id"], 2);
    let (_, ticket) = h.get(&token, "Tickets/1000").await;
    assert_eq!(ticket["lastactiondate"], "2026-03-02T09:35:00.000Z");
    assert_eq!(ticket["lastincomingemail"], "2026-03-02T09:35:00.000Z");

    // Closing outcome moves the ticket to its new status.
    let (_, close) = h
        .post(
            &token,
            "Actions",
            json!({"ticket_id": 1000, "outcome_id": 8, "note": "done"}),
        )
        .await;
    assert_eq!(close["new_status"], 9);
    assert_eq!(close["old_status"], 1);
    let (_, ticket) = h.get(&token, "Tickets/1000").await;
    assert_eq!(ticket["status_id"], 9);
    assert_eq!(ticket["hasbeenclosed"], true);

    let (_, list) = h.get(&token, "Actions?ticket_id=1000&count=2").await;
    assert_eq!(list["record_count"], 3);
    assert_eq!(list["actions"].as_array().unwrap().len(), 2);
    let (status, one) = h.get(&token, "Actions/2?ticket_id=1000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["note"], "reply");
    assert_eq!(
        h.get(&token, "Actions/2?ticket_id=999").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, private_excluded) = h
        .get(&token, "Actions?ticket_id=1000&excludeprivate=true")
        .await;
    assert_eq!(private_excluded["record_count"], 2);
}

#[tokio::test]
async fn users_search_and_advanced_search() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (status, u) = h
        .post(
            &token,
            "Users",
            json!([{"name": "Dana Scully", "emailaddress": "dana@northwind.test", "site_id": 11,
                    "azureoid": "0f0e0d0c-0000-4000-8000-000000000001"}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{u}");
    assert_eq!(u["client_id"], 2);
    assert_eq!(u["client_name"], "Northwind Traders");
    assert_eq!(u["site_name"], "Northwind Main");
    assert_eq!(serde_json::to_string(&u["site_id"]).unwrap(), "11.0");

    let (status, body) = h.post(&token, "Users", json!([{"name": "No Site"}])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (_, found) = h.get(&token, "Users?search=PAT@fabrikam").await;
    assert_eq!(found["record_count"], 1);
    assert_eq!(found["users"][0]["name"], "Pat Smith");
    let (_, by_client) = h.get(&token, "Users?client_id=1").await;
    assert_eq!(by_client["record_count"], 2);
    let (_, by_site) = h.get(&token, "Users?site_id=11").await;
    assert_eq!(by_site["record_count"], 1);
    let adv = urlencode(
        r#"[{"filter_name":"azureoid","filter_type":2,"filter_value":"0f0e0d0c-0000-4000-8000-000000000001"}]"#,
    );
    let (_, by_oid) = h.get(&token, &format!("Users?advanced_search={adv}")).await;
    assert_eq!(by_oid["users"][0]["name"], "Dana Scully");
    let bad = urlencode(r#"[{"filter_name":"name","filter_type":2,"filter_value":"x"}]"#);
    let (status, body) = h.get(&token, &format!("Users?advanced_search={bad}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["Message"], "Invalid advanced search parameter");
}

#[tokio::test]
async fn sites_clients_and_agents() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (_, sites) = h.get(&token, "Site?search=northwind").await;
    assert_eq!(sites["sites"][0]["emaildomain"], "northwind.test");
    let (_, clients) = h.get(&token, "Client?search=fabri").await;
    assert_eq!(clients["record_count"], 1);
    assert_eq!(clients["clients"][0]["main_site_name"], "Fabrikam HQ");
    let (_, me) = h.get(&token, "Agent/me").await;
    assert_eq!(me["name"], "Mailroom API");
    assert_eq!(me["isapiagent"], true);
    let (_, agents) = h.get(&token, "Agent").await;
    assert!(agents
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["isapiagent"] != true));
    let (_, all_agents) = h.get(&token, "Agent?includeapiagents=true").await;
    assert_eq!(all_agents.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn attachments_store_bytes_and_sizes() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.post(
        &token,
        "Tickets",
        json!([{"summary": "With file", "client_id": 1}]),
    )
    .await;
    let (status, att) = h
        .post(
            &token,
            "Attachment",
            json!([{"ticket_id": 1000, "filename": "report.pdf", "data_base64": "JVBERi0xLjQK"}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{att}");
    assert_eq!(att["filesize"], 9);
    assert_eq!(att["content_type"], "application/pdf");
    let id = att["id"].as_i64().unwrap();
    assert_eq!(h.sandbox.attachment_data(id).unwrap(), b"%PDF-1.4\n");
    let raw = h
        .http
        .get(format!("{}/api/Attachment/{id}", h.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-type"], "application/pdf");
    assert_eq!(raw.bytes().await.unwrap().as_ref(), b"%PDF-1.4\n");
    let (_, listed) = h.get(&token, "Attachment?ticket_id=1000").await;
    assert_eq!(listed["record_count"], 1);
    assert!(listed["attachments"][0].get("data_base64").is_none());
    let (_, ticket) = h.get(&token, "Tickets/1000").await;
    assert_eq!(ticket["attachment_count"], 1);
    let (status, _) = h
        .post(
            &token,
            "Attachment",
            json!([{"ticket_id": 1000, "filename": "x.bin", "data_base64": "***"}]),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn rate_limit_uses_a_rolling_window() {
    let h = Harness::start().await;
    h.sandbox.set_rate_limit(Some(RateLimit {
        requests: 5,
        window_secs: 60,
    }));
    // This test counts API calls only; token requests in the window are covered in the psa tests.
    h.sandbox
        .update_behaviour(|b| b.rate_limit_token_endpoint = false);
    let token = h.token().await;
    for _ in 0..3 {
        assert_eq!(h.get(&token, "Status").await.0, StatusCode::OK);
    }
    h.clock.advance(Duration::seconds(30));
    for _ in 0..2 {
        assert_eq!(h.get(&token, "Status").await.0, StatusCode::OK);
    }
    let resp = h
        .http
        .get(format!("{}/api/Status", h.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_none());
    assert_eq!(
        resp.text().await.unwrap(),
        "Rate Limit Reached - 5 Requests per rolling 1 minute window"
    );
    // The first three fall out of the window 60 s after they were made.
    h.clock.advance(Duration::seconds(30));
    for _ in 0..3 {
        assert_eq!(h.get(&token, "Status").await.0, StatusCode::OK);
    }
    assert_eq!(
        h.get(&token, "Status").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    h.sandbox.update_behaviour(|b| b.retry_after_header = true);
    let resp = h
        .http
        .get(format!("{}/api/Status", h.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "31");

    h.sandbox.set_rate_limit(None);
    assert_eq!(h.get(&token, "Status").await.0, StatusCode::OK);
}

#[tokio::test]
async fn default_rate_limit_message_matches_hosted_halo() {
    let h = Harness::start().await;
    let token = h.token().await;
    // The token request took one of the 300 slots.
    for _ in 0..299 {
        assert_eq!(h.get(&token, "Priority").await.0, StatusCode::OK);
    }
    let (status, body) = h.get(&token, "Priority").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body,
        Value::String("Rate Limit Reached - 300 Requests per rolling 5 minute window".into())
    );
}

#[tokio::test]
async fn json_seed_files_deserialize_over_defaults() {
    let seed: mailroom_halo_sandbox::HaloSeed =
        serde_json::from_value(json!({"tenant": "acme", "first_ticket_id": 5000})).unwrap();
    assert_eq!(seed.tenant, "acme");
    assert_eq!(seed.clients.len(), 3);
    let h = Harness::with_seed(seed).await;
    let token = h.token().await;
    let (_, t) = h
        .post(&token, "Tickets", json!({"summary": "s", "client_id": 1}))
        .await;
    assert_eq!(t["id"], 5000);
    assert!(format!("{:?}", h.sandbox.credentials()).contains("<redacted>"));
}

#[tokio::test]
async fn applications_created_by_api_can_obtain_tokens() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (status, app) = h
        .post(
            &token,
            "Application",
            json!([{"displayName": "Wizard", "loginas_agent_id": 1,
                    "scopes": [{"name": "read:tickets"}, {"name": "edit:tickets"}]}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    let client_id = app["clientId"].as_str().unwrap().to_string();
    let secret = app["clientSecret"].as_str().unwrap().to_string();
    let (_, listed) = h.get(&token, "Application").await;
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a.get("clientSecret").is_none()));
    let (status, body) = h
        .token_raw(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["scope"], "read:tickets edit:tickets");
    let wizard = body["access_token"].as_str().unwrap();
    h.post(
        wizard,
        "Tickets",
        json!({"summary": "from wizard", "client_id": 1}),
    )
    .await;
    let (_, a) = h
        .post(
            wizard,
            "Actions",
            json!({"ticket_id": 1000, "outcome_id": 7, "note": "n"}),
        )
        .await;
    assert_eq!(a["actionby_application_id"], "Wizard");
    assert_eq!(h.get(wizard, "Users").await.0, StatusCode::FORBIDDEN);
}

/// Mail the PSA sends from a ticket ("Email User" sends; "sendemail": false does not) is
/// recorded with its Message-ID on the action; `searchactions=true` makes the ticket search
/// cover actions (their Message-IDs only where the search covers those, an [U] switch).
#[tokio::test]
async fn actions_that_send_mail_record_its_message_id_and_search_can_cover_actions() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.post(
        &token,
        "Tickets",
        json!([{"summary": "Mail", "client_id": 1}]),
    )
    .await;
    let (_, sent) = h
        .post(
            &token,
            "Actions",
            json!([{"ticket_id": 1000, "outcome_id": 1, "note": "Please restart it"}]),
        )
        .await;
    let mid = sent["email_message_id"]
        .as_str()
        .expect("Message-ID recorded")
        .to_string();
    assert!(
        mid.starts_with('<') && mid.ends_with('>') && mid.contains('@'),
        "{mid}"
    );
    assert!(sent["dateemailed"].is_string(), "{sent}");
    let (_, quiet) = h
        .post(
            &token,
            "Actions",
            json!([{"ticket_id": 1000, "outcome_id": 1, "sendemail": false, "note": "x"}]),
        )
        .await;
    assert!(
        quiet.get("email_message_id").is_none_or(|v| v.is_null()),
        "{quiet}"
    );

    let q = |extra: &str| format!("Tickets?search={}{extra}", urlencoding(&mid));
    let (_, plain) = h.get(&token, &q("")).await;
    assert_eq!(plain["record_count"], 0, "{plain}");
    let (_, by_note) = h
        .get(&token, "Tickets?search=restart&searchactions=true")
        .await;
    assert_eq!(by_note["record_count"], 1, "{by_note}");
    // The default: the search does not cover Message-IDs.
    let (_, by_mid) = h.get(&token, &q("&searchactions=true")).await;
    assert_eq!(by_mid["record_count"], 0, "{by_mid}");
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
