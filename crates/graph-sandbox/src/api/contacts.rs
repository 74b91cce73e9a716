//! Contacts and contact folders: `contacts` (the default folder), `contactFolders` (the default
//! folder's children), their `childFolders` and `contacts`, and contact delta per folder
//! (`contactFolders/{id}/contacts/delta`, with `@removed` for contacts deleted or moved away).

use super::*;
use crate::address_book::{Contact, ContactDeltaState, ContactFolder};
use crate::seed::SeedAddress;

fn address_json(a: &Option<SeedAddress>) -> Value {
    match a {
        Some(a) => json!({
            "street": a.street,
            "city": a.city,
            "state": a.state,
            "countryOrRegion": a.country_or_region,
            "postalCode": a.postal_code,
        }),
        None => json!({}),
    }
}

pub(super) fn contact_json(c: &Contact) -> Value {
    let s = &c.seed;
    let change_key = make_id("EQAAABYAAAA", &format!("{}|{}", c.id, c.version))[..24].to_owned();
    json!({
        "@odata.etag": format!("W/\"{change_key}\""),
        "id": c.id,
        "createdDateTime": fmt_time(c.created),
        "lastModifiedDateTime": fmt_time(c.modified),
        "changeKey": change_key,
        "categories": [],
        "parentFolderId": c.folder_id,
        "birthday": null,
        "fileAs": "",
        "displayName": s.display_name,
        "givenName": s.given_name,
        "initials": null,
        "middleName": s.middle_name,
        "nickName": null,
        "surname": s.surname,
        "title": null,
        "yomiGivenName": null,
        "yomiSurname": null,
        "yomiCompanyName": null,
        "generation": null,
        "imAddresses": [],
        "jobTitle": s.job_title,
        "companyName": s.company_name,
        "department": s.department,
        "officeLocation": s.office_location,
        "profession": null,
        "businessHomePage": s.business_home_page,
        "assistantName": null,
        "manager": null,
        "homePhones": s.home_phones,
        "mobilePhone": s.mobile_phone,
        "businessPhones": s.business_phones,
        "spouseName": null,
        "personalNotes": s.personal_notes.clone().unwrap_or_default(),
        "children": [],
        "emailAddresses": s.email_addresses.iter().map(|(n, a)| json!({"name": n, "address": a})).collect::<Vec<_>>(),
        "homeAddress": {},
        "businessAddress": address_json(&s.business_address),
        "otherAddress": {},
    })
}

fn contact_folder_json(f: &ContactFolder, default_id: &str) -> Value {
    json!({
        "id": f.id,
        "displayName": f.display_name,
        "parentFolderId": f.parent_id.as_deref().unwrap_or(default_id),
    })
}

