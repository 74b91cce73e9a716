//! Step 5: the custom action "Mailroom resolve".

use mailroom_psa::{PsaClient, PsaError};
use serde::{Deserialize, Serialize};

use super::{CheckItem, Step, StepResult};
use crate::{Core, CoreError};

/// Settings key of [`ResolveSettings`].
pub(crate) const RESOLVE_KEY: &str = "integration.resolve";

/// The custom action Mailroom closes tickets with (outcome and button name, character exact).
pub const RESOLVE_ACTION: &str = "Mailroom resolve";

/// What a requester's reply says to ask for their ticket to be closed, by default.
pub const DEFAULT_CLOSE_PHRASES: &[&str] = &[
    "please close",
    "you can close",
    "can be closed",
    "close this ticket",
    "close the ticket",
];

/// The resolve action's settings (step 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResolveSettings {
    /// The status the action sets: the instance's closed/resolved status.
    pub status_id: Option<i64>,
    /// Close a ticket with the resolve action when its requester's reply asks to (off by
    /// default: a phrase can be misread, and closing is visible to the customer).
    pub close_on_request: bool,
    /// The phrases that ask (case and spacing ignored), looked for in the reply's own text,
    /// not in the quoted history.
    pub close_phrases: Vec<String>,
}

impl Default for ResolveSettings {
    fn default() -> Self {
        ResolveSettings {
            status_id: None,
            close_on_request: false,
            close_phrases: DEFAULT_CLOSE_PHRASES
                .iter()
                .map(|p| p.to_string())
                .collect(),
        }
    }
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

pub(super) async fn check_resolve(
    core: &Core,
    client: &PsaClient,
) -> Result<Vec<CheckItem>, CoreError> {
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
                    ..self.resolve_settings().await?
                },
            )
            .await?;
        self.check_integration_step(Step::Resolve).await
    }

    /// Keeps whether (and on which phrases) a requester's reply closes their ticket. Turning it
    /// on needs at least one phrase.
    pub async fn set_close_on_request(
        &self,
        enabled: bool,
        phrases: Vec<String>,
    ) -> Result<ResolveSettings, CoreError> {
        let mut phrases: Vec<String> = phrases
            .into_iter()
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|p| !p.is_empty())
            .collect();
        phrases.dedup();
        if enabled && phrases.is_empty() {
            return Err(CoreError::InvalidInput(
                "name at least one phrase that asks to close a ticket (e.g. \"please close\")"
                    .into(),
            ));
        }
        if let Some(short) = phrases.iter().find(|p| p.chars().count() < 5) {
            return Err(CoreError::InvalidInput(format!(
                "'{short}' is too short to tell a request to close from ordinary words; use a phrase of at least 5 characters"
            )));
        }
        let settings = ResolveSettings {
            close_on_request: enabled,
            close_phrases: phrases,
            ..self.resolve_settings().await?
        };
        self.store().set_setting(RESOLVE_KEY, &settings).await?;
        Ok(settings)
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
}
