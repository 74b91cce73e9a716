//! Step 3: the ticket types Mailroom works with, read live.

use mailroom_psa::{PsaClient, PsaError};
use serde::{Deserialize, Serialize};

use super::{CheckItem, Step, StepResult};
use crate::{Core, CoreError};

/// Settings key of the scope ([`ScopeSettings`]).
pub(crate) const SCOPE_KEY: &str = "integration.scope";

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

pub(super) const TICKET_TYPES_PATH: &str = "Configuration > Tickets > Ticket Types";

pub(super) async fn check_scope(client: &PsaClient, settings: &ScopeSettings) -> Vec<CheckItem> {
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

impl Core {
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
}
