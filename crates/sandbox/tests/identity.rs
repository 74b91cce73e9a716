//! Identity platform behaviours over HTTP against a running sandbox.
mod common;
use common::*;
use mailroom_graph_sandbox::auth::{TokenRejection, TokenValidator};
use mailroom_sandbox::identity::{RefreshTokenFault, DAEMON_APP_ID, DESKTOP_APP_ID, WEB_APP_ID};

const SCOPE: &str = "openid profile offline_access https://graph.microsoft.com/Mail.ReadWrite";

#[tokio::test]
async fn discovery_is_absolute_and_tenant_specific() {
    let sb = start().await;
    let url = sb.identity().openid_configuration_url();
    let doc: serde_json::Value = http().get(&url).send().await.unwrap().json().await.unwrap();
    let tid = &sb.tenant().tenant_id;
    assert_eq!(doc["issuer"], format!("{}/{tid}/v2.0", sb.authority_url()));
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/{tid}/oauth2/v2.0/token", sb.authority_url())
    );
    let jwks: serde_json::Value = http()
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    let bad = http()
        .get(format!(
            "{}/nosuch.example/v2.0/.well-known/openid-configuration",
            sb.authority_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(code_of(&body), 90002);
}

#[tokio::test]
async fn auth_code_pkce_loopback_any_port_single_use_and_validate() {
    let sb = start().await;
    let tid = sb.tenant().tenant_id.clone();
    let (verifier, challenge) = pkce();
    let redirect = "http://localhost:53111";
    let resp = sign_in(
        &sb,
        DESKTOP_APP_ID,
        redirect,
        SCOPE,
        Some(&challenge),
        "megan@contoso.test",
        "accept",
    )
    .await;
    assert_eq!(resp.status(), 303);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with("http://localhost:53111/?"),
        "trailing slash added: {loc}"
    );
    let q = query_of(&resp);
    assert_eq!(q["state"], "st-42");
    let code = q["code"].clone();
    let form = [
        ("client_id", DESKTOP_APP_ID),
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", redirect),
        ("code_verifier", &verifier),
        ("client_info", "1"),
    ];
    let (status, body) = token(&sb, &tid, &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let exp = body["expires_in"].as_i64().unwrap();
    assert!((3600..=5400).contains(&exp));
    assert!(
        body["refresh_token"].is_string()
            && body["id_token"].is_string()
            && body["client_info"].is_string()
    );
    let grant = sb
        .identity()
        .validate(body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        grant.user_principal_name.as_deref(),
        Some("megan@contoso.test")
    );
    assert_eq!(grant.scopes, vec!["Mail.ReadWrite".to_string()]);
    // id_token claims
    let idt: Vec<&str> = body["id_token"].as_str().unwrap().split('.').collect();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, idt[1]).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["preferred_username"], "megan@contoso.test");
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["tid"], tid.as_str());
    // single use
    let (status, body) = token(&sb, &tid, &form).await;
    assert_eq!((status, code_of(&body)), (400, 54005));
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn pkce_mismatch_and_missing_verifier_are_501481() {
    let sb = start().await;
    let tid = sb.tenant().tenant_id.clone();
    let (_, challenge) = pkce();
    for verifier in [
        Some("wrong-verifier-wrong-verifier-wrong-verifier-1234"),
        None,
    ] {
        let resp = sign_in(
            &sb,
            DESKTOP_APP_ID,
            "http://localhost",
            SCOPE,
            Some(&challenge),
            "alex@contoso.test",
            "accept",
        )
        .await;
        let code = query_of(&resp)["code"].clone();
        let mut form = vec![
            ("client_id", DESKTOP_APP_ID),
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://localhost"),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        let (status, body) = token(&sb, &tid, &form).await;
        assert_eq!((status, code_of(&body)), (400, 501481), "{body}");
    }
}

#[tokio::test]
async fn code_expires_after_ten_minutes() {
    let sb = start().await;
    let tid = sb.tenant().tenant_id.clone();
    let resp = sign_in(
        &sb,
        DESKTOP_APP_ID,
        "http://localhost",
        SCOPE,
        None,
        "alex@contoso.test",
        "accept",
    )
    .await;
    let code = query_of(&resp)["code"].clone();
    sb.clock().advance(chrono::Duration::minutes(11));
    let (status, body) = token(
        &sb,
        &tid,
        &[
            ("client_id", DESKTOP_APP_ID),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost"),
        ],
    )
    .await;
    assert_eq!((status, code_of(&body)), (400, 70008));
}

#[tokio::test]
async fn authorize_error_pages_and_redirect_errors() {
    let sb = start().await;
    let tid = sb.tenant().tenant_id.clone();
    let url = format!("{}/{tid}/oauth2/v2.0/authorize", sb.authority_url());
    let get = |client: &str, redirect: &str| {
        http()
            .get(&url)
            .query(&[
                ("client_id", client),
                ("response_type", "code"),
                ("redirect_uri", redirect),
                ("scope", "openid"),
            ])
            .send()
    };
    for (client, redirect, code) in [
        (DESKTOP_APP_ID, "http://localhost:5000/other", "AADSTS50011"),
        (DESKTOP_APP_ID, "http://[::1]:5000", "AADSTS50011"),
        (DESKTOP_APP_ID, "http://example.com", "AADSTS50011"),
        (
            "11111111-2222-3333-4444-555555555555",
            "http://localhost",
            "AADSTS700016",
        ),
    ] {
        let r = get(client, redirect).await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains(code));
    }
    // cancel → access_denied with state
    let r = sign_in(
        &sb,
        DESKTOP_APP_ID,
        "http://localhost",
        SCOPE,
        None,
        "alex@contoso.test",
        "cancel",
    )
    .await;
    let q = query_of(&r);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-42");
    // shared mailbox cannot sign in: page again, no redirect
    let r = sign_in(
        &sb,
        DESKTOP_APP_ID,
        "http://localhost",
        SCOPE,
        None,
        "helpdesk@contoso.test",
        "accept",
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("AADSTS50057"));
}

