//! Sending mail from the mailbox (`sendMail`) and replying to a message.

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
}
