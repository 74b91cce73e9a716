//! The outcome (HaloPSA's action type, `GET /Outcome`) of the actions Mailroom adds for
//! inbound replies.
//!
//! HaloPSA refuses an action without a valid outcome ("An Outcome must be entered for this
//! Action"), and outcome names differ between instances, so the outcome is chosen from the
//! PSA's own list and sent by id — never a guessed name. A mailbox names it in its processing
//! settings (`action_outcome_id`, with `action_outcome` as the display name); without one, a
//! default is found by matching the usual names of an inbound-email outcome, then of a
//! private/internal note ([`DEFAULT_OUTCOME_NAMES`]). If neither finds one, the reply fails at
//! once with the code [`OUTCOME_NOT_CONFIGURED`] so the admin picks one.

use mailroom_psa::{Outcome, PsaClient, PsaError};
use serde::Serialize;

/// Failure code: no outcome is configured and none of the PSA's outcomes has a usual name.
pub const OUTCOME_NOT_CONFIGURED: &str = "outcome_not_configured";
/// Failure code: the configured outcome no longer exists in the PSA.
pub const OUTCOME_NOT_FOUND: &str = "outcome_not_found";

/// Names (case-insensitive, outcome name or button name) a default outcome is matched
/// against, best first: inbound-email outcomes, then private / internal notes. Outcomes that
/// send mail ("Email User") are never chosen by default.
pub const DEFAULT_OUTCOME_NAMES: &[&str] = &[
    "Email Received",
    "Email Update",
    "Email Reply",
    "Customer Reply",
    "Reply Received",
    "Incoming Email",
    "Private Note",
    "Internal Note",
    "Note",
];

/// One outcome as the mailbox settings picker shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeChoice {
    pub id: i64,
    pub name: String,
    /// Its button label, when different from the name.
    pub button: Option<String>,
    /// Actions with it are hidden from the end user by default.
    pub private: bool,
}

/// The PSA's outcomes and the default Mailroom would use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeList {
    pub outcomes: Vec<OutcomeChoice>,
    /// The outcome used when a mailbox configures none; `None`: every mailbox must pick one.
    pub default: Option<OutcomeChoice>,
}

fn names(o: &Outcome) -> impl Iterator<Item = &str> {
    [&o.outcome, &o.buttonname]
        .into_iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
}

fn choice(o: &Outcome) -> OutcomeChoice {
    let name = names(o).next().unwrap_or_default().to_string();
    OutcomeChoice {
        id: o.id,
        button: o
            .buttonname
            .clone()
            .filter(|b| !b.trim().is_empty() && b.trim() != name),
        name: if name.is_empty() {
            format!("Outcome {}", o.id)
        } else {
            name
        },
        private: o.hidefromuser.unwrap_or(false),
    }
}

/// Outcomes a person may pick: not hidden, not system outcomes.
fn selectable(o: &Outcome) -> bool {
    !o.hidden.unwrap_or(false) && o.systemid.unwrap_or(0) == 0
}

/// The default outcome among `outcomes` ([`DEFAULT_OUTCOME_NAMES`], best first).
pub fn default_outcome(outcomes: &[Outcome]) -> Option<&Outcome> {
    DEFAULT_OUTCOME_NAMES.iter().find_map(|want| {
        outcomes
            .iter()
            .filter(|o| selectable(o))
            .find(|o| names(o).any(|n| n.eq_ignore_ascii_case(want)))
    })
}

/// The list for the picker (selectable outcomes in the PSA's order) with the default.
pub fn outcome_list(outcomes: &[Outcome]) -> OutcomeList {
    let mut list: Vec<&Outcome> = outcomes.iter().filter(|o| selectable(o)).collect();
    list.sort_by_key(|o| (o.sequence.unwrap_or(i64::MAX), o.id));
    OutcomeList {
        outcomes: list.into_iter().map(choice).collect(),
        default: default_outcome(outcomes).map(choice),
    }
}

/// Why no outcome could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutcomeError {
    #[error("no outcome is set for replies on this mailbox and HaloPSA has none of the usual ones ({}); choose the outcome for inbound replies in the mailbox's processing settings", DEFAULT_OUTCOME_NAMES.join(", "))]
    NotConfigured,
    #[error("the outcome set for replies on this mailbox ({0}) does not exist in HaloPSA any more; choose another in the mailbox's processing settings")]
    NotFound(String),
}

impl OutcomeError {
    /// [`OUTCOME_NOT_CONFIGURED`] or [`OUTCOME_NOT_FOUND`].
    pub fn code(&self) -> &'static str {
        match self {
            OutcomeError::NotConfigured => OUTCOME_NOT_CONFIGURED,
            OutcomeError::NotFound(_) => OUTCOME_NOT_FOUND,
        }
    }
}

/// Chooses the outcome for a reply: the configured id, else the configured name (settings
/// written before ids were stored), else the default. Never a guess.
pub fn resolve_outcome(
    outcomes: &[Outcome],
    configured_id: Option<i64>,
    configured_name: &str,
) -> Result<OutcomeChoice, OutcomeError> {
    let name = configured_name.trim();
    if let Some(id) = configured_id {
        return outcomes
            .iter()
            .find(|o| o.id == id)
            .map(choice)
            .ok_or_else(|| {
                OutcomeError::NotFound(if name.is_empty() {
                    format!("id {id}")
                } else {
                    format!("\"{name}\", id {id}")
                })
            });
    }
    if !name.is_empty() {
        if let Some(o) = outcomes
            .iter()
            .find(|o| names(o).any(|n| n.eq_ignore_ascii_case(name)))
        {
            return Ok(choice(o));
        }
    }
    default_outcome(outcomes)
        .map(choice)
        .ok_or(OutcomeError::NotConfigured)
}

