//! Users, mailbox settings and mail folders.

use super::*;

/// Whether the token may read user objects: app-only `User.Read.All` (or wider); delegated
/// `User.Read` for the signed-in user's own object, `User.ReadBasic.All` (or wider) for others.
fn may_read_users(g: &AccessGrant, own: bool) -> Result<(), ApiError> {
    let ok = if g.is_app_only() {
        has_any(
            &g.roles,
            &[
                "User.Read.All",
                "User.ReadBasic.All",
                "User.ReadWrite.All",
                "Directory.Read.All",
            ],
        )
    } else if own {
        has_any(
            &g.scopes,
            &[
                "User.Read",
                "User.ReadBasic.All",
                "User.Read.All",
                "Directory.Read.All",
            ],
        )
    } else {
        has_any(
            &g.scopes,
            &["User.ReadBasic.All", "User.Read.All", "Directory.Read.All"],
        )
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ))
    }
}

/// A user as Graph returns it under `$select` (`proxyAddresses` and `accountEnabled` are
/// outside the default property set: only when selected, as Graph's).
fn selected_user_json(user: &crate::SeedUser, select: &Option<Vec<String>>) -> Value {
    let mut v = user_json(user);
    let selected = |name: &str| {
        select
            .iter()
            .flatten()
            .any(|p| p.eq_ignore_ascii_case(name))
    };
    if selected("proxyAddresses") {
        v["proxyAddresses"] = json!([format!("SMTP:{}", user.mail)]);
    }
    // A shared mailbox's account is disabled (nobody signs in to it).
    if selected("accountEnabled") {
        v["accountEnabled"] = json!(!user.shared);
    }
    apply_select(v, select)
}

/// `GET /users`: the tenant's users (licensed and shared mailboxes alike), `$top` 1–999
/// (default 100) and `$select`; further pages through `@odata.nextLink` with an opaque
/// `$skiptoken`, as Graph's directory pages.
pub(super) fn list_users(sb: &GraphSandbox, req: &ApiRequest, g: &AccessGrant) -> ApiResult {
    if req.method != "GET" {
        return Err(method_not_allowed(req));
    }
    may_read_users(g, false)?;
    let top = match req.q("$top") {
        None => 100,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    400,
                    "Request_BadRequest",
                    &format!(
                        "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                    ),
                ))
            }
        },
    };
    let skip = match req.q("$skiptoken") {
        None => 0,
        Some(t) => t
            .strip_prefix("users-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::new(400, "Request_BadRequest", "Invalid skip token."))?,
    };
    let st = sb.state();
    let select = select_list(req);
    let users: Vec<Value> = st
        .mailboxes
        .iter()
        .skip(skip)
        .take(top)
        .map(|m| selected_user_json(&m.user, &select))
        .collect();
    let mut body = json!({
        "@odata.context": format!("{}/$metadata#users", req.base),
        "value": users,
    });
    if skip + top < st.mailboxes.len() {
        let mut q: Vec<(String, String)> = req
            .query_pairs()
            .into_iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
            .collect();
        q.push(("$skiptoken".into(), format!("users-{}", skip + top)));
        body["@odata.nextLink"] = json!(req.link(&q));
    }
    Ok(ApiResponse::json(200, body))
}

pub(super) async fn user_route(
    sb: &GraphSandbox,
    req: &ApiRequest,
    g: &AccessGrant,
    key: &str,
    rest: &[String],
) -> ApiResult {
    if rest.is_empty() {
        if req.method != "GET" {
            return Err(method_not_allowed(req));
        }
        let st = sb.state();
        let Some(mb) = st.mailbox_index(key) else {
            return Err(ApiError::new(
                404,
                "Request_ResourceNotFound",
                &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
            ));
        };
        let user = &st.mailboxes[mb].user;
        let own = g
            .user_id
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(&user.id));
        may_read_users(g, own)?;
        let select = select_list(req);
        let mut v = selected_user_json(user, &select);
        v["@odata.context"] = json!(format!("{}/$metadata#users/$entity", req.base));
        return Ok(ApiResponse::json(200, v));
    }
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let need = match (req.method.as_str(), lower[0].as_str()) {
        (_, "contacts") | (_, "contactfolders") => Need::Contacts,
        ("POST", "sendmail") => Need::Send,
        ("POST", _) if lower.last().map(String::as_str) == Some("reply") => Need::Send,
        ("POST", _) if lower.last().map(String::as_str) == Some("send") => Need::Send,
        ("GET", _) => Need::Read,
        _ => Need::Write,
    };
    let mailbox_id = {
        let st = sb.state();
        let mb = st.mailbox_index(key).ok_or_else(|| {
            ApiError::new(
                404,
                "ErrorInvalidUser",
                &format!("The requested user '{key}' is invalid."),
            )
        })?;
        authorize(&st, g, mb, need)?;
        st.mailboxes[mb].user.id.clone()
    };
    let _guard = admit(sb, &g.client_id, &mailbox_id)?;
    let mut hold = sb.inner.hold.subscribe();
    let _ = hold.wait_for(|h| !*h).await;
    mailbox_route(sb, req, g, &mailbox_id, rest, &lower)
}

