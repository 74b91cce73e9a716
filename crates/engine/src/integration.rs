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

use chrono::{DateTime, Utc};
use mailroom_psa::{ErrorKind, PsaClient, PsaError};
use serde::{Deserialize, Serialize};

use crate::{Core, CoreError};

/// Settings key prefix of the kept results.
const RESULT_KEY: &str = "integration.check.";

/// Settings key of the scope ([`ScopeSettings`]).
pub(crate) const SCOPE_KEY: &str = "integration.scope";

/// Settings key of [`ResolveSettings`].
const RESOLVE_KEY: &str = "integration.resolve";

/// The custom action Mailroom closes tickets with (outcome and button name, character exact).
pub const RESOLVE_ACTION: &str = "Mailroom resolve";

/// The resolve action's settings (step 5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResolveSettings {
    /// The status the action sets: the instance's closed/resolved status.
    pub status_id: Option<i64>,
}

/// A ticket status as the resolve step offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusChoice {
    pub id: i64,
    pub name: String,
}

/// The resolve step's form: the chosen status and the PSA's statuses, read live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolveView {
    pub settings: ResolveSettings,
    pub statuses: Vec<StatusChoice>,
}

/// The ticket types Mailroom works with (step 3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScopeSettings {
    /// The type of tickets logged from email when the mailbox names none (`None`: HaloPSA's
    /// own default type).
    pub default_ticket_type_id: Option<i64>,
    /// The ticket types Mailroom's ticket tab is added to.
    pub tab_ticket_type_ids: Vec<i64>,
}

/// A ticket type as the scope step offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketTypeChoice {
    pub id: i64,
    pub name: String,
    /// Agents may pick it (`agentscanselect`).
    pub agents_can_select: bool,
}

/// The scope step's form: the chosen settings and the PSA's ticket types, read live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeView {
    pub settings: ScopeSettings,
    pub ticket_types: Vec<TicketTypeChoice>,
}

/// A step of the wizard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Connection,
    Agent,
    Scope,
    Tab,
    Resolve,
}

impl Step {
    /// Every step, in the wizard's order.
    pub const ALL: [Step; 5] = [
        Step::Connection,
        Step::Agent,
        Step::Scope,
        Step::Tab,
        Step::Resolve,
    ];

