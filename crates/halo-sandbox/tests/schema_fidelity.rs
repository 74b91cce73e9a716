//! Every response body of every resource validates against Halo's own OpenAPI component
//! schemas (`shared/reference/halopsa-openapi.json`, which says `additionalProperties: false`).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::Harness;
use reqwest::StatusCode;
use serde_json::{json, Map, Value};

/// OpenAPI 3.0 → JSON Schema: `nullable: true` becomes a `null` alternative.
fn convert(value: &Value) -> Value {
    match value {
        Value::Object(obj) => {
            let mut out: Map<String, Value> = obj
                .iter()
                .filter(|(k, _)| k.as_str() != "nullable")
                .map(|(k, v)| (k.clone(), convert(v)))
                .collect();
            if obj.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(t) = out.get("type").cloned() {
                    out.insert("type".into(), json!([t, "null"]));
                } else if let Some(r) = out.remove("$ref") {
                    return json!({"anyOf": [{"$ref": r}, {"type": "null"}]});
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(convert).collect()),
        other => other.clone(),
    }
}

struct Schemas {
    validators: HashMap<String, jsonschema::Validator>,
}

impl Schemas {
    fn load() -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/reference/halopsa-openapi.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let spec: Value = serde_json::from_str(&text).unwrap();
        let components = convert(&spec["components"]);
        let names = [
            "Faults",
            "Actions",
            "Users",
            "Area",
            "Site",
            "Uname",
            "RequestType",
            "TStatus",
            "Policy",
            "TOutcome",
            "Attachment",
            "Webhook",
            "WebhookEvent",
            "UnameNotification",
            "Tabname",
            "Certificate",
            "NHD_Identity_Application",
        ];
        let validators = names
            .iter()
            .map(|name| {
                let root = json!({
                    "$ref": format!("#/components/schemas/{name}"),
                    "components": components,
                });
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft7)
                    .should_validate_formats(true)
                    .build(&root)
                    .unwrap_or_else(|e| panic!("schema {name}: {e}"));
                (name.to_string(), validator)
            })
            .collect();
        Schemas { validators }
    }

    fn check(&self, schema: &str, what: &str, value: &Value) {
        let validator = &self.validators[schema];
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} does not match schema {schema}:\n{}\n{value:#}",
            errors.join("\n")
        );
        assert!(value.is_object(), "{what} must be an object");
    }

    fn check_all(&self, schema: &str, what: &str, items: &Value) -> usize {
        let items = items
            .as_array()
            .unwrap_or_else(|| panic!("{what} is not an array: {items}"));
        for (i, item) in items.iter().enumerate() {
            self.check(schema, &format!("{what}[{i}]"), item);
        }
        items.len()
    }
}

fn envelope(body: &Value, plural: &str) -> Value {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("envelope expected: {body}"));
    assert!(obj["record_count"].is_u64());
    for key in obj.keys() {
        assert!(
            ["page_no", "page_size", "record_count", plural].contains(&key.as_str()),
            "unexpected envelope key {key}"
        );
    }
    obj[plural].clone()
}

