//! Large attachments (reference §3.5): `POST …/messages/{id}/attachments/createUploadSession`
//! opens a session for a file of up to 150 MB and answers a pre-authenticated upload URL (in
//! Microsoft 365 on `outlook.office.com`, here on this server under `/api/v2.0/`); the bytes
//! arrive as sequential `PUT`s of at most 4 MB with `Content-Range`, each answered with where
//! the next range starts, the last with 201 and a `Location`. A `PUT` that carries an
//! `Authorization` header is refused with 401, as Outlook does (the URL holds its own token).

use axum::extract::{Request, State as AxState};
use axum::response::Response;

use super::*;
use crate::state::UploadSession;

/// The largest file an upload session takes (reference §3.5: "from 3 MB to 150 MB").
const MAX_UPLOAD: usize = 150 * 1024 * 1024;

/// The largest range one `PUT` takes (reference §3.5: "PUTs of at most 4 MB each").
const MAX_RANGE: usize = 4 * 1024 * 1024;

/// How long a session's URL stays valid.
const SESSION_LIFETIME_MINUTES: i64 = 15;

/// `POST …/messages/{id}/attachments/createUploadSession` on a draft (201).
pub(super) fn create_upload_session(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    folder: Option<&str>,
    id: &str,
) -> ApiResult {
    let body = req.json_body()?;
    let item = body
        .get("AttachmentItem")
        .or_else(|| body.get("attachmentItem"))
        .ok_or_else(|| ApiError::bad("The AttachmentItem parameter is required."))?;
    if !item
        .get("attachmentType")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("file"))
    {
        return Err(ApiError::bad(
            "AttachmentItem.attachmentType must be \"file\".",
        ));
    }
    let name = item
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::bad("AttachmentItem.name is required."))?
        .to_owned();
    let size = item
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::bad("AttachmentItem.size is required."))? as usize;
    if size == 0 || size > MAX_UPLOAD {
        // [derived] the status and code Graph answers for a size out of range.
        return Err(ApiError::new(
            400,
            "ErrorAttachmentSizeLimitExceeded",
            "The attachment size must be between 1 byte and 150 MB.",
        ));
    }
    let now = sb.now();
    let mut st = sb.state();
    let mb = mbx_index(&st, mbid);
    let idx = find_message(&st, mb, folder, id)?;
    let msg = &st.mailboxes[mb].messages[idx];
    if !msg.is_draft {
        return Err(ApiError::new(
            400,
            "ErrorInvalidOperation",
            "Attachments can be added only to a draft.",
        ));
    }
    let message_id = msg.id.clone();
    let user = st.mailboxes[mb].user.id.clone();
    let tenant = st.tenant_id.clone();
    let session_id = make_id("AAMkAD", &format!("upload|{}", uuid::Uuid::new_v4()));
    let token = uuid::Uuid::new_v4().simple().to_string();
    let expires = now + chrono::Duration::minutes(SESSION_LIFETIME_MINUTES);
    st.upload_sessions.insert(
        session_id.clone(),
        UploadSession {
            mailbox_id: user.clone(),
            message_id: message_id.clone(),
            name,
            content_type: item
                .get("contentType")
                .and_then(Value::as_str)
                .unwrap_or("application/octet-stream")
                .to_owned(),
            size,
            inline: item
                .get("isInline")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            content_id: item
                .get("contentId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            token: token.clone(),
            expires,
            received: Vec::with_capacity(size),
        },
    );
    let root = req.base.trim_end_matches("/v1.0");
    Ok(ApiResponse::json(
        201,
        json!({
            "@odata.context": format!("{}/$metadata#microsoft.graph.uploadSession", req.base),
            "uploadUrl": format!(
                "{root}/api/v2.0/Users('{user}@{tenant}')/Messages('{message_id}')/AttachmentSessions('{session_id}')?authtoken={token}"
            ),
            "expirationDateTime": expires.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "nextExpectedRanges": ["0-"],
        }),
    ))
}

/// The upload URL's surface (`/api/v2.0/…/AttachmentSessions('{id}')?authtoken=…`): `PUT` a
/// range, `DELETE` the session.
pub(super) async fn upload_entry(AxState(sb): AxState<GraphSandbox>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 2 * MAX_RANGE)
        .await
        .unwrap_or_default();
    let request_id = uuid::Uuid::new_v4().to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let token = url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("authtoken"))
        .map(|(_, v)| v.into_owned());
    let segs = segments(parts.uri.path().trim_start_matches("/api/v2.0/"));
    let session_id = segs
        .iter()
        .position(|s| s.eq_ignore_ascii_case("AttachmentSessions"))
        .and_then(|i| segs.get(i + 1))
        .cloned()
        .unwrap_or_default();
    let url = format!(
        "{}{}",
        request_root(&sb, &parts),
        parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
    );
    let result = upload(
        &sb,
        parts.method.as_str(),
        &session_id,
        token.as_deref(),
        header("authorization").is_some(),
        header("content-range"),
        bytes.to_vec(),
        &url,
    );
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => e.into_response(&request_id, None, sb.now()),
    };
    resp.headers.push(("request-id".into(), request_id));
    resp.into_axum()
}

