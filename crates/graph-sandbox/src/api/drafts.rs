//! Drafts: `POST …/messages` (a new draft in Drafts), `POST …/messages/{id}/createReply` (a
//! reply draft, threaded), `PATCH` of a draft (its `internetMessageId` too, which Graph lets a
//! client set only while `isDraft`), and `POST …/messages/{id}/send` (202; the draft leaves
//! Drafts and its copy, with the same Internet Message-ID, is in Sent Items).

use super::*;

/// The draft's content as an outgoing message.
fn outgoing_of(msg: &Message) -> Outgoing {
    let html = !msg.body_html.is_empty();
    Outgoing::of_draft(
        msg.subject.clone(),
        html,
        if html {
            msg.body_html.clone()
        } else {
            msg.body_text.clone()
        },
        msg.to.clone(),
        msg.cc.clone(),
        msg.reply_to.clone(),
        msg.headers
            .iter()
            .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-"))
            .cloned()
            .collect(),
        msg.attachments
            .iter()
            .map(|a| InboundAttachment {
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                content: a.content.clone(),
                inline: a.inline,
                content_id: a.content_id.clone(),
            })
            .collect(),
    )
}

fn header(msg: &Message, name: &str) -> Option<String> {
    msg.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// Inserts a draft into Drafts and answers it (201).
#[allow(clippy::too_many_arguments)]
fn insert_draft(
    sb: &GraphSandbox,
    req: &ApiRequest,
    st: &mut State,
    mb: usize,
    out: Outgoing,
    message_id: Option<String>,
    in_reply_to: Option<String>,
    references: Vec<String>,
) -> ApiResult {
    let now = sb.now();
    let user = st.mailboxes[mb].user.clone();
    let drafts = st.mailboxes[mb]
        .folder("drafts")
        .expect("drafts")
        .id
        .clone();
    let (html, text) = if out.html {
        (Some(out.content.clone()), None)
    } else {
        (None, Some(out.content.clone()))
    };
    let idx = st.insert_message(
        mb,
        &drafts,
        NewMessage {
            from: (Some(user.display_name.clone()), user.mail.clone()),
            to: out.to.clone(),
            cc: out.cc.clone(),
            reply_to: out.reply_to.clone(),
            subject: out.subject.clone(),
            html,
            text,
            headers: out.headers.clone(),
            attachments: out.attachments.clone(),
            message_id,
            in_reply_to,
            references,
            report: None,
            received: now,
            is_read: true,
        },
    );
    let mbx = &mut st.mailboxes[mb];
    mbx.messages[idx].is_draft = true;
    let msg = &mbx.messages[idx];
    let mut v = message_json(msg, mbx, &RenderOpts::from(req));
    v["@odata.context"] = json!(format!(
        "{}/$metadata#users('{}')/messages/$entity",
        req.base, user.id
    ));
    Ok(ApiResponse::json(201, v))
}

/// `POST …/messages`: a new draft.
pub(super) fn create_draft(sb: &GraphSandbox, req: &ApiRequest, mbid: &str) -> ApiResult {
    let body = req.json_body()?;
    let out = parse_outgoing(&body)?;
    let message_id = body
        .get("internetMessageId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut st = sb.state();
    let mb = mbx_index(&st, mbid);
    insert_draft(sb, req, &mut st, mb, out, message_id, None, Vec::new())
}

/// `POST …/messages/{id}/createReply`: a reply draft to the sender, threaded.
pub(super) fn create_reply(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    folder: Option<&str>,
    id: &str,
) -> ApiResult {
    let body = if req.body.is_empty() {
        json!({})
    } else {
        req.action_body(&["comment", "message"])?
    };
    let mut st = sb.state();
    let mb = mbx_index(&st, mbid);
    let idx = find_message(&st, mb, folder, id)?;
    let orig = st.mailboxes[mb].messages[idx].clone();
    let mut out = match body.get("message") {
        Some(m) => parse_outgoing(m)?,
        None => parse_outgoing(&json!({}))?,
    };
    reply_defaults(&mut out, &orig);
    if out.content.is_empty() {
        let comment = body
            .get("comment")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        out.html = true;
        out.content = format!(
            "<html><body><div>{comment}</div><hr><div><b>From:</b> {} &lt;{}&gt;<br><b>Subject:</b> {}</div>{}</body></html>",
            orig.from.0.clone().unwrap_or_default(),
            orig.from.1,
            orig.subject,
            orig.body_html
        );
    }
    let references = reply_references(&orig);
    insert_draft(
        sb,
        req,
        &mut st,
        mb,
        out,
        None,
        Some(orig.internet_message_id.clone()),
        references,
    )
}

/// `PATCH` of a draft's content fields; `None` when `key` is not one.
pub(super) fn patch_draft_field(msg: &mut Message, key: &str, v: &Value) -> Result<bool, ApiError> {
    let recipients = |v: &Value| parse_recipients(Some(v));
    match key {
        "subject" => msg.subject = v.as_str().unwrap_or_default().to_owned(),
        "body" => {
            let content = v.get("content").and_then(Value::as_str).unwrap_or_default();
            let html = v
                .get("contentType")
                .and_then(Value::as_str)
                .is_some_and(|c| c.eq_ignore_ascii_case("html"));
            if html {
                msg.body_html = content.to_owned();
            } else {
                msg.body_text = content.to_owned();
                msg.body_html = String::new();
            }
        }
        "toRecipients" => msg.to = recipients(v)?,
        "ccRecipients" => msg.cc = recipients(v)?,
        "internetMessageId" => {
            let id = v.as_str().unwrap_or_default().trim();
            if !(id.starts_with('<') && id.ends_with('>') && id.contains('@')) {
                return Err(ApiError::new(
                    400,
                    "ErrorInvalidInternetMessageId",
                    "The internet message id is not valid: it must look like <local@domain>.",
                ));
            }
            msg.internet_message_id = id.to_owned();
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `POST …/messages/{id}/send`: sends a draft.
pub(super) fn send_draft(
    sb: &GraphSandbox,
    g: &AccessGrant,
    mbid: &str,
    folder: Option<&str>,
    id: &str,
) -> ApiResult {
    let now = sb.now();
    let jobs = {
        let mut st = sb.state();
        let mb = mbx_index(&st, mbid);
        let idx = find_message(&st, mb, folder, id)?;
        let draft = st.mailboxes[mb].messages[idx].clone();
        if !draft.is_draft {
            return Err(ApiError::new(
                400,
                "ErrorInvalidOperation",
                "Only a draft can be sent; this message was sent already.",
            ));
        }
        let out = outgoing_of(&draft);
        check_send_as(&st, g, mb, &out)?;
        let in_reply_to = header(&draft, "In-Reply-To");
        let references: Vec<String> = header(&draft, "References")
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let jobs = transmit_as(
            &mut st,
            mb,
            out,
            SentKind::Draft,
            in_reply_to,
            references,
            true,
            Some(draft.internet_message_id.clone()),
            now,
        )?;
        // The draft leaves Drafts (its copy is in Sent Items).
        let gone = st.mailboxes[mb].message_index(&draft.id);
        if let Some(i) = gone {
            st.remove_message(mb, i);
        }
        jobs
    };
    sb.publish(jobs);
    Ok(ApiResponse::empty(202))
}

/// The largest file `POST …/attachments` takes; larger ones need an upload session
/// (reference §3.5: "a file under 3 MB goes in one POST").
const MAX_SIMPLE_ATTACHMENT: usize = 3 * 1024 * 1024;

/// `POST …/messages/{id}/attachments` on a draft: a file attachment (201).
pub(super) fn add_draft_attachment(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    folder: Option<&str>,
    id: &str,
) -> ApiResult {
    let body = req.json_body()?;
    let content = base64::engine::general_purpose::STANDARD
        .decode(
            body.get("contentBytes")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
        .map_err(|_| {
            ApiError::new(
                400,
                "ErrorInvalidRequest",
                "The attachment contentBytes is not valid base64.",
            )
        })?;
    if content.len() > MAX_SIMPLE_ATTACHMENT {
        // [derived] the status and code Graph answers for a file over the simple limit.
        return Err(ApiError::new(
            413,
            "ErrorRequestEntityTooLarge",
            "The attachment is larger than 3 MB; use an upload session (createUploadSession).",
        ));
    }
    let mut st = sb.state();
    let mb = mbx_index(&st, mbid);
    let idx = find_message(&st, mb, folder, id)?;
    let owner = st.mailboxes[mb].user.id.clone();
    let msg = &mut st.mailboxes[mb].messages[idx];
    if !msg.is_draft {
        return Err(ApiError::new(
            400,
            "ErrorInvalidOperation",
            "Attachments can be added only to a draft.",
        ));
    }
    let n = msg.attachments.len();
    let attachment = state::Attachment {
        id: make_id("AAMkAD", &format!("att|{owner}|{}|draft|{n}", msg.key)),
        name: body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("attachment")
            .to_owned(),
        content_type: body
            .get("contentType")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream")
            .to_owned(),
        content,
        inline: body
            .get("isInline")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        content_id: body
            .get("contentId")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let v = attachment_json(&attachment, msg);
    msg.attachments.push(attachment);
    Ok(ApiResponse::json(201, v))
}