#[tokio::test]
async fn every_resource_response_matches_the_openapi_schemas() {
    let schemas = Schemas::load();
    let h = Harness::start().await;
    let token = h.token().await;
    let ok = |status: StatusCode, body: &Value| {
        assert!(status.is_success(), "{status}: {body}");
    };

    // Writes (POST responses are single objects).
    let (s, ticket) = h
        .post(
            &token,
            "Tickets",
            json!([{"summary": "Schema", "details_html": "<p>x</p>", "client_id": 1,
                    "site_id": 10, "user_id": 100, "email_message_id": "<s@fabrikam.test>",
                    "customfields": [{"id": 5, "name": "CFRef", "value": "abc"}],
                    "attachments": [{"filename": "a.png", "data_base64": "iVBORw0KGgo="}],
                    "userlookup": {"id": 100}, "bogus_field": true}]),
        )
        .await;
    ok(s, &ticket);
    schemas.check("Faults", "POST Tickets", &ticket);
    let (s, action) = h
        .post(
            &token,
            "Actions",
            json!([{"ticket_id": 1000, "outcome_id": 7, "note_html": "<p>hi</p>",
                    "emailfrom": "pat@fabrikam.test", "new_status": 4,
                    "attachments": [{"filename": "b.txt", "data_base64": "aGk="}]}]),
        )
        .await;
    ok(s, &action);
    schemas.check("Actions", "POST Actions", &action);
    let (s, user) = h
        .post(
            &token,
            "Users",
            json!([{"name": "Sam Example", "emailaddress": "sam@northwind.test", "site_id": 11}]),
        )
        .await;
    ok(s, &user);
    schemas.check("Users", "POST Users", &user);
    let (s, client) = h
        .post(&token, "Client", json!([{"name": "Contoso Ltd"}]))
        .await;
    ok(s, &client);
    schemas.check("Area", "POST Client", &client);
    let (s, site) = h
        .post(&token, "Site", json!([{"name": "Contoso Main", "client_id": client["id"], "emaildomain": "contoso-ltd.test"}]))
        .await;
    ok(s, &site);
    schemas.check("Site", "POST Site", &site);
    let (s, att) = h
        .post(
            &token,
            "Attachment",
            json!([{"ticket_id": 1000, "filename": "c.pdf", "data_base64": "JVBERi0xLjQK"}]),
        )
        .await;
    ok(s, &att);
    schemas.check("Attachment", "POST Attachment", &att);
    let pfx = include_bytes!("fixtures/webhook-signing.pfx");
    use base64::Engine as _;
    let (s, pfx_att) = h
        .post(&token, "Attachment", json!([{"filename": "m.pfx", "data_base64": base64::engine::general_purpose::STANDARD.encode(pfx)}]))
        .await;
    ok(s, &pfx_att);
    let (s, cert) = h
        .post(&token, "Certificate", json!([{"name": "Mailroom", "attachment_id": pfx_att["id"], "new_password": "sandbox-pfx-password"}]))
        .await;
    ok(s, &cert);
    schemas.check("Certificate", "POST Certificate", &cert);
    let (s, webhook) = h
        .post(&token, "Webhook", json!([{"name": "W", "url": "http://127.0.0.1:9/hook", "authentication_type": 4,
                                          "certificate_id": cert["id"], "active": false,
                                          "events": [{"eventno": 3, "name": "New Ticket Logged"}]}]))
        .await;
    ok(s, &webhook);
    schemas.check("Webhook", "POST Webhook", &webhook);
    let (s, notification) = h
        .post(
            &token,
            "Notification",
            json!([{"webhook_id": webhook["id"], "type": -2, "delivery_method": 6, "eventno": 76}]),
        )
        .await;
    ok(s, &notification);
    schemas.check("UnameNotification", "POST Notification", &notification);
    let (s, tab) = h
        .post(
            &token,
            "Tabs",
            json!([{"name": "Mailroom", "url": "https://mailroom.test/tab", "sequence": 1}]),
        )
        .await;
    ok(s, &tab);
    schemas.check("Tabname", "POST Tabs", &tab);
    let (s, app) = h
        .post(
            &token,
            "Application",
            json!([{"displayName": "Wizard app", "loginas_agent_id": 1,
                                              "scopes": [{"name": "read:tickets"}]}]),
        )
        .await;
    ok(s, &app);
    schemas.check("NHD_Identity_Application", "POST Application", &app);
    for (path, schema, body) in [
        (
            "Agent",
            "Uname",
            json!([{"name": "New Agent", "email": "new@contoso.test"}]),
        ),
        ("TicketType", "RequestType", json!([{"name": "Change"}])),
        ("Status", "TStatus", json!([{"name": "On Hold"}])),
        (
            "Priority",
            "Policy",
            json!([{"name": "Trivial", "priorityid": 5, "slaid": 1}]),
        ),
        (
            "Outcome",
            "TOutcome",
            json!([{"outcome": "Phone Call", "buttonname": "Phone"}]),
        ),
    ] {
        let (s, created) = h.post(&token, path, body).await;
        ok(s, &created);
        schemas.check(schema, &format!("POST {path}"), &created);
    }

    // A real delivery so the WebhookEvent log has an entry (to an unreachable receiver).
    h.post(
        &token,
        "Webhook",
        json!([{"id": webhook["id"], "active": true}]),
    )
    .await;
    h.post(
        &token,
        "Tickets",
        json!([{"summary": "Fires", "client_id": 2}]),
    )
    .await;
    h.sandbox.flush_webhooks().await;

    // Reads: paged lists, bare lookups, single records.
    let paged = [
        ("Tickets?pageinate=true&page_size=10", "tickets", "Faults"),
        ("Actions?ticket_id=1000", "actions", "Actions"),
        ("Users", "users", "Users"),
        ("Client", "clients", "Area"),
        ("Site", "sites", "Site"),
        ("Attachment?ticket_id=1000", "attachments", "Attachment"),
        ("WebhookEvent", "webhookevents", "WebhookEvent"),
    ];
    for (path, plural, schema) in paged {
        let (s, body) = h.get(&token, path).await;
        ok(s, &body);
        let n = schemas.check_all(schema, path, &envelope(&body, plural));
        assert!(n > 0, "{path} listed nothing");
    }
    let bare = [
        ("Agent?includeapiagents=true", "Uname"),
        ("TicketType", "RequestType"),
        ("Status", "TStatus"),
        ("Priority", "Policy"),
        ("Outcome?showhidden=true", "TOutcome"),
        ("Webhook", "Webhook"),
        ("Notification", "UnameNotification"),
        ("Tabs", "Tabname"),
        ("Certificate", "Certificate"),
        ("Application", "NHD_Identity_Application"),
    ];
    for (path, schema) in bare {
        let (s, body) = h.get(&token, path).await;
        ok(s, &body);
        assert!(
            schemas.check_all(schema, path, &body) > 0,
            "{path} listed nothing"
        );
    }
    let single = [
        ("Tickets/1000", "Faults"),
        ("Actions/1?ticket_id=1000", "Actions"),
        ("Users/100", "Users"),
        ("Client/1", "Area"),
        ("Site/10", "Site"),
        ("Agent/me", "Uname"),
        ("Agent/2", "Uname"),
        ("TicketType/1", "RequestType"),
        ("Status/1", "TStatus"),
        ("Priority/5b6f0c1e-0000-4000-8000-000000000003", "Policy"),
        ("Outcome/7", "TOutcome"),
        (
            &format!("Attachment/{}?includedetails=true", att["id"]),
            "Attachment",
        ),
        (
            &format!("Webhook/{}", webhook["id"].as_str().unwrap()),
            "Webhook",
        ),
        (
            &format!("Notification/{}", notification["id"]),
            "UnameNotification",
        ),
        (&format!("Tabs/{}", tab["id"]), "Tabname"),
        (&format!("Certificate/{}", cert["id"]), "Certificate"),
        (
            &format!("Application/{}", app["id"].as_str().unwrap()),
            "NHD_Identity_Application",
        ),
    ];
    for (path, schema) in single {
        let (s, body) = h.get(&token, path).await;
        ok(s, &body);
        schemas.check(schema, path, &body);
    }
    let (_, events) = h.get(&token, "WebhookEvent").await;
    let event_id = events["webhookevents"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, event) = h.get(&token, &format!("WebhookEvent/{event_id}")).await;
    ok(s, &event);
    schemas.check("WebhookEvent", "GET WebhookEvent/{id}", &event);

    // Inspection helpers return the same shapes.
    for t in h.sandbox.tickets() {
        schemas.check("Faults", "HaloSandbox::tickets", &t);
    }
    for a in h.sandbox.actions() {
        schemas.check("Actions", "HaloSandbox::actions", &a);
    }
    for u in h.sandbox.users() {
        schemas.check("Users", "HaloSandbox::users", &u);
    }
    for a in h.sandbox.attachments() {
        schemas.check("Attachment", "HaloSandbox::attachments", &a);
    }
}

#[test]
fn the_schema_check_rejects_undeclared_and_mistyped_properties() {
    let schemas = Schemas::load();
    let v = &schemas.validators["Faults"];
    assert!(v.is_valid(&json!({"id": 1, "summary": null})));
    assert!(!v.is_valid(&json!({"id": 1, "not_a_field": 1})));
    assert!(!v.is_valid(&json!({"id": "1"})));
    assert!(!v.is_valid(&json!({"id": 1, "dateoccurred": "yesterday"})));
    assert!(!v.is_valid(&json!({"id": 1, "lastincomingemail": null})));
}
