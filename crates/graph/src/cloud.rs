//! National clouds and app registrations.

use std::fmt;

use url::Url;

use crate::cert::CertificateCredential;
use crate::secret::Secret;

/// A Microsoft cloud: where the identity platform (authority) and Microsoft Graph live.
///
/// Hosts per the reference §2. Tokens are not interchangeable between clouds, and a `.default`
/// scope must name the cloud's own Graph host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cloud {
    /// Worldwide (also M365 GCC): `login.microsoftonline.com`, `graph.microsoft.com`.
    Global,
    /// US Government L4 (GCC High): `login.microsoftonline.us`, `graph.microsoft.us`.
    UsGovGccHigh,
    /// US Government L5 (DoD): `login.microsoftonline.us`, `dod-graph.microsoft.us`.
    UsGovDod,
    /// China (21Vianet): `login.chinacloudapi.cn`, `microsoftgraph.chinacloudapi.cn`. Microsoft
    /// sources also name `login.partner.microsoftonline.cn`; use [`Cloud::Custom`] for that host.
    China,
    /// Any other pair of roots, e.g. the local sandbox (`http://127.0.0.1:N`).
    Custom {
        /// Authority root without tenant, e.g. `http://127.0.0.1:47110`.
        authority_url: Url,
        /// Graph root without version, e.g. `http://127.0.0.1:47111`.
        graph_url: Url,
    },
}

fn fixed(url: &str) -> Url {
    Url::parse(url).expect("static cloud URL")
}

impl Cloud {
    /// The authority root (scheme + host, no tenant).
    pub fn authority_url(&self) -> Url {
        match self {
            Cloud::Global => fixed("https://login.microsoftonline.com"),
            Cloud::UsGovGccHigh | Cloud::UsGovDod => fixed("https://login.microsoftonline.us"),
            Cloud::China => fixed("https://login.chinacloudapi.cn"),
            Cloud::Custom { authority_url, .. } => authority_url.clone(),
        }
    }

    /// The Microsoft Graph root (no `/v1.0`).
    pub fn graph_url(&self) -> Url {
        match self {
            Cloud::Global => fixed("https://graph.microsoft.com"),
            Cloud::UsGovGccHigh => fixed("https://graph.microsoft.us"),
            Cloud::UsGovDod => fixed("https://dod-graph.microsoft.us"),
            Cloud::China => fixed("https://microsoftgraph.chinacloudapi.cn"),
            Cloud::Custom { graph_url, .. } => graph_url.clone(),
        }
    }

    /// The Graph resource identifier used in fully qualified scopes (`{resource}/.default`).
    /// A [`Cloud::Custom`] emulates the worldwide cloud, so it uses
    /// `https://graph.microsoft.com` as the resource even though requests go to its own URL.
    pub fn graph_resource(&self) -> String {
        match self {
            Cloud::Custom { .. } => "https://graph.microsoft.com".to_string(),
            _ => self.graph_url().as_str().trim_end_matches('/').to_string(),
        }
    }

    /// A stable short name for settings files.
    pub fn name(&self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGovGccHigh => "usgov-gcchigh",
            Cloud::UsGovDod => "usgov-dod",
            Cloud::China => "china",
            Cloud::Custom { .. } => "custom",
        }
    }
}

fn join(root: &Url, path: &str) -> Url {
    let base = root.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/{}", path.trim_start_matches('/'))).expect("joined URL")
}

/// The credential an app registration authenticates with.
#[derive(Clone)]
pub enum ClientCredential {
    /// Public client (Mobile and desktop platform): sends no secret.
    Public,
    /// Confidential client with a client secret *value* (not the secret ID).
    Secret(Secret),
    /// Confidential client with a certificate (client assertion JWT).
    Certificate(Box<CertificateCredential>),
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCredential::Public => f.write_str("Public"),
            ClientCredential::Secret(_) => f.write_str("Secret([redacted])"),
            ClientCredential::Certificate(c) => f
                .debug_tuple("Certificate")
                .field(&c.thumbprint_sha1_hex())
                .finish(),
        }
    }
}

/// An Entra app registration as the client sees it.
#[derive(Debug, Clone)]
pub struct AppRegistration {
    /// Which cloud the app is registered in.
    pub cloud: Cloud,
    /// Directory (tenant) ID or domain. Client credentials need a real tenant, not `common`.
    pub tenant: String,
    /// Application (client) ID.
    pub client_id: String,
    /// How the app authenticates at the token endpoint.
    pub credential: ClientCredential,
}

impl AppRegistration {
    /// `{authority}/{tenant}/oauth2/v2.0/authorize`.
    pub fn authorize_endpoint(&self) -> Url {
        join(
            &self.cloud.authority_url(),
            &format!("{}/oauth2/v2.0/authorize", self.tenant),
        )
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token` (also the `aud` of client assertions).
    pub fn token_endpoint(&self) -> Url {
        join(
            &self.cloud.authority_url(),
            &format!("{}/oauth2/v2.0/token", self.tenant),
        )
    }

    /// Whether the app is a confidential client.
    pub fn is_confidential(&self) -> bool {
        !matches!(self.credential, ClientCredential::Public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_cloud_hosts() {
        assert_eq!(
            Cloud::UsGovDod.graph_url().host_str(),
            Some("dod-graph.microsoft.us")
        );
        assert_eq!(
            Cloud::UsGovGccHigh.authority_url().host_str(),
            Some("login.microsoftonline.us")
        );
        assert_eq!(
            Cloud::China.graph_resource(),
            "https://microsoftgraph.chinacloudapi.cn"
        );
        let app = AppRegistration {
            cloud: Cloud::Custom {
                authority_url: Url::parse("http://127.0.0.1:4000/").unwrap(),
                graph_url: Url::parse("http://127.0.0.1:4001").unwrap(),
            },
            tenant: "t1".into(),
            client_id: "c".into(),
            credential: ClientCredential::Public,
        };
        assert_eq!(
            app.token_endpoint().as_str(),
            "http://127.0.0.1:4000/t1/oauth2/v2.0/token"
        );
        assert_eq!(
            app.authorize_endpoint().as_str(),
            "http://127.0.0.1:4000/t1/oauth2/v2.0/authorize"
        );
    }
}
