//! Contacts and contact folders as Graph serves them: the default folder and its child folders,
//! paging and `$select`, contact delta per folder (a second round costs one request and holds
//! only what changed; deletions come as `@removed`), and the Contacts.Read permission.

mod common;

use std::collections::HashSet;

use common::*;
use mailroom_graph_sandbox::seed::SUPPORT_ADDRESS_BOOK;
use mailroom_graph_sandbox::SeedContact;
use serde_json::Value;

fn addresses(c: &Value) -> Vec<String> {
    c["emailAddresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap().to_owned())
        .collect()
}

/// Every contact of the mailbox: the default folder, then each folder under it, recursively.
async fn all_contacts(e: &Env, token: &str, user: &str) -> Vec<Value> {
    let mut out = e.collect(token, &format!("{user}/contacts?$top=100")).await;
    let mut folders = e.collect(token, &format!("{user}/contactFolders")).await;
    while let Some(f) = folders.pop() {
        let id = f["id"].as_str().unwrap();
        out.extend(
            e.collect(
                token,
                &format!("{user}/contactFolders/{id}/contacts?$top=100"),
            )
            .await,
        );
        folders.extend(
            e.collect(token, &format!("{user}/contactFolders/{id}/childFolders"))
                .await,
        );
    }
    out
}

#[tokio::test]
async fn the_seeded_address_book_spans_folders_and_holds_what_imports_must_cope_with() {
    let e = env().await;
    let top = e.collect("support", "me/contactFolders").await;
    let mut names: Vec<&str> = top
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Customers", "Suppliers"]);
    let customers = top
        .iter()
        .find(|f| f["displayName"] == "Customers")
        .unwrap()["id"]
        .as_str()
        .unwrap();
    let children = e
        .collect(
            "support",
            &format!("me/contactFolders/{customers}/childFolders"),
        )
        .await;
    assert_eq!(children[0]["displayName"], "Key accounts");
    assert_eq!(children[0]["parentFolderId"], customers);

    let all = all_contacts(&e, "daemon", &format!("users/{SUPPORT}")).await;
    assert_eq!(all.len(), 5 + SUPPORT_ADDRESS_BOOK);
    let ids: HashSet<&str> = all.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "no contact twice");
    assert!(
        all.iter().any(|c| addresses(c).is_empty()),
        "one without an address"
    );
    assert!(
        all.iter().any(|c| addresses(c).len() >= 3),
        "one with three"
    );
    assert!(
        all.iter()
            .any(|c| addresses(c).iter().any(|a| !a.contains('@'))),
        "an invalid address"
    );
    assert!(all
        .iter()
        .any(|c| c["personalNotes"].as_str().unwrap().chars().count() == 500));
    assert!(all
        .iter()
        .any(|c| c["displayName"].as_str().unwrap().contains('ễ')));
    let mut seen = HashSet::new();
    let duplicated = all
        .iter()
        .flat_map(addresses)
        .filter(|a| !seen.insert(a.to_ascii_lowercase()))
        .count();
    assert!(duplicated > 0, "the same address in two folders");
    for domain in ["@fabrikam.test", "@northwind.test", "@adatum.test"] {
        assert!(all.iter().flat_map(addresses).any(|a| a.ends_with(domain)));
    }
    let with_address = all
        .iter()
        .find(|c| c["businessAddress"]["city"].is_string())
        .unwrap();
    assert!(with_address["department"].is_string());
}

#[tokio::test]
async fn contact_delta_pages_the_folder_then_returns_only_changes() {
    let e = env().await;
    let suppliers = e
        .collect("daemon", &format!("users/{SUPPORT}/contactFolders"))
        .await
        .into_iter()
        .find(|f| f["displayName"] == "Suppliers")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = format!(
        "users/{SUPPORT}/contactFolders/{suppliers}/contacts/delta?$select=displayName,emailAddresses"
    );
    // The first round: every contact of the folder, 25 a page, each with only what was
    // selected; the links keep the selection.
    let mut next = Some(e.url(&first));
    let mut round = Vec::new();
    let mut delta_link = None;
    let mut requests = 0;
    while let Some(url) = next.take() {
        let r = e
            .get_with("daemon", &url, &[("Prefer", "odata.maxpagesize=25")])
            .await;
        requests += 1;
        assert_eq!(r.status, 200, "{}", r.text);
        round.extend(r.body["value"].as_array().unwrap().iter().cloned());
        next = r.body["@odata.nextLink"].as_str().map(str::to_owned);
        delta_link = r.body["@odata.deltaLink"].as_str().map(str::to_owned);
    }
    let in_folder =
        e.sb.contacts(SUPPORT)
            .into_iter()
            .filter(|c| c.folder_id == suppliers)
            .count();
    assert_eq!(round.len(), in_folder);
    assert_eq!(requests, in_folder.div_ceil(25));
    assert!(round[0].get("companyName").is_none());
    assert!(round[0]["displayName"].is_string());
    let delta_link = delta_link.unwrap();
    assert!(delta_link.contains("deltatoken"), "{delta_link}");

    // Nothing changed: one request, no contact.
    let r = e.get("daemon", &delta_link).await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 0);
    let delta_link = r.body["@odata.deltaLink"].as_str().unwrap().to_owned();

    // A contact added, one changed, one deleted, and one in another folder.
    let added =
        e.sb.add_contact(SeedContact {
            mailbox: SUPPORT.into(),
            folder: Some("Suppliers".into()),
            display_name: "Ana Novak".into(),
            email_addresses: vec![("Ana Novak".into(), "ana@fabrikam.test".into())],
            ..SeedContact::default()
        })
        .unwrap();
    let ids: Vec<String> = round
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(e
        .sb
        .update_contact(SUPPORT, &ids[0], |c| c.job_title = Some("Buyer".into())));
    assert!(e.sb.delete_contact(SUPPORT, &ids[1]));
    e.sb.add_contact(SeedContact {
        mailbox: SUPPORT.into(),
        display_name: "Elsewhere".into(),
        ..SeedContact::default()
    })
    .unwrap();
    let r = e.get("daemon", &delta_link).await;
    let changes = r.body["value"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{changes:?}");
    let by_id = |id: &str| changes.iter().find(|c| c["id"] == id).unwrap();
    assert_eq!(by_id(&added)["displayName"], "Ana Novak");
    assert!(by_id(&ids[0])["@removed"].is_null());
    assert_eq!(by_id(&ids[1])["@removed"]["reason"], "deleted");
}

#[tokio::test]
async fn contacts_need_contacts_read() {
    let e = env().await;
    let r = e.get("support-readonly", "me/contacts").await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.code(), "ErrorAccessDenied");
    let r = e.get("support-readonly", "me/contactFolders").await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = e
        .get("noroles", &format!("users/{SUPPORT}/contactFolders"))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    // Contact delta is per folder only.
    let r = e.get("support", "me/contacts/delta").await;
    assert_eq!(r.status, 400, "{}", r.text);
}
