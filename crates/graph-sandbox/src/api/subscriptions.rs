//! Change-notification subscriptions and the notifications they produce.

use super::*;

/// Change notifications for subscriptions on mailbox `mb` watching `folder_id`.
#[allow(clippy::too_many_arguments)]
pub(super) fn notify(
    st: &mut State,
    mb: usize,
    folder_id: &str,
    id: &str,
    immutable_id: &str,
    etag: &str,
    change: &str,
    now: DateTime<Utc>,
) -> Vec<Job> {
    st.subscriptions.retain(|s| s.expiration > now);
    let uid = st.mailboxes[mb].user.id.clone();
    let tenant = st.tenant_id.clone();
    st.subscriptions
        .iter()
        .filter(|s| s.mailbox == uid)
        .filter(|s| s.folder_id.as_deref().is_none_or(|f| f == folder_id))
        .filter(|s| s.change_types.iter().any(|c| c == change))
        .map(|s| {
            let rid = if s.immutable_ids { immutable_id } else { id };
            let resource = format!("Users/{uid}/Messages/{rid}");
            let body = json!({"value": [{
                "subscriptionId": s.id,
                "subscriptionExpirationDateTime": s.expiration.to_rfc3339_opts(SecondsFormat::Secs, false),
                "changeType": change,
                "resource": resource,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Message",
                    "@odata.id": resource,
                    "@odata.etag": etag,
                    "id": rid,
                },
                "clientState": s.client_state,
                "tenantId": tenant,
            }]});
            Job {
                subscription_id: s.id.clone(),
                url: s.notification_url.clone(),
                kind: NotificationKind::Change(change.to_owned()),
                body,
                missed: lifecycle_job(s, &tenant, LifecycleEvent::Missed).map(|j| (j.url, j.body)),
            }
        })
        .collect()
}

/// Change notifications for a newly created message (used by [`GraphSandbox::deliver`]).
pub(crate) fn notifications_for(
    st: &mut State,
    mb: usize,
    idx: usize,
    change: &str,
    now: DateTime<Utc>,
) -> Vec<Job> {
    let m = &st.mailboxes[mb].messages[idx];
    let (folder, id, imm, etag) = (
        m.folder_id.clone(),
        m.id.clone(),
        m.immutable_id.clone(),
        m.etag(),
    );
    notify(st, mb, &folder, &id, &imm, &etag, change, now)
}

pub(crate) fn lifecycle_job(s: &Subscription, tenant: &str, event: LifecycleEvent) -> Option<Job> {
    let url = s.lifecycle_url.clone()?;
    Some(Job {
        subscription_id: s.id.clone(),
        url,
        kind: NotificationKind::Lifecycle(event),
        body: json!({"value": [{
            "subscriptionId": s.id,
            "subscriptionExpirationDateTime": s.expiration.to_rfc3339_opts(SecondsFormat::Secs, false),
            "tenantId": tenant,
            "clientState": s.client_state,
            "lifecycleEvent": event.as_str(),
        }]}),
        missed: None,
    })
}

pub(crate) fn subscription_view(s: &Subscription) -> SubscriptionView {
    SubscriptionView {
        id: s.id.clone(),
        resource: s.resource.clone(),
        change_type: s.change_types.join(","),
        notification_url: s.notification_url.clone(),
        lifecycle_notification_url: s.lifecycle_url.clone(),
        client_state: s.client_state.clone(),
        expiration: s.expiration,
        application_id: s.app_id.clone(),
        creator_id: s.creator_id.clone(),
        needs_reauthorization: s.needs_reauthorization,
    }
}

