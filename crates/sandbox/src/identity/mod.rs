//! Emulated Microsoft identity platform (v2.0 endpoints).
//!
//! Serves OpenID discovery, JWKS, the interactive `/authorize` page (user picker + consent),
//! `/token` (authorization code with PKCE, refresh token with rotation, client credentials with
//! a secret or a certificate assertion) and `/adminconsent`, with AADSTS errors shaped like the
//! real service (reference §1). Every access token it issues is a signed JWT **and** a row in an
//! in-memory table, which is how [`TokenValidator::validate`] answers Graph.
//!
//! Invariants:
//! - all time comes from the injected clock (code lifetime, token expiry, secret expiry);
//! - "issued before" comparisons (revocation, consent withdrawal) use a monotonic sequence
//!   number, not timestamps, so a frozen clock cannot make them ambiguous;
//! - secrets, codes and tokens are never logged.

mod assertion;
mod authorize;
mod errors;
mod keys;
mod pages;
mod seed;
mod token;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use mailroom_clock::SharedClock;
use mailroom_graph_sandbox::auth::{AccessGrant, TokenRejection, TokenValidator};
use rand::RngCore;

pub use errors::{AadError, TraceIds};
pub use keys::AppCertificate;
pub use seed::*;

/// The audience of every access token this platform issues.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";

/// Graph resource identifiers accepted in scopes (global and national clouds, and the app id).
pub const GRAPH_RESOURCES: &[&str] = &[
    "https://graph.microsoft.com",
    "https://graph.microsoft.us",
    "https://dod-graph.microsoft.us",
    "https://microsoftgraph.chinacloudapi.cn",
    "https://graph.microsoft.de",
    "00000003-0000-0000-c000-000000000000",
];

/// OpenID Connect scopes that need no consent and carry no Graph permission.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Errors of the identity platform's Rust API.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No app registration with that client id.
    #[error("no app registration with client id '{0}' exists in the sandbox tenant; use one of the seeded client ids")]
    UnknownApp(String),
    /// No user with that UPN.
    #[error("no directory user '{0}' exists in the sandbox tenant")]
    UnknownUser(String),
    /// The PEM could not be used as an app certificate.
    #[error("the certificate cannot be registered: {0}")]
    InvalidCertificate(String),
    /// Key generation or signing failed.
    #[error("identity platform cryptography failed: {0}")]
    Crypto(String),
}

/// Which refresh-token failure a switch simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshTokenFault {
    /// AADSTS70008: expired due to inactivity.
    Inactive,
    /// AADSTS700082: expired due to inactivity (inactive-token variant).
    InactiveToken,
}

impl RefreshTokenFault {
    fn code(self) -> u32 {
        match self {
            Self::Inactive => 70008,
            Self::InactiveToken => 700082,
        }
    }
}

/// How a confidential client proved its identity (the `appidacr` claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// Public client: nothing.
    None,
    /// A client secret (by secret id).
    Secret(String),
    /// A certificate assertion (by SHA-1 hex thumbprint).
    Certificate(String),
}