#[tokio::test]
async fn consent_needed_when_user_consent_disabled() {
    let sb = start().await;
    sb.identity()
        .update_settings(|s| s.user_consent_allowed = false);
    let r = sign_in(
        &sb,
        DESKTOP_APP_ID,
        "http://localhost",
        "openid https://graph.microsoft.com/Calendars.Read",
        None,
        "alex@contoso.test",
        "accept",
    )
    .await;
    let q = query_of(&r);
    assert_eq!(q["error"], "consent_required");
    assert!(q["error_description"].starts_with("AADSTS65001"));
    // An admin may consent.
    let r = sign_in(
        &sb,
        DESKTOP_APP_ID,
        "http://localhost",
        "openid https://graph.microsoft.com/Calendars.Read",
        None,
        "megan@contoso.test",
        "accept",
    )
    .await;
    assert!(query_of(&r).contains_key("code"));
}

async fn refresh_token_for(sb: &mailroom_sandbox::Sandbox, user: &str) -> String {
    let tid = sb.tenant().tenant_id.clone();
    let r = sign_in(
        sb,
        DESKTOP_APP_ID,
        "http://localhost",
        SCOPE,
        None,
        user,
        "accept",
    )
    .await;
    let code = query_of(&r)["code"].clone();
    let (_, body) = token(
        sb,
        &tid,
        &[
            ("client_id", DESKTOP_APP_ID),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost"),
        ],
    )
    .await;
    body["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn refresh_rotation_and_switches() {
    let sb = start().await;
    let tid = sb.tenant().tenant_id.clone();
    let rt = refresh_token_for(&sb, "alex@contoso.test").await;
    let refresh = |rt: String| {
        let sb = &sb;
        let tid = tid.clone();
        async move {
            token(
                sb,
                &tid,
                &[
                    ("client_id", DESKTOP_APP_ID),
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    (
                        "scope",
                        "https://graph.microsoft.com/Mail.ReadWrite offline_access",
                    ),
                ],
            )
            .await
        }
    };
    let (status, body) = refresh(rt.clone()).await;
    assert_eq!(status, 200, "{body}");
    let rt2 = body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt, rt2);
    assert_eq!(
        refresh(rt.clone()).await.0,
        200,
        "old refresh token stays valid"
    );
    // scope not consented → 65001
    let (status, body) = token(
        &sb,
        &tid,
        &[
            ("client_id", DESKTOP_APP_ID),
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
            ("scope", "https://graph.microsoft.com/Files.Read"),
        ],
    )
    .await;
    assert_eq!(
        (status, code_of(&body), body["suberror"].as_str()),
        (400, 65001, Some("consent_required"))
    );
    // inactivity switch
    sb.identity()
        .set_refresh_tokens_inactive(Some("alex@contoso.test"), RefreshTokenFault::Inactive)
        .unwrap();
    assert_eq!(code_of(&refresh(rt2.clone()).await.1), 70008);
    // revocation
    let rt3 = refresh_token_for(&sb, "alex@contoso.test").await;
    let (_, ok) = refresh(rt3.clone()).await;
    let at = ok["access_token"].as_str().unwrap().to_string();
    sb.identity()
        .revoke_user_sessions("alex@contoso.test")
        .unwrap();
    assert_eq!(code_of(&refresh(rt3).await.1), 50173);
    assert_eq!(sb.identity().validate(&at), Err(TokenRejection::Revoked));
    // consent withdrawal
    let rt4 = refresh_token_for(&sb, "megan@contoso.test").await;
    let (_, ok) = refresh(rt4.clone()).await;
    let at = ok["access_token"].as_str().unwrap().to_string();
    sb.identity().withdraw_consent(DESKTOP_APP_ID).unwrap();
    let (status, body) = refresh(rt4).await;
    assert_eq!((status, code_of(&body)), (400, 65001));
    assert_eq!(sb.identity().validate(&at), Err(TokenRejection::Revoked));
}

