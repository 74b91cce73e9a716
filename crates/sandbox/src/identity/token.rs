//! `POST /{tenant}/oauth2/v2.0/token`: authorization code, refresh token, client credentials.

use axum::extract::{Path, RawForm, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;
use subtle::ConstantTimeEq as _;

use super::authorize::{check_tenant, correlation, TenantKind};
use super::errors::{AadError, TraceIds};
use super::{assertion, parse_scopes, App, Credential, IdentityPlatform, Scope, State as St};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

pub(crate) async fn token(
    State(idp): State<IdentityPlatform>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&raw).into_owned().collect();
    let ids = TraceIds::new(correlation(&headers).as_deref(), idp.now());
    match idp.token_request(&tenant, &params, &headers) {
        Ok(body) => {
            let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store, no-cache"),
            );
            resp.headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            resp
        }
        Err(e) => e.to_json_response(&ids, &idp.base_url()),
    }
}

/// Client id and secret from `Authorization: Basic` (RFC 6749 §2.3.1: form-encoded, then base64).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((dec(id), dec(secret)))
}

fn unknown_app(st: &St, client_id: &str) -> AadError {
    AadError::bad(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            st.tenant_display_name
        ),
    )
}

fn consent_required(app: &App) -> AadError {
    AadError::bad(
        "invalid_grant",
        65001,
        format!(
            "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource.",
            app.client_id, app.display_name
        ),
    )
    .with_suberror("consent_required")
}