pub(super) fn mailbox_route(
    sb: &GraphSandbox,
    req: &ApiRequest,
    g: &AccessGrant,
    mbid: &str,
    rest: &[String],
    lower: &[String],
) -> ApiResult {
    let m = req.method.as_str();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    match l.as_slice() {
        ["mailfolders"] => match m {
            "GET" => list_folders(sb, req, mbid, None),
            "POST" => create_folder(sb, req, mbid, None),
            _ => Err(method_not_allowed(req)),
        },
        ["mailfolders", _] if m == "GET" => get_folder(sb, req, mbid, &rest[1]),
        ["mailfolders", _, "childfolders"] => match m {
            "GET" => list_folders(sb, req, mbid, Some(&rest[1])),
            "POST" => create_folder(sb, req, mbid, Some(&rest[1])),
            _ => Err(method_not_allowed(req)),
        },
        ["mailfolders", _, "messages"] if m == "GET" => list_messages(sb, req, mbid, Some(&rest[1])),
        ["mailfolders", _, "messages", d] if m == "GET" && is_delta(d) => {
            delta(sb, req, mbid, &rest[1])
        }
        ["mailfolders", _, "messages", _, ..] => message_route(sb, req, g, mbid, Some(&rest[1]), &rest[3], &rest[4..]),
        ["messages"] if m == "GET" => list_messages(sb, req, mbid, None),
        ["messages"] if m == "POST" => create_draft(sb, req, mbid),
        ["messages", d] if is_delta(d) => Err(ApiError::bad(
            "Change tracking is not supported against 'microsoft.graph.message'; use /mailFolders/{id}/messages/delta.",
        )),
        ["messages", _, ..] => message_route(sb, req, g, mbid, None, &rest[1], &rest[2..]),
        ["sendmail"] if m == "POST" => send_mail(sb, req, g, mbid),
        ["contacts"] if m == "GET" => list_contacts(sb, req, mbid, None),
        ["contacts", d] if is_delta(d) => Err(ApiError::bad(
            "Change tracking is supported per contact folder: use /contactFolders/{id}/contacts/delta.",
        )),
        ["contacts", _] if m == "GET" => get_contact(sb, req, mbid, &rest[1]),
        ["contactfolders"] if m == "GET" => list_contact_folders(sb, req, mbid, None),
        ["contactfolders", _] if m == "GET" => get_contact_folder(sb, req, mbid, &rest[1]),
        ["contactfolders", _, "childfolders"] if m == "GET" => {
            list_contact_folders(sb, req, mbid, Some(&rest[1]))
        }
        ["contactfolders", _, "contacts"] if m == "GET" => list_contacts(sb, req, mbid, Some(&rest[1])),
        ["contactfolders", _, "contacts", d] if m == "GET" && is_delta(d) => {
            contacts_delta(sb, req, mbid, &rest[1])
        }
        ["contactfolders", _, "contacts", _] if m == "GET" => get_contact(sb, req, mbid, &rest[3]),
        [first, ..] if ["mailfolders", "messages", "sendmail", "contacts", "contactfolders"].contains(first) => {
            Err(method_not_allowed(req))
        }
        [first, ..] => Err(ApiError::bad(&format!("Resource not found for the segment '{first}'."))),
        [] => Err(ApiError::bad("Invalid request.")),
    }
}

pub(super) fn folder_json(mbx: &Mailbox, f: &state::Folder) -> Value {
    let msgs = mbx.messages.iter().filter(|m| m.folder_id == f.id);
    let total = msgs.clone().count();
    let unread = msgs.filter(|m| !m.is_read).count();
    let children = mbx.folders.iter().filter(|c| c.parent_id == f.id).count();
    json!({
        "id": f.id,
        "displayName": f.display_name,
        "parentFolderId": f.parent_id,
        "childFolderCount": children,
        "unreadItemCount": unread,
        "totalItemCount": total,
        "sizeInBytes": mbx.messages.iter().filter(|m| m.folder_id == f.id).map(|m| m.mime.len()).sum::<usize>(),
        "isHidden": false,
    })
}

