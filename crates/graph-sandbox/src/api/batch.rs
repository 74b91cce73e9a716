//! JSON batching (`$batch`).

use super::*;

pub(super) struct BatchItem {
    id: String,
    req: ApiRequest,
    depends_on: Vec<String>,
}

pub(super) async fn batch(sb: &GraphSandbox, req: &ApiRequest, _g: &AccessGrant) -> ApiResult {
    let invalid = |m: &str| ApiError::new(400, "BadRequest", m);
    let body = req.json_body()?;
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("Invalid batch payload format: 'requests' array is required."))?;
    if requests.is_empty() {
        return Err(invalid(
            "Invalid batch payload format: 'requests' must not be empty.",
        ));
    }
    if requests.len() > MAX_BATCH {
        return Err(invalid(&format!(
            "The number of requests in the batch ({}) exceeds the limit of {MAX_BATCH}.",
            requests.len()
        )));
    }
    let mut items: Vec<BatchItem> = Vec::new();
    for r in requests {
        let id = match r.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(invalid(
                    "Invalid batch payload format: every request needs an 'id'.",
                ))
            }
        };
        if items.iter().any(|i| i.id == id) {
            return Err(invalid(&format!(
                "Batch request ids must be unique; '{id}' is repeated."
            )));
        }
        let method = r
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid("Invalid batch payload format: every request needs a 'method'.")
            })?
            .to_ascii_uppercase();
        let url = r
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("Invalid batch payload format: every request needs a 'url'."))?;
        if url.starts_with("http://") || url.starts_with("https://") {
            return Err(invalid(
                "Batch request urls must be relative (e.g. /me/messages).",
            ));
        }
        let url = url.trim_start_matches('/');
        let url = url.strip_prefix("v1.0/").unwrap_or(url);
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let mut headers: Vec<(String, String)> = req
            .headers
            .iter()
            .filter(|(n, _)| matches!(n.as_str(), "authorization" | "host" | "client-request-id"))
            .cloned()
            .collect();
        if let Some(h) = r.get("headers").and_then(Value::as_object) {
            for (k, v) in h {
                headers.push((k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_owned()));
            }
        }
        let body_bytes = match r.get("body") {
            None | Some(Value::Null) => Vec::new(),
            Some(b) => {
                let ct = headers
                    .iter()
                    .find(|(n, _)| n == "content-type")
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        invalid(&format!(
                            "Request '{id}' has a body but no Content-Type header."
                        ))
                    })?;
                match b {
                    Value::String(s) if !ct.contains("json") => {
                        base64::engine::general_purpose::STANDARD
                            .decode(s)
                            .unwrap_or_else(|_| s.clone().into_bytes())
                    }
                    other => other.to_string().into_bytes(),
                }
            }
        };
        let depends_on = match r.get("dependsOn") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(_) => {
                return Err(invalid(
                    "Invalid batch payload format: 'dependsOn' must be an array.",
                ))
            }
        };
        items.push(BatchItem {
            id,
            req: ApiRequest {
                method,
                path: path.to_owned(),
                query: query.to_owned(),
                headers,
                body: body_bytes,
                base: req.base.clone(),
            },
            depends_on,
        });
    }
    for it in &items {
        for d in &it.depends_on {
            if !items.iter().any(|o| &o.id == d) || d == &it.id {
                return Err(invalid(&format!(
                    "Request '{}' depends on unknown request '{d}'.",
                    it.id
                )));
            }
        }
    }
    let order = sequencing(&items)
        .ok_or_else(|| invalid("Batch should be either fully sequential or fully parallel"))?;
    let mut responses: Vec<(String, ApiResponse)> = Vec::new();
    match order {
        None => {
            // Outlook runs 4 sub-requests in parallel.
            let mut rest = items.into_iter();
            loop {
                let chunk: Vec<BatchItem> = rest.by_ref().take(4).collect();
                if chunk.is_empty() {
                    break;
                }
                let mut set = tokio::task::JoinSet::new();
                for (i, it) in chunk.into_iter().enumerate() {
                    let fut = handle_boxed(sb.clone(), it.req);
                    let id = it.id;
                    set.spawn(async move { (i, id, fut.await) });
                }
                let mut done = Vec::new();
                while let Some(r) = set.join_next().await {
                    done.push(r.map_err(|e| {
                        ApiError::new(
                            500,
                            "InternalServerError",
                            &format!("batch item failed: {e}"),
                        )
                    })?);
                }
                done.sort_by_key(|d| d.0);
                responses.extend(done.into_iter().map(|(_, id, r)| (id, r)));
            }
        }
        Some(chain) => {
            let mut failed = false;
            let mut by_id: std::collections::HashMap<String, BatchItem> =
                items.into_iter().map(|i| (i.id.clone(), i)).collect();
            for id in chain {
                let it = by_id.remove(&id).expect("chain ids exist");
                if failed {
                    let e = ApiError::new(
                        424,
                        "FailedDependency",
                        "The request could not be executed because a request it depends on failed.",
                    );
                    responses.push((
                        id,
                        e.into_response(&uuid::Uuid::new_v4().to_string(), None, sb.now()),
                    ));
                    continue;
                }
                let r = handle_boxed(sb.clone(), it.req).await;
                failed = r.status >= 400;
                responses.push((id, r));
            }
        }
    }
    let out: Vec<Value> = responses
        .into_iter()
        .map(|(id, r)| {
            let mut headers = Map::new();
            for (n, v) in &r.headers {
                if n.eq_ignore_ascii_case("request-id")
                    || n.eq_ignore_ascii_case("client-request-id")
                {
                    continue;
                }
                headers.insert(n.clone(), json!(v));
            }
            let mut item = json!({"id": id, "status": r.status});
            match r.body {
                RespBody::Empty => {}
                RespBody::Json(v) => {
                    headers.insert("Content-Type".into(), json!(JSON_CT));
                    item["body"] = v;
                }
                RespBody::Raw(bytes, ct) => {
                    headers.insert("Content-Type".into(), json!(ct));
                    item["body"] = json!(b64encode(&bytes));
                }
            }
            item["headers"] = Value::Object(headers);
            item
        })
        .collect();
    Ok(ApiResponse::json(200, json!({"responses": out})))
}

/// `Some(None)`: fully parallel; `Some(Some(chain))`: fully sequential in chain order;
/// `None`: a mix (rejected).
pub(super) fn sequencing(items: &[BatchItem]) -> Option<Option<Vec<String>>> {
    if items.iter().all(|i| i.depends_on.is_empty()) {
        return Some(None);
    }
    if items.iter().any(|i| i.depends_on.len() > 1) {
        return None;
    }
    let roots: Vec<&BatchItem> = items.iter().filter(|i| i.depends_on.is_empty()).collect();
    if roots.len() != 1 {
        return None;
    }
    let mut chain = vec![roots[0].id.clone()];
    while chain.len() < items.len() {
        let last = chain.last().expect("non-empty");
        let next: Vec<&BatchItem> = items
            .iter()
            .filter(|i| i.depends_on.first() == Some(last))
            .collect();
        if next.len() != 1 {
            return None;
        }
        chain.push(next[0].id.clone());
    }
    Some(Some(chain))
}
