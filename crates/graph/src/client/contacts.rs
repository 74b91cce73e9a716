//! The mailbox's Outlook address book: contact folders (the default *Contacts* folder and every
//! folder under it), their contacts, and contact delta rounds per folder (reference §5:
//! `Contacts.Read`; delta works per contact folder).

use serde_json::{json, Map, Value};

use super::error::{GraphError, GraphErrorKind};
use super::transport::Call;
use super::GraphClient;
use crate::models::*;

/// Contacts asked for per page when listing (Graph's maximum `$top` is 1,000; 100 keeps pages
/// small enough to retry cheaply).
const CONTACT_PAGE: u32 = 100;

impl GraphClient {
    /// All contacts of the default contacts folder (paged).
    pub async fn contacts(&self) -> Result<Vec<Contact>, GraphError> {
        self.folder_contacts(None).await
    }

    /// One contact of the default folder, if any: a cheap probe of `Contacts.Read`.
    pub async fn probe_contacts(&self) -> Result<Option<Contact>, GraphError> {
        let mut url = self.mailbox_url(&["contacts"]);
        url.query_pairs_mut()
            .append_pair("$top", "1")
            .append_pair("$select", "displayName,parentFolderId");
        let page: Value = self.json(Call::new(http::Method::GET, url)).await?;
        page["value"]
            .as_array()
            .and_then(|v| v.first())
            .map(|c| serde_json::from_value(c.clone()))
            .transpose()
            .map_err(|e| GraphError::new(GraphErrorKind::InvalidResponse, e.to_string()))
    }

    /// The contacts of one folder (`None`: the default *Contacts* folder), every page.
    pub async fn folder_contacts(&self, folder: Option<&str>) -> Result<Vec<Contact>, GraphError> {
        let mut url = match folder {
            Some(id) => self.mailbox_url(&["contactFolders", id, "contacts"]),
            None => self.mailbox_url(&["contacts"]),
        };
        url.query_pairs_mut()
            .append_pair("$top", &CONTACT_PAGE.to_string());
        self.paged(Call::new(http::Method::GET, url), None).await
    }

    /// Every contact folder under the default one, depth first (`contactFolders`, then each
    /// folder's `childFolders`). The default folder itself is not among them.
    pub async fn contact_folders(&self) -> Result<Vec<ContactFolder>, GraphError> {
        let top = self.mailbox_url(&["contactFolders"]);
        let mut pending: Vec<ContactFolder> =
            self.paged(Call::new(http::Method::GET, top), None).await?;
        pending.reverse();
        let mut out = Vec::new();
        while let Some(folder) = pending.pop() {
            let url = self.mailbox_url(&["contactFolders", &folder.id, "childFolders"]);
            let mut children: Vec<ContactFolder> =
                self.paged(Call::new(http::Method::GET, url), None).await?;
            children.reverse();
            out.push(folder);
            pending.extend(children);
        }
        Ok(out)
    }

    /// One page of a contact folder's delta round. Follow `next` until `round_complete`, then
    /// store the deltaLink. A 410 gives [`GraphErrorKind::SyncStateNotFound`]: restart from
    /// [`DeltaCursor::Initial`].
    pub async fn contact_delta(
        &self,
        folder_id: &str,
        cursor: &DeltaCursor,
    ) -> Result<ContactDeltaPage, GraphError> {
        let url = match cursor {
            DeltaCursor::Initial => {
                self.mailbox_url(&["contactFolders", folder_id, "contacts", "delta"])
            }
            DeltaCursor::Link(link) => self.checked_link(link)?,
        };
        let call =
            Call::new(http::Method::GET, url).prefer(format!("odata.maxpagesize={CONTACT_PAGE}"));
        let page: Value = self.json(call).await?;
        parse_delta_page(&page)
    }

    /// A whole contact delta round of one folder: every page, with the deltaLink to store.
    pub async fn contact_delta_round(
        &self,
        folder_id: &str,
        cursor: &DeltaCursor,
    ) -> Result<ContactDeltaPage, GraphError> {
        let mut all = ContactDeltaPage {
            contacts: Vec::new(),
            removed_ids: Vec::new(),
            next: cursor.clone(),
            round_complete: false,
        };
        loop {
            let page = self.contact_delta(folder_id, &all.next).await?;
            all.contacts.extend(page.contacts);
            all.removed_ids.extend(page.removed_ids);
            all.next = page.next;
            if page.round_complete {
                all.round_complete = true;
                return Ok(all);
            }
        }
    }

