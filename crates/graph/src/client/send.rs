//! Sending mail from the mailbox (`sendMail`), replying to a message, and drafts: a draft
//! (new, or a reply threaded to a message) gets a Message-ID chosen by the caller while it is
//! a draft (`internetMessageId` is writable only then), is sent with `send`, and can be looked
//! up by that id in Drafts or Sent Items afterwards — what makes sending exactly once possible,
//! since Graph has no idempotency key for sending.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::error::{GraphError, GraphErrorKind};
use super::transport::Call;
use super::GraphClient;
use crate::models::*;

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
