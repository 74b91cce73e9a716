//! The PSA integration wizard (the app's *Integration* area, `mailroom psa check`): the steps of
//! HaloPSA's setup guide for a third-party product, done for Mailroom, each verified through
//! the PSA's API with a precise reason when it fails.
//!
//! Steps so far:
//! 1. `connection` — the instance URL, API application and tenant: a token, and the agent the
//!    application acts as (`GET /Agent/me`);
//! 2. `agent` — that agent is an enabled, API-only agent (no licence, no web sign-in), and the
//!    application holds every permission Mailroom uses, each with why. A read permission is
//!    proven by a harmless read (`GET /<resource>?count=1`); a write permission is read from the
//!    token's granted scopes (no read proves it, and Mailroom writes nothing to check it);
//! 3. `scope` — the ticket types, read live: the default type of tickets logged from email
//!    (when a mailbox names none) and the types the ticket tab is added to; each chosen type
//!    still exists.
//!
//! Invariants:
//! - A check never writes to the PSA.
//! - Each step's last result is kept (settings `integration.check.<step>`) so the area shows it
//!   after a restart; saving another PSA connection forgets them all.
//! - A step after a failed `connection` is not run: it says to connect first.

mod access;
mod certificate;
mod end_to_end;
mod resolve;
mod scope;
mod tab;
mod webhook;

use chrono::{DateTime, Utc};
use mailroom_psa::PsaClient;
use serde::{Deserialize, Serialize};

use crate::{Core, CoreError};

pub(crate) use access::{granted, sign_in_fix};
pub use access::{requested_scopes, Permission, PERMISSIONS};
pub(crate) use certificate::{same_thumbprint, CERTIFICATE_KEY};
pub use certificate::{
    write_private_file, CertificateOrigin, CertificateView, GeneratedCertificate,
    WebhookCertificate, GENERATED_VALIDITY_DAYS, PSA_CERTIFICATE_NAME,
};
pub use end_to_end::DELIVERY_WAIT;
pub(crate) use resolve::RESOLVE_KEY;
pub use resolve::{
    ResolveSettings, ResolveView, StatusChoice, DEFAULT_CLOSE_PHRASES, RESOLVE_ACTION,
};
pub(crate) use scope::SCOPE_KEY;
pub use scope::{ScopeSettings, ScopeView, TicketTypeChoice};
pub use webhook::PSA_WEBHOOK_NAME;

/// Settings key prefix of the kept results.
const RESULT_KEY: &str = "integration.check.";

/// A step of the wizard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Connection,
    Agent,
    Scope,
    Tab,
    Resolve,
    Certificate,
    Webhook,
    Test,
}

impl Step {
    /// Every step, in the wizard's order.
    pub const ALL: [Step; 8] = [
        Step::Connection,
        Step::Agent,
        Step::Scope,
        Step::Tab,
        Step::Resolve,
        Step::Certificate,
        Step::Webhook,
        Step::Test,
    ];

    /// The stable id (`connection`, `agent`).
    pub fn id(self) -> &'static str {
        match self {
            Step::Connection => "connection",
            Step::Agent => "agent",
            Step::Scope => "scope",
            Step::Tab => "tab",
            Step::Resolve => "resolve",
            Step::Certificate => "certificate",
            Step::Webhook => "webhook",
            Step::Test => "test",
        }
    }

    /// The step's title, as the wizard shows it.
    pub fn title(self) -> &'static str {
        match self {
            Step::Connection => "Connection",
            Step::Agent => "Agent, API application and permissions",
            Step::Scope => "Scope: ticket types",
            Step::Tab => "Ticket tab",
            Step::Resolve => "Resolve action",
            Step::Certificate => "Webhook certificate",
            Step::Webhook => "PSA webhook",
            Step::Test => "End-to-end test",
        }
    }

    /// A step by its id.
    pub fn parse(id: &str) -> Result<Step, CoreError> {
        Step::ALL
            .into_iter()
            .find(|s| s.id() == id.trim())
            .ok_or_else(|| {
                CoreError::InvalidInput(format!(
                    "'{id}' is not a step of the integration; the steps are: {}",
                    Step::ALL.map(Step::id).join(", ")
                ))
            })
    }
}

/// One thing a step verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckItem {
    /// Stable id within the step (`sign_in`, `api_only`, `scope:read:tickets`, …).
    pub id: String,
    pub label: String,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to change, when it failed.
    pub fix: Option<String>,
    /// Why Mailroom needs it (permissions).
    pub why: Option<String>,
    /// Not needed for Mailroom to work (only for an optional feature).
    pub optional: bool,
}