impl Credential {
    fn acr(&self) -> &'static str {
        match self {
            Credential::None => "0",
            Credential::Secret(_) => "1",
            Credential::Certificate(_) => "2",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub id: String,
    pub value: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct App {
    pub client_id: String,
    pub display_name: String,
    pub platform: RedirectPlatform,
    pub redirect_uris: Vec<String>,
    pub secrets: Vec<Secret>,
    pub certificates: Vec<AppCertificate>,
    pub delegated_permissions: Vec<String>,
    pub application_permissions: Vec<String>,
    /// Tenant-wide (admin) delegated consent, lower-cased scope → canonical name.
    pub tenant_consent: HashMap<String, String>,
    /// Consented application permissions.
    pub granted_roles: Vec<String>,
    /// Tokens with a sequence number <= this were revoked by a consent withdrawal.
    pub revoked_before: u64,
}

impl App {
    pub fn is_public(&self) -> bool {
        self.platform == RedirectPlatform::MobileAndDesktop
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: String,
    pub nonce: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub redeemed: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshRecord {
    pub client_id: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    pub seq: u64,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub fault: Option<RefreshTokenFault>,
}

#[derive(Debug, Clone)]
pub(crate) struct AccessRecord {
    pub grant: AccessGrant,
    pub seq: u64,
    pub credential: Credential,
}

/// Mutable state of the identity platform.
#[derive(Debug)]
pub(crate) struct State {
    pub tenant_id: String,
    pub tenant_domain: String,
    pub tenant_display_name: String,
    pub users: Vec<IdentityUser>,
    pub admins: Vec<String>,
    pub apps: Vec<App>,
    pub settings: IdentitySettings,
    pub codes: HashMap<String, AuthCode>,
    pub refresh_tokens: HashMap<String, RefreshRecord>,
    pub access_tokens: HashMap<String, AccessRecord>,
    /// (client id, user id) → lower-cased scope → canonical name.
    pub user_consent: HashMap<(String, String), HashMap<String, String>>,
    /// user id → tokens with seq <= value are revoked (AADSTS50173).
    pub user_revoked_before: HashMap<String, u64>,
    pub seq: u64,
}

impl State {
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub fn app_mut(&mut self, client_id: &str) -> Option<&mut App> {
        self.apps
            .iter_mut()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub fn user_by_upn(&self, upn: &str) -> Option<&IdentityUser> {
        self.users
            .iter()
            .find(|u| u.user_principal_name.eq_ignore_ascii_case(upn))
    }

    pub fn user_by_id(&self, id: &str) -> Option<&IdentityUser> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn is_admin(&self, upn: &str) -> bool {
        self.admins.iter().any(|a| a.eq_ignore_ascii_case(upn))
    }

    /// Whether `{tenant}` names this tenant (id or domain).
    pub fn is_own_tenant(&self, tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(&self.tenant_id)
            || tenant.eq_ignore_ascii_case(&self.tenant_domain)
    }

    /// Whether a (Graph, lower-cased, unprefixed) delegated scope is consented for the user.
    pub fn is_consented(&self, client_id: &str, user_id: &str, scope_lower: &str) -> bool {
        if OIDC_SCOPES.contains(&scope_lower) {
            return true;
        }
        let tenant = self
            .app(client_id)
            .is_some_and(|a| a.tenant_consent.contains_key(scope_lower));
        tenant
            || self
                .user_consent
                .get(&(client_id.to_owned(), user_id.to_owned()))
                .is_some_and(|m| m.contains_key(scope_lower))
    }

    /// All consented delegated Graph scopes for the user (for `.default`).
    pub fn consented_scopes(&self, client_id: &str, user_id: &str) -> Vec<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        if let Some(app) = self.app(client_id) {
            out.extend(app.tenant_consent.values().cloned());
        }
        if let Some(m) = self
            .user_consent
            .get(&(client_id.to_owned(), user_id.to_owned()))
        {
            out.extend(m.values().cloned());
        }
        out.into_iter()
            .filter(|s| !OIDC_SCOPES.contains(&s.to_ascii_lowercase().as_str()))
            .collect()
    }
}

/// A requested scope, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `openid`, `profile`, `email`, `offline_access`.
    Oidc(String),
    /// A Graph delegated permission: (unprefixed name, the text the client sent).
    Graph(String, String),
    /// `{graph}/.default` (the text the client sent).
    GraphDefault(String),
    /// Any other resource (not present in the sandbox tenant).
    Other(String),
}

/// Splits and classifies a space-separated scope string.
pub(crate) fn parse_scopes(raw: &str) -> Vec<Scope> {
    raw.split_whitespace()
        .map(|s| {
            let lower = s.to_ascii_lowercase();
            if OIDC_SCOPES.contains(&lower.as_str()) {
                return Scope::Oidc(lower);
            }
            for res in GRAPH_RESOURCES {
                if let Some(rest) = lower.strip_prefix(&format!("{res}/")) {
                    let name = &s[s.len() - rest.len()..];
                    return if rest == ".default" {
                        Scope::GraphDefault(s.to_owned())
                    } else {
                        Scope::Graph(name.to_owned(), s.to_owned())
                    };
                }
            }
            if s.contains("://") || s.contains('/') {
                Scope::Other(s.to_owned())
            } else if lower == ".default" {
                Scope::GraphDefault(s.to_owned())
            } else {
                Scope::Graph(s.to_owned(), s.to_owned())
            }
        })
        .collect()
}

struct Inner {
    clock: SharedClock,
    key: keys::SigningKey,
    base_url: RwLock<String>,
    state: Mutex<State>,
}

/// The emulated identity platform. Cheap to clone (shared state).
#[derive(Clone)]
pub struct IdentityPlatform {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IdentityPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityPlatform")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

/// Public facts about an app registration (for summaries and tests; no secret values).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    /// Client id.
    pub client_id: String,
    /// Display name.
    pub display_name: String,
    /// Redirect platform.
    pub platform: RedirectPlatform,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Secret ids with expiry.
    pub secrets: Vec<(String, DateTime<Utc>)>,
    /// SHA-1 hex thumbprints of registered certificates.
    pub certificate_thumbprints: Vec<String>,
    /// Tenant-wide consented delegated permissions.
    pub consented_delegated: Vec<String>,
    /// Consented application permissions.
    pub consented_roles: Vec<String>,
}

fn random_token(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(buf))
}

impl IdentityPlatform {
    /// Builds the platform from a seed. Generates a fresh RSA signing key.
    pub fn new(seed: IdentitySeed, clock: SharedClock) -> Result<Self, IdentityError> {
        // jsonwebtoken needs exactly one crypto provider; when several crates enable different
        // backends in one build, select ours explicitly (a no-op if one is already installed).
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let now = clock.now();
        let mut apps = Vec::new();
        for a in &seed.apps {
            let mut certificates = Vec::new();
            for pem in &a.certificates_pem {
                certificates.push(AppCertificate::from_pem(pem)?);
            }
            let consent = |list: &Vec<String>| -> HashMap<String, String> {
                list.iter()
                    .map(|s| (s.to_ascii_lowercase(), s.clone()))
                    .collect()
            };
            apps.push(App {
                client_id: a.client_id.clone(),
                display_name: a.display_name.clone(),
                platform: a.platform,
                redirect_uris: a.redirect_uris.clone(),
                secrets: a
                    .secrets
                    .iter()
                    .map(|s| Secret {
                        id: s.id.clone(),
                        value: s.value.clone(),
                        expires_at: now + Duration::days(s.expires_in_days),
                    })
                    .collect(),
                certificates,
                delegated_permissions: a.delegated_permissions.clone(),
                application_permissions: a.application_permissions.clone(),
                tenant_consent: if a.admin_consented {
                    consent(&a.delegated_permissions)
                } else {
                    HashMap::new()
                },
                granted_roles: if a.admin_consented {
                    a.application_permissions.clone()
                } else {
                    vec![]
                },
                revoked_before: 0,
            });
        }
        let state = State {
            tenant_id: seed.tenant_id,
            tenant_domain: seed.tenant_domain,
            tenant_display_name: seed.tenant_display_name,
            users: seed.users,
            admins: seed.admins,
            apps,
            settings: seed.settings,
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            user_consent: HashMap::new(),
            user_revoked_before: HashMap::new(),
            seq: 0,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                clock,
                key: keys::SigningKey::generate()?,
                base_url: RwLock::new("http://127.0.0.1".into()),
                state: Mutex::new(state),
            }),
        })
    }

    /// Sets the absolute URL clients reach this platform at (scheme, host, port; no path).
    pub fn set_base_url(&self, url: &str) {
        *self.inner.base_url.write().expect("base url lock") = url.trim_end_matches('/').into();
    }

    /// The absolute URL of this platform (the authority host).
    pub fn base_url(&self) -> String {
        self.inner.base_url.read().expect("base url lock").clone()
    }

    /// The tenant-specific authority, `{base}/{tenant id}`.
    pub fn authority(&self) -> String {
        format!("{}/{}", self.base_url(), self.tenant_id())
    }

    /// The OpenID configuration URL of the tenant.
    pub fn openid_configuration_url(&self) -> String {
        format!("{}/v2.0/.well-known/openid-configuration", self.authority())
    }

    /// The token endpoint for a tenant path segment.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base_url())
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> String {
        self.lock().tenant_id.clone()
    }

    /// The directory users.
    pub fn users(&self) -> Vec<IdentityUser> {
        self.lock().users.clone()
    }

    /// Replaces the directory users (used when composing with the Graph seed).
    pub fn set_users(&self, users: Vec<IdentityUser>) {
        self.lock().users = users;
    }

    /// Public facts about the app registrations.
    pub fn apps(&self) -> Vec<AppInfo> {
        self.lock()
            .apps
            .iter()
            .map(|a| AppInfo {
                client_id: a.client_id.clone(),
                display_name: a.display_name.clone(),
                platform: a.platform,
                redirect_uris: a.redirect_uris.clone(),
                secrets: a
                    .secrets
                    .iter()
                    .map(|s| (s.id.clone(), s.expires_at))
                    .collect(),
                certificate_thumbprints: a
                    .certificates
                    .iter()
                    .map(|c| c.thumbprint_hex.clone())
                    .collect(),
                consented_delegated: a.tenant_consent.values().cloned().collect(),
                consented_roles: a.granted_roles.clone(),
            })
            .collect()
    }

    /// Current settings.
    pub fn settings(&self) -> IdentitySettings {
        self.lock().settings.clone()
    }

    /// Changes settings in place.
    pub fn update_settings(&self, f: impl FnOnce(&mut IdentitySettings)) {
        f(&mut self.lock().settings);
    }

    /// Sets `expires_in` of access tokens issued from now on.
    pub fn set_access_token_lifetime(&self, seconds: i64) {
        self.lock().settings.access_token_lifetime_secs = seconds.max(1);
    }

    /// Revokes a user's sessions: refresh tokens fail with AADSTS50173 and access tokens issued
    /// so far are reported as revoked to Graph (as continuous access evaluation would).
    pub fn revoke_user_sessions(&self, upn: &str) -> Result<(), IdentityError> {
        let mut st = self.lock();
        let id = st
            .user_by_upn(upn)
            .ok_or_else(|| IdentityError::UnknownUser(upn.into()))?
            .id
            .clone();
        let seq = st.next_seq();
        st.user_revoked_before.insert(id, seq);
        Ok(())
    }

    /// Marks existing refresh tokens (of one user, or all when `upn` is `None`) as expired for
    /// inactivity (AADSTS70008 or 700082 on their next use).
    pub fn set_refresh_tokens_inactive(
        &self,
        upn: Option<&str>,
        fault: RefreshTokenFault,
    ) -> Result<usize, IdentityError> {
        let mut st = self.lock();
        let user_id = match upn {
            Some(u) => Some(
                st.user_by_upn(u)
                    .ok_or_else(|| IdentityError::UnknownUser(u.into()))?
                    .id
                    .clone(),
            ),
            None => None,
        };
        let mut n = 0;
        for rt in st.refresh_tokens.values_mut() {
            if user_id.as_deref().is_none_or(|id| id == rt.user_id) {
                rt.fault = Some(fault);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Withdraws every consent for an app (tenant-wide, per user, application roles): refresh and
    /// authorize fail with AADSTS65001 `consent_required`, issued access tokens become revoked.
    pub fn withdraw_consent(&self, client_id: &str) -> Result<(), IdentityError> {
        let mut st = self.lock();
        let seq = st.next_seq();
        let app = st
            .app_mut(client_id)
            .ok_or_else(|| IdentityError::UnknownApp(client_id.into()))?;
        app.tenant_consent.clear();
        app.granted_roles.clear();
        app.revoked_before = seq;
        let cid = app.client_id.clone();
        st.user_consent
            .retain(|(c, _), _| !c.eq_ignore_ascii_case(&cid));
        Ok(())
    }

    /// Leaves only `roles` of the application permissions consented (an admin removing a
    /// permission's consent); tokens issued before are revoked, as with
    /// [`IdentityPlatform::withdraw_consent`].
    pub fn set_granted_roles(&self, client_id: &str, roles: &[&str]) -> Result<(), IdentityError> {
        let mut st = self.lock();
        let seq = st.next_seq();
        let app = st
            .app_mut(client_id)
            .ok_or_else(|| IdentityError::UnknownApp(client_id.into()))?;
        app.granted_roles = roles.iter().map(|r| r.to_string()).collect();
        app.revoked_before = seq;
        Ok(())
    }

    /// Grants tenant-wide consent to everything the registration requests (what an admin does on
    /// the admin-consent page).
    pub fn grant_admin_consent(&self, client_id: &str) -> Result<(), IdentityError> {
        let mut st = self.lock();
        let app = st
            .app_mut(client_id)
            .ok_or_else(|| IdentityError::UnknownApp(client_id.into()))?;
        for p in app.delegated_permissions.clone() {
            app.tenant_consent.insert(p.to_ascii_lowercase(), p);
        }
        app.granted_roles = app.application_permissions.clone();
        Ok(())
    }

    /// Expires one secret (by id) or all secrets of an app: the token endpoint answers
    /// AADSTS7000222 and tokens obtained with the secret are reported revoked.
    pub fn expire_app_secret(
        &self,
        client_id: &str,
        secret_id: Option<&str>,
    ) -> Result<(), IdentityError> {
        let now = self.now();
        let mut st = self.lock();
        let app = st
            .app_mut(client_id)
            .ok_or_else(|| IdentityError::UnknownApp(client_id.into()))?;
        for s in app.secrets.iter_mut() {
            if secret_id.is_none_or(|id| id == s.id) {
                s.expires_at = now - Duration::seconds(1);
            }
        }
        Ok(())
    }

    /// Adds a client secret to an app; returns its id.
    pub fn add_app_secret(
        &self,
        client_id: &str,
        value: &str,
        expires_in_days: i64,
    ) -> Result<String, IdentityError> {
        let now = self.now();
        let mut st = self.lock();
        let app = st
            .app_mut(client_id)
            .ok_or_else(|| IdentityError::UnknownApp(client_id.into()))?;
        let id = uuid::Uuid::new_v4().to_string();
        app.secrets.push(Secret {
            id: id.clone(),
            value: value.into(),
            expires_at: now + Duration::days(expires_in_days),
        });
        Ok(id)
    }

    /// Registers a certificate (PEM, public part) on an app; returns its SHA-1 hex thumbprint.
    pub fn add_app_certificate(&self, client_id: &str, pem: &str) -> Result<String, IdentityError> {
        let cert = AppCertificate::from_pem(pem)?;
        let thumb = cert.thumbprint_hex.clone();
        let mut st = self.lock();
        let app = st
            .app_mut(client_id)
            .ok_or_else(|| IdentityError::UnknownApp(client_id.into()))?;
        app.certificates.retain(|c| c.thumbprint_hex != thumb);
        app.certificates.push(cert);
        Ok(thumb)
    }

    /// Removes a certificate by SHA-1 hex thumbprint; true if one was removed.
    pub fn remove_app_certificate(
        &self,
        client_id: &str,
        thumbprint_hex: &str,
    ) -> Result<bool, IdentityError> {
        let mut st = self.lock();
        let app = st
            .app_mut(client_id)
            .ok_or_else(|| IdentityError::UnknownApp(client_id.into()))?;
        let before = app.certificates.len();
        app.certificates
            .retain(|c| !c.thumbprint_hex.eq_ignore_ascii_case(thumbprint_hex));
        Ok(app.certificates.len() != before)
    }

    /// Makes every access token issued so far expired (Graph answers 401 for them).
    pub fn expire_all_access_tokens(&self) -> usize {
        let past = self.now() - Duration::seconds(1);
        let mut st = self.lock();
        for rec in st.access_tokens.values_mut() {
            rec.grant.expires_at = rec.grant.expires_at.min(past);
        }
        st.access_tokens.len()
    }

    /// Number of access tokens issued so far.
    pub fn issued_access_token_count(&self) -> usize {
        self.lock().access_tokens.len()
    }

    /// A [`TokenValidator`] handle for Graph.
    pub fn validator(&self) -> Arc<dyn TokenValidator> {
        Arc::new(self.clone())
    }

    /// The HTTP router of the platform (no fault middleware; the sandbox adds it).
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(authorize::openid_configuration),
            )
            .route(
                "/{tenant}/.well-known/openid-configuration",
                get(authorize::openid_configuration),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(authorize::jwks))
            .route("/{tenant}/discovery/keys", get(authorize::jwks))
            .route(
                "/{tenant}/oauth2/v2.0/authorize",
                get(authorize::authorize_get).post(authorize::authorize_post),
            )
            .route(
                "/{tenant}/oauth2/v2.0/token",
                axum::routing::post(token::token),
            )
            .route(
                "/{tenant}/adminconsent",
                get(authorize::admin_consent_get).post(authorize::admin_consent_post),
            )
            .route(
                "/{tenant}/v2.0/adminconsent",
                get(authorize::admin_consent_get).post(authorize::admin_consent_post),
            )
            .route("/error", get(authorize::error_lookup))
            .with_state(self.clone())
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("identity state lock")
    }

    pub(crate) fn key(&self) -> &keys::SigningKey {
        &self.inner.key
    }

    /// Issuer of ID tokens (`{base}/{tid}/v2.0`).
    pub fn issuer(&self) -> String {
        format!("{}/v2.0", self.authority())
    }

    /// Issues an access token (and records it). `user` is `None` for app-only tokens.
    pub(crate) fn issue_access_token(
        &self,
        st: &mut State,
        client_id: &str,
        user: Option<&IdentityUser>,
        scopes: &[String],
        roles: &[String],
        credential: Credential,
    ) -> Result<(String, i64), AadError> {
        let now = self.now();
        let lifetime = st.settings.access_token_lifetime_secs;
        let exp = now + Duration::seconds(lifetime);
        let seq = st.next_seq();
        let app_name = st
            .app(client_id)
            .map(|a| a.display_name.clone())
            .unwrap_or_default();
        let mut claims = serde_json::json!({
            "aud": GRAPH_AUDIENCE,
            "iss": format!("https://sts.windows.net/{}/", st.tenant_id),
            "iat": now.timestamp(), "nbf": now.timestamp(), "exp": exp.timestamp(),
            "app_displayname": app_name,
            "appid": client_id, "appidacr": credential.acr(),
            "tid": st.tenant_id, "ver": "1.0",
            "uti": random_token("", 16), "sandbox_seq": seq,
        });
        match user {
            Some(u) => {
                claims["oid"] = u.id.clone().into();
                claims["sub"] = pairwise_sub(&u.id, client_id).into();
                claims["upn"] = u.user_principal_name.clone().into();
                claims["unique_name"] = u.user_principal_name.clone().into();
                claims["name"] = u.display_name.clone().into();
                claims["scp"] = scopes.join(" ").into();
            }
            None => {
                let sp = service_principal_id(client_id);
                claims["oid"] = sp.clone().into();
                claims["sub"] = sp.into();
                if !roles.is_empty() {
                    claims["roles"] = roles.to_vec().into();
                }
            }
        }
        let jwt = self
            .key()
            .sign(&claims)
            .map_err(|e| AadError::bad("server_error", 90100, e.to_string()))?;
        let graph_scopes: Vec<String> = scopes
            .iter()
            .filter(|s| !OIDC_SCOPES.contains(&s.to_ascii_lowercase().as_str()))
            .cloned()
            .collect();
        st.access_tokens.insert(
            jwt.clone(),
            AccessRecord {
                grant: AccessGrant {
                    tenant_id: st.tenant_id.clone(),
                    client_id: client_id.to_owned(),
                    user_id: user.map(|u| u.id.clone()),
                    user_principal_name: user.map(|u| u.user_principal_name.clone()),
                    scopes: graph_scopes,
                    roles: if user.is_some() {
                        vec![]
                    } else {
                        roles.to_vec()
                    },
                    expires_at: exp,
                },
                seq,
                credential,
            },
        );
        Ok((jwt, lifetime))
    }

    /// Issues and records a refresh token.
    pub(crate) fn issue_refresh_token(
        &self,
        st: &mut State,
        client_id: &str,
        user_id: &str,
        scopes: &[String],
    ) -> String {
        let now = self.now();
        let seq = st.next_seq();
        let rt = random_token("1.AXkA", 96);
        let days = st.settings.refresh_token_lifetime_days;
        st.refresh_tokens.insert(
            rt.clone(),
            RefreshRecord {
                client_id: client_id.to_owned(),
                user_id: user_id.to_owned(),
                scopes: scopes.to_vec(),
                seq,
                issued_at: now,
                expires_at: now + Duration::days(days),
                fault: None,
            },
        );
        rt
    }

    /// Signs an ID token.
    pub(crate) fn issue_id_token(
        &self,
        st: &State,
        client_id: &str,
        user: &IdentityUser,
        nonce: Option<&str>,
    ) -> Result<String, AadError> {
        let now = self.now();
        let mut claims = serde_json::json!({
            "aud": client_id,
            "iss": format!("{}/{}/v2.0", self.base_url(), st.tenant_id),
            "iat": now.timestamp(), "nbf": now.timestamp(),
            "exp": (now + Duration::hours(1)).timestamp(),
            "name": user.display_name,
            "preferred_username": user.user_principal_name,
            "oid": user.id, "tid": st.tenant_id,
            "sub": pairwise_sub(&user.id, client_id),
            "ver": "2.0",
        });
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        self.key()
            .sign(&claims)
            .map_err(|e| AadError::bad("server_error", 90100, e.to_string()))
    }

    /// `client_info` (base64url JSON `{uid, utid}`).
    pub(crate) fn client_info(st: &State, user: &IdentityUser) -> String {
        URL_SAFE_NO_PAD.encode(
            serde_json::json!({"uid": user.id, "utid": st.tenant_id})
                .to_string()
                .as_bytes(),
        )
    }
}