/// The PSA's outcomes for the picker (`GET /Outcome`).
pub async fn list_outcomes(psa: &PsaClient) -> Result<OutcomeList, PsaError> {
    Ok(outcome_list(&psa.outcomes().await?))
}

impl crate::Core {
    /// The outcomes of the configured PSA, with the default for replies (the mailbox
    /// settings picker; also the check after saving the PSA connection and on *Test
    /// connection*: `default == None` means every mailbox must pick one).
    pub async fn psa_outcomes(&self) -> Result<OutcomeList, crate::CoreError> {
        Ok(list_outcomes(&self.psa_client().await?).await?)
    }
}

/// A mailbox's reply outcome as its settings say, with the PSA's choices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplyOutcomeSetting {
    /// The configured outcome id (`None`: the default is used).
    pub outcome_id: Option<i64>,
    /// Its name as stored.
    pub outcome_name: String,
    /// The PSA's outcomes and the default.
    pub psa: OutcomeList,
    /// Who sees the actions added for replies.
    pub visibility: crate::pipeline::ReplyVisibility,
}

impl crate::Core {
    /// The reply outcome of a mailbox and the PSA's choices (the settings picker).
    pub async fn mailbox_reply_outcome(
        &self,
        mailbox_id: &str,
    ) -> Result<ReplyOutcomeSetting, crate::CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        let settings = crate::pipeline::ProcessingSettings::of(&mailbox)
            .map_err(crate::CoreError::InvalidInput)?;
        Ok(ReplyOutcomeSetting {
            outcome_id: settings.action_outcome_id,
            outcome_name: settings.action_outcome,
            psa: self.psa_outcomes().await?,
            visibility: settings.reply_visibility,
        })
    }

    /// Sets who sees the actions a mailbox adds for replies; other settings are kept.
    pub async fn set_mailbox_reply_visibility(
        &self,
        mailbox_id: &str,
        visibility: crate::pipeline::ReplyVisibility,
    ) -> Result<ReplyOutcomeSetting, crate::CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        let mut settings = match mailbox.settings {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        settings.insert("reply_visibility".into(), serde_json::json!(visibility));
        self.store()
            .set_mailbox_settings(mailbox_id, &serde_json::Value::Object(settings))
            .await?;
        self.mailbox_reply_outcome(mailbox_id).await
    }

    /// Sets (or with `None` clears, back to the default) the outcome of the actions a
    /// mailbox adds for replies. The id must be one of the PSA's outcomes; its name is stored
    /// with it for display. Other settings are kept as they are.
    pub async fn set_mailbox_reply_outcome(
        &self,
        mailbox_id: &str,
        outcome_id: Option<i64>,
    ) -> Result<ReplyOutcomeSetting, crate::CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        let psa = self.psa_outcomes().await?;
        let name = match outcome_id {
            Some(id) => psa
                .outcomes
                .iter()
                .find(|o| o.id == id)
                .map(|o| o.name.clone())
                .ok_or_else(|| {
                    crate::CoreError::InvalidInput(format!(
                        "HaloPSA has no selectable outcome with id {id}; choose one from the list"
                    ))
                })?,
            None => String::new(),
        };
        let visibility = crate::pipeline::ProcessingSettings::of(&mailbox)
            .map(|s| s.reply_visibility)
            .unwrap_or_default();
        let mut settings = match mailbox.settings {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        settings.insert("action_outcome_id".into(), serde_json::json!(outcome_id));
        settings.insert("action_outcome".into(), serde_json::json!(name));
        self.store()
            .set_mailbox_settings(mailbox_id, &serde_json::Value::Object(settings))
            .await?;
        Ok(ReplyOutcomeSetting {
            outcome_id,
            outcome_name: name,
            psa,
            visibility,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(id: i64, name: &str, hidden: bool) -> Outcome {
        Outcome {
            id,
            outcome: Some(name.into()),
            buttonname: Some(name.into()),
            hidden: Some(hidden),
            systemid: Some(0),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_prefer_inbound_email_then_private_notes_and_never_email_user() {
        let list = [o(1, "Email User", false), o(7, "Private Note", false)];
        assert_eq!(default_outcome(&list).map(|o| o.id), Some(7));
        let list = [
            o(7, "Private Note", false),
            o(3, "email received", false),
            o(1, "Email User", false),
        ];
        assert_eq!(default_outcome(&list).map(|o| o.id), Some(3));
        let list = [o(1, "Email User", false), o(4, "Private Note", true)];
        assert_eq!(default_outcome(&list), None);
        assert_eq!(
            resolve_outcome(&list, None, "").unwrap_err().code(),
            OUTCOME_NOT_CONFIGURED
        );
        assert_eq!(resolve_outcome(&list, None, "email user").unwrap().id, 1);
        assert_eq!(resolve_outcome(&list, Some(1), "x").unwrap().id, 1);
        assert_eq!(
            resolve_outcome(&list, Some(99), "Gone").unwrap_err().code(),
            OUTCOME_NOT_FOUND
        );
    }
}