#[tokio::test]
async fn client_credentials_rules() {
    let sb = start().await;
    let tid = sb.tenant().tenant_id.clone();
    let secret = sb.tenant().daemon_app.client_secret.clone().unwrap();
    let scope = "https://graph.microsoft.com/.default";
    let (status, body) = token(
        &sb,
        &tid,
        &[
            ("client_id", DAEMON_APP_ID),
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    let grant = sb
        .identity()
        .validate(body["access_token"].as_str().unwrap())
        .unwrap();
    assert!(grant.is_app_only());
    assert_eq!(
        grant.roles,
        vec!["Mail.ReadWrite", "Mail.Send", "Contacts.Read"]
    );
    // HTTP Basic
    let r = http()
        .post(format!("{}/{tid}/oauth2/v2.0/token", sb.authority_url()))
        .basic_auth(DAEMON_APP_ID, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // common → 9001023
    let (status, body) = token(
        &sb,
        "common",
        &[
            ("client_id", DAEMON_APP_ID),
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!((status, code_of(&body)), (400, 9001023));
    // not .default
    let (status, body) = token(
        &sb,
        &tid,
        &[
            ("client_id", DAEMON_APP_ID),
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
            ("scope", "https://graph.microsoft.com/Mail.Read"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    // wrong secret → 401 7000215
    let (status, body) = token(
        &sb,
        &tid,
        &[
            ("client_id", DAEMON_APP_ID),
            ("grant_type", "client_credentials"),
            ("client_secret", "nope"),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!((status, code_of(&body)), (401, 7000215));
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("client secret value, not the client secret ID"));
    // shape of the error body
    for k in [
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
    ] {
        assert!(body.get(k).is_some(), "missing {k}");
    }
    let d = body["error_description"].as_str().unwrap();
    assert!(
        d.starts_with("AADSTS7000215: ")
            && d.contains("\r\nTrace ID: ")
            && d.contains("\r\nCorrelation ID: ")
            && d.contains("\r\nTimestamp: 2026-03-02 09:00:00Z")
    );
    // confidential web app without a credential → 7000218; public with a secret → 700025
    let (status, body) = token(
        &sb,
        &tid,
        &[
            ("client_id", WEB_APP_ID),
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", "http://localhost"),
        ],
    )
    .await;
    assert_eq!((status, code_of(&body)), (401, 7000218));
    let (status, body) = token(
        &sb,
        &tid,
        &[
            ("client_id", DESKTOP_APP_ID),
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", "http://localhost"),
            ("client_secret", "s"),
        ],
    )
    .await;
    assert_eq!((status, code_of(&body)), (401, 700025));
    // expired secret → 7000222, and tokens minted with it are revoked
    let earlier = sb
        .identity()
        .validate(body_token(&sb, &tid, &secret).await.as_str());
    assert!(earlier.is_ok());
    let at = body_token(&sb, &tid, &secret).await;
    sb.identity()
        .expire_app_secret(DAEMON_APP_ID, None)
        .unwrap();
    let (status, body) = token(
        &sb,
        &tid,
        &[
            ("client_id", DAEMON_APP_ID),
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!((status, code_of(&body)), (401, 7000222));
    assert_eq!(sb.identity().validate(&at), Err(TokenRejection::Revoked));
}

async fn body_token(sb: &mailroom_sandbox::Sandbox, tid: &str, secret: &str) -> String {
    let (_, body) = token(
        sb,
        tid,
        &[
            ("client_id", DAEMON_APP_ID),
            ("grant_type", "client_credentials"),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    body["access_token"].as_str().unwrap().to_string()
}

fn make_cert() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mailroom-daemon".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn assertion(
    sb: &mailroom_sandbox::Sandbox,
    cert_pem: &str,
    key_pem: &str,
    alg: jsonwebtoken::Algorithm,
    sha256: bool,
    exp_offset: i64,
) -> String {
    use sha2::Digest;
    let der = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .unwrap()
        .1
        .contents;
    let b64 =
        |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
    let mut h = jsonwebtoken::Header::new(alg);
    if sha256 {
        h.x5t_s256 = Some(b64(&sha2::Sha256::digest(&der)));
    } else {
        h.x5t = Some(b64(&sha1::Sha1::digest(&der)));
    }
    let now = mailroom_clock::Clock::now(&*sb.clock()).timestamp();
    let claims = serde_json::json!({"aud": sb.identity().token_endpoint(&sb.tenant().tenant_id), "iss": DAEMON_APP_ID, "sub": DAEMON_APP_ID,
        "jti": uuid::Uuid::new_v4().to_string(), "nbf": now, "iat": now, "exp": now + exp_offset});
    jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn certificate_assertions_rs256_ps256() {
    let sb = start().await;
    let tid = sb.tenant().tenant_id.clone();
    let (cert, key) = make_cert();
    let (other_cert, other_key) = make_cert();
    sb.identity()
        .add_app_certificate(DAEMON_APP_ID, &cert)
        .unwrap();
    let try_it = |a: String| {
        let sb = &sb;
        let tid = tid.clone();
        async move {
            token(
                sb,
                &tid,
                &[
                    ("client_id", DAEMON_APP_ID),
                    ("grant_type", "client_credentials"),
                    ("scope", "https://graph.microsoft.com/.default"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &a),
                ],
            )
            .await
        }
    };
    for (alg, s256) in [
        (jsonwebtoken::Algorithm::RS256, false),
        (jsonwebtoken::Algorithm::PS256, true),
        (jsonwebtoken::Algorithm::PS256, false),
    ] {
        let (status, body) = try_it(assertion(&sb, &cert, &key, alg, s256, 600)).await;
        assert_eq!(status, 200, "{alg:?} {body}");
    }
    // signed by another key but naming the registered cert
    let forged = assertion(
        &sb,
        &cert,
        &other_key,
        jsonwebtoken::Algorithm::RS256,
        false,
        600,
    );
    let (status, body) = try_it(forged).await;
    assert_eq!((status, code_of(&body)), (401, 700027));
    // unregistered certificate
    let (_, body) = try_it(assertion(
        &sb,
        &other_cert,
        &other_key,
        jsonwebtoken::Algorithm::RS256,
        false,
        600,
    ))
    .await;
    assert_eq!(code_of(&body), 700027);
    // expired
    let (_, body) = try_it(assertion(
        &sb,
        &cert,
        &key,
        jsonwebtoken::Algorithm::PS256,
        true,
        -3600,
    ))
    .await;
    assert_eq!(code_of(&body), 700024);
    // removal
    let thumb = sb
        .identity()
        .apps()
        .into_iter()
        .find(|a| a.client_id == DAEMON_APP_ID)
        .unwrap()
        .certificate_thumbprints[0]
        .clone();
    assert!(sb
        .identity()
        .remove_app_certificate(DAEMON_APP_ID, &thumb)
        .unwrap());
    let (_, body) = try_it(assertion(
        &sb,
        &cert,
        &key,
        jsonwebtoken::Algorithm::RS256,
        false,
        600,
    ))
    .await;
    assert_eq!(code_of(&body), 700027);
}

#[tokio::test]
async fn admin_consent_redirects_with_tenant() {
    let sb = start().await;
    let tid = sb.tenant().tenant_id.clone();
    sb.identity().withdraw_consent(WEB_APP_ID).unwrap();
    let url = format!("{}/{tid}/adminconsent", sb.authority_url());
    let params = [
        ("client_id", WEB_APP_ID),
        ("redirect_uri", "http://localhost/callback"),
        ("state", "s9"),
    ];
    let page = http().get(&url).query(&params).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.push(("username", "megan@contoso.test"));
    form.push(("action", "accept"));
    let r = http().post(&url).form(&form).send().await.unwrap();
    let q = query_of(&r);
    assert_eq!(
        (
            q["tenant"].as_str(),
            q["state"].as_str(),
            q["admin_consent"].as_str()
        ),
        (tid.as_str(), "s9", "True")
    );
    assert!(!sb
        .identity()
        .apps()
        .into_iter()
        .find(|a| a.client_id == WEB_APP_ID)
        .unwrap()
        .consented_delegated
        .is_empty());
}

/// Entra refuses assertions signed with a registered certificate whose validity has ended
/// (AADSTS700027, "The key used is expired"), even when the signature and the assertion's own
/// times are fine; the sandbox used to accept them.
#[tokio::test]
async fn assertions_signed_with_an_expired_certificate_are_700027() {
    let sb = start().await;
    let tid = sb.tenant().tenant_id.clone();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["mailroom-daemon".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2023, 1, 1);
    params.not_after = rcgen::date_time_ymd(2024, 1, 1);
    let cert = params.self_signed(&key).unwrap().pem();
    let key = key.serialize_pem();
    sb.identity()
        .add_app_certificate(DAEMON_APP_ID, &cert)
        .unwrap();
    let a = assertion(&sb, &cert, &key, jsonwebtoken::Algorithm::RS256, false, 600);
    let (status, body) = token(
        &sb,
        &tid,
        &[
            ("client_id", DAEMON_APP_ID),
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_eq!((status, code_of(&body)), (401, 700027), "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("The key used is expired"),
        "{body}"
    );
}
