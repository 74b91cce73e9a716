//! Sending mail from the mailbox (`sendMail`), replying to a message, and drafts: a draft
//! (new, or a reply threaded to a message) gets a Message-ID chosen by the caller while it is
//! a draft (`internetMessageId` is writable only then), is sent with `send`, and can be looked
//! up by that id in Drafts or Sent Items afterwards — what makes sending exactly once possible,
//! since Graph has no idempotency key for sending.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use url::Url;

use super::error::{GraphError, GraphErrorKind};
use super::transport::Call;
use super::GraphClient;
use crate::models::*;

/// The answer to a range that was not the last: where the next one starts.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RangeProgress {
    #[serde(default)]
    next_expected_ranges: Vec<String>,
}

/// What the upload session said to one range.
enum RangeAnswer {
    /// 201: the file is attached.
    Done,
    /// 200: the byte the next range starts at.
    Next(usize),
}

impl GraphClient {
    pub(super) fn message_json(message: &OutgoingMessage) -> Value {
        let recipients = |list: &[String]| -> Value {
            Value::Array(
                list.iter()
                    .map(|a| json!({ "emailAddress": { "address": a } }))
                    .collect(),
            )
        };
        let mut m = json!({
            "subject": message.subject,
            "body": { "contentType": message.body.content_type, "content": message.body.content },
            "toRecipients": recipients(&message.to),
        });
        if !message.cc.is_empty() {
            m["ccRecipients"] = recipients(&message.cc);
        }
        if !message.bcc.is_empty() {
            m["bccRecipients"] = recipients(&message.bcc);
        }
        if !message.reply_to.is_empty() {
            m["replyTo"] = recipients(&message.reply_to);
        }
        if !message.attachments.is_empty() {
            m["attachments"] = Value::Array(
                message
                    .attachments
                    .iter()
                    .map(|a| {
                        let mut v = json!({
                            "@odata.type": "#microsoft.graph.fileAttachment",
                            "name": a.name,
                            "contentType": a.content_type,
                            "contentBytes": STANDARD.encode(&a.bytes),
                        });
                        if let Some(cid) = &a.content_id {
                            v["contentId"] = json!(cid);
                            v["isInline"] = json!(true);
                        }
                        v
                    })
                    .collect(),
            );
        }
        if !message.headers.is_empty() {
            m["internetMessageHeaders"] = Value::Array(
                message
                    .headers
                    .iter()
                    .map(|(n, v)| json!({ "name": n, "value": v }))
                    .collect(),
            );
        }
        m
    }

    /// `POST /sendMail` (202). Custom header names must start with `x-`.
    pub async fn send_mail(
        &self,
        message: &OutgoingMessage,
        save_to_sent_items: bool,
    ) -> Result<(), GraphError> {
        if let Some((bad, _)) = message
            .headers
            .iter()
            .find(|(n, _)| !n.to_ascii_lowercase().starts_with("x-"))
        {
            return Err(GraphError::new(
                GraphErrorKind::BadRequest,
                format!("custom header {bad} must start with x-"),
            ));
        }
        self.send(
            Call::new(http::Method::POST, self.mailbox_url(&["sendMail"])).json(json!({
                "message": Self::message_json(message),
                "saveToSentItems": save_to_sent_items,
            })),
        )
        .await?;
        Ok(())
    }

    /// `POST /messages/{id}/reply` with a comment (202).
    pub async fn reply(&self, id: &str, comment: &str) -> Result<(), GraphError> {
        self.send(
            Call::new(
                http::Method::POST,
                self.mailbox_url(&["messages", id, "reply"]),
            )
            .json(json!({ "comment": comment })),
        )
        .await?;
        Ok(())
    }

    /// `POST /messages`: a new draft (201) in Drafts with `message` and, when given, the
    /// Internet Message-ID (`<local@domain>`).
    pub async fn create_draft(
        &self,
        message: &OutgoingMessage,
        internet_message_id: Option<&str>,
    ) -> Result<Message, GraphError> {
        let mut body = Self::message_json(message);
        if let Some(id) = internet_message_id {
            body["internetMessageId"] = json!(id);
        }
        self.json(Call::new(http::Method::POST, self.mailbox_url(&["messages"])).json(body))
            .await
    }

