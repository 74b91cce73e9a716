//! Large attachments through an upload session (reference §3.5): created on a draft with
//! `Mail.ReadWrite`, ranges `PUT` in order without a bearer token (Outlook refuses one), the
//! last answered 201 with a `Location`; the file is then an attachment of the draft.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn a_large_file_is_uploaded_in_ranges_to_a_draft() {
    let e = env().await;
    let draft = e
        .post(
            "support",
            "me/messages",
            json!({"subject": "Logs", "toRecipients": [{"emailAddress": {"address": "pat@fabrikam.test"}}]}),
        )
        .await;
    assert_eq!(draft.status, 201, "{}", draft.text);
    let id = draft.body["id"].as_str().unwrap().to_owned();
    let path = format!("me/messages/{id}/attachments/createUploadSession");

    // Validation: the item must be a named file of at most 150 MB.
    let r = e.post("support", &path, json!({})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = e
        .post("support", &path, json!({"AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": 151 * 1024 * 1024}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);

    let file: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    let r = e
        .post(
            "support",
            &path,
            json!({"AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": file.len(), "contentType": "application/zip"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["nextExpectedRanges"], json!(["0-"]));
    let url = r.body["uploadUrl"].as_str().unwrap().to_owned();
    assert!(
        url.contains("/AttachmentSessions('") && url.contains("authtoken="),
        "{url}"
    );

    let put = |range: String, bytes: Vec<u8>, bearer: bool| {
        let mut rb = e
            .http
            .put(&url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", range)
            .body(bytes);
        if bearer {
            rb = rb.bearer_auth("support");
        }
        e.send(rb)
    };
    let total = file.len();
    // A Graph token on the upload URL is refused.
    let r = put(format!("bytes 0-99/{total}"), file[..100].to_vec(), true).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.code(), "InvalidAudienceForResource");
    // Ranges go in order.
    let r = put(
        format!("bytes 100-199/{total}"),
        file[100..200].to_vec(),
        false,
    )
    .await;
    assert_eq!(r.status, 416, "{}", r.text);
    // A range over 4 MB is refused.
    let r = put(
        format!("bytes 0-4194304/{total}"),
        file[..4_194_305].to_vec(),
        false,
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text);
    // A token that is not the session's is refused.
    let r = e
        .send(
            e.http
                .put(url.replace("authtoken=", "authtoken=x"))
                .header("Content-Range", format!("bytes 0-99/{total}"))
                .body(file[..100].to_vec()),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);

    let r = put(
        format!("bytes 0-2999999/{total}"),
        file[..3_000_000].to_vec(),
        false,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["nextExpectedRanges"], json!(["3000000"]));
    let r = put(
        format!("bytes 3000000-{}/{total}", total - 1),
        file[3_000_000..].to_vec(),
        false,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let location = r.header("location").unwrap();
    assert!(location.contains("/Attachments('"), "{location}");

    let list = e
        .get("support", &format!("me/messages/{id}/attachments"))
        .await;
    let items = list.body["value"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "big.bin");
    assert_eq!(items[0]["contentType"], "application/zip");
    assert_eq!(items[0]["size"].as_u64(), Some(total as u64));
    let aid = items[0]["id"].as_str().unwrap();
    assert!(location.contains(aid), "{location}");

    // The session is over: another range is refused.
    let r = put(format!("bytes 0-99/{total}"), file[..100].to_vec(), false).await;
    assert_eq!(r.status, 404, "{}", r.text);
}
