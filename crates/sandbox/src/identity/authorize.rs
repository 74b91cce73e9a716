//! Discovery, JWKS, `/authorize` (sign-in + consent page) and `/adminconsent`.

use std::collections::HashMap;

use axum::extract::{Path, Query, RawForm, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use chrono::Duration;
use serde_json::json;

use super::errors::{AadError, TraceIds};
use super::pages::{self, PermissionLine, SignInPage, UserChoice};
use super::{parse_scopes, random_token, AuthCode, IdentityPlatform, Scope, State as St};

/// How the `{tenant}` path segment was understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TenantKind {
    Own,
    Common,
    Organizations,
    Consumers,
}

pub(crate) fn check_tenant(st: &St, tenant: &str) -> Result<TenantKind, AadError> {
    if st.is_own_tenant(tenant) {
        return Ok(TenantKind::Own);
    }
    match tenant.to_ascii_lowercase().as_str() {
        "common" => Ok(TenantKind::Common),
        "organizations" => Ok(TenantKind::Organizations),
        "consumers" => Ok(TenantKind::Consumers),
        _ => Err(AadError::bad(
            "invalid_request",
            90002,
            format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."),
        )),
    }
}

pub(crate) fn correlation(headers: &HeaderMap) -> Option<String> {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub(crate) async fn openid_configuration(
    State(idp): State<IdentityPlatform>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (kind, tid) = {
        let st = idp.lock();
        (check_tenant(&st, &tenant), st.tenant_id.clone())
    };
    let base = idp.base_url();
    let kind = match kind {
        Ok(k) => k,
        Err(e) => {
            let ids = TraceIds::new(correlation(&headers).as_deref(), idp.now());
            return e.to_json_response(&ids, &base);
        }
    };
    let issuer = if kind == TenantKind::Own {
        format!("{base}/{tid}/v2.0")
    } else {
        format!("{base}/{{tenantid}}/v2.0")
    };
    Json(json!({
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce",
            "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email", "oid"],
        "kerberos_endpoint": format!("{base}/{tenant}/kerberos"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }))
    .into_response()
}

pub(crate) async fn jwks(State(idp): State<IdentityPlatform>) -> Response {
    Json(idp.key().jwks()).into_response()
}

pub(crate) async fn error_lookup(Query(q): Query<HashMap<String, String>>) -> Response {
    let code = q.get("code").cloned().unwrap_or_default();
    pages::error_page(
        &AadError::bad(
            "invalid_request",
            code.parse().unwrap_or(0),
            "This is the sandbox's error lookup; see the error_description of the response for details.",
        ),
        &TraceIds::new(None, chrono::Utc::now()),
    )
}

/// Whether a requested redirect URI matches a registered one (reference §1.2, §1.8).
pub(crate) fn redirect_matches(registered: &str, requested: &str, ip_loopback: bool) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(r), Ok(q)) = (url::Url::parse(registered), url::Url::parse(requested)) else {
        return false;
    };
    if q.host_str() == Some("[::1]") {
        return false;
    }
    let loopback = matches!(r.host_str(), Some("localhost"))
        || (ip_loopback && r.host_str() == Some("127.0.0.1"));
    if !loopback {
        return r == q;
    }
    r.scheme() == q.scheme()
        && r.host_str() == q.host_str()
        && r.path() == q.path()
        && r.query() == q.query()
        && q.fragment().is_none()
}

/// A validated authorization request.
pub(crate) struct AuthRequest {
    pub tenant: String,
    pub client_id: String,
    pub app_name: String,
    pub redirect_uri: String,
    pub response_mode: String,
    pub state: Option<String>,
    pub scopes: Vec<Scope>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: String,
    pub nonce: Option<String>,
    pub prompt: Option<String>,
    pub login_hint: Option<String>,
    /// The original parameters (for the hidden inputs).
    pub params: Vec<(String, String)>,
}

/// Builds the redirect back to the client.
pub(crate) fn redirect_back(
    redirect_uri: &str,
    mode: &str,
    mut params: Vec<(String, String)>,
    state: Option<&str>,
) -> Response {
    if let Some(s) = state {
        params.push(("state".into(), s.into()));
    }
    if mode == "form_post" {
        return pages::form_post(redirect_uri, &params);
    }
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "invalid redirect_uri").into_response();
    };
    if mode == "fragment" {
        let frag = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        url.set_fragment(Some(&frag));
    } else {
        url.query_pairs_mut().extend_pairs(params.iter());
    }
    Redirect::to(url.as_str()).into_response()
}