#[allow(clippy::too_many_arguments)]
fn upload(
    sb: &GraphSandbox,
    method: &str,
    session_id: &str,
    token: Option<&str>,
    bearer: bool,
    content_range: Option<&str>,
    bytes: Vec<u8>,
    url: &str,
) -> ApiResult {
    if bearer {
        // What Outlook answers to a Graph token on its upload URL (msgraph-sdk-java#409).
        return Err(ApiError::new(
            401,
            "InvalidAudienceForResource",
            &format!(
                "The audience claim value is invalid for current resource. Audience claim is 'https://graph.microsoft.com/', request url is '{url}'."
            ),
        ));
    }
    let now = sb.now();
    let mut st = sb.state();
    let Some(session) = st.upload_sessions.get(session_id) else {
        return Err(ApiError::not_found());
    };
    if token != Some(session.token.as_str()) || session.expires <= now {
        return Err(ApiError::new(
            401,
            "InvalidAuthenticationToken",
            "The upload session's token is missing, wrong or expired.",
        ));
    }
    match method {
        "DELETE" => {
            st.upload_sessions.remove(session_id);
            return Ok(ApiResponse::empty(204));
        }
        "PUT" => {}
        _ => {
            return Err(ApiError::new(
                405,
                "ErrorInvalidRequest",
                "An upload session takes PUT and DELETE.",
            ))
        }
    }
    let (start, end, total) = content_range.and_then(parse_range).ok_or_else(|| {
        ApiError::bad("The Content-Range header is required: bytes {start}-{end}/{total}.")
    })?;
    let expected = session.received.len();
    if total != session.size {
        return Err(ApiError::bad(&format!(
            "The Content-Range total {total} is not the size the session was created with ({}).",
            session.size
        )));
    }
    if end < start || end >= total || bytes.len() != end - start + 1 {
        return Err(ApiError::bad(
            "The Content-Range does not match the bytes of the request.",
        ));
    }
    if bytes.len() > MAX_RANGE {
        // [derived] the status Outlook answers for a range over 4 MB.
        return Err(ApiError::new(
            413,
            "ErrorRequestEntityTooLarge",
            "A range may be at most 4 MB.",
        ));
    }
    if start != expected {
        // [derived] ranges are taken in order only ("You must upload bytes in a file in order").
        return Err(ApiError::new(
            416,
            "ErrorInvalidRange",
            &format!("The next expected range starts at byte {expected}."),
        ));
    }
    let session = st.upload_sessions.get_mut(session_id).expect("found above");
    session.received.extend_from_slice(&bytes);
    if session.received.len() < session.size {
        let next = session.received.len();
        let expires = session.expires;
        return Ok(ApiResponse::json(
            200,
            json!({
                "@odata.context": "https://outlook.office.com/api/v2.0/$metadata#AttachmentSessions/$entity",
                "ExpirationDateTime": expires.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                "nextExpectedRanges": [next.to_string()],
            }),
        ));
    }
    let session = st.upload_sessions.remove(session_id).expect("found above");
    let mb = st
        .mailbox_index(&session.mailbox_id)
        .ok_or_else(ApiError::not_found)?;
    let idx = st.mailboxes[mb]
        .message_index(&session.message_id)
        .ok_or_else(ApiError::not_found)?;
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
        name: session.name,
        content_type: session.content_type,
        content: session.received,
        inline: session.inline,
        content_id: session.content_id,
    };
    let location = url
        .split("/AttachmentSessions")
        .next()
        .map(|m| format!("{m}/Attachments('{}')", attachment.id))
        .unwrap_or_default();
    msg.attachments.push(attachment);
    Ok(ApiResponse {
        status: 201,
        headers: vec![("Location".into(), location)],
        body: RespBody::Empty,
    })
}

/// `bytes {start}-{end}/{total}`.
fn parse_range(value: &str) -> Option<(usize, usize, usize)> {
    let rest = value.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((
        start.trim().parse().ok()?,
        end.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn content_ranges_are_read() {
        assert_eq!(
            parse_range("bytes 0-2097151/3483322"),
            Some((0, 2097151, 3483322))
        );
        assert_eq!(parse_range("bytes 0-/10"), None);
        assert_eq!(parse_range("0-1/2"), None);
    }
}
