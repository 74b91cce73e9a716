//! The Mailroom sandbox: a local Microsoft 365 + HaloPSA tenant for tests, benchmarks and demos.
//!
//! [`Sandbox::start`] brings up four listeners on 127.0.0.1 (ports `N..N+3` with
//! `base_port = Some(N)`, otherwise free ports):
//!
//! 1. the **identity platform** ([`identity`]): OpenID discovery, JWKS, `/authorize` (a real
//!    sign-in/consent page), `/token` and `/adminconsent` with AADSTS errors like Entra's;
//! 2. **Microsoft Graph** (crate `mailroom-graph-sandbox`), which asks the identity platform
//!    (through [`mailroom_graph_sandbox::TokenValidator`]) what each bearer token may do;
//! 3. **HaloPSA** (crate `mailroom-halo-sandbox`);
//! 4. the **control API** ([`control`] documents every route).
//!
//! The first three are wrapped by the [`faults`] middleware (request counters, latency,
//! fail-next-N, dropped connections). With `tls: true` every listener serves HTTPS with a
//! certificate from a CA generated at start ([`Sandbox::ca_certificate_pem`]); MSAL requires
//! HTTPS authorities.
//!
//! # Seed file
//!
//! [`load_seed`] reads JSON with four optional members; a missing member takes the default
//! seed (the tenant of `notes/seed.md`):
//!
//! ```json
//! {
//!   "identity": { "tenantId": "...", "tenantDomain": "contoso.test", "admins": ["megan@contoso.test"],
//!                 "apps": [{ "clientId": "...", "displayName": "...", "platform": "mobileAndDesktop|web|none",
//!                            "redirectUris": ["http://localhost"],
//!                            "secrets": [{"id": "...", "value": "...", "expiresInDays": 180}],
//!                            "certificatesPem": [], "delegatedPermissions": ["Mail.ReadWrite"],
//!                            "applicationPermissions": [], "adminConsented": true }],
//!                 "settings": { "accessTokenLifetimeSecs": 4500, "userConsentAllowed": true } },
//!   "graph": { ... mailroom_graph_sandbox::GraphSeed ... },
//!   "halo": { ... mailroom_halo_sandbox::HaloSeed ... },
//!   "faults": [ { "service": "graph", "path": "/v1.0/users/*/messages", "count": 2,
//!                 "action": { "kind": "fail", "status": 429, "retryAfter": 1.5 } } ]
//! }
//! ```
//!
//! The identity platform's users are always taken from the Graph seed (shared mailboxes cannot
//! sign in); `identity.admins` names who may grant admin consent.
//!
//! # Invariants
//! - all time comes from one [`ManualClock`], shared by every service and movable through the
//!   control API;
//! - nothing listens beyond 127.0.0.1;
//! - secrets and tokens are never logged; `Debug` output redacts them.

pub mod control;
pub mod faults;
pub mod identity;
mod server;
pub mod sign_in;
mod tls;

use std::path::Path;
use std::sync::Arc;

use mailroom_clock::{ManualClock, SharedClock};
use mailroom_graph_sandbox::{GraphSandbox, GraphSeed};
use mailroom_halo_sandbox::{HaloSandbox, HaloSeed};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use faults::{FaultAction, FaultRule, Faults, RequestCount, Service};
pub use identity::{IdentityPlatform, IdentitySeed};

/// Default first port of `mailroom sandbox`.
pub const DEFAULT_BASE_PORT: u16 = 47110;

/// Everything the sandbox starts from. A missing member takes the default seed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxSeed {
    /// Tenant, app registrations, identity settings.
    pub identity: IdentitySeed,
    /// Graph directory, mail, contacts, grants, policies.
    pub graph: GraphSeed,
    /// HaloPSA records.
    pub halo: HaloSeed,
    /// Fault rules active from the start.
    pub faults: Vec<FaultRule>,
}

/// How to start the sandbox.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// Identity on N, Graph on N+1, PSA on N+2, control on N+3; free ports when `None`.
    pub base_port: Option<u16>,
    /// The seed; the default tenant when `None`.
    pub seed: Option<SandboxSeed>,
    /// Serve HTTPS with a generated local CA.
    pub tls: bool,
    /// The clock shared by all services; a fresh wall-clock-following one when `None`.
    pub clock: Option<Arc<ManualClock>>,
    /// Accept `http://` notification URLs on loopback hosts, so that Graph's change
    /// notifications reach a receiver on this machine. Graph itself requires HTTPS (a real
    /// deployment puts an HTTPS tunnel or relay in front of the receiver), so this is off unless
    /// asked for: `--sandbox` mode, `mailroom sandbox --loopback-webhooks` and tests that
    /// receive notifications turn it on.
    pub loopback_webhooks: bool,
}

