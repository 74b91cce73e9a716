//! Messages and folders: listing, delta rounds, one message, its MIME and
//! attachments, read state, moves and folders.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::error::{GraphError, GraphErrorKind};
use super::transport::Call;
use super::GraphClient;
use crate::models::*;

impl GraphClient {
    /// Reads the id of the inbox's newest message, nothing more: whether the token may read
    /// this mailbox (app-only connect, the blast-radius check).
    pub async fn probe_inbox(&self) -> Result<(), GraphError> {
        self.list_messages(
            "inbox",
            &MessageQuery {
                top: Some(1),
                max_pages: Some(1),
                select: vec!["id".into()],
                ..Default::default()
            },
        )
        .await
        .map(|_| ())
    }

    /// Lists messages of a folder (well-known name like `inbox`, or an id), following
    /// `@odata.nextLink` verbatim.
    pub async fn list_messages(
        &self,
        folder: &str,
        query: &MessageQuery,
    ) -> Result<Vec<Message>, GraphError> {
        let mut url = self.mailbox_url(&["mailFolders", folder, "messages"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(top) = query.top {
                q.append_pair("$top", &top.clamp(1, 1000).to_string());
            }
            if !query.select.is_empty() {
                q.append_pair("$select", &query.select.join(","));
            }
            if let Some(f) = &query.filter {
                q.append_pair("$filter", f);
            }
            if let Some(o) = &query.orderby {
                q.append_pair("$orderby", o);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let mut call = Call::new(http::Method::GET, url);
        if query.text_body {
            call = call.prefer("outlook.body-content-type=\"text\"");
        }
        self.paged(call, query.max_pages).await
    }

    /// One delta page for `folder`. Follow `next` until `round_complete`, then store the
    /// deltaLink. A 410 gives [`GraphErrorKind::SyncStateNotFound`]: restart from
    /// [`DeltaCursor::Initial`].
    pub async fn delta(&self, folder: &str, cursor: &DeltaCursor) -> Result<DeltaPage, GraphError> {
        self.delta_selecting(folder, cursor, &[]).await
    }

    /// [`GraphClient::delta`] reading `select` of every message in the round itself (delta
    /// supports `$select`), so that processing a message needs no `GET` of its own. Graph
    /// carries the query in its nextLink and deltaLink: `select` applies to an initial round,
    /// and a link keeps the selection the round started with.
    pub async fn delta_selecting(
        &self,
        folder: &str,
        cursor: &DeltaCursor,
        select: &[&str],
    ) -> Result<DeltaPage, GraphError> {
        let url = match cursor {
            DeltaCursor::Initial => {
                let mut url = self.mailbox_url(&["mailFolders", folder, "messages", "delta"]);
                if !select.is_empty() {
                    url.query_pairs_mut()
                        .append_pair("$select", &select.join(","));
                }
                url
            }
            DeltaCursor::Link(link) => self.checked_link(link)?,
        };
        let call = Call::new(http::Method::GET, url)
            .prefer(format!("odata.maxpagesize={}", self.delta_page_size));
        let page: Value = self.json(call).await?;
        let (messages, removed_ids, next, round_complete) =
            super::contacts::split_delta_page(&page)?;
        Ok(DeltaPage {
            messages,
            removed_ids,
            next,
            round_complete,
        })
    }

    /// A whole delta round: follows nextLinks until the deltaLink and returns everything,
    /// with the deltaLink to store as the next cursor.
    pub async fn delta_round(
        &self,
        folder: &str,
        cursor: &DeltaCursor,
    ) -> Result<DeltaPage, GraphError> {
        let mut all = DeltaPage {
            messages: Vec::new(),
            removed_ids: Vec::new(),
            next: cursor.clone(),
            round_complete: false,
        };
        loop {
            let page = self.delta(folder, &all.next).await?;
            all.messages.extend(page.messages);
            all.removed_ids.extend(page.removed_ids);
            all.next = page.next;
            if page.round_complete {
                all.round_complete = true;
                return Ok(all);
            }
        }
    }

    /// `GET /messages/{id}` with `$select` (include `internetMessageHeaders` to get headers).
    pub async fn message(&self, id: &str, select: &[&str]) -> Result<Message, GraphError> {
        let mut url = self.mailbox_url(&["messages", id]);
        if !select.is_empty() {
            url.query_pairs_mut()
                .append_pair("$select", &select.join(","));
        }
        self.json(Call::new(http::Method::GET, url)).await
    }

    /// The raw MIME of a message (`/$value`).
    pub async fn mime(&self, id: &str) -> Result<Vec<u8>, GraphError> {
        let resp = self
            .send(Call::new(
                http::Method::GET,
                self.mailbox_url(&["messages", id, "$value"]),
            ))
            .await?;
        Ok(resp.body)
    }

    /// The names and sizes (bytes) of a message's attachments, without their content.
    pub async fn attachment_summaries(&self, id: &str) -> Result<Vec<(String, u64)>, GraphError> {
        let mut url = self.mailbox_url(&["messages", id, "attachments"]);
        url.query_pairs_mut().append_pair("$select", "name,size");
        let items: Vec<Value> = self.paged(Call::new(http::Method::GET, url), None).await?;
        Ok(items
            .iter()
            .map(|item| {
                (
                    item["name"].as_str().unwrap_or_default().to_string(),
                    item["size"].as_u64().unwrap_or(0),
                )
            })
            .collect())
    }

    /// Attachments with decoded bytes. File attachments without inline `contentBytes` (large
    /// ones) are fetched through `/attachments/{id}/$value`.
    pub async fn attachments(&self, id: &str) -> Result<Vec<Attachment>, GraphError> {
        let items: Vec<Value> = self
            .paged(
                Call::new(
                    http::Method::GET,
                    self.mailbox_url(&["messages", id, "attachments"]),
                ),
                None,
            )
            .await?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let aid = item["id"].as_str().unwrap_or_default().to_string();
            let odata_type = item["@odata.type"].as_str().unwrap_or_default().to_string();
            let is_file = odata_type.eq_ignore_ascii_case("#microsoft.graph.fileAttachment");
            let bytes = match item["contentBytes"].as_str() {
                Some(b64) if is_file => STANDARD.decode(b64.trim()).map_err(|e| {
                    GraphError::new(
                        GraphErrorKind::InvalidResponse,
                        format!("attachment {aid}: bad base64: {e}"),
                    )
                })?,
                None if is_file => {
                    self.send(Call::new(
                        http::Method::GET,
                        self.mailbox_url(&["messages", id, "attachments", &aid, "$value"]),
                    ))
                    .await?
                    .body
                }
                _ => Vec::new(),
            };
            out.push(Attachment {
                id: aid,
                odata_type,
                name: item["name"].as_str().map(str::to_string),
                content_type: item["contentType"].as_str().map(str::to_string),
                size: item["size"].as_i64(),
                is_inline: item["isInline"].as_bool().unwrap_or(false),
                content_id: item["contentId"].as_str().map(str::to_string),
                bytes,
            });
        }
        Ok(out)
    }

    /// Sets `isRead`.
    pub async fn set_read(&self, id: &str, read: bool) -> Result<(), GraphError> {
        self.send(
            Call::new(http::Method::PATCH, self.mailbox_url(&["messages", id]))
                .json(json!({ "isRead": read })),
        )
        .await?;
        Ok(())
    }

    /// Marks a message read.
    pub async fn mark_read(&self, id: &str) -> Result<(), GraphError> {
        self.set_read(id, true).await
    }

    /// Moves a message to a folder (id or well-known name); returns the message's **new** id.
    pub async fn move_to(&self, id: &str, folder_id: &str) -> Result<String, GraphError> {
        let moved: Message = self
            .json(
                Call::new(
                    http::Method::POST,
                    self.mailbox_url(&["messages", id, "move"]),
                )
                .json(json!({ "destinationId": folder_id })),
            )
            .await?;
        Ok(moved.id)
    }

    /// Lists the top-level folders (children of `msgfolderroot`).
    pub async fn folders(&self) -> Result<Vec<MailFolder>, GraphError> {
        let mut url = self.mailbox_url(&["mailFolders", "msgfolderroot", "childFolders"]);
        url.query_pairs_mut().append_pair("$top", "100");
        self.paged(Call::new(http::Method::GET, url), None).await
    }

    /// Finds a top-level folder by display name (case-insensitive) or creates it under
    /// `msgfolderroot`; returns its id.
    pub async fn ensure_folder(&self, display_name: &str) -> Result<String, GraphError> {
        if let Some(found) = self.folders().await?.into_iter().find(|f| {
            f.display_name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(display_name))
        }) {
            return Ok(found.id);
        }
        let created: MailFolder = self
            .json(
                Call::new(
                    http::Method::POST,
                    self.mailbox_url(&["mailFolders", "msgfolderroot", "childFolders"]),
                )
                .json(json!({ "displayName": display_name })),
            )
            .await?;
        Ok(created.id)
    }
}