pub(super) fn subscription_json(req: &ApiRequest, s: &Subscription) -> Value {
    json!({
        "@odata.context": format!("{}/$metadata#subscriptions/$entity", req.base),
        "id": s.id,
        "resource": s.resource,
        "applicationId": s.app_id,
        "changeType": s.change_types.join(","),
        "clientState": s.client_state,
        "notificationUrl": s.notification_url,
        "notificationQueryOptions": null,
        "lifecycleNotificationUrl": s.lifecycle_url,
        "expirationDateTime": s.expiration.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "creatorId": s.creator_id,
        "includeResourceData": false,
        "latestSupportedTlsVersion": s.tls,
        "encryptionCertificate": null,
        "encryptionCertificateId": null,
        "notificationUrlAppId": null,
    })
}

// ---------------------------------------------------------------- subscriptions

pub(super) fn encode_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs the validation handshake against one URL.
pub(super) async fn validate_endpoint(sb: &GraphSandbox, url: &str) -> Result<(), ApiError> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid::Uuid::new_v4()
    );
    let sep = if url.contains('?') { '&' } else { '?' };
    let target = format!("{url}{sep}validationToken={}", encode_component(&token));
    let timeout = sb.publisher_options().validation_timeout;
    let failed = || {
        ApiError::new(
            400,
            "ValidationError",
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
        )
    };
    let resp = sb
        .inner
        .http
        .post(&target)
        .header("content-type", "text/plain; charset=utf-8")
        .timeout(timeout)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Err(ApiError::new(
                400,
                "InvalidRequest",
                "Subscription validation request timed out.",
            ))
        }
        Err(_) => return Err(failed()),
    };
    if resp.status().as_u16() != 200 {
        return Err(failed());
    }
    let body = match tokio::time::timeout(timeout, resp.text()).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return Err(failed()),
        Err(_) => {
            return Err(ApiError::new(
                400,
                "InvalidRequest",
                "Subscription validation request timed out.",
            ))
        }
    };
    if body != token {
        return Err(ApiError::new(
            400,
            "ValidationError",
            "Subscription validation request failed. Response must exactly match validationToken query parameter.",
        ));
    }
    Ok(())
}

pub(super) fn check_url(sb: &GraphSandbox, name: &str, raw: &str) -> Result<(), ApiError> {
    let u = url::Url::parse(raw).map_err(|_| {
        ApiError::new(
            400,
            "InvalidRequest",
            &format!("Invalid '{name}': '{raw}' is not an absolute URL."),
        )
    })?;
    let loopback = matches!(
        u.host_str(),
        Some("localhost") | Some("127.0.0.1") | Some("[::1]")
    );
    let local_http =
        u.scheme() == "http" && loopback && sb.behaviour().loopback_http_notification_urls;
    if u.scheme() == "https" || local_http {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "InvalidRequest",
            &format!("The {name} must use the HTTPS protocol."),
        ))
    }
}

pub(super) fn check_expiry(
    sb: &GraphSandbox,
    v: Option<&Value>,
) -> Result<DateTime<Utc>, ApiError> {
    let raw = v
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::new(400, "InvalidRequest", "expirationDateTime is required."))?;
    let at = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| {
            ApiError::new(
                400,
                "InvalidRequest",
                &format!("Invalid expirationDateTime '{raw}'."),
            )
        })?
        .with_timezone(&Utc);
    let now = sb.now();
    if at <= now {
        return Err(ApiError::new(
            400,
            "InvalidRequest",
            "Subscription expiration must be in the future.",
        ));
    }
    let max = sb.publisher_options().max_expiration_minutes;
    if at > now + chrono::Duration::minutes(max) {
        return Err(ApiError::new(
            400,
            "ExtensionError",
            &format!("Subscription expiration can only be {max} minutes in the future."),
        ));
    }
    Ok(at)
}

