//! Mail endpoints over real HTTP: paging, $select, filters, MIME, attachments, PATCH, move,
//! folders, send/reply, contacts.

mod common;

use common::*;
use serde_json::{json, Value};

fn find<'a>(items: &'a [Value], subject: &str) -> &'a Value {
    items
        .iter()
        .find(|m| m["subject"] == subject)
        .unwrap_or_else(|| panic!("no message '{subject}'"))
}

#[tokio::test]
async fn paging_follows_next_links_over_the_whole_inbox() {
    let e = env().await;
    let first = e
        .get(
            "support",
            "me/mailFolders/inbox/messages?$top=5&$select=subject",
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["value"].as_array().unwrap().len(), 5);
    assert!(first.body["@odata.nextLink"]
        .as_str()
        .unwrap()
        .contains("skip"));
    let all = e
        .collect(
            "support",
            "me/mailFolders('Inbox')/messages?$top=5&$select=subject",
        )
        .await;
    let expected =
        e.sb.messages(SUPPORT)
            .into_iter()
            .filter(|m| m.folder == "inbox")
            .count();
    assert_eq!(all.len(), expected);
    let mut ids: Vec<&str> = all.iter().map(|m| m["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), expected, "pages must not overlap");
    // Default page size is 10 and newest comes first.
    let def = e
        .get(
            "support",
            "users/support@contoso.test/mailFolders/inbox/messages",
        )
        .await;
    let v = def.body["value"].as_array().unwrap();
    assert_eq!(v.len(), 10);
    let dates: Vec<&str> = v
        .iter()
        .map(|m| m["receivedDateTime"].as_str().unwrap())
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted);
    // $top bounds.
    assert_eq!(e.get("support", "me/messages?$top=0").await.status, 400);
    assert_eq!(e.get("support", "me/messages?$top=1001").await.status, 400);
    assert_eq!(e.get("support", "me/messages?$top=1000").await.status, 200);
}

#[tokio::test]
async fn select_limits_properties_and_headers_need_select() {
    let e = env().await;
    let r = e
        .get(
            "support",
            "me/mailFolders/inbox/messages?$top=3&$select=subject,from",
        )
        .await;
    for m in r.body["value"].as_array().unwrap() {
        let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
        assert!(
            keys.iter()
                .all(|k| ["@odata.etag", "id", "subject", "from"].contains(&k.as_str())),
            "{keys:?}"
        );
        assert!(m["subject"].is_string() && m["from"]["emailAddress"]["address"].is_string());
    }
    let full = e
        .get("support", "me/mailFolders/inbox/messages?$top=1")
        .await;
    let m = &full.body["value"][0];
    assert!(m.get("body").is_some() && m.get("internetMessageHeaders").is_none());
    let id = m["id"].as_str().unwrap();
    let h = e
        .get(
            "support",
            &format!("me/messages/{id}?$select=internetMessageHeaders,subject"),
        )
        .await;
    let headers = h.body["internetMessageHeaders"].as_array().unwrap();
    assert!(headers.iter().any(|x| x["name"] == "Message-ID"));
    assert!(headers.iter().any(|x| x["name"] == "Received"));
}

#[tokio::test]
async fn filter_orderby_rule_and_filters() {
    let e = env().await;
    let bad = e
        .get(
            "support",
            "me/mailFolders/inbox/messages?$filter=isRead eq false&$orderby=receivedDateTime desc",
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.code(), "InefficientFilter");
    assert_eq!(
        bad.message(),
        "The restriction or sort order is too complex for this operation."
    );
    let ok = e
        .collect("support", "me/mailFolders/inbox/messages?$filter=receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false&$orderby=receivedDateTime desc&$top=4")
        .await;
    let unread =
        e.sb.messages(SUPPORT)
            .into_iter()
            .filter(|m| m.folder == "inbox" && !m.is_read)
            .count();
    assert_eq!(ok.len(), unread);
    assert!(ok.iter().all(|m| m["isRead"] == false));
    let from = e
        .collect(
            "support",
            "me/messages?$filter=from/emailAddress/address eq 'lee@fabrikam.test'",
        )
        .await;
    assert!(!from.is_empty());
    assert!(from
        .iter()
        .all(|m| m["from"]["emailAddress"]["address"] == "lee@fabrikam.test"));
    let by_id = e
        .get(
            "support",
            "me/messages?$filter=internetMessageId eq '<vpn-drop-0004@fabrikam.test>'",
        )
        .await;
    assert_eq!(by_id.body["value"].as_array().unwrap().len(), 1);
    let invalid = e.get("support", "me/messages?$filter=nonsense eq 1").await;
    assert_eq!(invalid.status, 400);
}

#[tokio::test]
async fn raw_mime_parses_back_and_attachments_are_served() {
    let e = env().await;
    let all = e
        .collect("support", "me/mailFolders/inbox/messages?$top=50")
        .await;
    let shot = find(&all, "Error when opening the CRM");
    assert_eq!(shot["hasAttachments"], true);
    let id = shot["id"].as_str().unwrap();
    let raw = e.get("support", &format!("me/messages/{id}/$value")).await;
    assert_eq!(raw.status, 200);
    let parsed = mail_parser::MessageParser::default()
        .parse(raw.text.as_bytes())
        .unwrap();
    assert_eq!(parsed.subject(), Some("Error when opening the CRM"));
    assert_eq!(parsed.message_id(), Some("crm-error-0005@fabrikam.test"));
    assert_eq!(parsed.attachment_count(), 2);
    assert!(parsed
        .body_html(0)
        .unwrap()
        .contains("cid:screenshot-0005@fabrikam.test"));

    let atts = e
        .get("support", &format!("me/messages/{id}/attachments"))
        .await;
    let list = atts.body["value"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let png = list.iter().find(|a| a["isInline"] == true).unwrap();
    assert_eq!(png["contentId"], "screenshot-0005@fabrikam.test");
    assert_eq!(png["@odata.type"], "#microsoft.graph.fileAttachment");
    let pdf = list.iter().find(|a| a["isInline"] == false).unwrap();
    assert_eq!(pdf["contentType"], "application/pdf");
    let aid = pdf["id"].as_str().unwrap();
    let bytes = e
        .http
        .get(e.url(&format!("me/messages/{id}/attachments/{aid}/$value")))
        .bearer_auth("support")
        .send()
        .await
        .unwrap();
    assert_eq!(bytes.headers()["content-type"], "application/pdf");
    assert_eq!(
        bytes.bytes().await.unwrap().as_ref(),
        mailroom_graph_sandbox::seed::SAMPLE_PDF
    );
    let one = e
        .get("support", &format!("me/messages/{id}/attachments/{aid}"))
        .await;
    assert_eq!(
        one.body["size"],
        mailroom_graph_sandbox::seed::SAMPLE_PDF.len()
    );

    // The DSN is a multipart/report; the auto-reply carries its headers.
    let dsn = find(&all, "Undeliverable: RE: Printer on 3rd floor not working");
    let raw = e
        .get(
            "support",
            &format!("me/messages/{}/$value", dsn["id"].as_str().unwrap()),
        )
        .await;
    assert!(raw.text.contains("multipart/report"));
    assert!(raw.text.contains("message/delivery-status"));
    let auto = find(
        &all,
        "Automatic reply: RE: Printer on 3rd floor not working",
    );
    let h = e
        .get(
            "support",
            &format!(
                "me/messages/{}?$select=internetMessageHeaders",
                auto["id"].as_str().unwrap()
            ),
        )
        .await;
    let hs = h.body["internetMessageHeaders"].as_array().unwrap();
    assert!(hs
        .iter()
        .any(|x| x["name"] == "Auto-Submitted" && x["value"] == "auto-replied"));
    assert!(hs.iter().any(|x| x["name"] == "X-Auto-Response-Suppress"));
}

#[tokio::test]
async fn thread_shares_conversation_and_body_preference() {
    let e = env().await;
    let all = e.collect("support", "me/messages?$top=100").await;
    let first = find(&all, "Printer on 3rd floor not working");
    let replies: Vec<&Value> = all
        .iter()
        .filter(|m| m["subject"] == "RE: Printer on 3rd floor not working")
        .collect();
    assert_eq!(
        replies.len(),
        2,
        "support's reply in sentitems and the customer's reply"
    );
    for r in replies {
        assert_eq!(r["conversationId"], first["conversationId"]);
    }
    let id = first["id"].as_str().unwrap();
    let html = e.get("support", &format!("me/messages/{id}")).await;
    assert_eq!(html.body["body"]["contentType"], "html");
    let text = e
        .get_with(
            "support",
            &format!("me/messages/{id}"),
            &[("Prefer", "outlook.body-content-type=\"text\"")],
        )
        .await;
    assert_eq!(text.body["body"]["contentType"], "text");
    assert!(!text.body["body"]["content"].as_str().unwrap().contains('<'));
    assert!(text
        .header("preference-applied")
        .unwrap()
        .contains("outlook.body-content-type"));
}

#[tokio::test]
async fn patch_move_and_ids() {
    let e = env().await;
    let list = e
        .get(
            "support",
            "me/mailFolders/inbox/messages?$top=1&$filter=isRead eq false",
        )
        .await;
    let id = list.body["value"][0]["id"].as_str().unwrap().to_owned();
    let p = e
        .patch(
            "support",
            &format!("me/messages/{id}"),
            json!({"isRead": true, "categories": ["Mailroom"]}),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["isRead"], true);
    assert_eq!(p.body["categories"], json!(["Mailroom"]));
    assert!(e
        .sb
        .messages(SUPPORT)
        .iter()
        .any(|m| m.id == id && m.is_read));

    let folder = e
        .post(
            "support",
            "me/mailFolders/inbox/childFolders",
            json!({"displayName": "Processed"}),
        )
        .await;
    assert_eq!(folder.status, 201, "{}", folder.text);
    let fid = folder.body["id"].as_str().unwrap().to_owned();
    let dup = e
        .post(
            "support",
            "me/mailFolders/inbox/childFolders",
            json!({"displayName": "Processed"}),
        )
        .await;
    assert_eq!(dup.status, 409);
    let found = e
        .get(
            "support",
            "me/mailFolders/inbox/childFolders?$filter=displayName eq 'Processed'",
        )
        .await;
    assert_eq!(found.body["value"][0]["id"], fid.as_str());
    let top = e.get("support", "me/mailFolders?$top=50").await;
    assert!(top.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["displayName"] == "Archive"));

    let moved = e
        .post(
            "support",
            &format!("me/messages/{id}/move"),
            json!({"destinationId": fid}),
        )
        .await;
    assert_eq!(moved.status, 201, "{}", moved.text);
    let new_id = moved.body["id"].as_str().unwrap();
    assert_ne!(new_id, id);
    assert_eq!(moved.body["parentFolderId"], fid.as_str());
    let old = e.get("support", &format!("me/messages/{id}")).await;
    assert_eq!(old.status, 404);
    assert_eq!(old.code(), "ErrorItemNotFound");
    assert_eq!(
        e.get("support", &format!("me/messages/{new_id}"))
            .await
            .status,
        200
    );
    assert_eq!(
        e.get("support", &format!("me/mailFolders/{fid}/messages"))
            .await
            .body["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // ImmutableId survives the move.
    let imm = e
        .get_with(
            "support",
            &format!("me/messages/{new_id}"),
            &[("Prefer", "IdType=\"ImmutableId\"")],
        )
        .await;
    let imm_id = imm.body["id"].as_str().unwrap().to_owned();
    let again = e
        .send(
            e.http
                .post(e.url(&format!("me/messages/{imm_id}/move")))
                .bearer_auth("support")
                .header("Prefer", "IdType=\"ImmutableId\"")
                .json(&json!({"destinationId": "archive"})),
        )
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body["id"], imm_id.as_str());

    assert_eq!(
        e.get("support", "me/messages/not-an-id").await.code(),
        "ErrorInvalidIdMalformed"
    );
    assert_eq!(
        e.post(
            "support",
            &format!("me/messages/{new_id}/move"),
            json!({"destinationId": "nosuchfolder"})
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn send_mail_and_reply_are_recorded_and_delivered_internally() {
    let e = env().await;
    let r = e
        .post("support", "me/sendMail", json!({
            "message": {
                "subject": "Scan report",
                "body": {"contentType": "Text", "content": "3 messages processed."},
                "toRecipients": [{"emailAddress": {"address": "helpdesk@contoso.test"}}],
                "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "r.csv", "contentType": "text/csv", "contentBytes": "aWQsc3ViamVjdAo="}],
                "internetMessageHeaders": [{"name": "x-scan-run", "value": "42"}]
            }
        }))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(r.text.is_empty());
    let sent = e.sb.sent_mail(SUPPORT);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, vec!["helpdesk@contoso.test".to_owned()]);
    assert_eq!(sent[0].attachments[0].content, b"id,subject\n");
    assert!(sent[0].mime.contains("x-scan-run: 42"));
    assert!(e
        .sb
        .messages(SUPPORT)
        .iter()
        .any(|m| m.folder == "sentitems" && m.subject == "Scan report"));
    assert!(e
        .sb
        .messages(HELPDESK)
        .iter()
        .any(|m| m.folder == "inbox" && m.subject == "Scan report"));

    let bad = e.post("support", "me/sendMail", json!({"message": {"subject": "x", "toRecipients": [{"emailAddress": {"address": "a@b.test"}}], "internetMessageHeaders": [{"name": "Foo", "value": "1"}]}})).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.code(), "InvalidInternetMessageHeader");
    let none = e
        .post(
            "support",
            "me/sendMail",
            json!({"message": {"subject": "x"}}),
        )
        .await;
    assert_eq!(none.code(), "ErrorInvalidRecipients");

    let all = e
        .collect("support", "me/mailFolders/inbox/messages?$top=100")
        .await;
    let orig = find(&all, "VPN drops every 10 minutes");
    let id = orig["id"].as_str().unwrap();
    let rep = e
        .post(
            "support",
            &format!("me/messages/{id}/reply"),
            json!({"comment": "We are on it."}),
        )
        .await;
    assert_eq!(rep.status, 202, "{}", rep.text);
    let sent = e.sb.sent_mail(SUPPORT);
    let reply = sent.last().unwrap();
    assert_eq!(reply.subject, "RE: VPN drops every 10 minutes");
    assert_eq!(reply.to, vec!["lee@fabrikam.test".to_owned()]);
    assert_eq!(
        reply.in_reply_to.as_deref(),
        Some("<vpn-drop-0004@fabrikam.test>")
    );
    assert!(reply.body.contains("We are on it."));
    let parsed = mail_parser::MessageParser::default()
        .parse(reply.mime.as_bytes())
        .unwrap();
    assert_eq!(
        parsed.in_reply_to().as_text(),
        Some("vpn-drop-0004@fabrikam.test")
    );
    let both = e
        .post(
            "support",
            &format!("me/messages/{id}/reply"),
            json!({"comment": "a", "message": {"body": {"contentType": "Text", "content": "b"}}}),
        )
        .await;
    assert_eq!(both.status, 400);
}

#[tokio::test]
async fn contacts_page_and_select() {
    let e = env().await;
    let page = e
        .get(
            "support",
            "me/contacts?$top=2&$select=displayName,emailAddresses",
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.body["value"].as_array().unwrap().len(), 2);
    assert!(page.body["value"][0].get("companyName").is_none());
    let all = e
        .collect("daemon", "users/support@contoso.test/contacts?$top=2")
        .await;
    let in_default_folder =
        e.sb.contacts(SUPPORT)
            .into_iter()
            .filter(|c| c.contact.folder.is_none())
            .count();
    assert_eq!(all.len(), in_default_folder);
    assert!(all.iter().any(
        |c| c["emailAddresses"][0]["address"] == "dana@northwind.test"
            && c["companyName"] == "Northwind Traders"
    ));
    let id = all[0]["id"].as_str().unwrap();
    assert_eq!(
        e.get("support", &format!("me/contacts/{id}")).await.body["id"],
        id
    );
}

#[tokio::test]
async fn deliver_builds_a_message_with_mime() {
    let e = env().await;
    let d =
        e.sb.deliver(mailroom_graph_sandbox::InboundMail {
            to: HELPDESK.into(),
            from: "pat@fabrikam.test".into(),
            from_name: Some("Pat Smith".into()),
            subject: "RE: Projector in boardroom flickers".into(),
            body_text: Some("Still flickering.".into()),
            in_reply_to: Some("<helpdesk-0200@fabrikam.test>".into()),
            references: vec!["<helpdesk-0200@fabrikam.test>".into()],
            ..Default::default()
        })
        .unwrap();
    let original =
        e.sb.messages(HELPDESK)
            .into_iter()
            .find(|m| m.internet_message_id == "<helpdesk-0200@fabrikam.test>")
            .unwrap();
    assert_eq!(d.conversation_id, original.conversation_id);
    let mime = e.sb.message_mime(HELPDESK, &d.id).unwrap();
    let parsed = mail_parser::MessageParser::default()
        .parse(mime.as_bytes())
        .unwrap();
    assert_eq!(
        parsed.subject(),
        Some("RE: Projector in boardroom flickers")
    );
    assert_eq!(
        parsed.references().as_text(),
        Some("helpdesk-0200@fabrikam.test")
    );
    let got = e
        .get("daemon", &format!("users/{HELPDESK}/messages/{}", d.id))
        .await;
    assert_eq!(got.body["receivedDateTime"], "2026-03-02T09:00:00Z");
    assert_eq!(
        got.body["internetMessageId"],
        d.internet_message_id.as_str()
    );
}

#[tokio::test]
async fn delete_moves_to_deleted_items_and_send_as_needs_a_grant() {
    let e = env().await;
    let id =
        e.sb.messages(SUPPORT)
            .into_iter()
            .find(|m| m.folder == "inbox")
            .unwrap()
            .id;
    let r = e.delete("support", &format!("me/messages/{id}")).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        e.get("support", &format!("me/messages/{id}")).await.status,
        404
    );
    let deleted = e
        .get("support", "me/mailFolders/deleteditems/messages")
        .await;
    assert_eq!(deleted.body["value"].as_array().unwrap().len(), 1);

    // Megan may send as the shared mailbox from her own mailbox; Alex may not.
    let body = json!({"message": {
        "subject": "From the helpdesk",
        "from": {"emailAddress": {"address": HELPDESK}},
        "body": {"contentType": "HTML", "content": "<p>Hi</p>"},
        "toRecipients": [{"emailAddress": {"address": "pat@fabrikam.test", "name": "Pat Smith"}}]
    }, "saveToSentItems": false});
    assert_eq!(
        e.post("megan", "me/sendMail", body.clone()).await.status,
        202
    );
    let sent = e.sb.sent_mail("megan@contoso.test");
    assert_eq!(sent[0].from, HELPDESK);
    assert_eq!(sent[0].sent_items_id, None);
    assert!(sent[0].mime.contains("helpdesk@contoso.test"));
    let r = e.post("alex", "me/sendMail", body).await;
    assert_eq!((r.status, r.code()), (403, "ErrorSendAsDenied"));
}

/// Issue 24 #5: what Microsoft's own Graph SDK sends — the OData function-call form of delta
/// and action parameters in another case — works as on real Graph.
#[tokio::test]
async fn sdk_spellings_of_delta_and_action_parameters_are_accepted() {
    let e = env().await;
    for form in ["delta()", "microsoft.graph.delta()", "delta"] {
        let r = e
            .get("support", &format!("me/mailFolders/inbox/messages/{form}"))
            .await;
        assert_eq!(r.status, 200, "{form}: {}", r.text);
        assert!(r.body["value"].is_array(), "{form}");
    }

    let inbox = e.collect("support", "me/mailFolders/inbox/messages").await;
    let id = inbox[0]["id"].as_str().unwrap().to_owned();
    let moved = e
        .post(
            "support",
            &format!("me/messages/{id}/move"),
            json!({"DestinationId": "archive"}),
        )
        .await;
    assert_eq!(moved.status, 201, "{}", moved.text);

    let sent = e
        .post(
            "support",
            "me/sendMail",
            json!({
                "Message": {
                    "subject": "Case-insensitive parameters",
                    "body": {"contentType": "Text", "content": "Sent as the SDK spells it."},
                    "toRecipients": [{"emailAddress": {"address": "helpdesk@contoso.test"}}]
                },
                "SaveToSentItems": true
            }),
        )
        .await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    assert_eq!(e.sb.sent_mail(SUPPORT).len(), 1);
}

/// Issue 24 #5: `@odata.etag` is `W/"<changeKey>"`, and the change key differs between items
/// and between versions of one item, as on real Graph.
#[tokio::test]
async fn etags_are_the_change_key_and_unique_per_item_version() {
    let e = env().await;
    let items = e.collect("support", "me/mailFolders/inbox/messages").await;
    let mut keys = std::collections::HashSet::new();
    for m in &items {
        let key = m["changeKey"].as_str().unwrap();
        assert_eq!(m["@odata.etag"], format!("W/\"{key}\""), "{m}");
        assert!(keys.insert(key.to_owned()), "change key {key} repeats");
    }
    let id = items[0]["id"].as_str().unwrap();
    let before = items[0]["changeKey"].as_str().unwrap().to_owned();
    let patched = e
        .patch(
            "support",
            &format!("me/messages/{id}"),
            json!({"isRead": true}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_ne!(patched.body["changeKey"].as_str().unwrap(), before);
}

/// Issue 24 #5: `conversationIndex` is in the default properties — the conversation's 22-byte
/// header block, which every message of the conversation starts with, and a 5-byte child block
/// per reply level — and `uniqueBody` is returned when selected.
#[tokio::test]
async fn conversation_index_by_default_and_unique_body_on_select() {
    use base64::Engine as _;
    let e = env().await;
    let items = e.collect("support", "me/mailFolders/inbox/messages").await;
    for m in &items {
        let index = m["conversationIndex"].as_str().expect("conversationIndex");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(index)
            .unwrap();
        assert!(bytes.len() >= 22 && (bytes.len() - 22) % 5 == 0, "{index}");
        for other in &items {
            if other["conversationId"] == m["conversationId"] {
                let theirs = base64::engine::general_purpose::STANDARD
                    .decode(other["conversationIndex"].as_str().unwrap())
                    .unwrap();
                assert_eq!(theirs[..22], bytes[..22], "one header per conversation");
            }
        }
    }
    // A reply's index is its parent's plus one child block.
    let original = e.sb.deliver(mailroom_graph_sandbox::InboundMail {
        to: SUPPORT.into(),
        from: "pat@fabrikam.test".into(),
        subject: "Thread root".into(),
        ..Default::default()
    });
    let original = original.unwrap();
    let reply =
        e.sb.deliver(mailroom_graph_sandbox::InboundMail {
            to: SUPPORT.into(),
            from: "pat@fabrikam.test".into(),
            subject: "RE: Thread root".into(),
            in_reply_to: Some(original.internet_message_id.clone()),
            ..Default::default()
        })
        .unwrap();
    let index_of = |id: &str| {
        let e = &e;
        let id = id.to_owned();
        async move {
            let m = e.get("support", &format!("me/messages/{id}")).await;
            base64::engine::general_purpose::STANDARD
                .decode(m.body["conversationIndex"].as_str().unwrap())
                .unwrap()
        }
    };
    let parent = index_of(&original.id).await;
    let child = index_of(&reply.id).await;
    assert_eq!(parent.len(), 22);
    assert_eq!(child.len(), 27);
    assert_eq!(child[..22], parent[..]);
    let id = items[0]["id"].as_str().unwrap();
    let one = e
        .get(
            "support",
            &format!("me/messages/{id}?$select=subject,uniqueBody"),
        )
        .await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert!(
        one.body["uniqueBody"]["content"].is_string(),
        "{}",
        one.text
    );
}
