//! sendMail, reply/replyAll/forward and the send-as checks.

use super::*;

pub(super) fn parse_recipients(v: Option<&Value>) -> Result<Vec<state::Recipient>, ApiError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let arr = v.as_array().ok_or_else(|| {
        ApiError::new(
            400,
            "ErrorInvalidRecipients",
            "Recipients must be an array of recipient objects.",
        )
    })?;
    arr.iter()
        .map(|r| {
            let e = r.get("emailAddress");
            let address = e
                .and_then(|e| e.get("address"))
                .and_then(Value::as_str)
                .filter(|a| a.contains('@'))
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        "ErrorInvalidRecipients",
                        "At least one recipient is not valid., A message can't be sent because it contains no recipients.",
                    )
                })?;
            let name = e.and_then(|e| e.get("name")).and_then(Value::as_str).map(str::to_owned);
            Ok((name, address.to_owned()))
        })
        .collect()
}

pub(super) struct Outgoing {
    /// `message.from` when it differs from the mailbox (send as / on behalf).
    pub(super) from: Option<state::Recipient>,
    pub(super) subject: String,
    pub(super) html: bool,
    pub(super) content: String,
    pub(super) to: Vec<state::Recipient>,
    pub(super) cc: Vec<state::Recipient>,
    pub(super) bcc: Vec<state::Recipient>,
    pub(super) reply_to: Vec<state::Recipient>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) attachments: Vec<InboundAttachment>,
}

impl Outgoing {
    /// A draft's content, to send.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn of_draft(
        subject: String,
        html: bool,
        content: String,
        to: Vec<state::Recipient>,
        cc: Vec<state::Recipient>,
        reply_to: Vec<state::Recipient>,
        headers: Vec<(String, String)>,
        attachments: Vec<InboundAttachment>,
    ) -> Outgoing {
        Outgoing {
            from: None,
            subject,
            html,
            content,
            to,
            cc,
            bcc: Vec::new(),
            reply_to,
            headers,
            attachments,
        }
    }
}