    /// Whole delta rounds of several contact folders: the rounds that continue from a stored
    /// link are asked for together in `$batch` requests of 20, so an address book that did
    /// not change costs one request; a folder whose page says more follows its links, and one
    /// without a link (or whose batched request failed) gets a round of its own.
    pub async fn contact_delta_rounds(
        &self,
        cursors: &[(String, DeltaCursor)],
    ) -> Result<Vec<(String, Result<ContactDeltaPage, GraphError>)>, GraphError> {
        let mut out: Vec<(String, Result<ContactDeltaPage, GraphError>)> = Vec::new();
        let mut alone: Vec<(String, DeltaCursor)> = Vec::new();
        let linked: Vec<(&String, &String)> = cursors
            .iter()
            .filter_map(|(folder, cursor)| match cursor {
                DeltaCursor::Link(link) => Some((folder, link)),
                DeltaCursor::Initial => {
                    alone.push((folder.clone(), DeltaCursor::Initial));
                    None
                }
            })
            .collect();
        let root = self.versioned(&[]).to_string();
        for chunk in linked.chunks(20) {
            let mut requests = Vec::new();
            for (i, (folder, link)) in chunk.iter().enumerate() {
                let url = self.checked_link(link)?.to_string();
                let Some(relative) = url.strip_prefix(root.trim_end_matches('/')) else {
                    alone.push(((*folder).clone(), DeltaCursor::Link((*link).clone())));
                    continue;
                };
                let mut headers = Map::new();
                headers.insert(
                    "Prefer".into(),
                    json!(format!("odata.maxpagesize={CONTACT_PAGE}")),
                );
                requests.push(BatchRequest {
                    id: i.to_string(),
                    method: "GET".into(),
                    url: relative.to_string(),
                    headers,
                    body: None,
                    depends_on: Vec::new(),
                });
            }
            if requests.is_empty() {
                continue;
            }
            let responses = self.batch(&requests).await?;
            for (i, (folder, link)) in chunk.iter().enumerate() {
                let answered = responses
                    .iter()
                    .find(|r| r.id == i.to_string() && r.status == 200)
                    .and_then(|r| r.body.as_ref())
                    .map(parse_delta_page);
                match answered {
                    Some(Ok(page)) if page.round_complete => {
                        out.push(((*folder).clone(), Ok(page)))
                    }
                    Some(Ok(page)) => {
                        let rest = self.contact_delta_round(folder, &page.next).await;
                        out.push((
                            (*folder).clone(),
                            rest.map(|mut rest| {
                                let mut contacts = page.contacts;
                                contacts.append(&mut rest.contacts);
                                let mut removed = page.removed_ids;
                                removed.append(&mut rest.removed_ids);
                                ContactDeltaPage {
                                    contacts,
                                    removed_ids: removed,
                                    ..rest
                                }
                            }),
                        ));
                    }
                    // Throttled, expired or failed inside the batch: a round of its own
                    // (retried, and a 410 reported as such).
                    _ => alone.push(((*folder).clone(), DeltaCursor::Link((*link).clone()))),
                }
            }
        }
        for (folder, cursor) in alone {
            let round = self.contact_delta_round(&folder, &cursor).await;
            out.push((folder, round));
        }
        Ok(out)
    }
}

fn parse_delta_page(page: &Value) -> Result<ContactDeltaPage, GraphError> {
    let (contacts, removed_ids, next, round_complete) = split_delta_page(page)?;
    Ok(ContactDeltaPage {
        contacts,
        removed_ids,
        next,
        round_complete,
    })
}

/// One delta page of any item type: the items, the ids reported `@removed`, where to continue,
/// and whether that is the round's final deltaLink (messages and contacts alike).
pub(super) fn split_delta_page<T: serde::de::DeserializeOwned>(
    page: &Value,
) -> Result<(Vec<T>, Vec<String>, DeltaCursor, bool), GraphError> {
    let mut items = Vec::new();
    let mut removed_ids = Vec::new();
    for item in page["value"].as_array().into_iter().flatten() {
        if item.get("@removed").is_some() {
            if let Some(id) = item["id"].as_str() {
                removed_ids.push(id.to_string());
            }
            continue;
        }
        items.push(
            serde_json::from_value(item.clone())
                .map_err(|e| GraphError::new(GraphErrorKind::InvalidResponse, e.to_string()))?,
        );
    }
    let (next, round_complete) = if let Some(n) = page["@odata.nextLink"].as_str() {
        (DeltaCursor::Link(n.to_string()), false)
    } else if let Some(d) = page["@odata.deltaLink"].as_str() {
        (DeltaCursor::Link(d.to_string()), true)
    } else {
        return Err(GraphError::new(
            GraphErrorKind::InvalidResponse,
            "delta page has neither @odata.nextLink nor @odata.deltaLink",
        ));
    };
    Ok((items, removed_ids, next, round_complete))
}
