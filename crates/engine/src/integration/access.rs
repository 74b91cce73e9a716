//! Steps 1 and 2: the connection (a token, and the agent it acts as) and the agent's
//! permissions.

use mailroom_psa::{ErrorKind, PsaClient, PsaError};
use serde::Serialize;

use super::{CheckItem, Clients};

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

pub(super) async fn check_connection(client: &PsaClient) -> Vec<CheckItem> {
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

pub(super) async fn check_agent(clients: &Clients) -> Vec<CheckItem> {
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