fn folder_not_found() -> ApiError {
    ApiError::new(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

/// Resolves a contact folder id of this mailbox (a malformed id is a 400, as Graph's).
fn contact_folder_id(st: &State, mb: usize, key: &str) -> Result<String, ApiError> {
    if !id_well_formed(key) {
        return Err(ApiError::malformed());
    }
    st.mailboxes[mb]
        .book
        .folder(key)
        .map(|f| f.id.clone())
        .ok_or_else(folder_not_found)
}

/// `GET contacts` (folder: none) or `GET contactFolders/{id}/contacts`.
pub(super) fn list_contacts(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    folder: Option<&str>,
) -> ApiResult {
    let (top, skip) = paging(req, 10)?;
    let st = sb.state();
    let mb = mbx_index(&st, mbid);
    let book = &st.mailboxes[mb].book;
    let folder_id = match folder {
        Some(key) => contact_folder_id(&st, mb, key)?,
        None => book.default_folder_id().to_owned(),
    };
    let sel = select_list(req);
    let in_folder: Vec<&Contact> = book
        .contacts
        .iter()
        .filter(|c| c.folder_id == folder_id)
        .collect();
    let items = in_folder
        .iter()
        .skip(skip)
        .take(top)
        .map(|c| apply_select(contact_json(c), &sel))
        .collect();
    let ctx = format!("{}/$metadata#users('{}')/contacts", req.base, mbid);
    Ok(page_response(req, ctx, items, in_folder.len(), top, skip))
}

pub(super) fn get_contact(sb: &GraphSandbox, req: &ApiRequest, mbid: &str, id: &str) -> ApiResult {
    if !id_well_formed(id) {
        return Err(ApiError::malformed());
    }
    let st = sb.state();
    let mbx = &st.mailboxes[mbx_index(&st, mbid)];
    let c = mbx
        .book
        .contacts
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(ApiError::not_found)?;
    let mut v = apply_select(contact_json(c), &select_list(req));
    v["@odata.context"] = json!(format!(
        "{}/$metadata#users('{}')/contacts/$entity",
        req.base, mbid
    ));
    Ok(ApiResponse::json(200, v))
}

/// `GET contactFolders` (parent: none, the default folder's children) or
/// `GET contactFolders/{id}/childFolders`.
pub(super) fn list_contact_folders(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    parent: Option<&str>,
) -> ApiResult {
    let (top, skip) = paging(req, 10)?;
    let st = sb.state();
    let mb = mbx_index(&st, mbid);
    let book = &st.mailboxes[mb].book;
    let parent_id = match parent {
        Some(key) => contact_folder_id(&st, mb, key)?,
        None => book.default_folder_id().to_owned(),
    };
    let sel = select_list(req);
    let children: Vec<&ContactFolder> = book
        .folders
        .iter()
        .filter(|f| f.parent_id.as_deref() == Some(parent_id.as_str()))
        .collect();
    let items = children
        .iter()
        .skip(skip)
        .take(top)
        .map(|f| apply_select(contact_folder_json(f, book.default_folder_id()), &sel))
        .collect();
    let ctx = format!("{}/$metadata#users('{}')/contactFolders", req.base, mbid);
    Ok(page_response(req, ctx, items, children.len(), top, skip))
}

pub(super) fn get_contact_folder(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    key: &str,
) -> ApiResult {
    let st = sb.state();
    let mb = mbx_index(&st, mbid);
    let id = contact_folder_id(&st, mb, key)?;
    let book = &st.mailboxes[mb].book;
    let f = book.folder(&id).expect("resolved above");
    let mut v = apply_select(
        contact_folder_json(f, book.default_folder_id()),
        &select_list(req),
    );
    v["@odata.context"] = json!(format!(
        "{}/$metadata#users('{}')/contactFolders/$entity",
        req.base, mbid
    ));
    Ok(ApiResponse::json(200, v))
}

/// `GET contactFolders/{id}/contacts/delta`: the folder's contacts page by page
/// (`Prefer: odata.maxpagesize`, default 10), then a `@odata.deltaLink`; with its token, what
/// changed since — a contact deleted or moved out of the folder as `@removed`.
pub(super) fn contacts_delta(
    sb: &GraphSandbox,
    req: &ApiRequest,
    mbid: &str,
    folder_key: &str,
) -> ApiResult {
    let gone = || {
        ApiError::new(
            410,
            "SyncStateNotFound",
            "The sync state generation is not found; the delta token has expired or is invalid. Restart the synchronization without a delta token.",
        )
    };
    let page_size = req.max_page_size().unwrap_or(10).clamp(1, 1000);
    let now = sb.now();
    let ttl = sb.behaviour().delta_token_ttl;
    let mut st = sb.state();
    let mb = mbx_index(&st, mbid);
    let folder_id = contact_folder_id(&st, mb, folder_key)?;
    let same = |m: &str, f: &str| m == mbid && f == folder_id;
    let (items, offset, watermark) = if let Some(skip) = req.q("$skiptoken") {
        match st.contact_deltas.get(&skip).cloned() {
            Some(ContactDeltaState::Page {
                mailbox,
                folder_id: f,
                items,
                offset,
                watermark,
            }) if same(&mailbox, &f) => (items, offset, watermark),
            _ => return Err(gone()),
        }
    } else if let Some(tok) = req.q("$deltatoken") {
        match st.contact_deltas.get(&tok).cloned() {
            Some(ContactDeltaState::Token {
                mailbox,
                folder_id: f,
                watermark,
                issued,
            }) if same(&mailbox, &f) => {
                if ttl.is_some_and(|ttl| now - issued > ttl) {
                    st.contact_deltas.remove(&tok);
                    return Err(gone());
                }
                let book = &st.mailboxes[mb].book;
                (
                    book.changes_since(&folder_id, watermark),
                    0,
                    book.watermark(),
                )
            }
            _ => return Err(gone()),
        }
    } else {
        let book = &st.mailboxes[mb].book;
        let items = book
            .contacts
            .iter()
            .filter(|c| c.folder_id == folder_id)
            .map(|c| (c.id.clone(), false))
            .collect();
        (items, 0, book.watermark())
    };
    let sel = select_list(req);
    let book = &st.mailboxes[mb].book;
    let end = (offset + page_size).min(items.len());
    let values: Vec<Value> = items[offset..end]
        .iter()
        .map(|(id, removed)| {
            let current = book
                .contacts
                .iter()
                .find(|c| c.id == *id && c.folder_id == folder_id);
            match current {
                Some(c) if !removed => apply_select(contact_json(c), &sel),
                _ => json!({
                    "@odata.type": "#microsoft.graph.contact",
                    "id": id,
                    "@removed": {"reason": "deleted"},
                }),
            }
        })
        .collect();
    let keep: Vec<(String, String)> = req
        .query_pairs()
        .into_iter()
        .filter(|(k, _)| {
            let k = k.trim_start_matches('$').to_ascii_lowercase();
            k != "skiptoken" && k != "deltatoken"
        })
        .collect();
    let n = st.next_counter();
    let token = make_id("", &format!("contactdelta|{mbid}|{n}"))
        .trim_end_matches('=')
        .to_owned();
    let mut body = json!({
        "@odata.context": format!("{}/$metadata#Collection(contact)", req.base),
        "value": values,
    });
    let mut q = keep;
    if end < items.len() {
        st.contact_deltas.insert(
            token.clone(),
            ContactDeltaState::Page {
                mailbox: mbid.to_owned(),
                folder_id,
                items,
                offset: end,
                watermark,
            },
        );
        q.push(("$skiptoken".into(), token));
        body["@odata.nextLink"] = json!(req.link(&q));
    } else {
        st.contact_deltas.insert(
            token.clone(),
            ContactDeltaState::Token {
                mailbox: mbid.to_owned(),
                folder_id,
                watermark,
                issued: now,
            },
        );
        q.push(("$deltatoken".into(), token));
        body["@odata.deltaLink"] = json!(req.link(&q));
    }
    let mut r = ApiResponse::json(200, body);
    if let Some(n) = req.max_page_size() {
        r.headers.push((
            "Preference-Applied".into(),
            format!("odata.maxpagesize={n}"),
        ));
    }
    Ok(r)
}