/// Parses `users/{id}/mailFolders('inbox')/messages` and friends.
pub(super) fn parse_resource(
    st: &State,
    g: &AccessGrant,
    resource: &str,
) -> Result<(usize, Option<String>), ApiError> {
    let path = resource.split('?').next().unwrap_or("");
    let segs = segments(path);
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let unsupported = || {
        ApiError::new(
            400,
            "InvalidRequest",
            &format!("Resource '{resource}' is not supported; use me/mailFolders('Inbox')/messages, users/{{id}}/messages or users/{{id}}/mailFolders/{{id}}/messages."),
        )
    };
    let (owner, rest) = match lower.first().map(String::as_str) {
        Some("me") => (
            g.user_id.clone().ok_or_else(|| {
                ApiError::new(
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                )
            })?,
            &segs[1..],
        ),
        Some("users") if segs.len() > 1 => (segs[1].clone(), &segs[2..]),
        _ => return Err(unsupported()),
    };
    let mb = st.mailbox_index(&owner).ok_or_else(|| {
        ApiError::new(
            404,
            "ErrorInvalidUser",
            &format!("The requested user '{owner}' is invalid."),
        )
    })?;
    let rl: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let rl: Vec<&str> = rl.iter().map(String::as_str).collect();
    let folder = match rl.as_slice() {
        ["messages"] => None,
        ["mailfolders", _, "messages"] => {
            Some(resolve_folder(&st.mailboxes[mb], &rest[1])?.id.clone())
        }
        _ => return Err(unsupported()),
    };
    Ok((mb, folder))
}

pub(super) async fn subscriptions_route(
    sb: &GraphSandbox,
    req: &ApiRequest,
    g: &AccessGrant,
    rest: &[String],
) -> ApiResult {
    let now = sb.now();
    sb.state().subscriptions.retain(|s| s.expiration > now);
    let owned = |s: &Subscription| {
        s.app_id.eq_ignore_ascii_case(&g.client_id)
            && (g.is_app_only()
                || g.user_id
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(&s.creator_id)))
    };
    let sub_not_found = || ApiError::new(404, "ResourceNotFound", "The object was not found.");
    match (req.method.as_str(), rest) {
        ("POST", []) => create_subscription(sb, req, g).await,
        ("GET", []) => {
            let st = sb.state();
            let items: Vec<Value> = st
                .subscriptions
                .iter()
                .filter(|s| owned(s))
                .map(|s| {
                    let mut v = subscription_json(req, s);
                    v.as_object_mut().expect("object").remove("@odata.context");
                    v
                })
                .collect();
            Ok(ApiResponse::json(
                200,
                json!({"@odata.context": format!("{}/$metadata#subscriptions", req.base), "value": items}),
            ))
        }
        ("GET", [id]) => {
            let st = sb.state();
            let s = st
                .subscriptions
                .iter()
                .find(|s| &s.id == id && owned(s))
                .ok_or_else(sub_not_found)?;
            Ok(ApiResponse::json(200, subscription_json(req, s)))
        }
        ("PATCH", [id]) => {
            let body = req.json_body()?;
            let at = check_expiry(sb, body.get("expirationDateTime"))?;
            let mut st = sb.state();
            let s = st
                .subscriptions
                .iter_mut()
                .find(|s| &s.id == id && owned(s))
                .ok_or_else(sub_not_found)?;
            s.expiration = at;
            s.needs_reauthorization = false;
            let v = subscription_json(req, s);
            Ok(ApiResponse::json(200, v))
        }
        ("DELETE", [id]) => {
            let mut st = sb.state();
            let pos = st
                .subscriptions
                .iter()
                .position(|s| &s.id == id && owned(s))
                .ok_or_else(sub_not_found)?;
            st.subscriptions.remove(pos);
            Ok(ApiResponse::empty(204))
        }
        ("POST", [id, action]) if action.eq_ignore_ascii_case("reauthorize") => {
            let mut st = sb.state();
            let s = st
                .subscriptions
                .iter_mut()
                .find(|s| &s.id == id && owned(s))
                .ok_or_else(sub_not_found)?;
            s.needs_reauthorization = false;
            Ok(ApiResponse::empty(204))
        }
        _ => Err(method_not_allowed(req)),
    }
}