pub(super) fn resolve_folder<'a>(
    mbx: &'a Mailbox,
    key: &str,
) -> Result<&'a state::Folder, ApiError> {
    if let Some(f) = mbx.folder(key) {
        return Ok(f);
    }
    if key.starts_with("AAMk") || key.starts_with("AQMk") {
        if id_well_formed(key) {
            Err(ApiError::not_found())
        } else {
            Err(ApiError::malformed())
        }
    } else if key.chars().all(|c| c.is_ascii_alphabetic()) {
        Err(ApiError::not_found())
    } else {
        Err(ApiError::malformed())
    }
}

pub(super) fn list_folders(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    parent: Option<&str>,
) -> ApiResult {
    let st = sb.state();
    let mbx = &st.mailboxes[mbx_index(&st, mbid)];
    let parent_id = match parent {
        Some(p) => resolve_folder(mbx, p)?.id.clone(),
        None => mbx.root_id(),
    };
    let (top, skip) = paging(req, 10)?;
    let name_filter = match req.q("$filter") {
        Some(f) => {
            let clauses = query::parse_filter(&f).map_err(|e| ApiError::bad(&e))?;
            let mut name = None;
            for c in clauses {
                match (c.property.as_str(), c.op, c.value) {
                    ("displayName", query::Op::Eq, query::Value::Str(s)) => name = Some(s),
                    _ => return Err(ApiError::bad("Invalid filter clause: only displayName eq '…' is supported on mailFolders.")),
                }
            }
            name
        }
        None => None,
    };
    let all: Vec<Value> = mbx
        .folders
        .iter()
        .filter(|f| f.parent_id == parent_id)
        .filter(|f| {
            name_filter
                .as_ref()
                .is_none_or(|n| f.display_name.eq_ignore_ascii_case(n))
        })
        .map(|f| apply_select(folder_json(mbx, f), &select_list(req)))
        .collect();
    let total = all.len();
    let items = all.into_iter().skip(skip).take(top).collect();
    let ctx = format!("{}/$metadata#users('{}')/mailFolders", req.base, mbid);
    Ok(page_response(req, ctx, items, total, top, skip))
}

pub(super) fn get_folder(sb: &GraphSandbox, req: &ApiRequest, mbid: &str, key: &str) -> ApiResult {
    let st = sb.state();
    let mbx = &st.mailboxes[mbx_index(&st, mbid)];
    let f = resolve_folder(mbx, key)?;
    let mut v = apply_select(folder_json(mbx, f), &select_list(req));
    v["@odata.context"] = json!(format!(
        "{}/$metadata#users('{}')/mailFolders/$entity",
        req.base, mbid
    ));
    Ok(ApiResponse::json(200, v))
}

pub(super) fn create_folder(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    parent: Option<&str>,
) -> ApiResult {
    let body = req.json_body()?;
    let name = body
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "ErrorInvalidRequest",
                "The folder displayName is required.",
            )
        })?
        .to_owned();
    let mut st = sb.state();
    let mb = mbx_index(&st, mbid);
    let parent_id = match parent {
        Some(p) => resolve_folder(&st.mailboxes[mb], p)?.id.clone(),
        None => st.mailboxes[mb].root_id(),
    };
    if st.mailboxes[mb]
        .folders
        .iter()
        .any(|f| f.parent_id == parent_id && f.display_name.eq_ignore_ascii_case(&name))
    {
        return Err(ApiError::new(
            409,
            "ErrorFolderExists",
            "A folder with the specified name already exists.",
        ));
    }
    let n = st.next_counter();
    let id = make_id("AAMkAD", &format!("folder|{mbid}|custom|{n}"));
    st.mailboxes[mb].folders.push(state::Folder {
        id: id.clone(),
        well_known: None,
        display_name: name,
        parent_id,
    });
    let mbx = &st.mailboxes[mb];
    let f = mbx.folders.last().expect("just pushed");
    let mut v = folder_json(mbx, f);
    v["@odata.context"] = json!(format!(
        "{}/$metadata#users('{}')/mailFolders/$entity",
        req.base, mbid
    ));
    Ok(ApiResponse::json(201, v))
}

/// The `delta` function in any of the forms Graph accepts: `delta`, `delta()` (the OData
/// function-call form Microsoft's SDKs send) and `microsoft.graph.delta()`. `segment` is
/// lower-case.
fn is_delta(segment: &str) -> bool {
    matches!(
        segment.strip_prefix("microsoft.graph.").unwrap_or(segment),
        "delta" | "delta()"
    )
}