fn pairwise_sub(user_id: &str, client_id: &str) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(format!("{user_id}|{client_id}"))[..24])
}

/// Deterministic object id of an app's service principal (the `oid` of app-only tokens).
pub fn service_principal_id(client_id: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("sp|{client_id}"));
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

impl TokenValidator for IdentityPlatform {
    fn validate(&self, bearer_token: &str) -> Result<AccessGrant, TokenRejection> {
        let now = self.now();
        let st = self.lock();
        let rec = st
            .access_tokens
            .get(bearer_token.trim())
            .ok_or(TokenRejection::Unknown)?;
        let app = st.app(&rec.grant.client_id);
        if app.is_none_or(|a| rec.seq <= a.revoked_before) {
            return Err(TokenRejection::Revoked);
        }
        if let Some(uid) = &rec.grant.user_id {
            if st
                .user_revoked_before
                .get(uid)
                .is_some_and(|s| rec.seq <= *s)
            {
                return Err(TokenRejection::Revoked);
            }
        }
        if let (Credential::Secret(id), Some(app)) = (&rec.credential, app) {
            if app
                .secrets
                .iter()
                .find(|s| &s.id == id)
                .is_none_or(|s| s.expires_at <= now)
            {
                return Err(TokenRejection::Revoked);
            }
        }
        if now >= rec.grant.expires_at {
            return Err(TokenRejection::Expired);
        }
        Ok(rec.grant.clone())
    }
}