pub(super) fn parse_outgoing(msg: &Value) -> Result<Outgoing, ApiError> {
    let body = msg.get("body");
    let html = body
        .and_then(|b| b.get("contentType"))
        .and_then(Value::as_str)
        .is_some_and(|c| c.eq_ignore_ascii_case("html"));
    let content = body
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut headers = Vec::new();
    if let Some(hs) = msg.get("internetMessageHeaders").and_then(Value::as_array) {
        for h in hs {
            let name = h.get("name").and_then(Value::as_str).unwrap_or("");
            let value = h.get("value").and_then(Value::as_str).unwrap_or("");
            if !name.to_ascii_lowercase().starts_with("x-") {
                return Err(ApiError::new(
                    400,
                    "InvalidInternetMessageHeader",
                    &format!(
                        "The internet message header name '{name}' should start with 'x-' or 'X-'."
                    ),
                ));
            }
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let mut attachments = Vec::new();
    if let Some(atts) = msg.get("attachments").and_then(Value::as_array) {
        for a in atts {
            let bytes = a.get("contentBytes").and_then(Value::as_str).unwrap_or("");
            let content = base64::engine::general_purpose::STANDARD
                .decode(bytes)
                .map_err(|_| {
                    ApiError::new(
                        400,
                        "ErrorInvalidRequest",
                        "The attachment contentBytes is not valid base64.",
                    )
                })?;
            attachments.push(InboundAttachment {
                name: a
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("attachment")
                    .to_owned(),
                content_type: a
                    .get("contentType")
                    .and_then(Value::as_str)
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
                content,
                inline: a.get("isInline").and_then(Value::as_bool).unwrap_or(false),
                content_id: a
                    .get("contentId")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
    }
    let from = match msg.get("from") {
        Some(f) if !f.is_null() => parse_recipients(Some(&json!([f])))?.into_iter().next(),
        _ => None,
    };
    Ok(Outgoing {
        from,
        subject: msg
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        html,
        content,
        to: parse_recipients(msg.get("toRecipients"))?,
        cc: parse_recipients(msg.get("ccRecipients"))?,
        bcc: parse_recipients(msg.get("bccRecipients"))?,
        reply_to: parse_recipients(msg.get("replyTo"))?,
        headers,
        attachments,
    })
}

/// Records and transmits an outgoing message: Sent Items copy, tenant-internal delivery,
/// sent-mail log. Returns notification jobs.
#[allow(clippy::too_many_arguments)]
pub(super) fn transmit(
    st: &mut State,
    mb: usize,
    out: Outgoing,
    kind: SentKind,
    in_reply_to: Option<String>,
    references: Vec<String>,
    save: bool,
    now: DateTime<Utc>,
) -> Result<Vec<Job>, ApiError> {
    transmit_as(st, mb, out, kind, in_reply_to, references, save, None, now)
}

/// [`transmit`] with the message's Internet Message-ID given (a draft keeps its own).
#[allow(clippy::too_many_arguments)]
pub(super) fn transmit_as(
    st: &mut State,
    mb: usize,
    out: Outgoing,
    kind: SentKind,
    in_reply_to: Option<String>,
    references: Vec<String>,
    save: bool,
    message_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<Vec<Job>, ApiError> {
    if out.to.is_empty() && out.cc.is_empty() && out.bcc.is_empty() {
        return Err(ApiError::new(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient is not valid., A message can't be sent because it contains no recipients.",
        ));
    }
    let user = st.mailboxes[mb].user.clone();
    let sender: state::Recipient = out
        .from
        .clone()
        .unwrap_or_else(|| (Some(user.display_name.clone()), user.mail.clone()));
    let n = st.next_counter();
    let mid = message_id
        .map(|m| {
            m.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
        .unwrap_or_else(|| {
            format!(
                "{}@{}",
                &make_id("", &format!("sent|{}|{n}", user.id))[..28].replace(['-', '_'], "x"),
                user.mail.split('@').nth(1).unwrap_or("contoso.test")
            )
        });
    let (html, text) = if out.html {
        (Some(out.content.clone()), None)
    } else {
        (None, Some(out.content.clone()))
    };
    let new = |received: DateTime<Utc>, is_read: bool| NewMessage {
        from: sender.clone(),
        to: out.to.clone(),
        cc: out.cc.clone(),
        reply_to: out.reply_to.clone(),
        subject: out.subject.clone(),
        html: html.clone(),
        text: text.clone(),
        headers: out.headers.clone(),
        attachments: out.attachments.clone(),
        message_id: Some(mid.clone()),
        in_reply_to: in_reply_to.clone(),
        references: references.clone(),
        report: None,
        received,
        is_read,
    };
    let mime = crate::mime::build(&crate::mime::MimeSpec {
        from: &sender.1,
        from_name: sender.0.as_deref(),
        to: &out.to,
        cc: &out.cc,
        subject: &out.subject,
        text: text.as_deref(),
        html: html.as_deref(),
        message_id: &mid,
        in_reply_to: in_reply_to.as_deref().map(|s| s.trim_matches(['<', '>'])),
        references: &references
            .iter()
            .map(|r| r.trim_matches(['<', '>']).to_owned())
            .collect::<Vec<_>>(),
        date: now,
        headers: &out.headers,
        attachments: &out.attachments,
        report: None,
    });
    let mut jobs = Vec::new();
    let mut sent_items_id = None;
    if save {
        let sent = st.mailboxes[mb]
            .folder("sentitems")
            .expect("sentitems")
            .id
            .clone();
        let idx = st.insert_message(mb, &sent, new(now, true));
        let m = &st.mailboxes[mb].messages[idx];
        sent_items_id = Some(m.id.clone());
        let (id, imm, etag) = (m.id.clone(), m.immutable_id.clone(), m.etag());
        jobs.extend(notify(st, mb, &sent, &id, &imm, &etag, "created", now));
    }
    // Tenant-internal recipients receive the message in their inbox.
    let mut delivered = Vec::new();
    for (_, addr) in out.to.iter().chain(&out.cc).chain(&out.bcc) {
        if let Some(rmb) = st.mailbox_index(addr) {
            if delivered.contains(&rmb) {
                continue;
            }
            delivered.push(rmb);
            let inbox = st.mailboxes[rmb].folder("inbox").expect("inbox").id.clone();
            let idx = st.insert_message(rmb, &inbox, new(now, false));
            let m = &st.mailboxes[rmb].messages[idx];
            let (id, imm, etag) = (m.id.clone(), m.immutable_id.clone(), m.etag());
            jobs.extend(notify(st, rmb, &inbox, &id, &imm, &etag, "created", now));
        }
    }
    let addrs = |v: &[state::Recipient]| v.iter().map(|r| r.1.clone()).collect::<Vec<_>>();
    st.mailboxes[mb].sent.push(SentMail {
        kind,
        mailbox_id: user.id.clone(),
        from: sender.1.clone(),
        to: addrs(&out.to),
        cc: addrs(&out.cc),
        bcc: addrs(&out.bcc),
        subject: out.subject.clone(),
        body_content_type: if out.html {
            "html".into()
        } else {
            "text".into()
        },
        body: out.content.clone(),
        internet_message_id: format!("<{mid}>"),
        in_reply_to,
        references,
        headers: out.headers.clone(),
        attachments: out.attachments.clone(),
        mime,
        sent_at: now,
        sent_items_id,
    });
    Ok(jobs)
}

/// `message.from` naming another mailbox needs SendAs/SendOnBehalf on it (delegated) or the
/// application access policy to allow it (app-only).
pub(super) fn check_send_as(
    st: &State,
    g: &AccessGrant,
    mb: usize,
    out: &Outgoing,
) -> Result<(), ApiError> {
    let Some((_, addr)) = &out.from else {
        return Ok(());
    };
    let own = &st.mailboxes[mb].user;
    if own.mail.eq_ignore_ascii_case(addr) || own.user_principal_name.eq_ignore_ascii_case(addr) {
        return Ok(());
    }
    let denied = || {
        ApiError::new(
            403,
            "ErrorSendAsDenied",
            "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.",
        )
    };
    let target = st.mailbox_index(addr).ok_or_else(denied)?;
    let target_user = &st.mailboxes[target].user;
    let ok = if g.is_app_only() {
        st.policy_allows(&g.client_id, target_user)
    } else {
        let me = g.user_id.clone().unwrap_or_default();
        st.has_right(target_user, &me, MailboxRight::SendAs)
            || st.has_right(target_user, &me, MailboxRight::SendOnBehalf)
    };
    if ok {
        Ok(())
    } else {
        Err(denied())
    }
}

pub(super) fn send_mail(
    sb: &GraphSandbox,
    req: &ApiRequest,
    g: &AccessGrant,
    mbid: &str,
) -> ApiResult {
    let ct = req
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let (out, save) = if ct.starts_with("text/plain") {
        // MIME format: base64 of an RFC 5322 message.
        let raw = String::from_utf8_lossy(&req.body).replace(['\r', '\n'], "");
        let mime = base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| {
                ApiError::new(
                    400,
                    "ErrorMimeContentInvalidBase64String",
                    "Invalid base64 string for MIME content.",
                )
            })?;
        let mime = String::from_utf8_lossy(&mime).into_owned();
        let headers = crate::mime::header_block(&mime);
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let list = |n: &str| -> Vec<state::Recipient> {
            get(n)
                .map(|v| {
                    v.split(',')
                        .filter_map(|a| {
                            let a = a.trim();
                            let addr = a
                                .rsplit('<')
                                .next()
                                .unwrap_or(a)
                                .trim_end_matches('>')
                                .trim();
                            addr.contains('@').then(|| (None, addr.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let body = mime
            .split_once("\r\n\r\n")
            .or_else(|| mime.split_once("\n\n"))
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (
            Outgoing {
                from: None,
                subject: get("Subject").unwrap_or_default(),
                html: false,
                content: body,
                to: list("To"),
                cc: list("Cc"),
                bcc: list("Bcc"),
                reply_to: list("Reply-To"),
                headers: headers
                    .iter()
                    .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-"))
                    .cloned()
                    .collect(),
                attachments: Vec::new(),
            },
            true,
        )
    } else {
        let body = req.action_body(&["message", "saveToSentItems"])?;
        let msg = body.get("message").ok_or_else(|| {
            ApiError::new(
                400,
                "ErrorInvalidRequest",
                "The message parameter is required.",
            )
        })?;
        let save = body
            .get("saveToSentItems")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        (parse_outgoing(msg)?, save)
    };
    let now = sb.now();
    let jobs = {
        let mut st = sb.state();
        let mb = mbx_index(&st, mbid);
        check_send_as(&st, g, mb, &out)?;
        transmit(
            &mut st,
            mb,
            out,
            SentKind::SendMail,
            None,
            Vec::new(),
            save,
            now,
        )?
    };
    sb.publish(jobs);
    Ok(ApiResponse::empty(202))
}

/// A reply's defaults, as Exchange fills them: to the original's Reply-To (else its sender),
/// subject `RE: …` (once).
pub(super) fn reply_defaults(out: &mut Outgoing, orig: &Message) {
    if out.to.is_empty() {
        out.to = if orig.reply_to.is_empty() {
            vec![orig.from.clone()]
        } else {
            orig.reply_to.clone()
        };
    }
    if out.subject.is_empty() {
        out.subject = if orig.subject.to_ascii_lowercase().starts_with("re:") {
            orig.subject.clone()
        } else {
            format!("RE: {}", orig.subject)
        };
    }
}

/// A reply's References: the original's, then the original itself.
pub(super) fn reply_references(orig: &Message) -> Vec<String> {
    let mut references: Vec<String> = orig
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("References"))
        .map(|(_, v)| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    references.push(orig.internet_message_id.clone());
    references
}

pub(super) fn reply(
    sb: &GraphSandbox,
    req: &ApiRequest,
    g: &AccessGrant,
    mbid: &str,
    folder: Option<&str>,
    id: &str,
) -> ApiResult {
    let body = if req.body.is_empty() {
        json!({})
    } else {
        req.action_body(&["comment", "message", "toRecipients"])?
    };
    let comment = body
        .get("comment")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let given = body.get("message");
    let given_body = given
        .and_then(|m| m.get("body"))
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str);
    if comment.is_some() && given_body.is_some() {
        return Err(ApiError::new(
            400,
            "ErrorInvalidRequest",
            "Specifying both the comment and the message body is not supported.",
        ));
    }
    let now = sb.now();
    let jobs = {
        let mut st = sb.state();
        let mb = mbx_index(&st, mbid);
        let idx = find_message(&st, mb, folder, id)?;
        let orig = st.mailboxes[mb].messages[idx].clone();
        let mut out = match given {
            Some(m) => parse_outgoing(m)?,
            None => parse_outgoing(&json!({}))?,
        };
        reply_defaults(&mut out, &orig);
        if given_body.is_none() {
            let comment_html = comment
                .unwrap_or_default()
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('\n', "<br>");
            out.html = true;
            out.content = format!(
                "<html><body><div>{comment_html}</div><hr><div><b>From:</b> {} &lt;{}&gt;<br><b>Sent:</b> {}<br><b>Subject:</b> {}</div>{}</body></html>",
                orig.from.0.clone().unwrap_or_default(),
                orig.from.1,
                orig.sent.to_rfc2822(),
                orig.subject,
                orig.body_html
            );
        }
        let references = reply_references(&orig);
        check_send_as(&st, g, mb, &out)?;
        transmit(
            &mut st,
            mb,
            out,
            SentKind::Reply,
            Some(orig.internet_message_id.clone()),
            references,
            true,
            now,
        )?
    };
    sb.publish(jobs);
    Ok(ApiResponse::empty(202))
}
