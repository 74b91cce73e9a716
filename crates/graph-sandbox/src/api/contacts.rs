//! Contacts.

use super::*;

pub(super) fn contact_json(c: &state::Contact, mbx: &Mailbox) -> Value {
    let s = &c.seed;
    json!({
        "@odata.etag": format!("W/\"EQAAABYAAAA{}\"", &c.id[6..20]),
        "id": c.id,
        "createdDateTime": fmt_time(c.created),
        "lastModifiedDateTime": fmt_time(c.created),
        "changeKey": "EQAAABYAAAA",
        "categories": [],
        "parentFolderId": make_id("AAMkAD", &format!("folder|{}|contacts", mbx.user.id)),
        "birthday": null,
        "fileAs": "",
        "displayName": s.display_name,
        "givenName": s.given_name,
        "initials": null,
        "middleName": null,
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
        "department": null,
        "officeLocation": null,
        "profession": null,
        "businessHomePage": null,
        "assistantName": null,
        "manager": null,
        "homePhones": [],
        "mobilePhone": s.mobile_phone,
        "businessPhones": s.business_phones,
        "spouseName": null,
        "personalNotes": "",
        "children": [],
        "emailAddresses": s.email_addresses.iter().map(|(n, a)| json!({"name": n, "address": a})).collect::<Vec<_>>(),
        "homeAddress": {},
        "businessAddress": {},
        "otherAddress": {},
    })
}

pub(super) fn list_contacts(sb: &GraphSandbox, req: &ApiRequest, mbid: &str) -> ApiResult {
    let (top, skip) = paging(req, 10)?;
    let st = sb.state();
    let mbx = &st.mailboxes[mbx_index(&st, mbid)];
    let sel = select_list(req);
    let total = mbx.contacts.len();
    let items = mbx
        .contacts
        .iter()
        .skip(skip)
        .take(top)
        .map(|c| apply_select(contact_json(c, mbx), &sel))
        .collect();
    let ctx = format!("{}/$metadata#users('{}')/contacts", req.base, mbid);
    Ok(page_response(req, ctx, items, total, top, skip))
}

pub(super) fn get_contact(sb: &GraphSandbox, req: &ApiRequest, mbid: &str, id: &str) -> ApiResult {
    if !id_well_formed(id) {
        return Err(ApiError::malformed());
    }
    let st = sb.state();
    let mbx = &st.mailboxes[mbx_index(&st, mbid)];
    let c = mbx
        .contacts
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(ApiError::not_found)?;
    let mut v = apply_select(contact_json(c, mbx), &select_list(req));
    v["@odata.context"] = json!(format!(
        "{}/$metadata#users('{}')/contacts/$entity",
        req.base, mbid
    ));
    Ok(ApiResponse::json(200, v))
}

// ---------------------------------------------------------------- notifications
