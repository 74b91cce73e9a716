//! Identity-platform seed: tenant, users allowed to sign in, app registrations and settings.

use serde::{Deserialize, Serialize};

/// Directory (tenant) id of the seeded sandbox tenant.
pub const TENANT_ID: &str = "6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab";
/// Verified domain of the seeded sandbox tenant.
pub const TENANT_DOMAIN: &str = "contoso.test";
/// Client id of "Mailroom Desktop" (public client, Mobile and desktop platform).
pub const DESKTOP_APP_ID: &str = "c0ffee00-0000-4000-8000-000000000001";
/// Client id of "Mailroom Web" (confidential, Web platform).
pub const WEB_APP_ID: &str = "c0ffee00-0000-4000-8000-000000000002";
/// Client id of "Mailroom Daemon" (confidential, application permissions).
pub const DAEMON_APP_ID: &str = "c0ffee00-0000-4000-8000-000000000003";
/// Seeded client secret value of "Mailroom Web".
pub const WEB_APP_SECRET: &str = "sbx~Web.5e2f9c1a-7b3d-4e8f-a0c6-1d2e3f4a5b6c";
/// Seeded client secret value of "Mailroom Daemon".
pub const DAEMON_APP_SECRET: &str = "sbx~Daemon.9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

/// The delegated permissions consented for the desktop and web apps (seed.md).
pub const SEEDED_DELEGATED: &[&str] = &[
    "openid",
    "profile",
    "offline_access",
    "User.Read",
    "Mail.ReadWrite",
    "Mail.Send",
    "Mail.ReadWrite.Shared",
    "Mail.Send.Shared",
    "Contacts.Read",
];

/// Everything the identity platform is started with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct IdentitySeed {
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Verified domain; also accepted as the `{tenant}` path segment.
    pub tenant_domain: String,
    /// Display name shown on the sign-in page.
    pub tenant_display_name: String,
    /// Directory users. When the sandbox is composed with Graph these are replaced by the Graph
    /// seed's users (admins are kept by UPN via [`IdentitySeed::admins`]).
    pub users: Vec<IdentityUser>,
    /// UPNs of users holding an admin role (they can grant tenant-wide/admin consent).
    pub admins: Vec<String>,
    /// App registrations.
    pub apps: Vec<AppRegistrationSeed>,
    /// Lifetimes and policy switches.
    pub settings: IdentitySettings,
}

/// A directory user as the identity platform sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IdentityUser {
    /// Object id (the `oid` claim).
    pub id: String,
    /// Sign-in name (`upn`, `preferred_username`).
    pub user_principal_name: String,
    /// Display name (`name`).
    pub display_name: String,
    /// False for shared mailboxes and disabled accounts.
    #[serde(default = "yes")]
    pub can_sign_in: bool,
}

fn yes() -> bool {
    true
}

/// Which platform an app's redirect URIs are registered under; decides public vs confidential.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RedirectPlatform {
    /// "Mobile and desktop applications": a public client (no secrets allowed, AADSTS700025).
    MobileAndDesktop,
    /// "Web": a confidential client (a credential is required, AADSTS7000218).
    Web,
    /// No redirect URIs (daemon): confidential, client credentials only.
    None,
}

/// One app registration in the seed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppRegistrationSeed {
    /// Application (client) id.
    pub client_id: String,
    /// Display name (consent page).
    pub display_name: String,
    /// Redirect platform.
    pub platform: RedirectPlatform,
    /// Registered redirect URIs.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Client secrets.
    #[serde(default)]
    pub secrets: Vec<SecretSeed>,
    /// Registered certificates (PEM, public part only).
    #[serde(default)]
    pub certificates_pem: Vec<String>,
    /// Delegated Graph permissions the registration requests (e.g. `Mail.ReadWrite`, `openid`).
    #[serde(default)]
    pub delegated_permissions: Vec<String>,
    /// Application Graph permissions (roles) the registration requests.
    #[serde(default)]
    pub application_permissions: Vec<String>,
    /// Whether an admin already consented to the above tenant-wide at start.
    #[serde(default = "yes")]
    pub admin_consented: bool,
}

/// A client secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretSeed {
    /// Secret id (what the portal shows as "Secret ID"; never accepted as the secret).
    pub id: String,
    /// Secret value.
    pub value: String,
    /// Days from sandbox start until the secret expires (negative = already expired).
    #[serde(default = "default_secret_days")]
    pub expires_in_days: i64,
}

fn default_secret_days() -> i64 {
    180
}