/// Errors starting the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source}; choose another --port or stop the program using it")]
    Bind {
        /// The port.
        port: u16,
        /// The cause.
        source: std::io::Error,
    },
    /// The seed file could not be read.
    #[error("cannot read the seed file {path}: {source}")]
    SeedRead {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The seed is not valid.
    #[error("the sandbox seed is invalid: {0}; fix the seed file (see the mailroom-sandbox crate docs for its format)")]
    Seed(String),
    /// TLS material could not be generated.
    #[error("cannot generate the sandbox TLS certificates: {0}")]
    Tls(String),
    /// The identity platform failed to start.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// Waiting for Ctrl-C failed.
    #[error("cannot wait for Ctrl-C: {0}")]
    Signal(std::io::Error),
}

/// Credentials of one app registration.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppCredentials {
    /// Display name.
    pub display_name: String,
    /// Application (client) id.
    pub client_id: String,
    /// Secret value (confidential apps).
    pub client_secret: Option<String>,
    /// Secret id (what the portal shows; NOT the secret).
    pub client_secret_id: Option<String>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("display_name", &self.display_name)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A directory user.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantUser {
    /// Object id.
    pub id: String,
    /// UPN / primary address.
    pub user_principal_name: String,
    /// Display name.
    pub display_name: String,
    /// Shared mailbox (cannot sign in).
    pub shared: bool,
}

/// The HaloPSA API application credentials.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PsaCredentials {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Hosted tenant name.
    pub tenant: String,
}

impl std::fmt::Debug for PsaCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PsaCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// Facts about the seeded tenant that clients and tests need.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeededTenant {
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Verified domain.
    pub domain: String,
    /// Display name.
    pub display_name: String,
    /// Directory users (including shared mailboxes).
    pub users: Vec<TenantUser>,
    /// UPN of the (first) shared mailbox, if any.
    pub shared_mailbox: Option<String>,
    /// The mailbox an admin names as the canary the webhooks application must not reach
    /// (the CFO's, when the seed has it). Nothing restricts the application at start.
    pub canary_mailbox: Option<String>,
    /// "Mailroom Desktop" (public client).
    pub desktop_app: AppCredentials,
    /// "Mailroom Web" (confidential, Web platform).
    pub web_app: AppCredentials,
    /// "Mailroom Daemon" (application permissions).
    pub daemon_app: AppCredentials,
    /// HaloPSA API application.
    pub psa: PsaCredentials,
    /// SHA-1 hex thumbprints of certificates registered on the daemon app at start.
    pub daemon_certificate_thumbprints: Vec<String>,
}

/// Service URLs.
#[derive(Debug, Clone)]
pub(crate) struct Urls {
    authority: String,
    graph: String,
    psa: String,
    control: String,
}

/// State shared with the control API.
#[derive(Clone)]
pub(crate) struct Shared {
    identity: IdentityPlatform,
    graph: GraphSandbox,
    halo: HaloSandbox,
    faults: Faults,
    clock: Arc<ManualClock>,
    urls: Arc<Urls>,
    tenant: Arc<SeededTenant>,
}

/// A running sandbox.
pub struct Sandbox {
    shared: Shared,
    ca_pem: Option<String>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("urls", &self.shared.urls)
            .finish_non_exhaustive()
    }
}

