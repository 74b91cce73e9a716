//! Delta queries over a folder's messages.

use super::*;

pub(super) fn delta(
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
    // Delta supports $filter only as receivedDateTime ge|gt {value}.
    let filter = match req.q("$filter") {
        Some(f) => {
            let clauses = query::parse_filter(&f)
                .map_err(|e| ApiError::new(400, "ErrorInvalidUrlQueryFilter", &e))?;
            if clauses.iter().any(|c| {
                c.property != "receivedDateTime" || !matches!(c.op, query::Op::Ge | query::Op::Gt)
            }) {
                return Err(ApiError::new(
                    400,
                    "ErrorInvalidUrlQueryFilter",
                    "Delta query supports $filter only as 'receivedDateTime ge|gt {value}'.",
                ));
            }
            clauses
        }
        None => Vec::new(),
    };
    let now = sb.now();
    let ttl = sb.behaviour().delta_token_ttl;
    let o = RenderOpts::from(req);
    let mut st = sb.state();
    let mb = mbx_index(&st, mbid);
    let folder_id = resolve_folder(&st.mailboxes[mb], folder_key)?.id.clone();
    let page = if let Some(skip) = req.q("$skiptoken") {
        let p = st.delta_pages.get(&skip).cloned().ok_or_else(gone)?;
        if p.mailbox != mbid || p.folder_id != folder_id {
            return Err(gone());
        }
        p
    } else if let Some(tok) = req.q("$deltatoken") {
        let t = st.delta_tokens.get(&tok).cloned().ok_or_else(gone)?;
        if t.mailbox != mbid || t.folder_id != folder_id {
            return Err(gone());
        }
        if ttl.is_some_and(|ttl| now - t.issued > ttl) {
            st.delta_tokens.remove(&tok);
            return Err(gone());
        }
        DeltaPage {
            mailbox: mbid.to_owned(),
            folder_id: folder_id.clone(),
            items: st.changes_since(mb, &folder_id, t.watermark),
            offset: 0,
            watermark: st.next_seq - 1,
        }
    } else {
        let mbx = &st.mailboxes[mb];
        let mut msgs: Vec<&Message> = mbx
            .messages
            .iter()
            .filter(|m| m.folder_id == folder_id)
            .filter(|m| query::matches(m, &filter))
            .collect();
        query::sort(&mut msgs, &[]);
        if !filter.is_empty() {
            // A filtered delta returns at most 5,000 messages.
            msgs.truncate(5000);
        }
        DeltaPage {
            mailbox: mbid.to_owned(),
            folder_id: folder_id.clone(),
            items: msgs.iter().map(|m| DeltaItem::Upsert(m.key)).collect(),
            offset: 0,
            watermark: st.next_seq - 1,
        }
    };
    let mbx = &st.mailboxes[mb];
    let end = (page.offset + page_size).min(page.items.len());
    let values: Vec<Value> = page.items[page.offset..end]
        .iter()
        .map(|it| match it {
            DeltaItem::Upsert(k) => match mbx
                .messages
                .iter()
                .find(|m| m.key == *k && m.folder_id == folder_id)
            {
                Some(m) => message_json(m, mbx, &o),
                None => removed_json(mbx, *k, &o),
            },
            DeltaItem::Removed { id, immutable_id } => json!({
                "@odata.type": "#microsoft.graph.message",
                "id": if o.immutable { immutable_id } else { id },
                "@removed": {"reason": "deleted"},
            }),
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
    let token = make_id("", &format!("delta|{mbid}|{n}"))
        .trim_end_matches('=')
        .to_owned();
    let mut body = json!({
        "@odata.context": format!("{}/$metadata#Collection(message)", req.base),
        "value": values,
    });
    if end < page.items.len() {
        let mut next = page.clone();
        next.offset = end;
        st.delta_pages.insert(token.clone(), next);
        let mut q = keep;
        q.push(("$skiptoken".into(), token));
        body["@odata.nextLink"] = json!(req.link(&q));
    } else {
        st.delta_tokens.insert(
            token.clone(),
            DeltaToken {
                mailbox: mbid.to_owned(),
                folder_id,
                watermark: page.watermark,
                issued: now,
            },
        );
        let mut q = keep;
        q.push(("$deltatoken".into(), token));
        body["@odata.deltaLink"] = json!(req.link(&q));
    }
    let mut r = preference_applied(req, ApiResponse::json(200, body));
    if let Some(n) = req.max_page_size() {
        r.headers.push((
            "Preference-Applied".into(),
            format!("odata.maxpagesize={n}"),
        ));
    }
    Ok(r)
}

pub(super) fn removed_json(mbx: &Mailbox, key: u64, o: &RenderOpts) -> Value {
    let id = mbx
        .log
        .iter()
        .rev()
        .find(|e| e.key == key)
        .map(|e| {
            if o.immutable {
                e.immutable_id.clone()
            } else {
                e.id_then.clone()
            }
        })
        .unwrap_or_default();
    json!({"@odata.type": "#microsoft.graph.message", "id": id, "@removed": {"reason": "deleted"}})
}
