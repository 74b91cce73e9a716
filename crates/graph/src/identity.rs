//! Token endpoint client: authorization-code redemption (PKCE), refresh with rotation, client
//! credentials (secret or certificate assertion), and Entra error bodies.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use mailroom_clock::SharedClock;
use oauth2::basic::{
    BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use crate::cert::CertificateError;
use crate::cloud::{AppRegistration, ClientCredential};
use crate::http::{build_client, build_client_with_roots, TracedOAuthHttp};
use crate::secret::Secret;

/// `client_assertion_type` for certificate credentials.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An Entra token-endpoint error body (reference §1.5). Unlike `oauth2`'s standard error type it
/// keeps the AADSTS numbers, `suberror` and the trace/correlation ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AadError {
    /// OAuth error code, e.g. `invalid_grant`, `invalid_client`.
    pub error: String,
    /// Human text starting with `AADSTSnnnn: …`.
    #[serde(default)]
    pub error_description: Option<String>,
    /// AADSTS numbers.
    #[serde(default)]
    pub error_codes: Vec<u64>,
    /// e.g. `consent_required`.
    #[serde(default)]
    pub suberror: Option<String>,
    /// Entra trace id (quote it to Microsoft support).
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Entra correlation id.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Server timestamp.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Link to more information.
    #[serde(default)]
    pub error_uri: Option<String>,
}

impl fmt::Display for AadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        if let Some(d) = &self.error_description {
            let first = d.lines().next().unwrap_or(d);
            write!(f, ": {first}")?;
        }
        Ok(())
    }
}

impl oauth2::ErrorResponse for AadError {}

