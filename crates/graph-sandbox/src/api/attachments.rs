//! Attachment resources of a message.

use super::*;

pub(super) fn attachment_json(a: &state::Attachment, m: &Message) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "@odata.mediaContentType": a.content_type,
        "id": a.id,
        "lastModifiedDateTime": fmt_time(m.received),
        "name": a.name,
        "contentType": a.content_type,
        "size": a.content.len(),
        "isInline": a.inline,
        "contentId": a.content_id,
        "contentLocation": null,
        "contentBytes": b64encode(&a.content),
    })
}