fn error_redirect(
    req_uri: &str,
    mode: &str,
    state: Option<&str>,
    err: &AadError,
    ids: &TraceIds,
) -> Response {
    redirect_back(
        req_uri,
        mode,
        vec![
            ("error".into(), err.error.into()),
            ("error_description".into(), err.description(ids)),
            (
                "error_uri".into(),
                format!("https://login.microsoftonline.com/error?code={}", err.code),
            ),
        ],
        state,
    )
}

fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

impl IdentityPlatform {
    /// Validates an authorize request; `Err` is the response to send (error page or redirect).
    #[allow(clippy::result_large_err)]
    pub(crate) fn validate_authorize(
        &self,
        tenant: &str,
        params: Vec<(String, String)>,
        ids: &TraceIds,
    ) -> Result<AuthRequest, Response> {
        let st = self.lock();
        if let Err(e) = check_tenant(&st, tenant) {
            return Err(pages::error_page(&e, ids));
        }
        let Some(client_id) = get(&params, "client_id") else {
            return Err(pages::error_page(&AadError::missing("client_id"), ids));
        };
        let Some(app) = st.app(client_id) else {
            return Err(pages::error_page(
                &AadError::bad("unauthorized_client", 700016, format!(
                    "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                    st.tenant_display_name)),
                ids,
            ));
        };
        let redirect_uri = match get(&params, "redirect_uri") {
            Some(r) => r.to_owned(),
            None if app.redirect_uris.len() == 1 => app.redirect_uris[0].clone(),
            None => return Err(pages::error_page(&AadError::missing("redirect_uri"), ids)),
        };
        let ip_loop = st.settings.loopback_ip_port_insensitive;
        if !app
            .redirect_uris
            .iter()
            .any(|r| redirect_matches(r, &redirect_uri, ip_loop))
        {
            return Err(pages::error_page(
                &AadError::bad("invalid_request", 50011, format!(
                    "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.",
                    app.client_id)),
                ids,
            ));
        }
        let mode = match get(&params, "response_mode") {
            Some(m @ ("query" | "fragment" | "form_post")) => m.to_owned(),
            _ => "query".to_owned(),
        };
        let state = get(&params, "state").map(str::to_owned);
        let fail = |e: AadError| error_redirect(&redirect_uri, &mode, state.as_deref(), &e, ids);
        match get(&params, "response_type") {
            None => return Err(fail(AadError::missing("response_type"))),
            Some("code") => {}
            Some(other) => {
                return Err(fail(AadError::bad(
                    "unsupported_response_type",
                    70005,
                    format!("response_type '{other}' is not enabled for the application."),
                )))
            }
        }
        let Some(scope_raw) = get(&params, "scope") else {
            return Err(fail(AadError::missing("scope")));
        };
        let scopes = parse_scopes(scope_raw);
        if let Some(Scope::Other(res)) = scopes.iter().find(|s| matches!(s, Scope::Other(_))) {
            return Err(fail(AadError::bad("invalid_resource", 500011, format!(
                "The resource principal named {res} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                st.tenant_display_name))));
        }
        let code_challenge = get(&params, "code_challenge").map(str::to_owned);
        let method = get(&params, "code_challenge_method")
            .unwrap_or("plain")
            .to_owned();
        if let Some(ch) = &code_challenge {
            if method != "S256" && method != "plain" {
                return Err(fail(AadError::bad(
                    "invalid_request",
                    501491,
                    format!("Invalid code_challenge_method '{method}'. Use S256 or plain."),
                )));
            }
            if !(43..=128).contains(&ch.len()) {
                return Err(fail(AadError::bad(
                    "invalid_request",
                    501491,
                    "Invalid size of Code_Challenge parameter.",
                )));
            }
        } else if st.settings.require_pkce {
            return Err(fail(AadError::bad(
                "invalid_request",
                9002325,
                "Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
            )));
        }
        let prompt = get(&params, "prompt").map(str::to_owned);
        if prompt.as_deref() == Some("none") {
            return Err(fail(AadError::bad(
                "login_required",
                50058,
                "A silent sign-in request was sent but no user is signed in.",
            )));
        }
        Ok(AuthRequest {
            tenant: tenant.to_owned(),
            client_id: app.client_id.clone(),
            app_name: app.display_name.clone(),
            redirect_uri,
            response_mode: mode,
            state,
            scopes,
            code_challenge,
            code_challenge_method: method,
            nonce: get(&params, "nonce").map(str::to_owned),
            prompt,
            login_hint: get(&params, "login_hint").map(str::to_owned),
            params,
        })
    }

    fn render_sign_in(
        &self,
        req: &AuthRequest,
        selected: Option<&str>,
        error: Option<String>,
        status: StatusCode,
    ) -> Response {
        let st = self.lock();
        let selected = selected.or(req.login_hint.as_deref());
        let users = st
            .users
            .iter()
            .filter(|u| u.can_sign_in)
            .map(|u| UserChoice {
                upn: u.user_principal_name.clone(),
                display_name: u.display_name.clone(),
                selected: selected.is_some_and(|s| s.eq_ignore_ascii_case(&u.user_principal_name)),
            })
            .collect();
        let tenant_has = |name: &str| {
            st.app(&req.client_id)
                .is_some_and(|a| a.tenant_consent.contains_key(&name.to_ascii_lowercase()))
        };
        let permissions = req
            .scopes
            .iter()
            .map(|s| match s {
                Scope::Oidc(n) => PermissionLine {
                    scope: n.clone(),
                    needs_consent: false,
                },
                Scope::Graph(n, _) => PermissionLine {
                    scope: n.clone(),
                    needs_consent: !tenant_has(n) || req.prompt.as_deref() == Some("consent"),
                },
                Scope::GraphDefault(t) => PermissionLine {
                    scope: t.clone(),
                    needs_consent: false,
                },
                Scope::Other(t) => PermissionLine {
                    scope: t.clone(),
                    needs_consent: true,
                },
            })
            .collect();
        let hidden: Vec<(String, String)> = req
            .params
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "username" | "action" | "consent_org"))
            .cloned()
            .collect();
        let action = format!("/{}/oauth2/v2.0/authorize", req.tenant);
        pages::sign_in_page(
            &SignInPage {
                title: "Sign in to your account",
                tenant_display_name: &st.tenant_display_name,
                app_display_name: &req.app_name,
                action: &action,
                hidden: &hidden,
                users,
                permissions,
                offer_org_consent: true,
                error,
            },
            status,
        )
    }

    /// Completes a sign-in: checks the user and consent, issues the code.
    fn complete_sign_in(
        &self,
        req: &AuthRequest,
        upn: Option<&str>,
        org_consent: bool,
        ids: &TraceIds,
    ) -> Response {
        let fail = |e: AadError| {
            error_redirect(
                &req.redirect_uri,
                &req.response_mode,
                req.state.as_deref(),
                &e,
                ids,
            )
        };
        let Some(upn) = upn else {
            return self.render_sign_in(
                req,
                None,
                Some("Pick an account to continue.".into()),
                StatusCode::BAD_REQUEST,
            );
        };
        let now = self.now();
        let mut st = self.lock();
        let Some(user) = st.user_by_upn(upn).cloned() else {
            let msg = format!("AADSTS50034: The user account {upn} does not exist in the {} directory. To sign into this application, the account must be added to the directory.", st.tenant_domain);
            drop(st);
            return self.render_sign_in(req, None, Some(msg), StatusCode::BAD_REQUEST);
        };
        if !user.can_sign_in {
            drop(st);
            return self.render_sign_in(req, None, Some(format!(
                "AADSTS50057: The user account is disabled. The account {} is a shared mailbox or has been disabled by an administrator and cannot sign in.",
                user.user_principal_name)), StatusCode::BAD_REQUEST);
        }
        // Consent.
        let needed: Vec<String> = req
            .scopes
            .iter()
            .filter_map(|s| match s {
                Scope::Graph(n, _)
                    if !st.is_consented(&req.client_id, &user.id, &n.to_ascii_lowercase()) =>
                {
                    Some(n.clone())
                }
                _ => None,
            })
            .collect();
        let is_admin = st.is_admin(&user.user_principal_name);
        if !needed.is_empty() {
            if !(st.settings.user_consent_allowed || is_admin) {
                return fail(AadError::bad("consent_required", 65001, format!(
                    "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource.",
                    req.client_id, req.app_name)).with_suberror("consent_required"));
            }
            if org_consent && is_admin {
                if let Some(app) = st.app_mut(&req.client_id) {
                    for n in &needed {
                        app.tenant_consent.insert(n.to_ascii_lowercase(), n.clone());
                    }
                }
            } else {
                let entry = st
                    .user_consent
                    .entry((req.client_id.clone(), user.id.clone()))
                    .or_default();
                for n in &needed {
                    entry.insert(n.to_ascii_lowercase(), n.clone());
                }
            }
        }
        // Resolve the granted scope list (".default" → everything consented).
        let mut scopes: Vec<String> = Vec::new();
        for s in &req.scopes {
            match s {
                Scope::Oidc(n) => scopes.push(n.clone()),
                Scope::Graph(_, t) => scopes.push(t.clone()),
                Scope::GraphDefault(_) => {
                    for c in st.consented_scopes(&req.client_id, &user.id) {
                        scopes.push(format!("https://graph.microsoft.com/{c}"));
                    }
                }
                Scope::Other(_) => {}
            }
        }
        scopes.dedup();
        let code = random_token("1.AXkA", 64);
        let lifetime = st.settings.auth_code_lifetime_secs;
        st.codes.insert(
            code.clone(),
            AuthCode {
                client_id: req.client_id.clone(),
                redirect_uri: req.redirect_uri.clone(),
                user_id: user.id.clone(),
                scopes,
                code_challenge: req.code_challenge.clone(),
                code_challenge_method: req.code_challenge_method.clone(),
                nonce: req.nonce.clone(),
                expires_at: now + Duration::seconds(lifetime),
                redeemed: false,
            },
        );
        drop(st);
        redirect_back(
            &req.redirect_uri,
            &req.response_mode,
            vec![
                ("code".into(), code),
                ("session_state".into(), uuid::Uuid::new_v4().to_string()),
            ],
            req.state.as_deref(),
        )
    }
}

pub(crate) async fn authorize_get(
    State(idp): State<IdentityPlatform>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    // For GET, axum's RawForm yields the query string.
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&raw).into_owned().collect();
    let ids = TraceIds::new(correlation(&headers).as_deref(), idp.now());
    match idp.validate_authorize(&tenant, params, &ids) {
        Ok(req) => idp.render_sign_in(&req, None, None, StatusCode::OK),
        Err(resp) => resp,
    }
}

pub(crate) async fn authorize_post(
    State(idp): State<IdentityPlatform>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&raw).into_owned().collect();
    let ids = TraceIds::new(correlation(&headers).as_deref(), idp.now());
    let action = get(&params, "action").map(str::to_owned);
    let username = get(&params, "username").map(str::to_owned);
    let org = get(&params, "consent_org").is_some_and(|v| v == "true" || v == "on");
    let req = match idp.validate_authorize(&tenant, params, &ids) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match action.as_deref() {
        Some("accept") => idp.complete_sign_in(&req, username.as_deref(), org, &ids),
        Some("cancel") => error_redirect(
            &req.redirect_uri,
            &req.response_mode,
            req.state.as_deref(),
            &AadError::bad(
                "access_denied",
                65004,
                "User declined to consent to access the app.",
            ),
            &ids,
        ),
        _ => idp.render_sign_in(
            &req,
            username.as_deref(),
            Some("Choose Accept or Cancel.".into()),
            StatusCode::BAD_REQUEST,
        ),
    }
}

/// Validates an admin-consent request; returns (client id, app name, redirect uri, state).
#[allow(clippy::result_large_err)]
fn validate_admin_consent(
    idp: &IdentityPlatform,
    tenant: &str,
    params: &[(String, String)],
    ids: &TraceIds,
) -> Result<(String, String, String, Option<String>), Response> {
    let st = idp.lock();
    if let Err(e) = check_tenant(&st, tenant) {
        return Err(pages::error_page(&e, ids));
    }
    let Some(client_id) = get(params, "client_id") else {
        return Err(pages::error_page(&AadError::missing("client_id"), ids));
    };
    let Some(app) = st.app(client_id) else {
        return Err(pages::error_page(
            &AadError::bad("unauthorized_client", 700016, format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'.", st.tenant_display_name)),
            ids,
        ));
    };
    let redirect = get(params, "redirect_uri")
        .map(str::to_owned)
        .or_else(|| app.redirect_uris.first().cloned());
    let ok = redirect.as_deref().is_some_and(|r| {
        app.redirect_uris.iter().any(|reg| {
            redirect_matches(reg, r, st.settings.loopback_ip_port_insensitive)
                || r.starts_with(&format!("{}/", reg.trim_end_matches('/')))
        })
    });
    if !ok {
        return Err(pages::error_page(
            &AadError::bad("invalid_request", 50011, format!(
                "The redirect URI '{}' specified in the request does not match the redirect URIs configured for the application '{}'.",
                redirect.unwrap_or_default(), app.client_id)),
            ids,
        ));
    }
    Ok((
        app.client_id.clone(),
        app.display_name.clone(),
        redirect.unwrap_or_default(),
        get(params, "state").map(str::to_owned),
    ))
}

pub(crate) async fn admin_consent_get(
    State(idp): State<IdentityPlatform>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&raw).into_owned().collect();
    let ids = TraceIds::new(correlation(&headers).as_deref(), idp.now());
    let (client_id, app_name, _, _) = match validate_admin_consent(&idp, &tenant, &params, &ids) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let st = idp.lock();
    let app = st.app(&client_id).expect("validated");
    let mut permissions: Vec<PermissionLine> = app
        .delegated_permissions
        .iter()
        .map(|p| PermissionLine {
            scope: p.clone(),
            needs_consent: !app.tenant_consent.contains_key(&p.to_ascii_lowercase()),
        })
        .collect();
    permissions.extend(app.application_permissions.iter().map(|p| PermissionLine {
        scope: format!("{p} (application)"),
        needs_consent: !app.granted_roles.contains(p),
    }));
    let users = st
        .users
        .iter()
        .filter(|u| u.can_sign_in && st.is_admin(&u.user_principal_name))
        .map(|u| UserChoice {
            upn: u.user_principal_name.clone(),
            display_name: u.display_name.clone(),
            selected: false,
        })
        .collect();
    let action = format!("/{tenant}/adminconsent");
    pages::sign_in_page(
        &SignInPage {
            title: "Permissions requested for your organization",
            tenant_display_name: &st.tenant_display_name,
            app_display_name: &app_name,
            action: &action,
            hidden: &params,
            users,
            permissions,
            offer_org_consent: false,
            error: None,
        },
        StatusCode::OK,
    )
}

pub(crate) async fn admin_consent_post(
    State(idp): State<IdentityPlatform>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&raw).into_owned().collect();
    let ids = TraceIds::new(correlation(&headers).as_deref(), idp.now());
    let (client_id, _, redirect, state) = match validate_admin_consent(&idp, &tenant, &params, &ids)
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let denied = |msg: &str| {
        error_redirect(
            &redirect,
            "query",
            state.as_deref(),
            &AadError::bad("permission_denied", 65004, msg.to_owned()),
            &ids,
        )
    };
    if get(&params, "action") != Some("accept") {
        return denied("The admin declined to consent to access the app.");
    }
    let upn = get(&params, "username").unwrap_or_default().to_owned();
    let (is_admin, tid) = {
        let st = idp.lock();
        let can = st.user_by_upn(&upn).is_some_and(|u| u.can_sign_in);
        (can && st.is_admin(&upn), st.tenant_id.clone())
    };
    if !is_admin {
        return denied("Only a tenant administrator can grant consent for the organization (AADSTS90094: admin consent required).");
    }
    if idp.grant_admin_consent(&client_id).is_err() {
        return denied("The application no longer exists.");
    }
    redirect_back(
        &redirect,
        "query",
        vec![
            ("tenant".into(), tid),
            ("admin_consent".into(), "True".into()),
        ],
        state.as_deref(),
    )
}