impl CheckItem {
    fn ok(id: &str, label: &str, detail: impl Into<String>) -> CheckItem {
        CheckItem {
            id: id.into(),
            label: label.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
            why: None,
            optional: false,
        }
    }

    fn failed(
        id: &str,
        label: &str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> CheckItem {
        CheckItem {
            id: id.into(),
            label: label.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
            why: None,
            optional: false,
        }
    }
}

/// The result of checking one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub step: Step,
    /// Every required item passed.
    pub ok: bool,
    /// One line: what is done, or the first thing to fix.
    pub summary: String,
    pub items: Vec<CheckItem>,
    pub checked_at: DateTime<Utc>,
}

impl StepResult {
    fn new(step: Step, items: Vec<CheckItem>, now: DateTime<Utc>) -> StepResult {
        let first_failure = items.iter().find(|i| !i.ok && !i.optional);
        let summary = match first_failure {
            None => match step {
                Step::Connection => "Connected".to_string(),
                Step::Agent => "The agent and its permissions are as Mailroom needs".to_string(),
                Step::Scope => "The chosen ticket types exist".to_string(),
                Step::Tab => "Mailroom's tab shows in the chosen ticket types".to_string(),
                Step::Resolve => format!("\"{RESOLVE_ACTION}\" is set up as Mailroom needs"),
                Step::Test => "Every link of the chain works".to_string(),
                Step::Webhook => "HaloPSA posts its ticket events to Mailroom, signed".to_string(),
                Step::Certificate => {
                    format!("HaloPSA holds Mailroom's certificate as \"{PSA_CERTIFICATE_NAME}\"")
                }
            },
            Some(item) => format!("{}: {}", item.label, item.detail),
        };
        StepResult {
            step,
            ok: first_failure.is_none(),
            summary,
            items,
            checked_at: now,
        }
    }
}

/// A step as the wizard shows it: its title and its last result, if it was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepState {
    pub step: Step,
    pub title: &'static str,
    pub result: Option<StepResult>,
}

/// The wizard: whether a PSA connection is saved, and every step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntegrationStatus {
    pub connected: bool,
    pub steps: Vec<StepState>,
    /// The permissions Mailroom needs (for the agent step's instructions).
    pub permissions: &'static [Permission],
}

/// A permission (HaloPSA API application scope) Mailroom uses.
/// The clients of one check run, each signing in (once) on first use: `psa` asks for the
/// permissions mail processing uses, `admin` for `admin` alone (configuration: custom tabs,
/// the optional permission).
struct Clients {
    psa: PsaClient,
    admin: PsaClient,
}

impl Core {
    /// The wizard's state: each step with its last result.
    pub async fn integration_status(&self) -> Result<IntegrationStatus, CoreError> {
        let connected = self.psa_connection().await?.is_some();
        let mut steps = Vec::new();
        for step in Step::ALL {
            let result: Option<StepResult> = self
                .store()
                .setting(&format!("{RESULT_KEY}{}", step.id()))
                .await?;
            steps.push(StepState {
                step,
                title: step.title(),
                result,
            });
        }
        Ok(IntegrationStatus {
            connected,
            steps,
            permissions: PERMISSIONS,
        })
    }

    /// Checks one step through the PSA's API and keeps the result. Fails only when no PSA
    /// connection is saved or the store cannot be written; a PSA that refuses is a failed
    /// check in the result.
    pub async fn check_integration_step(&self, step: Step) -> Result<StepResult, CoreError> {
        let clients = self.check_clients().await?;
        self.run_step(step, &clients).await
    }

    /// A client for *Create it for me*: its tokens ask for `admin` and every permission Mailroom
    /// uses (uploading a certificate also writes an attachment).
    pub(crate) async fn psa_setup_client(&self) -> Result<PsaClient, CoreError> {
        self.psa_client_requesting(Some(&format!("admin {}", requested_scopes())))
            .await
    }

    async fn check_clients(&self) -> Result<Clients, CoreError> {
        Ok(Clients {
            psa: self.psa_client().await?,
            admin: self.psa_client_requesting(Some("admin")).await?,
        })
    }

    /// Checks `step` with the run's clients and keeps the result.
    async fn run_step(&self, step: Step, clients: &Clients) -> Result<StepResult, CoreError> {
        let items = match step {
            Step::Connection => access::check_connection(&clients.psa).await,
            Step::Agent => access::check_agent(clients).await,
            Step::Scope => scope::check_scope(&clients.psa, &self.scope_settings().await?).await,
            Step::Tab => tab::check_tab(self, clients).await?,
            Step::Resolve => resolve::check_resolve(self, &clients.psa).await?,
            Step::Certificate => certificate::check_certificate(self, clients).await?,
            Step::Webhook => webhook::check_webhook(self, clients).await?,
            Step::Test => match self.kept_result(Step::Test).await? {
                // The test writes to the PSA: a check shows its last run, never reruns it.
                Some(result) => return Ok(result),
                None => end_to_end::not_run(),
            },
        };
        self.keep_result(StepResult::new(step, items, Utc::now()))
            .await
    }