pub(super) async fn create_subscription(
    sb: &GraphSandbox,
    req: &ApiRequest,
    g: &AccessGrant,
) -> ApiResult {
    let body = req.json_body()?;
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let change = s("changeType")
        .ok_or_else(|| ApiError::new(400, "InvalidRequest", "changeType is required."))?;
    let change_types: Vec<String> = change.split(',').map(|c| c.trim().to_owned()).collect();
    if let Some(bad) = change_types
        .iter()
        .find(|c| !["created", "updated", "deleted"].contains(&c.as_str()))
    {
        return Err(ApiError::new(
            400,
            "InvalidRequest",
            &format!("Invalid 'changeType' attribute: '{bad}'."),
        ));
    }
    let notification_url = s("notificationUrl")
        .ok_or_else(|| ApiError::new(400, "InvalidRequest", "notificationUrl is required."))?;
    check_url(sb, "notificationUrl", &notification_url)?;
    let lifecycle_url = s("lifecycleNotificationUrl");
    if let Some(l) = &lifecycle_url {
        check_url(sb, "lifecycleNotificationUrl", l)?;
    }
    let resource = s("resource")
        .ok_or_else(|| ApiError::new(400, "InvalidRequest", "resource is required."))?;
    let client_state = s("clientState");
    if client_state
        .as_ref()
        .is_some_and(|c| c.chars().count() > 128)
    {
        return Err(ApiError::new(
            400,
            "InvalidRequest",
            "clientState must be at most 128 characters.",
        ));
    }
    if body.get("includeResourceData").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::new(
            400,
            "InvalidRequest",
            "includeResourceData (rich notifications) is not supported for Outlook messages on v1.0 by this sandbox.",
        ));
    }
    let expiration = check_expiry(sb, body.get("expirationDateTime"))?;
    let (mbid, folder_id) = {
        let st = sb.state();
        let (mb, folder) = parse_resource(&st, g, &resource)?;
        let user = &st.mailboxes[mb].user;
        if g.is_app_only() {
            if !has_any(
                &g.roles,
                &[
                    "Mail.Read",
                    "Mail.ReadWrite",
                    "Mail.ReadBasic.All",
                    "Mail.ReadBasic",
                ],
            ) {
                return Err(ApiError::denied());
            }
            if !st.policy_allows(&g.client_id, user) {
                return Err(ApiError::new(403, "ErrorAccessDenied", ODATA_DISABLED));
            }
        } else {
            // Delegated subscriptions: own mailbox only; the .Shared scopes do not count.
            let own = g
                .user_id
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(&user.id));
            if !own
                || !has_any(
                    &g.scopes,
                    &["Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic"],
                )
            {
                return Err(ApiError::denied());
            }
        }
        let max = sb.behaviour().max_subscriptions_per_mailbox;
        if st
            .subscriptions
            .iter()
            .filter(|s| s.mailbox == user.id)
            .count()
            >= max
        {
            return Err(ApiError::new(
                403,
                "ExtensionError",
                &format!("The mailbox has reached the maximum of {max} active subscriptions."),
            ));
        }
        (user.id.clone(), folder)
    };
    validate_endpoint(sb, &notification_url).await?;
    if let Some(l) = &lifecycle_url {
        validate_endpoint(sb, l).await?;
    }
    let sub = Subscription {
        id: uuid::Uuid::new_v4().to_string(),
        resource,
        mailbox: mbid,
        folder_id,
        change_types,
        notification_url,
        lifecycle_url,
        client_state,
        expiration,
        app_id: g.client_id.clone(),
        creator_id: g.user_id.clone().unwrap_or_else(|| g.client_id.clone()),
        immutable_ids: req.prefers_immutable(),
        tls: s("latestSupportedTlsVersion").unwrap_or_else(|| "v1_2".into()),
        needs_reauthorization: false,
    };
    let v = subscription_json(req, &sub);
    sb.state().subscriptions.push(sub);
    Ok(ApiResponse::json(201, v))
}

// ---------------------------------------------------------------- $batch