/// Reads a JSON seed file (format in the crate docs).
pub fn load_seed(path: &Path) -> Result<SandboxSeed, SandboxError> {
    let text = std::fs::read_to_string(path).map_err(|source| SandboxError::SeedRead {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| SandboxError::Seed(format!("{}: {e}", path.display())))
}

fn app_credentials(idp_seed: &IdentitySeed, client_id: &str) -> AppCredentials {
    let app = idp_seed.apps.iter().find(|a| a.client_id == client_id);
    AppCredentials {
        display_name: app.map(|a| a.display_name.clone()).unwrap_or_default(),
        client_id: client_id.to_owned(),
        client_secret: app.and_then(|a| a.secrets.first()).map(|s| s.value.clone()),
        client_secret_id: app.and_then(|a| a.secrets.first()).map(|s| s.id.clone()),
        redirect_uris: app.map(|a| a.redirect_uris.clone()).unwrap_or_default(),
    }
}

impl Sandbox {
    /// Starts all services. Listeners are bound before this returns.
    pub async fn start(opts: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let clock = opts.clock.clone().unwrap_or_default();
        let shared_clock: SharedClock = clock.clone();
        let seed = opts.seed.clone().unwrap_or_default();

        // Identity users come from the Graph directory.
        let mut id_seed = seed.identity.clone();
        if !seed.graph.users.is_empty() {
            id_seed.users = seed
                .graph
                .users
                .iter()
                .map(|u| identity::IdentityUser {
                    id: u.id.clone(),
                    user_principal_name: u.user_principal_name.clone(),
                    display_name: u.display_name.clone(),
                    can_sign_in: !u.shared,
                })
                .collect();
        }
        let identity = IdentityPlatform::new(id_seed.clone(), shared_clock.clone())?;

        let ports: [u16; 4] = match opts.base_port {
            Some(n) => [n, n + 1, n + 2, n + 3],
            None => [0; 4],
        };
        let mut listeners = Vec::new();
        for p in ports {
            let (l, a) = server::bind(p)
                .await
                .map_err(|source| SandboxError::Bind { port: p, source })?;
            listeners.push((l, a));
        }
        let tls = if opts.tls {
            Some(tls::generate().map_err(SandboxError::Tls)?)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = |i: usize| format!("{scheme}://127.0.0.1:{}", listeners[i].1.port());
        let urls = Urls {
            authority: url(0),
            graph: url(1),
            psa: url(2),
            control: url(3),
        };
        identity.set_base_url(&urls.authority);

        let graph = GraphSandbox::try_new(
            seed.graph.clone(),
            identity.validator(),
            shared_clock.clone(),
        )
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
        graph.set_base_url(&urls.graph);
        if opts.loopback_webhooks {
            let mut behaviour = graph.behaviour();
            behaviour.loopback_http_notification_urls = true;
            graph.set_behaviour(behaviour);
        }
        let halo = HaloSandbox::try_new(seed.halo.clone(), shared_clock.clone())
            .map_err(|e| SandboxError::Seed(e.to_string()))?;
        let faults = Faults::new();
        faults.attach_identity(identity.clone());
        for rule in &seed.faults {
            faults
                .add(rule.clone())
                .map_err(|e| SandboxError::Seed(e.to_string()))?;
        }

        let halo_creds = halo.credentials();
        let users: Vec<TenantUser> = seed
            .graph
            .users
            .iter()
            .map(|u| TenantUser {
                id: u.id.clone(),
                user_principal_name: u.user_principal_name.clone(),
                display_name: u.display_name.clone(),
                shared: u.shared,
            })
            .collect();
        let daemon_thumbs = identity
            .apps()
            .into_iter()
            .find(|a| a.client_id == identity::DAEMON_APP_ID)
            .map(|a| a.certificate_thumbprints)
            .unwrap_or_default();
        let tenant = SeededTenant {
            tenant_id: id_seed.tenant_id.clone(),
            domain: id_seed.tenant_domain.clone(),
            display_name: id_seed.tenant_display_name.clone(),
            shared_mailbox: users
                .iter()
                .find(|u| u.shared)
                .map(|u| u.user_principal_name.clone()),
            canary_mailbox: users
                .iter()
                .find(|u| {
                    u.user_principal_name
                        .eq_ignore_ascii_case(mailroom_graph_sandbox::seed::CANARY_MAILBOX)
                })
                .map(|u| u.user_principal_name.clone()),
            users,
            desktop_app: app_credentials(&id_seed, identity::DESKTOP_APP_ID),
            web_app: app_credentials(&id_seed, identity::WEB_APP_ID),
            daemon_app: app_credentials(&id_seed, identity::DAEMON_APP_ID),
            psa: PsaCredentials {
                client_id: halo_creds.client_id.clone(),
                client_secret: halo_creds.client_secret.clone(),
                tenant: halo_creds.tenant.clone(),
            },
            daemon_certificate_thumbprints: daemon_thumbs,
        };

        let shared = Shared {
            identity: identity.clone(),
            graph: graph.clone(),
            halo: halo.clone(),
            faults: faults.clone(),
            clock: clock.clone(),
            urls: Arc::new(urls),
            tenant: Arc::new(tenant),
        };
        let routers = [
            faults.layer(Service::Identity, identity.router()),
            faults.layer(Service::Graph, graph.router()),
            faults.layer(Service::Psa, halo.router()),
            control::router(shared.clone()),
        ];
        let shutdown = CancellationToken::new();
        let server_config = tls.as_ref().map(|t| t.server_config.clone());
        let mut tasks = Vec::new();
        for ((l, _), router) in listeners.into_iter().zip(routers) {
            tasks.push(server::serve(
                l,
                router,
                server_config.clone(),
                shutdown.clone(),
            ));
        }
        Ok(Sandbox {
            shared,
            ca_pem: tls.map(|t| t.ca_pem),
            shutdown,
            tasks,
        })
    }

    /// The identity authority host, e.g. `http://127.0.0.1:47110` (append `/{tenant}/oauth2/v2.0/...`).
    pub fn authority_url(&self) -> String {
        self.shared.urls.authority.clone()
    }

    /// The Graph root (append `/v1.0/...`).
    pub fn graph_url(&self) -> String {
        self.shared.urls.graph.clone()
    }

    /// The HaloPSA root (`/auth/token`, `/api/...`).
    pub fn psa_url(&self) -> String {
        self.shared.urls.psa.clone()
    }

    /// The control API root.
    pub fn control_url(&self) -> String {
        self.shared.urls.control.clone()
    }

    /// The seeded tenant.
    pub fn tenant(&self) -> &SeededTenant {
        &self.shared.tenant
    }

    /// The identity platform.
    pub fn identity(&self) -> &IdentityPlatform {
        &self.shared.identity
    }

    /// The emulated Graph.
    pub fn graph(&self) -> &GraphSandbox {
        &self.shared.graph
    }

    /// The emulated HaloPSA.
    pub fn halo(&self) -> &HaloSandbox {
        &self.shared.halo
    }

    /// Fault knobs and request counters.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The shared clock.
    pub fn clock(&self) -> Arc<ManualClock> {
        self.shared.clock.clone()
    }

    /// The CA certificate (PEM) clients must trust when started with `tls: true`.
    pub fn ca_certificate_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Human-readable overview (printed by `mailroom sandbox`). Includes the sandbox's own
    /// seeded credentials, which are not secrets outside the sandbox.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let t = self.tenant();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Mailroom sandbox — tenant {} ({}, {})",
            t.display_name, t.domain, t.tenant_id
        );
        let _ = writeln!(
            s,
            "  OpenID configuration: {}",
            self.identity().openid_configuration_url()
        );
        let _ = writeln!(
            s,
            "  Authority:            {}/{}",
            self.authority_url(),
            t.tenant_id
        );
        let _ = writeln!(s, "  Graph root:           {}/v1.0", self.graph_url());
        let _ = writeln!(
            s,
            "  HaloPSA:              {} (token: {}/auth/token)",
            self.psa_url(),
            self.psa_url()
        );
        let _ = writeln!(s, "  Control API:          {}", self.control_url());
        if self.ca_pem.is_some() {
            let _ = writeln!(
                s,
                "  TLS: HTTPS with a generated local CA (GET {}/ is HTTPS too)",
                self.control_url()
            );
        }
        let _ = writeln!(s, "App registrations:");
        for a in [&t.desktop_app, &t.web_app, &t.daemon_app] {
            let _ = writeln!(s, "  {:<17} client id {}", a.display_name, a.client_id);
            if !a.redirect_uris.is_empty() {
                let _ = writeln!(s, "  {:<17} redirect  {}", "", a.redirect_uris.join(", "));
            }
            if let Some(sec) = &a.client_secret {
                let _ = writeln!(s, "  {:<17} secret    {sec}", "");
            }
        }
        let _ = writeln!(
            s,
            "HaloPSA API application: client id {}, secret {}, tenant {}",
            t.psa.client_id, t.psa.client_secret, t.psa.tenant
        );
        let _ = writeln!(s, "Mailboxes:");
        for u in &t.users {
            let _ = writeln!(
                s,
                "  {:<24} {}{}",
                u.user_principal_name,
                u.display_name,
                if u.shared {
                    " (shared, cannot sign in)"
                } else if t.canary_mailbox.as_ref() == Some(&u.user_principal_name) {
                    " (canary: keep it out of Mailroom Daemon's reach)"
                } else {
                    ""
                }
            );
        }
        s
    }

    /// Stops all listeners (in-flight requests get a short grace period).
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// For the CLI: start, print the summary, wait for Ctrl-C, shut down.
pub async fn run_until_ctrl_c(opts: SandboxOptions) -> Result<(), SandboxError> {
    let sandbox = Sandbox::start(opts).await?;
    // The handler is in place before "Press Ctrl-C" is printed: a Ctrl-C
    // that follows the prompt at once must stop the sandbox cleanly, not
    // kill it with the default disposition.
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(SandboxError::Signal)?;
    #[cfg(not(unix))]
    let mut interrupt = tokio::signal::windows::ctrl_c().map_err(SandboxError::Signal)?;
    println!("{}", sandbox.summary());
    if let Some(ca) = sandbox.ca_certificate_pem() {
        println!("CA certificate to trust:\n{ca}");
    }
    println!("Press Ctrl-C to stop.");
    interrupt.recv().await;
    sandbox.shutdown().await;
    Ok(())
}