/// Finds the first `AADSTSnnnn` in a text.
pub fn find_aadsts(text: &str) -> Option<u64> {
    let idx = text.find("AADSTS")?;
    let digits: String = text[idx + 6..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

impl AadError {
    /// The primary AADSTS number: `error_codes[0]`, else the number in `error_description`.
    pub fn aadsts(&self) -> Option<u64> {
        self.error_codes
            .first()
            .copied()
            .or_else(|| self.error_description.as_deref().and_then(find_aadsts))
    }

    /// Builds an error from free text, e.g. the HTML error page the authorize endpoint shows
    /// for AADSTS50011 (redirect URI mismatch), which never reaches the redirect URI.
    pub fn from_text(text: &str) -> Option<AadError> {
        let code = find_aadsts(text)?;
        let start = text.find("AADSTS").unwrap_or(0);
        let description: String = text[start..]
            .split(['<', '\n'])
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        Some(AadError {
            error: "error_page".into(),
            error_description: Some(description),
            error_codes: vec![code],
            ..Default::default()
        })
    }
}

/// Why a token request failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The identity platform refused the request; see [`crate::diagnose`] for the admin hint.
    #[error("the Microsoft identity platform refused the request (HTTP {status}): {error}")]
    Rejected {
        /// HTTP status (400 for grant errors, 401 for `invalid_client`, 429 when throttled).
        status: u16,
        /// The parsed error body.
        error: Box<AadError>,
    },
    /// The token endpoint could not be reached.
    #[error("could not reach the Microsoft identity platform: {0}; check the network, proxy and the configured cloud")]
    Transport(String),
    /// The response was not understood.
    #[error("unexpected response from the token endpoint: {0}")]
    InvalidResponse(String),
    /// The certificate credential could not sign an assertion.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// Local configuration makes the request impossible.
    #[error("configuration error: {0}")]
    Configuration(String),
}

impl IdentityError {
    /// The Entra error body, when the server sent one.
    pub fn aad(&self) -> Option<&AadError> {
        match self {
            IdentityError::Rejected { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }
}

/// The signed-in account, from the id_token.
///
/// The id_token is decoded **without signature verification**: it arrived over TLS directly
/// from the token endpoint and is used for display only (which mailbox was connected), never for
/// an access decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// `preferred_username` (normally the UPN).
    pub upn: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Object id of the user.
    pub oid: Option<String>,
    /// Tenant id.
    pub tenant: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IdTokenClaims {
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    upn: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    tid: Option<String>,
}

/// Decodes the account from an id_token without verifying it (display only, see [`Account`]).
pub fn account_from_id_token(id_token: &str) -> Option<Account> {
    let data = jsonwebtoken::dangerous::insecure_decode::<IdTokenClaims>(id_token).ok()?;
    let c = data.claims;
    Some(Account {
        upn: c.preferred_username.or(c.upn),
        name: c.name,
        oid: c.oid,
        tenant: c.tid,
    })
}

#[derive(Debug, Deserialize)]
struct AccessClaims {
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scp: Option<String>,
}

/// Best-effort decode of an access token's `roles` (app-only) and `scp` (delegated) claims.
/// Microsoft warns Graph tokens may not be decodable JWTs; `None` then. Diagnostics only.
pub fn access_token_permissions(access_token: &str) -> Option<Vec<String>> {
    let data = jsonwebtoken::dangerous::insecure_decode::<AccessClaims>(access_token).ok()?;
    let mut out = data.claims.roles;
    if let Some(scp) = data.claims.scp {
        out.extend(scp.split_whitespace().map(str::to_string));
    }
    Some(out)
}

/// Tokens from one token response.
///
/// Invariant: after a refresh the *returned* set carries the rotated refresh token; the caller
/// must persist it (the old one keeps working for a while, but not forever). `Debug` is derived:
/// the tokens are [`Secret`]s and print redacted.
#[derive(Clone, Debug)]
pub struct TokenSet {
    /// Bearer token for Graph.
    pub access_token: Secret,
    /// Present for delegated sign-ins with `offline_access`.
    pub refresh_token: Option<Secret>,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// Granted scopes (token response `scope`), or for app-only tokens the `roles` claim.
    pub scopes: Vec<String>,
    /// Signed-in account (delegated only).
    pub account: Option<Account>,
}

/// Non-standard fields of Entra token responses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AadExtraFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ext_expires_in: Option<serde_json::Value>,
}
impl ExtraTokenFields for AadExtraFields {}

type AadTokenResponse = StandardTokenResponse<AadExtraFields, BasicTokenType>;
type AadClient<HasAuthUrl> = oauth2::Client<
    AadError,
    AadTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuthUrl,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Talks to the token endpoint of one cloud/tenant (the app registration carries both).
#[derive(Clone)]
pub struct IdentityClient {
    http: reqwest::Client,
    clock: SharedClock,
}

impl fmt::Debug for IdentityClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityClient")
    }
}

/// Default access-token lifetime when the server omits `expires_in`.
const DEFAULT_EXPIRES_IN: u64 = 3600;

impl IdentityClient {
    /// A client using `clock` for expiry times and assertion timestamps.
    pub fn new(clock: SharedClock) -> Self {
        IdentityClient {
            http: build_client(),
            clock,
        }
    }

    /// Additionally trusts these PEM CA certificates (a private CA, or the sandbox with TLS).
    pub fn with_root_certificates(mut self, pems: &[String]) -> Result<Self, IdentityError> {
        self.http = build_client_with_roots(pems).map_err(IdentityError::Configuration)?;
        Ok(self)
    }