    /// `POST /messages/{id}/createReply`: a reply draft (201) to the message's sender,
    /// threaded to it (`In-Reply-To`, `References`), subject `RE: …`.
    pub async fn create_reply_draft(&self, id: &str) -> Result<Message, GraphError> {
        self.json(
            Call::new(
                http::Method::POST,
                self.mailbox_url(&["messages", id, "createReply"]),
            )
            .json(json!({})),
        )
        .await
    }

    /// `PATCH` of a draft: whatever `fields` holds (`subject`, `body`, `toRecipients`,
    /// `ccRecipients`, `internetMessageId`, …).
    pub async fn update_draft(&self, id: &str, fields: Value) -> Result<Message, GraphError> {
        self.json(Call::new(http::Method::PATCH, self.mailbox_url(&["messages", id])).json(fields))
            .await
    }

    /// Adds a file to a draft the way Graph wants it for its size: in one request up to
    /// [`SIMPLE_ATTACHMENT_LIMIT`], else through an upload session (up to [`MAX_ATTACHMENT`]).
    pub async fn attach(
        &self,
        message_id: &str,
        attachment: &OutgoingAttachment,
    ) -> Result<(), GraphError> {
        if attachment.bytes.len() <= SIMPLE_ATTACHMENT_LIMIT {
            self.add_attachment(message_id, attachment).await
        } else {
            self.upload_attachment(message_id, attachment).await
        }
    }

    /// `POST /messages/{id}/attachments/createUploadSession` (201): a session for a file of
    /// 3 MB to 150 MB (needs `Mail.ReadWrite`).
    pub async fn create_upload_session(
        &self,
        message_id: &str,
        attachment: &OutgoingAttachment,
    ) -> Result<UploadSession, GraphError> {
        let mut item = json!({
            "attachmentType": "file",
            "name": attachment.name,
            "size": attachment.bytes.len(),
            "contentType": attachment.content_type,
        });
        if let Some(cid) = &attachment.content_id {
            item["contentId"] = json!(cid);
            item["isInline"] = json!(true);
        }
        self.json(
            Call::new(
                http::Method::POST,
                self.mailbox_url(&["messages", message_id, "attachments", "createUploadSession"]),
            )
            .json(json!({ "AttachmentItem": item })),
        )
        .await
    }

    /// A large file through an upload session: sequential `PUT`s of [`UPLOAD_CHUNK`] bytes to
    /// the session's pre-authenticated URL, each starting where the session says the next
    /// range starts; the last one answers 201 and the file is on the draft.
    pub async fn upload_attachment(
        &self,
        message_id: &str,
        attachment: &OutgoingAttachment,
    ) -> Result<(), GraphError> {
        let total = attachment.bytes.len();
        if total > MAX_ATTACHMENT {
            return Err(GraphError::new(
                GraphErrorKind::BadRequest,
                format!(
                    "{} is {:.1} MB; Graph attaches files up to 150 MB",
                    attachment.name,
                    total as f64 / 1_048_576.0
                ),
            ));
        }
        let session = self.create_upload_session(message_id, attachment).await?;
        let url = Url::parse(&session.upload_url).map_err(|e| {
            GraphError::new(
                GraphErrorKind::InvalidResponse,
                format!("the upload session's URL is not a URL: {e}"),
            )
        })?;
        let mut start = 0usize;
        loop {
            let end = (start + UPLOAD_CHUNK).min(total);
            match self
                .put_range(&url, &attachment.bytes[start..end], start, total)
                .await?
            {
                RangeAnswer::Done => return Ok(()),
                RangeAnswer::Next(next) if next > start && next < total => start = next,
                RangeAnswer::Next(next) => {
                    return Err(GraphError::new(
                        GraphErrorKind::InvalidResponse,
                        format!(
                            "the upload session expects byte {next} next after bytes {start}-{} of {total}",
                            end - 1
                        ),
                    ))
                }
            }
        }
    }