    /// The stable id (`connection`, `agent`).
    pub fn id(self) -> &'static str {
        match self {
            Step::Connection => "connection",
            Step::Agent => "agent",
            Step::Scope => "scope",
            Step::Tab => "tab",
            Step::Resolve => "resolve",
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Permission {
    pub scope: &'static str,
    /// What Mailroom does with it.
    pub why: &'static str,
    /// Only *Create it for me* needs it; every step can be done by hand without it.
    pub optional: bool,
    /// A list endpoint that proves a read permission (`GET /<resource>?count=1`).
    #[serde(skip)]
    probe: Option<&'static str>,
}

/// What Mailroom calls in the PSA, by permission. Derived from the client's calls: tickets and
/// actions (threading, new tickets, replies), attachments, users, clients and sites (sender
/// matching, new users, contact imports); the integration objects need `admin`.
pub const PERMISSIONS: &[Permission] = &[
    Permission {
        scope: "read:tickets",
        why: "Find the ticket a reply belongs to (by its Message-ID), read its actions and attachments, and the ticket types, statuses and outcomes",
        optional: false,
        probe: Some("Tickets"),
    },
    Permission {
        scope: "edit:tickets",
        why: "Log a ticket for each new email, add an action for each reply, upload attachments",
        optional: false,
        probe: None,
    },
    Permission {
        scope: "read:customers",
        why: "Match each sender to a user, site and client",
        optional: false,
        probe: Some("Client"),
    },
    Permission {
        scope: "edit:customers",
        why: "Create users for new senders of known domains, import Outlook contacts as users",
        optional: false,
        probe: None,
    },
    Permission {
        scope: "admin",
        why: "Only for \"Create it for me\": the ticket tab, the PSA webhook and its certificate, the resolve action (without it, do those steps by hand)",
        optional: true,
        probe: None,
    },
];

/// The scopes each token asks for: every permission Mailroom needs to work (not the optional
/// `admin`, which an application set up by hand does not hold; the checks ask for it alone).
pub fn requested_scopes() -> String {
    PERMISSIONS
        .iter()
        .filter(|p| !p.optional)
        .map(|p| p.scope)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the token's granted scopes cover `scope` (HaloPSA: `all` covers everything,
/// `all:standard` everything but `admin`).
pub(crate) fn granted(scopes: &[String], scope: &str) -> bool {
    scopes.iter().any(|g| {
        g.eq_ignore_ascii_case(scope)
            || g.eq_ignore_ascii_case("all")
            || (g.eq_ignore_ascii_case("all:standard") && scope != "admin")
    })
}

/// The menu path of the API application, for fixes.
const APPLICATION_PATH: &str = "Configuration > Integrations > HaloPSA API > View Applications";

/// What to change when signing in as the API application fails (also `psa_check`).
pub(crate) fn sign_in_fix(error: &PsaError) -> String {
    match error.kind {
        ErrorKind::Unauthorized => format!(
            "Check the Client ID and secret of the API application ({APPLICATION_PATH}; its authentication method must be \"Client ID and Secret (Services)\"), and the tenant for hosted instances."
        ),
        ErrorKind::Forbidden => format!(
            "The application may not sign in: on {APPLICATION_PATH}, make sure it is active and its Login Type is Agent."
        ),
        ErrorKind::Transport => {
            "Check the instance URL (https://yourcompany.halopsa.com), the network, any proxy and the certificate of the instance.".into()
        }
        _ => "Check the instance URL and the API application, then check again.".into(),
    }
}

async fn check_connection(client: &PsaClient) -> Vec<CheckItem> {
    match client.probe().await {
        Err(e) => vec![CheckItem::failed(
            "sign_in",
            "Sign in as the API application",
            e.to_string(),
            sign_in_fix(&e),
        )],
        Ok(probe) => {
            let agent = probe
                .agent
                .name
                .clone()
                .unwrap_or_else(|| format!("agent {}", probe.agent.id));
            vec![CheckItem::ok(
                "sign_in",
                "Sign in as the API application",
                format!("Signed in at {}; the API acts as {agent}", probe.token_url),
            )]
        }
    }
}

/// The clients of one check run, each signing in (once) on first use: `psa` asks for the
/// permissions mail processing uses, `admin` for `admin` alone (configuration: custom tabs,
/// the optional permission).
struct Clients {
    psa: PsaClient,
    admin: PsaClient,
}

async fn check_agent(clients: &Clients) -> Vec<CheckItem> {
    let client = &clients.psa;
    let (agent, granted_scopes) = match client.me().await {
        Ok(agent) => (agent, client.granted_scopes().await.unwrap_or_default()),
        Err(e) => {
            return vec![CheckItem::failed(
                "sign_in",
                "Sign in as the API application",
                e.to_string(),
                sign_in_fix(&e),
            )]
        }
    };
    let mut items = Vec::new();
    let agent = &agent;
    let name = agent
        .name
        .clone()
        .unwrap_or_else(|| format!("agent {}", agent.id));
    let agents_path = "Configuration > Teams & Agents > Agents";
    items.push(if agent.isdisabled == Some(true) {
        CheckItem::failed(
            "agent_enabled",
            "The agent is enabled",
            format!("{name} is disabled"),
            format!("Enable {name} ({agents_path}), or choose another agent under \"Agent to log in as\" on the API application."),
        )
    } else {
        CheckItem::ok("agent_enabled", "The agent is enabled", format!("{name} is enabled"))
    });
    items.push(if agent.isapiagent == Some(true) {
        CheckItem::ok(
            "api_only",
            "The agent is API-only",
            format!("{name} is an API-only agent"),
        )
    } else {
        CheckItem::failed(
            "api_only",
            "The agent is API-only",
            format!("{name} is not an API-only agent: it uses a licence and can sign in to the web app"),
            format!("Create an agent for Mailroom ({agents_path} > New) with \"Is an API-only Agent\" set to Yes, and choose it under \"Agent to log in as\" on the API application ({APPLICATION_PATH})."),
        )
    });
    for permission in PERMISSIONS {
        let id = format!("scope:{}", permission.scope);
        let label = format!("Permission {}", permission.scope);
        let in_token = if permission.optional {
            // Not in the mail-processing token: a token that asks for it alone (none when
            // HaloPSA refuses it).
            let admin = clients.admin.granted_scopes().await.unwrap_or_default();
            granted(&admin, permission.scope)
        } else {
            granted(&granted_scopes, permission.scope)
        };
        let read = match permission.probe {
            Some(resource) if in_token => Some(client.can_read(resource).await),
            _ => None,
        };
        let fix = format!(
            "On the API application's Permissions tab ({APPLICATION_PATH}), allow {}.",
            permission.scope
        );
        let mut item = match (in_token, read) {
            (false, _) if permission.optional => CheckItem::failed(
                &id,
                &label,
                "Not granted: HaloPSA refuses a token for it",
                fix,
            ),
            (false, _) => CheckItem::failed(
                &id,
                &label,
                format!(
                    "Not granted (the token holds: {})",
                    if granted_scopes.is_empty() {
                        "nothing".to_string()
                    } else {
                        granted_scopes.join(" ")
                    }
                ),
                fix,
            ),
            (true, Some(Err(e))) => CheckItem::failed(
                &id,
                &label,
                format!(
                    "Granted, but reading {} failed: {e}",
                    permission.probe.unwrap_or("")
                ),
                if e.kind == ErrorKind::Forbidden {
                    format!("{fix} The agent's role must also allow it ({agents_path} > {name} > Roles).")
                } else {
                    "Check again; if it keeps failing, check the PSA's status.".into()
                },
            ),
            (true, Some(Ok(()))) => CheckItem::ok(
                &id,
                &label,
                format!("Granted; reading {} works", permission.probe.unwrap_or("")),
            ),
            (true, None) => CheckItem::ok(&id, &label, "Granted"),
        };
        item.why = Some(permission.why.into());
        item.optional = permission.optional;
        items.push(item);
    }
    items
}

async fn ticket_type_choices(client: &PsaClient) -> Result<Vec<TicketTypeChoice>, PsaError> {
    Ok(client
        .ticket_types()
        .await?
        .into_iter()
        .map(|t| TicketTypeChoice {
            id: t.id,
            name: t.name.unwrap_or_else(|| format!("Ticket type {}", t.id)),
            agents_can_select: t.agentscanselect.unwrap_or(true),
        })
        .collect())
}

fn type_name(types: &[TicketTypeChoice], id: i64) -> Option<&str> {
    types.iter().find(|t| t.id == id).map(|t| t.name.as_str())
}

const TICKET_TYPES_PATH: &str = "Configuration > Tickets > Ticket Types";

async fn check_scope(client: &PsaClient, settings: &ScopeSettings) -> Vec<CheckItem> {
    let types = match ticket_type_choices(client).await {
        Ok(types) => types,
        Err(e) => {
            return vec![CheckItem::failed(
                "ticket_types",
                "Ticket types",
                e.to_string(),
                "Allow read:tickets on the API application (step 2), then check again.",
            )]
        }
    };
    let mut items = vec![if types.is_empty() {
        CheckItem::failed(
            "ticket_types",
            "Ticket types",
            "The API agent sees no ticket type, so no ticket can be logged",
            format!("Make at least one ticket type available to the agent ({TICKET_TYPES_PATH})."),
        )
    } else {
        CheckItem::ok(
            "ticket_types",
            "Ticket types",
            format!("{} ticket type(s) in HaloPSA", types.len()),
        )
    }];
    items.push(match settings.default_ticket_type_id {
        None => CheckItem::ok(
            "default_ticket_type",
            "Default type of tickets from email",
            "HaloPSA's own default ticket type (no default chosen)",
        ),
        Some(id) => match type_name(&types, id) {
            Some(name) => CheckItem::ok(
                "default_ticket_type",
                "Default type of tickets from email",
                name.to_string(),
            ),
            None => CheckItem::failed(
                "default_ticket_type",
                "Default type of tickets from email",
                format!("Ticket type {id} no longer exists in HaloPSA"),
                "Choose another default ticket type in this step and save.",
            ),
        },
    });
    let missing: Vec<String> = settings
        .tab_ticket_type_ids
        .iter()
        .filter(|id| type_name(&types, **id).is_none())
        .map(|id| id.to_string())
        .collect();
    let mut tab = if !missing.is_empty() {
        CheckItem::failed(
            "tab_ticket_types",
            "Ticket types with Mailroom's tab",
            format!(
                "Ticket type(s) {} no longer exist in HaloPSA",
                missing.join(", ")
            ),
            "Choose the ticket types again in this step and save.",
        )
    } else if settings.tab_ticket_type_ids.is_empty() {
        CheckItem::failed(
            "tab_ticket_types",
            "Ticket types with Mailroom's tab",
            "None chosen",
            "Choose the ticket types whose tickets should show Mailroom's tab (e.g. Incident, Service Request, Problem, Change Request).",
        )
    } else {
        CheckItem::ok(
            "tab_ticket_types",
            "Ticket types with Mailroom's tab",
            settings
                .tab_ticket_type_ids
                .iter()
                .filter_map(|id| type_name(&types, *id))
                .collect::<Vec<_>>()
                .join(", "),
        )
    };
    tab.why = Some("The ticket tab (the next step) is added to these types".into());
    tab.optional = true;
    items.push(tab);
    items
}

const TABS_PATH: &str = "Configuration > Custom Objects > Custom Tabs";

fn same_url(a: &str, b: &str) -> bool {
    let clean = |u: &str| u.trim().trim_end_matches('/').to_ascii_lowercase();
    clean(a) == clean(b) || clean(a.split('?').next().unwrap_or(a)) == clean(b)
}

async fn check_tab(core: &Core, clients: &Clients) -> Result<Vec<CheckItem>, CoreError> {
    let client = &clients.psa;
    let url = core.ticket_tab_url().await?;
    let mut items = Vec::new();
    items.push(match core.ticket_tab_settings().await? {
        Some(settings) => CheckItem::ok(
            "secret",
            "Tab secret saved in Mailroom",
            format!("Saved; the secure URL parameter is checked as {:?}", settings.scheme),
        ),
        None => CheckItem::failed(
            "secret",
            "Tab secret saved in Mailroom",
            "No tab secret saved",
            format!("Copy the custom tab's Iframe secret from HaloPSA ({TABS_PATH}) into this step and save."),
        ),
    });
    // Custom tabs are configuration: reading them takes `admin`.
    let tab = match clients.admin.tabs().await {
        Err(e) => {
            let mut item = CheckItem::failed(
                "psa_tab",
                "Mailroom's tab in HaloPSA",
                format!("Mailroom cannot read the PSA's custom tabs: {e}"),
                format!("Allow admin on the API application to let Mailroom check it, or check by hand that a tab of type Iframe points at {url}."),
            );
            item.optional = matches!(e.kind, ErrorKind::Forbidden | ErrorKind::Unauthorized);
            items.push(item);
            None
        }
        Ok(tabs) => match tabs
            .into_iter()
            .find(|t| t.url.as_deref().is_some_and(|u| same_url(u, &url)))
        {
            Some(tab) => {
                items.push(CheckItem::ok(
                    "psa_tab",
                    "Mailroom's tab in HaloPSA",
                    format!(
                        "Tab \"{}\" points at {url}",
                        tab.name.clone().unwrap_or_default()
                    ),
                ));
                Some(tab)
            }
            None => {
                items.push(CheckItem::failed(
                    "psa_tab",
                    "Mailroom's tab in HaloPSA",
                    format!("No custom tab points at {url}"),
                    format!("In {TABS_PATH}, create a tab named Mailroom of type Iframe with that Url and \"Send secure URL parameter\" ticked."),
                ));
                None
            }
        },
    };
    if let Some(tab) = tab {
        let scope = core.scope_settings().await?;
        let types = client.ticket_types().await.unwrap_or_default();
        let missing: Vec<String> = scope
            .tab_ticket_type_ids
            .iter()
            .filter_map(|id| types.iter().find(|t| t.id == *id))
            .filter(|t| {
                t.allowall_iframe_customtabs != Some(true)
                    && !t
                        .allowed_iframe_customtabs
                        .iter()
                        .flatten()
                        .any(|a| a.iframetab_id.is_some() && a.iframetab_id == tab.id)
            })
            .map(|t| t.name.clone().unwrap_or_else(|| t.id.to_string()))
            .collect();
        items.push(if scope.tab_ticket_type_ids.is_empty() {
            CheckItem::failed(
                "ticket_types",
                "Ticket types that show the tab",
                "None chosen",
                "Choose them in the Scope step.",
            )
        } else if missing.is_empty() {
            CheckItem::ok(
                "ticket_types",
                "Ticket types that show the tab",
                format!("All {} chosen type(s) allow it", scope.tab_ticket_type_ids.len()),
            )
        } else {
            CheckItem::failed(
                "ticket_types",
                "Ticket types that show the tab",
                format!("Not allowed on: {}", missing.join(", ")),
                format!("In {TICKET_TYPES_PATH}, open each of them > Allowed Values > Custom Tabs > Add > Mailroom, and save."),
            )
        });
    }
    let refused = core.ticket_tab_rejections().await?.into_iter().next();
    let shown = core.ticket_tab_last_shown().await?;
    let opened = match (refused, shown) {
        (Some(r), shown) if shown.is_none_or(|s| s < r.at) => CheckItem::failed(
            "requests",
            "Requests from HaloPSA",
            format!(
                "The newest one ({}) was refused: {}. It carried: {}",
                r.at.format("%Y-%m-%d %H:%M UTC"),
                r.reason,
                if r.parameters.is_empty() { "no parameter".to_string() } else { r.parameters.join(", ") }
            ),
            "If the parameters differ from the scheme's, choose the other scheme; if the secret does not match, copy the Iframe secret again.",
        ),
        (_, Some(shown)) => CheckItem::ok(
            "requests",
            "Requests from HaloPSA",
            format!("A ticket was last shown at {}", shown.format("%Y-%m-%d %H:%M UTC")),
        ),
        _ => CheckItem {
            // Not opened yet: said, but not a fault of the set-up.
            optional: true,
            ..CheckItem::failed(
            "requests",
            "Requests from HaloPSA",
            "No ticket has been opened with the tab yet",
            "Open a ticket of a chosen type in HaloPSA and click the Mailroom tab.",
        )
        },
    };
    items.push(opened);
    Ok(items)
}

const ACTIONS_PATH: &str = "Configuration > Tickets > Actions";

async fn status_choices(client: &PsaClient) -> Result<Vec<StatusChoice>, PsaError> {
    Ok(client
        .statuses()
        .await?
        .into_iter()
        .map(|s| StatusChoice {
            id: s.id,
            name: s.name.unwrap_or_else(|| format!("Status {}", s.id)),
        })
        .collect())
}

async fn check_resolve(core: &Core, client: &PsaClient) -> Result<Vec<CheckItem>, CoreError> {
    let settings = core.resolve_settings().await?;
    let statuses = status_choices(client).await?;
    let mut items = Vec::new();
    let status = settings
        .status_id
        .and_then(|id| statuses.iter().find(|s| s.id == id));
    items.push(match (settings.status_id, status) {
        (None, _) => CheckItem::failed(
            "status",
            "Status after the action",
            "None chosen",
            "Choose your Closed/Resolved status in this step.",
        ),
        (Some(id), None) => CheckItem::failed(
            "status",
            "Status after the action",
            format!("Status {id} no longer exists in HaloPSA"),
            "Choose the status again in this step.",
        ),
        (Some(_), Some(s)) => CheckItem::ok("status", "Status after the action", s.name.clone()),
    });
    let outcome = client
        .outcomes()
        .await?
        .into_iter()
        .find(|o| o.outcome.as_deref() == Some(RESOLVE_ACTION));
    let Some(outcome) = outcome else {
        items.push(CheckItem::failed(
            "action",
            "The action in HaloPSA",
            format!("No action (outcome) named exactly \"{RESOLVE_ACTION}\""),
            format!("In {ACTIONS_PATH} > New, create it as shown (the name is character exact), or use Create it for me."),
        ));
        return Ok(items);
    };
    items.push(CheckItem::ok(
        "action",
        "The action in HaloPSA",
        format!("\"{RESOLVE_ACTION}\" (id {})", outcome.id),
    ));
    let fix = format!(
        "In {ACTIONS_PATH} > {RESOLVE_ACTION} > Edit, set it as shown, or use Create it for me."
    );
    let expect = |id: &str, label: &str, ok: bool, found: String| {
        if ok {
            CheckItem::ok(id, label, found)
        } else {
            CheckItem::failed(id, label, found, fix.clone())
        }
    };
    items.push(expect(
        "button",
        "Button Name",
        outcome.buttonname.as_deref() == Some(RESOLVE_ACTION),
        outcome.buttonname.clone().unwrap_or_else(|| "none".into()),
    ));
    if let Some(status) = status {
        items.push(expect(
            "new_status",
            "Status After Action",
            outcome.newstatus == Some(status.id),
            match outcome
                .newstatus
                .and_then(|id| statuses.iter().find(|s| s.id == id))
            {
                Some(s) => s.name.clone(),
                None => outcome
                    .newstatus
                    .map(|id| format!("status {id}"))
                    .unwrap_or_else(|| "not set".into()),
            },
        ));
    }
    items.push(expect(
        "hide_from_user",
        "Hide from User",
        outcome.hidefromuser == Some(true),
        if outcome.hidefromuser == Some(true) {
            "on"
        } else {
            "off"
        }
        .into(),
    ));
    items.push(expect(
        "visible",
        "Action is visible",
        outcome.hidden != Some(true),
        if outcome.hidden == Some(true) {
            "hidden"
        } else {
            "visible"
        }
        .into(),
    ));
    Ok(items)
}

impl Core {
    /// The resolve step's form: the kept status and the PSA's statuses, read live.
    pub async fn integration_resolve(&self) -> Result<ResolveView, CoreError> {
        let client = self.psa_client().await?;
        Ok(ResolveView {
            settings: self.resolve_settings().await?,
            statuses: status_choices(&client).await?,
        })
    }

    /// The kept resolve settings.
    pub async fn resolve_settings(&self) -> Result<ResolveSettings, CoreError> {
        Ok(self.store().setting(RESOLVE_KEY).await?.unwrap_or_default())
    }

    /// Keeps the status the resolve action sets (it must exist in the PSA), then checks the
    /// step.
    pub async fn set_resolve_status(&self, status_id: i64) -> Result<StepResult, CoreError> {
        let client = self.psa_client().await?;
        let statuses = status_choices(&client).await?;
        if !statuses.iter().any(|s| s.id == status_id) {
            return Err(CoreError::InvalidInput(format!(
                "status {status_id} does not exist in HaloPSA; choose one of: {}",
                statuses
                    .iter()
                    .map(|s| format!("{} ({})", s.name, s.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        self.store()
            .set_setting(
                RESOLVE_KEY,
                &ResolveSettings {
                    status_id: Some(status_id),
                },
            )
            .await?;
        self.check_integration_step(Step::Resolve).await
    }

    /// *Create it for me* of the resolve step: the action "Mailroom resolve" created, or the
    /// existing one corrected, with the fields the step checks. Needs the chosen status.
    pub async fn create_resolve_action(&self) -> Result<StepResult, CoreError> {
        let Some(status_id) = self.resolve_settings().await?.status_id else {
            return Err(CoreError::InvalidInput(
                "choose the status the resolve action sets first (your Closed/Resolved status)"
                    .into(),
            ));
        };
        let admin = self.psa_client_requesting(Some("admin")).await?;
        let existing = admin
            .outcomes()
            .await?
            .into_iter()
            .find(|o| o.outcome.as_deref() == Some(RESOLVE_ACTION));
        let mut body = serde_json::json!({
            "outcome": RESOLVE_ACTION,
            "buttonname": RESOLVE_ACTION,
            "newstatus": status_id,
            "hidefromuser": true,
            "hidden": false,
            "hide_header_button": true,
        });
        if let Some(existing) = existing {
            body["id"] = serde_json::json!(existing.id);
        }
        let _: serde_json::Value = admin.post_one("Outcome", &body).await?;
        self.check_integration_step(Step::Resolve).await
    }

    /// *Create it for me* of the tab step: the custom tab pointing at Mailroom's tab URL,
    /// created when none does, and allowed on every ticket type the scope chose (what they
    /// already allow stays). Idempotent: a second run finds and reuses what exists. HaloPSA's
    /// API has no field for the tab's Iframe secret or its *Send secure URL parameter* switch
    /// (halopsa-api.md §5), so those stay for the admin; the check that follows says so.
    pub async fn create_ticket_tab(&self) -> Result<StepResult, CoreError> {
        let admin = self.psa_client_requesting(Some("admin")).await?;
        let url = self.ticket_tab_url().await?;
        let existing = admin
            .tabs()
            .await?
            .into_iter()
            .find(|t| t.url.as_deref().is_some_and(|u| same_url(u, &url)));
        let tab_id = match existing.and_then(|t| t.id) {
            Some(id) => id,
            None => {
                let created = admin
                    .create_tab(&mailroom_psa::NewTab {
                        name: "Mailroom".into(),
                        url: Some(url.clone()),
                        sequence: Some(1),
                        ..Default::default()
                    })
                    .await?;
                tracing::info!(tab = ?created.id, %url, "created the ticket tab in HaloPSA");
                created.id.ok_or_else(|| {
                    CoreError::NotConfigured(format!(
                        "HaloPSA created the tab but answered no id; check it in {TABS_PATH}"
                    ))
                })?
            }
        };
        let scope = self.scope_settings().await?;
        let types = admin.ticket_types().await?;
        for id in &scope.tab_ticket_type_ids {
            let Some(ticket_type) = types.iter().find(|t| t.id == *id) else {
                continue; // gone from the PSA: the scope check names it
            };
            let mut allowed = ticket_type
                .allowed_iframe_customtabs
                .clone()
                .unwrap_or_default();
            if ticket_type.allowall_iframe_customtabs == Some(true)
                || allowed.iter().any(|a| a.iframetab_id == Some(tab_id))
            {
                continue;
            }
            allowed.push(mailroom_psa::IframeTabRequestType {
                tickettype_id: Some(*id),
                iframetab_id: Some(tab_id),
                iframetab_name: Some("Mailroom".into()),
            });
            let _: serde_json::Value = admin
                .post_one(
                    "TicketType",
                    &serde_json::json!({ "id": id, "allowed_iframe_customtabs": allowed }),
                )
                .await?;
        }
        self.check_integration_step(Step::Tab).await
    }

    /// The scope step's form: the kept choice and the PSA's ticket types, read live.
    pub async fn integration_scope(&self) -> Result<ScopeView, CoreError> {
        let client = self.psa_client().await?;
        let ticket_types = ticket_type_choices(&client).await?;
        Ok(ScopeView {
            settings: self.scope_settings().await?,
            ticket_types,
        })
    }

    /// The kept scope (defaults when never chosen).
    pub async fn scope_settings(&self) -> Result<ScopeSettings, CoreError> {
        Ok(self.store().setting(SCOPE_KEY).await?.unwrap_or_default())
    }

    /// Keeps the scope after checking every chosen ticket type against the PSA's list, then
    /// checks the step.
    pub async fn set_integration_scope(
        &self,
        settings: ScopeSettings,
    ) -> Result<StepResult, CoreError> {
        let client = self.psa_client().await?;
        let types = ticket_type_choices(&client).await?;
        let chosen = settings
            .default_ticket_type_id
            .into_iter()
            .chain(settings.tab_ticket_type_ids.iter().copied());
        for id in chosen {
            if type_name(&types, id).is_none() {
                return Err(CoreError::InvalidInput(format!(
                    "ticket type {id} does not exist in HaloPSA; choose one of: {}",
                    types
                        .iter()
                        .map(|t| format!("{} ({})", t.name, t.id))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let mut settings = settings;
        settings.tab_ticket_type_ids.sort_unstable();
        settings.tab_ticket_type_ids.dedup();
        self.store().set_setting(SCOPE_KEY, &settings).await?;
        self.check_integration_step(Step::Scope).await
    }

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

    async fn check_clients(&self) -> Result<Clients, CoreError> {
        Ok(Clients {
            psa: self.psa_client().await?,
            admin: self.psa_client_requesting(Some("admin")).await?,
        })
    }

    /// Checks `step` with the run's clients and keeps the result.
    async fn run_step(&self, step: Step, clients: &Clients) -> Result<StepResult, CoreError> {
        let items = match step {
            Step::Connection => check_connection(&clients.psa).await,
            Step::Agent => check_agent(clients).await,
            Step::Scope => check_scope(&clients.psa, &self.scope_settings().await?).await,
            Step::Tab => check_tab(self, clients).await?,
            Step::Resolve => check_resolve(self, &clients.psa).await?,
        };
        let result = StepResult::new(step, items, Utc::now());
        self.store()
            .set_setting(&format!("{RESULT_KEY}{}", step.id()), &result)
            .await?;
        Ok(result)
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
        let err = Step::parse("webhook").unwrap_err().to_string();
        assert!(
            err.contains("connection, agent, scope, tab, resolve"),
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
}