    /// The clock in use.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn base(app: &AppRegistration) -> Result<AadClient<EndpointNotSet>, IdentityError> {
        let token = TokenUrl::new(app.token_endpoint().to_string())
            .map_err(|e| IdentityError::Configuration(e.to_string()))?;
        let mut client = oauth2::Client::new(ClientId::new(app.client_id.clone()))
            .set_token_uri(token)
            .set_auth_type(AuthType::RequestBody);
        if let ClientCredential::Secret(secret) = &app.credential {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
        }
        Ok(client)
    }

    /// An `oauth2` client with the authorize URL set (used by the loopback sign-in).
    pub(crate) fn with_auth(
        app: &AppRegistration,
    ) -> Result<AadClient<EndpointSet>, IdentityError> {
        let auth = AuthUrl::new(app.authorize_endpoint().to_string())
            .map_err(|e| IdentityError::Configuration(e.to_string()))?;
        Ok(Self::base(app)?.set_auth_uri(auth))
    }

    fn assertion(&self, app: &AppRegistration) -> Result<Option<Secret>, IdentityError> {
        match &app.credential {
            ClientCredential::Certificate(cert) => Ok(Some(cert.client_assertion(
                &app.client_id,
                app.token_endpoint().as_str(),
                self.clock.now(),
            )?)),
            _ => Ok(None),
        }
    }

    fn convert(
        &self,
        response: AadTokenResponse,
        requested: &[String],
        app_only: bool,
    ) -> TokenSet {
        let access_token = Secret::new(response.access_token().secret().clone());
        let expires_in = response
            .expires_in()
            .map(|d| d.as_secs())
            .unwrap_or(DEFAULT_EXPIRES_IN);
        let scopes = if app_only {
            access_token_permissions(access_token.expose()).unwrap_or_default()
        } else {
            match response.scopes() {
                Some(s) => s.iter().map(|s| s.to_string()).collect(),
                None => requested.to_vec(),
            }
        };
        TokenSet {
            refresh_token: response
                .refresh_token()
                .map(|r| Secret::new(r.secret().clone())),
            expires_at: self.clock.now() + Duration::seconds(expires_in as i64),
            scopes,
            account: response
                .extra_fields()
                .id_token
                .as_deref()
                .and_then(account_from_id_token),
            access_token,
        }
    }

    fn map_error(
        http: &TracedOAuthHttp,
        err: RequestTokenError<crate::http::TransportError, AadError>,
    ) -> IdentityError {
        let status = http.last_status().unwrap_or(400);
        match err {
            RequestTokenError::ServerResponse(error) => IdentityError::Rejected {
                status,
                error: Box::new(error),
            },
            RequestTokenError::Request(e) => IdentityError::Transport(e.to_string()),
            RequestTokenError::Parse(e, body) => {
                let text = String::from_utf8_lossy(&body);
                if let Some(error) = AadError::from_text(&text) {
                    return IdentityError::Rejected {
                        status,
                        error: Box::new(error),
                    };
                }
                if status == 429 || status >= 500 {
                    return IdentityError::Rejected {
                        status,
                        error: Box::new(AadError {
                            error: if status == 429 {
                                "throttled".into()
                            } else {
                                "temporarily_unavailable".into()
                            },
                            error_description: Some(text.chars().take(200).collect()),
                            ..Default::default()
                        }),
                    };
                }
                IdentityError::InvalidResponse(format!("{e} (HTTP {status})"))
            }
            RequestTokenError::Other(msg) => {
                if status == 429 || status >= 500 {
                    IdentityError::Rejected {
                        status,
                        error: Box::new(AadError {
                            error: "temporarily_unavailable".into(),
                            error_description: Some(msg),
                            ..Default::default()
                        }),
                    }
                } else {
                    IdentityError::InvalidResponse(format!("{msg} (HTTP {status})"))
                }
            }
        }
    }

    /// Redeems an authorization code (with the PKCE verifier). Confidential apps authenticate
    /// with their secret or certificate; public apps send none.
    pub async fn redeem_code(
        &self,
        app: &AppRegistration,
        code: &str,
        verifier: PkceCodeVerifier,
        redirect_uri: &str,
        scopes: &[String],
    ) -> Result<TokenSet, IdentityError> {
        let client = Self::base(app)?.set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_string())
                .map_err(|e| IdentityError::Configuration(e.to_string()))?,
        );
        let assertion = self.assertion(app)?;
        let mut request = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(verifier);
        if let Some(a) = &assertion {
            request = request
                .add_extra_param("client_assertion_type", JWT_BEARER)
                .add_extra_param("client_assertion", a.expose().to_string());
        }
        let http = TracedOAuthHttp::new(self.http.clone(), self.clock.clone());
        let response = request
            .request_async(&http)
            .await
            .map_err(|e| Self::map_error(&http, e))?;
        Ok(self.convert(response, scopes, false))
    }

    /// Redeems a refresh token. The returned set carries the **rotated** refresh token (or the
    /// old one if the server did not rotate) and must be persisted by the caller.
    #[must_use = "the refresh token rotates: persist the returned TokenSet"]
    pub async fn refresh(
        &self,
        app: &AppRegistration,
        refresh_token: &Secret,
    ) -> Result<TokenSet, IdentityError> {
        let client = Self::base(app)?;
        let assertion = self.assertion(app)?;
        let token = RefreshToken::new(refresh_token.expose().to_string());
        let mut request = client.exchange_refresh_token(&token);
        if let Some(a) = &assertion {
            request = request
                .add_extra_param("client_assertion_type", JWT_BEARER)
                .add_extra_param("client_assertion", a.expose().to_string());
        }
        let http = TracedOAuthHttp::new(self.http.clone(), self.clock.clone());
        let response = request
            .request_async(&http)
            .await
            .map_err(|e| Self::map_error(&http, e))?;
        let mut set = self.convert(response, &[], false);
        if set.refresh_token.is_none() {
            set.refresh_token = Some(refresh_token.clone());
        }
        Ok(set)
    }

    /// Client-credentials grant for `{graph}/.default` (webhook mode). Needs a confidential app
    /// and a tenant-specific authority.
    pub async fn client_credentials(
        &self,
        app: &AppRegistration,
    ) -> Result<TokenSet, IdentityError> {
        if !app.is_confidential() {
            return Err(IdentityError::Configuration(
                "client credentials need a client secret or a certificate; this app is configured as a public client".into(),
            ));
        }
        let client = Self::base(app)?;
        let assertion = self.assertion(app)?;
        let scope = format!("{}/.default", app.cloud.graph_resource());
        let mut request = client
            .exchange_client_credentials()
            .add_scope(Scope::new(scope.clone()));
        if let Some(a) = &assertion {
            request = request
                .add_extra_param("client_assertion_type", JWT_BEARER)
                .add_extra_param("client_assertion", a.expose().to_string());
        }
        let http = TracedOAuthHttp::new(self.http.clone(), self.clock.clone());
        let response = request
            .request_async(&http)
            .await
            .map_err(|e| Self::map_error(&http, e))?;
        Ok(self.convert(response, &[scope], true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_error_keeps_codes_and_ids() {
        let body = r#"{"error":"invalid_grant","error_description":"AADSTS65001: The user or administrator has not consented.\r\nTrace ID: t\r\nCorrelation ID: c","error_codes":[65001],"timestamp":"2025-01-15 09:30:12Z","trace_id":"t1","correlation_id":"c1","suberror":"consent_required"}"#;
        let e: AadError = serde_json::from_str(body).unwrap();
        assert_eq!(e.aadsts(), Some(65001));
        assert_eq!(e.suberror.as_deref(), Some("consent_required"));
        assert_eq!(e.trace_id.as_deref(), Some("t1"));
        assert_eq!(
            e.to_string(),
            "invalid_grant: AADSTS65001: The user or administrator has not consented."
        );
    }

    #[test]
    fn aadsts_found_in_description_or_page() {
        let e = AadError {
            error: "invalid_client".into(),
            error_description: Some("AADSTS7000215: Invalid client secret provided.".into()),
            ..Default::default()
        };
        assert_eq!(e.aadsts(), Some(7000215));
        let page = "<html><body><h1>Sign in</h1><p>AADSTS50011: The redirect URI 'http://localhost:1' specified in the request does not match.</p></body></html>";
        let e = AadError::from_text(page).unwrap();
        assert_eq!(e.aadsts(), Some(50011));
        assert!(e
            .error_description
            .unwrap()
            .starts_with("AADSTS50011: The redirect"));
        assert!(AadError::from_text("no code here").is_none());
    }

    #[test]
    fn token_set_debug_is_redacted() {
        let t = TokenSet {
            access_token: Secret::new("eyJ-access"),
            refresh_token: Some(Secret::new("1.refresh")),
            expires_at: Utc::now(),
            scopes: vec![],
            account: None,
        };
        let s = format!("{t:?}");
        assert!(!s.contains("eyJ-access") && !s.contains("1.refresh"));
    }
}