    /// Keeps `result` as its step's last result.
    async fn keep_result(&self, result: StepResult) -> Result<StepResult, CoreError> {
        self.store()
            .set_setting(&format!("{RESULT_KEY}{}", result.step.id()), &result)
            .await?;
        Ok(result)
    }

    /// The step's last kept result.
    async fn kept_result(&self, step: Step) -> Result<Option<StepResult>, CoreError> {
        Ok(self
            .store()
            .setting(&format!("{RESULT_KEY}{}", step.id()))
            .await?)
    }

    /// Checks every step in order, with one pair of clients (so one token each for the whole
    /// run); when the connection fails, the later steps say to connect first instead of failing
    /// one by one.
    pub async fn check_integration(&self) -> Result<Vec<StepResult>, CoreError> {
        let clients = self.check_clients().await?;
        let connection = self.run_step(Step::Connection, &clients).await?;
        let mut results = vec![connection.clone()];
        for step in Step::ALL.into_iter().skip(1) {
            if connection.ok {
                results.push(self.run_step(step, &clients).await?);
            } else {
                let result = StepResult::new(
                    step,
                    vec![CheckItem::failed(
                        "connection",
                        "Connection",
                        "Mailroom cannot sign in to the PSA yet",
                        "Fix the connection (step 1) first.",
                    )],
                    Utc::now(),
                );
                self.store()
                    .set_setting(&format!("{RESULT_KEY}{}", step.id()), &result)
                    .await?;
                results.push(result);
            }
        }
        Ok(results)
    }

    /// Forgets every kept result (another PSA connection was saved).
    pub(crate) async fn forget_integration_checks(&self) -> Result<(), CoreError> {
        self.store().delete_settings_prefixed(RESULT_KEY).await?;
        Ok(())
    }
}

/// Whether a URL the PSA holds is Mailroom's `ours` (case, spaces and a trailing `/` aside;
/// a query string the admin added in the PSA, like the tab's `?ticket_id=`, too).
pub(super) fn same_url(theirs: &str, ours: &str) -> bool {
    let clean = |u: &str| u.trim().trim_end_matches('/').to_ascii_lowercase();
    let bare = theirs.split('?').next().unwrap_or(theirs);
    clean(theirs) == clean(ours) || clean(bare) == clean(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_covers_everything_and_all_standard_everything_but_admin() {
        let scopes = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(granted(&scopes(&["all"]), "admin"));
        assert!(granted(&scopes(&["all:standard"]), "edit:tickets"));
        assert!(!granted(&scopes(&["all:standard"]), "admin"));
        assert!(granted(&scopes(&["READ:tickets"]), "read:tickets"));
        assert!(!granted(&scopes(&["read:tickets"]), "edit:tickets"));
    }

    #[test]
    fn steps_parse_by_id_and_say_which_exist() {
        assert_eq!(Step::parse(" agent ").unwrap(), Step::Agent);
        let err = Step::parse("hook").unwrap_err().to_string();
        assert!(
            err.contains("connection, agent, scope, tab, resolve, certificate, webhook, test"),
            "{err}"
        );
    }

    #[test]
    fn a_step_is_ok_when_only_optional_items_failed() {
        let mut optional = CheckItem::failed(
            "scope:admin",
            "Permission admin",
            "Not granted",
            "Allow admin.",
        );
        optional.optional = true;
        let result = StepResult::new(
            Step::Agent,
            vec![
                CheckItem::ok("api_only", "The agent is API-only", "yes"),
                optional,
            ],
            Utc::now(),
        );
        assert!(result.ok);
        let failed = StepResult::new(
            Step::Agent,
            vec![CheckItem::failed(
                "api_only",
                "The agent is API-only",
                "no",
                "Make it so.",
            )],
            Utc::now(),
        );
        assert!(!failed.ok);
        assert_eq!(failed.summary, "The agent is API-only: no");
    }

    #[test]
    fn urls_the_psa_holds_match_mailrooms() {
        let ours = "http://127.0.0.1:8787/halo/tab";
        assert!(same_url(" HTTP://127.0.0.1:8787/halo/tab/ ", ours));
        assert!(same_url(
            "http://127.0.0.1:8787/halo/tab?ticket_id=$FAULTID",
            ours
        ));
        assert!(!same_url("http://127.0.0.1:8787/halo/webhook", ours));
    }
}