impl IdentityPlatform {
    fn authenticate_client(
        &self,
        st: &St,
        tenant: &str,
        params: &[(String, String)],
        headers: &HeaderMap,
    ) -> Result<(App, Credential), AadError> {
        let basic = basic_credentials(headers);
        let client_id = get(params, "client_id")
            .map(str::to_owned)
            .or_else(|| basic.as_ref().map(|(id, _)| id.clone()))
            .ok_or_else(|| AadError::missing("client_id"))?;
        let app = st
            .app(&client_id)
            .cloned()
            .ok_or_else(|| unknown_app(st, &client_id))?;
        let secret = get(params, "client_secret")
            .map(str::to_owned)
            .or_else(|| basic.map(|(_, s)| s).filter(|s| !s.is_empty()));
        let assertion = get(params, "client_assertion");
        if let Some(t) = get(params, "client_assertion_type") {
            if t != JWT_BEARER {
                return Err(AadError::bad(
                    "invalid_request",
                    50027,
                    format!("Invalid client_assertion_type '{t}'. Use '{JWT_BEARER}'."),
                ));
            }
        }
        if app.is_public() {
            if secret.is_some() || assertion.is_some() {
                return Err(AadError::client(
                    700025,
                    "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
                ));
            }
            return Ok((app, Credential::None));
        }
        if let Some(a) = assertion {
            let base = self.base_url();
            let audiences = vec![
                format!("{base}/{tenant}/oauth2/v2.0/token"),
                format!("{base}/{}/oauth2/v2.0/token", st.tenant_id),
                format!("{base}/{}/oauth2/v2.0/token", st.tenant_domain),
                format!("{base}/{}/v2.0", st.tenant_id),
            ];
            let cert = assertion::validate(&app, a, &audiences, self.now().timestamp())?;
            return Ok((app, Credential::Certificate(cert.thumbprint_hex)));
        }
        let Some(secret) = secret else {
            return Err(AadError::client(
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        };
        let now = self.now();
        match app.secrets
            .iter()
            .find(|s| bool::from(s.value.as_bytes().ct_eq(secret.as_bytes()))) {
            None => Err(AadError::client(
                7000215,
                format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", app.client_id),
            )),
            Some(s) if s.expires_at <= now => Err(AadError::client(
                7000222,
                format!("The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", app.client_id),
            )),
            Some(s) => {
                let id = s.id.clone();
                Ok((app, Credential::Secret(id)))
            }
        }
    }

    /// Handles one token request; `Ok` is the JSON body of a 200 response.
    pub(crate) fn token_request(
        &self,
        tenant: &str,
        params: &[(String, String)],
        headers: &HeaderMap,
    ) -> Result<Value, AadError> {
        let grant = get(params, "grant_type").ok_or_else(|| AadError::missing("grant_type"))?;
        let mut st = self.lock();
        let kind = check_tenant(&st, tenant)?;
        if grant == "client_credentials" && kind != TenantKind::Own {
            return Err(AadError::bad(
                "invalid_request",
                9001023,
                "The provided grant type is not supported for /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
            ));
        }
        if !matches!(
            grant,
            "authorization_code" | "refresh_token" | "client_credentials"
        ) {
            return Err(AadError::bad(
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{grant}'."),
            ));
        }
        let (app, credential) = self.authenticate_client(&st, tenant, params, headers)?;
        let want_client_info = get(params, "client_info") == Some("1");
        match grant {
            "authorization_code" => {
                self.redeem_code(&mut st, &app, credential, params, want_client_info)
            }
            "refresh_token" => {
                self.redeem_refresh(&mut st, &app, credential, params, want_client_info)
            }
            _ => self.client_credentials(&mut st, &app, credential, params),
        }
    }

    fn redeem_code(
        &self,
        st: &mut St,
        app: &App,
        credential: Credential,
        params: &[(String, String)],
        want_client_info: bool,
    ) -> Result<Value, AadError> {
        let code = get(params, "code").ok_or_else(|| AadError::missing("code"))?;
        let now = self.now();
        let Some(rec) = st.codes.get(code).cloned() else {
            return Err(AadError::bad("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid. The provided authorization code is not valid."));
        };
        if !rec.client_id.eq_ignore_ascii_case(&app.client_id) {
            return Err(AadError::bad(
                "invalid_grant",
                70000,
                "The provided authorization code was issued to a different client.",
            ));
        }
        if rec.redeemed {
            return Err(AadError::bad("invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."));
        }
        if now >= rec.expires_at {
            return Err(AadError::bad("invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."));
        }
        let redirect =
            get(params, "redirect_uri").ok_or_else(|| AadError::missing("redirect_uri"))?;
        let same = redirect == rec.redirect_uri
            || matches!((url::Url::parse(redirect), url::Url::parse(&rec.redirect_uri)), (Ok(a), Ok(b)) if a == b);
        if !same {
            return Err(AadError::bad("invalid_grant", 500112, format!(
                "The reply address '{redirect}' does not match the reply address '{}' provided when requesting Authorization code.", rec.redirect_uri)));
        }
        if let Some(challenge) = &rec.code_challenge {
            let ok = match get(params, "code_verifier") {
                None => false,
                Some(v) if rec.code_challenge_method == "S256" => {
                    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(v.as_bytes())) == *challenge
                }
                Some(v) => v == challenge,
            };
            if !ok {
                return Err(AadError::bad("invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request."));
            }
        }
        if let Some(r) = st.codes.get_mut(code) {
            r.redeemed = true;
        }
        let user = st
            .user_by_id(&rec.user_id)
            .cloned()
            .filter(|u| u.can_sign_in)
            .ok_or_else(|| {
                AadError::bad("invalid_grant", 50057, "The user account is disabled.")
            })?;
        for s in parse_scopes(&rec.scopes.join(" ")) {
            if let Scope::Graph(n, _) = s {
                if !st.is_consented(&app.client_id, &user.id, &n.to_ascii_lowercase()) {
                    return Err(consent_required(app));
                }
            }
        }
        self.user_token_response(
            st,
            app,
            credential,
            &user,
            &rec.scopes,
            &rec.scopes,
            rec.nonce.as_deref(),
            want_client_info,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn user_token_response(
        &self,
        st: &mut St,
        app: &App,
        credential: Credential,
        user: &super::IdentityUser,
        scopes: &[String],
        family_scopes: &[String],
        nonce: Option<&str>,
        want_client_info: bool,
    ) -> Result<Value, AadError> {
        let parsed = parse_scopes(&scopes.join(" "));
        let has = |n: &str| parsed.iter().any(|s| matches!(s, Scope::Oidc(x) if x == n));
        let scp: Vec<String> = parsed
            .iter()
            .filter_map(|s| match s {
                Scope::Graph(n, _) => Some(n.clone()),
                Scope::Oidc(n) if n != "offline_access" => Some(n.clone()),
                _ => None,
            })
            .collect();
        let (access, lifetime) =
            self.issue_access_token(st, &app.client_id, Some(user), &scp, &[], credential)?;
        let shown: Vec<&str> = scopes
            .iter()
            .map(String::as_str)
            .filter(|s| !s.eq_ignore_ascii_case("offline_access"))
            .collect();
        let mut body = json!({
            "token_type": "Bearer",
            "scope": shown.join(" "),
            "expires_in": lifetime,
            "access_token": access,
        });
        if st.settings.include_ext_expires_in {
            body["ext_expires_in"] = json!(lifetime);
        }
        let offline = has("offline_access")
            || family_scopes
                .iter()
                .any(|s| s.eq_ignore_ascii_case("offline_access"));
        if offline {
            body["refresh_token"] =
                json!(self.issue_refresh_token(st, &app.client_id, &user.id, family_scopes));
        }
        if has("openid") {
            body["id_token"] = json!(self.issue_id_token(st, &app.client_id, user, nonce)?);
        }
        if want_client_info {
            body["client_info"] = json!(IdentityPlatform::client_info(st, user));
        }
        Ok(body)
    }

    fn redeem_refresh(
        &self,
        st: &mut St,
        app: &App,
        credential: Credential,
        params: &[(String, String)],
        want_client_info: bool,
    ) -> Result<Value, AadError> {
        let rt = get(params, "refresh_token").ok_or_else(|| AadError::missing("refresh_token"))?;
        let now = self.now();
        let Some(rec) = st.refresh_tokens.get(rt).cloned() else {
            return Err(AadError::bad("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid. The provided refresh token is not valid."));
        };
        if !rec.client_id.eq_ignore_ascii_case(&app.client_id) {
            return Err(AadError::bad(
                "invalid_grant",
                700005,
                "Provided refresh token was issued to a different client.",
            ));
        }
        if let Some(f) = rec.fault {
            return Err(AadError::bad("invalid_grant", f.code(), format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for 90.00:00:00.",
                rec.issued_at.format("%Y-%m-%dT%H:%M:%S%.6f0Z"))));
        }
        if st
            .user_revoked_before
            .get(&rec.user_id)
            .is_some_and(|s| rec.seq <= *s)
        {
            return Err(AadError::bad("invalid_grant", 50173, format!(
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{}'.",
                rec.issued_at.format("%Y-%m-%dT%H:%M:%S%.6f0Z"), now.format("%Y-%m-%dT%H:%M:%S%.6f0Z"))));
        }
        if now >= rec.expires_at {
            return Err(AadError::bad("invalid_grant", 700082, format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for {} days.",
                rec.issued_at.format("%Y-%m-%dT%H:%M:%S%.6f0Z"), st.settings.refresh_token_lifetime_days)));
        }
        let user = st
            .user_by_id(&rec.user_id)
            .cloned()
            .filter(|u| u.can_sign_in)
            .ok_or_else(|| {
                AadError::bad("invalid_grant", 50057, "The user account is disabled.")
            })?;
        let requested: Vec<String> = match get(params, "scope") {
            Some(s) => s.split_whitespace().map(str::to_owned).collect(),
            None => rec.scopes.clone(),
        };
        let mut scopes = Vec::new();
        for s in parse_scopes(&requested.join(" ")) {
            match s {
                Scope::Graph(n, t) => {
                    if !st.is_consented(&app.client_id, &user.id, &n.to_ascii_lowercase()) {
                        return Err(consent_required(app));
                    }
                    scopes.push(t);
                }
                Scope::Oidc(n) => scopes.push(n),
                Scope::GraphDefault(_) => {
                    let all = st.consented_scopes(&app.client_id, &user.id);
                    if all.is_empty() {
                        return Err(consent_required(app));
                    }
                    scopes.extend(
                        all.into_iter()
                            .map(|c| format!("https://graph.microsoft.com/{c}")),
                    );
                }
                Scope::Other(res) => {
                    return Err(AadError::bad(
                        "invalid_resource",
                        500011,
                        format!(
                        "The resource principal named {res} was not found in the tenant named {}.",
                        st.tenant_display_name
                    ),
                    ))
                }
            }
        }
        self.user_token_response(
            st,
            app,
            credential,
            &user,
            &scopes,
            &rec.scopes,
            None,
            want_client_info,
        )
    }

    fn client_credentials(
        &self,
        st: &mut St,
        app: &App,
        credential: Credential,
        params: &[(String, String)],
    ) -> Result<Value, AadError> {
        if credential == Credential::None {
            return Err(AadError::client(
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
        let raw = get(params, "scope").ok_or_else(|| AadError::missing("scope"))?;
        let scopes = parse_scopes(raw);
        if scopes.len() != 1 {
            return Err(AadError::bad("invalid_scope", 70011, format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {raw} is not valid. Client credential flows accept exactly one '<resource>/.default' scope.")));
        }
        match &scopes[0] {
            Scope::GraphDefault(_) => {}
            Scope::Other(res) if res.ends_with("/.default") => {
                return Err(AadError::bad("invalid_resource", 500011, format!(
                    "The resource principal named {} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                    res.trim_end_matches("/.default"), st.tenant_display_name)))
            }
            _ => {
                return Err(AadError::bad("invalid_scope", 1002012, format!(
                    "The provided value for scope {raw} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")))
            }
        }
        let roles = app.granted_roles.clone();
        let (access, lifetime) =
            self.issue_access_token(st, &app.client_id, None, &[], &roles, credential)?;
        let mut body = json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "access_token": access,
        });
        if st.settings.include_ext_expires_in {
            body["ext_expires_in"] = json!(lifetime);
        }
        Ok(body)
    }
}