    /// One `PUT` of bytes `start..start + bytes.len()` of `total` to an upload session. No
    /// `Authorization` header: the URL carries its own token (Graph answers 401 to a bearer
    /// token there). Throttling, 5xx and transport errors are retried like any call.
    async fn put_range(
        &self,
        url: &Url,
        bytes: &[u8],
        start: usize,
        total: usize,
    ) -> Result<RangeAnswer, GraphError> {
        let max_attempts = self.throttle.config().max_attempts.max(1);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let request = http::Request::builder()
                .method(http::Method::PUT)
                .uri(url.as_str())
                .header(http::header::CONTENT_TYPE, "application/octet-stream")
                .header(
                    http::header::CONTENT_RANGE,
                    format!("bytes {start}-{}/{total}", start + bytes.len() - 1),
                )
                .body(bytes.to_vec())
                .map_err(|e| GraphError::new(GraphErrorKind::BadRequest, e.to_string()))?;
            let permit = self.throttle.acquire().await;
            let result = crate::http::execute(
                &self.http,
                &self.clock,
                mailroom_trace::Service::Graph,
                request,
            )
            .await;
            drop(permit);
            let resp = match result {
                Ok(resp) => resp,
                Err(e) if attempt < max_attempts => {
                    tracing::debug!("upload range retried after: {}", e.message);
                    tokio::time::sleep(self.throttle.backoff(attempt, None)).await;
                    continue;
                }
                Err(e) => return Err(GraphError::new(GraphErrorKind::Transport, e.message)),
            };
            match resp.status {
                201 => return Ok(RangeAnswer::Done),
                200..=299 => {
                    let session: RangeProgress =
                        serde_json::from_slice(&resp.body).map_err(|e| {
                            GraphError::new(GraphErrorKind::InvalidResponse, e.to_string())
                        })?;
                    let next = session
                        .next_expected_ranges
                        .first()
                        .and_then(|r| r.split('-').next())
                        .and_then(|n| n.trim().parse::<usize>().ok())
                        .ok_or_else(|| {
                            GraphError::new(
                                GraphErrorKind::InvalidResponse,
                                "the upload session did not say where the next range starts",
                            )
                        })?;
                    return Ok(RangeAnswer::Next(next));
                }
                429 | 503 | 504 if attempt < max_attempts => {
                    let err = GraphError::from_response(&resp, self.clock.now());
                    tokio::time::sleep(self.throttle.backoff(attempt, err.retry_after)).await;
                }
                _ => return Err(GraphError::from_response(&resp, self.clock.now())),
            }
        }
    }

    /// `POST /messages/{id}/attachments`: a file (at most 3 MB; larger files need an upload
    /// session) added to a draft.
    pub async fn add_attachment(
        &self,
        message_id: &str,
        attachment: &OutgoingAttachment,
    ) -> Result<(), GraphError> {
        let mut body = json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": attachment.name,
            "contentType": attachment.content_type,
            "contentBytes": STANDARD.encode(&attachment.bytes),
        });
        if let Some(cid) = &attachment.content_id {
            body["contentId"] = json!(cid);
            body["isInline"] = json!(true);
        }
        self.send(
            Call::new(
                http::Method::POST,
                self.mailbox_url(&["messages", message_id, "attachments"]),
            )
            .json(body),
        )
        .await?;
        Ok(())
    }

    /// `POST /messages/{id}/send` of a draft (202): it leaves Drafts; its copy in Sent Items
    /// keeps the Internet Message-ID.
    pub async fn send_draft(&self, id: &str) -> Result<(), GraphError> {
        self.send(Call::new(
            http::Method::POST,
            self.mailbox_url(&["messages", id, "send"]),
        ))
        .await?;
        Ok(())
    }

    /// The message with `internet_message_id` in `folder` (`drafts`, `sentitems`, …), if any.
    pub async fn find_by_internet_message_id(
        &self,
        folder: &str,
        internet_message_id: &str,
    ) -> Result<Option<Message>, GraphError> {
        let escaped = internet_message_id.replace('\'', "''");
        let found = self
            .list_messages(
                folder,
                &MessageQuery {
                    top: Some(5),
                    select: vec!["id".into(), "internetMessageId".into(), "isDraft".into()],
                    filter: Some(format!("internetMessageId eq '{escaped}'")),
                    max_pages: Some(1),
                    ..Default::default()
                },
            )
            .await?;
        Ok(found.into_iter().next())
    }
}