/// Lifetimes and policy switches of the identity platform.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct IdentitySettings {
    /// `expires_in` of access tokens, seconds (Entra: 60–90 min; default 75 min).
    pub access_token_lifetime_secs: i64,
    /// Refresh-token lifetime, days (Entra default for non-SPA: 90).
    pub refresh_token_lifetime_days: i64,
    /// Authorization-code lifetime, seconds (~10 minutes).
    pub auth_code_lifetime_secs: i64,
    /// Whether non-admin users may consent to delegated permissions on the consent page.
    /// When false only admins can, everyone else gets `consent_required` (AADSTS65001).
    pub user_consent_allowed: bool,
    /// Whether `http://127.0.0.1` redirect URIs are port-insensitive like `http://localhost`
    /// ([UNCERTAIN] in the reference; default true).
    pub loopback_ip_port_insensitive: bool,
    /// Require PKCE on every authorization request (Entra requires it only for SPAs).
    pub require_pkce: bool,
    /// Include `ext_expires_in` in token responses.
    pub include_ext_expires_in: bool,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            access_token_lifetime_secs: 75 * 60,
            refresh_token_lifetime_days: 90,
            auth_code_lifetime_secs: 600,
            user_consent_allowed: true,
            loopback_ip_port_insensitive: true,
            require_pkce: false,
            include_ext_expires_in: true,
        }
    }
}

impl Default for IdentitySeed {
    fn default() -> Self {
        let delegated: Vec<String> = SEEDED_DELEGATED.iter().map(|s| s.to_string()).collect();
        let user = |id: &str, upn: &str, name: &str, can: bool| IdentityUser {
            id: id.into(),
            user_principal_name: upn.into(),
            display_name: name.into(),
            can_sign_in: can,
        };
        Self {
            tenant_id: TENANT_ID.into(),
            tenant_domain: TENANT_DOMAIN.into(),
            tenant_display_name: "Contoso (sandbox)".into(),
            users: vec![
                user(
                    "8a3c1f52-6d0e-4b7a-9c21-5e4f3a2b1c01",
                    "support@contoso.test",
                    "Contoso Support",
                    true,
                ),
                user(
                    "8a3c1f52-6d0e-4b7a-9c21-5e4f3a2b1c02",
                    "megan@contoso.test",
                    "Megan Bowen",
                    true,
                ),
                user(
                    "8a3c1f52-6d0e-4b7a-9c21-5e4f3a2b1c03",
                    "alex@contoso.test",
                    "Alex Wilber",
                    true,
                ),
                user(
                    "8a3c1f52-6d0e-4b7a-9c21-5e4f3a2b1c04",
                    "helpdesk@contoso.test",
                    "Contoso Helpdesk",
                    false,
                ),
            ],
            admins: vec!["megan@contoso.test".into()],
            apps: vec![
                AppRegistrationSeed {
                    client_id: DESKTOP_APP_ID.into(),
                    display_name: "Mailroom Desktop".into(),
                    platform: RedirectPlatform::MobileAndDesktop,
                    redirect_uris: vec!["http://localhost".into()],
                    secrets: vec![],
                    certificates_pem: vec![],
                    delegated_permissions: delegated.clone(),
                    application_permissions: vec![],
                    admin_consented: true,
                },
                AppRegistrationSeed {
                    client_id: WEB_APP_ID.into(),
                    display_name: "Mailroom Web".into(),
                    platform: RedirectPlatform::Web,
                    redirect_uris: vec!["http://localhost".into()],
                    secrets: vec![SecretSeed {
                        id: "5f0c7a21-0000-4000-8000-0000000000a2".into(),
                        value: WEB_APP_SECRET.into(),
                        expires_in_days: 180,
                    }],
                    certificates_pem: vec![],
                    delegated_permissions: delegated,
                    application_permissions: vec![],
                    admin_consented: true,
                },
                AppRegistrationSeed {
                    client_id: DAEMON_APP_ID.into(),
                    display_name: "Mailroom Daemon".into(),
                    platform: RedirectPlatform::None,
                    redirect_uris: vec![],
                    secrets: vec![SecretSeed {
                        id: "5f0c7a21-0000-4000-8000-0000000000a3".into(),
                        value: DAEMON_APP_SECRET.into(),
                        expires_in_days: 180,
                    }],
                    certificates_pem: vec![],
                    delegated_permissions: vec![],
                    application_permissions: vec![
                        "Mail.ReadWrite".into(),
                        "Mail.Send".into(),
                        "Contacts.Read".into(),
                    ],
                    admin_consented: true,
                },
            ],
            settings: IdentitySettings::default(),
        }
    }
}
