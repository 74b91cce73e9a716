//! *Test connection* for HaloPSA: each thing Mailroom needs from the PSA, checked one by one
//! with a plain answer and, when it fails, what to change. Used by `mailroom psa test` and the
//! button beside the PSA connection in the window.
//!
//! The checks, in order (a failed sign-in skips the rest):
//! 1. `sign_in` — a token for the API application, and the agent it acts as (`GET /Agent/me`);
//! 2. `scopes` — the token's scopes allow reading and editing tickets and reading customers;
//! 3. `ticket_types` — the agent sees at least one ticket type (new tickets need one);
//! 4. `outcomes` — the PSA's outcome list, and for every mailbox the outcome its replies use
//!    (configured, or the default found by name) exists.

use serde::Serialize;

use crate::integration::{granted as scope_granted, sign_in_fix, PERMISSIONS};
use crate::outcomes::{outcome_list, resolve_outcome};
use crate::pipeline::ProcessingSettings;
use crate::{Core, CoreError};

/// One check of the PSA test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PsaCheck {
    /// Stable id (`sign_in`, `scopes`, `ticket_types`, `outcomes`, `outcome:<mailbox>`).
    pub id: String,
    /// What was checked, in words.
    pub label: String,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to change, when it failed.
    pub fix: Option<String>,
}

/// Every check; `ok` when all passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PsaTestReport {
    pub ok: bool,
    pub checks: Vec<PsaCheck>,
}

fn check(id: &str, label: &str, result: Result<String, (String, String)>) -> PsaCheck {
    match result {
        Ok(detail) => PsaCheck {
            id: id.into(),
            label: label.into(),
            ok: true,
            detail,
            fix: None,
        },
        Err((detail, fix)) => PsaCheck {
            id: id.into(),
            label: label.into(),
            ok: false,
            detail,
            fix: Some(fix),
        },
    }
}

impl Core {
    /// Runs the PSA checks (see the module docs). Fails only when no PSA connection is set up
    /// or the store cannot be read; a PSA that refuses is a failed check in the report.
    pub async fn test_psa_connection(&self) -> Result<PsaTestReport, CoreError> {
        let client = self.psa_client().await?;
        let mut checks = Vec::new();
        let probe = match client.probe().await {
            Ok(probe) => probe,
            Err(e) => {
                checks.push(check(
                    "sign_in",
                    "Sign in as the API application",
                    Err((e.to_string(), sign_in_fix(&e))),
                ));
                return Ok(PsaTestReport { ok: false, checks });
            }
        };
        let agent = probe
            .agent
            .name
            .clone()
            .unwrap_or_else(|| format!("agent {}", probe.agent.id));
        checks.push(check(
            "sign_in",
            "Sign in as the API application",
            Ok(format!("Signed in; the API acts as {agent}")),
        ));

        let granted = &probe.granted_scopes;
        // The permissions mail processing needs (the integration's list).
        let missing: Vec<&str> = PERMISSIONS
            .iter()
            .filter(|p| !p.optional && !scope_granted(granted, p.scope))
            .map(|p| p.scope)
            .collect();
        checks.push(check(
            "scopes",
            "Permissions (token scopes)",
            if missing.is_empty() {
                Ok(format!("Granted: {}", granted.join(" ")))
            } else {
                Err((
                    format!(
                        "Granted: {}; missing: {}",
                        if granted.is_empty() {
                            "nothing".to_string()
                        } else {
                            granted.join(" ")
                        },
                        missing.join(" ")
                    ),
                    "Allow \"all\", or the missing scopes, on the API application's Permissions tab."
                        .into(),
                ))
            },
        ));

        checks.push(check(
            "ticket_types",
            "Ticket types",
            if probe.ticket_types.is_empty() {
                Err((
                    "The API agent sees no ticket type, so no ticket can be created.".into(),
                    "Make at least one ticket type available to the API application's agent (its team or department)."
                        .into(),
                ))
            } else {
                Ok(format!("{} ticket type(s) available", probe.ticket_types.len()))
            },
        ));

        match client.outcomes().await {
            Err(e) => checks.push(check(
                "outcomes",
                "Outcomes for replies",
                Err((
                    e.to_string(),
                    "Allow the API application to read outcomes (scope \"all\" or read:tickets)."
                        .into(),
                )),
            )),
            Ok(outcomes) => {
                let list = outcome_list(&outcomes);
                checks.push(check(
                    "outcomes",
                    "Outcomes for replies",
                    Ok(match &list.default {
                        Some(d) => format!(
                            "{} outcome(s); the default for replies is {}",
                            list.outcomes.len(),
                            d.name
                        ),
                        None => format!(
                            "{} outcome(s), none with a usual name for inbound email: every mailbox must choose one",
                            list.outcomes.len()
                        ),
                    }),
                ));
                for mailbox in self.store().mailboxes().await? {
                    let settings = ProcessingSettings::of(&mailbox).unwrap_or_default();
                    let result = resolve_outcome(
                        &outcomes,
                        settings.action_outcome_id,
                        &settings.action_outcome,
                    );
                    checks.push(check(
                        &format!("outcome:{}", mailbox.id),
                        &format!("Reply outcome of {}", mailbox.name),
                        match result {
                            Ok(o) => Ok(format!(
                                "{}{}",
                                o.name,
                                if settings.action_outcome_id.is_none() {
                                    " (the default)"
                                } else {
                                    ""
                                }
                            )),
                            Err(e) => Err((
                                e.to_string(),
                                format!(
                                    "Choose the outcome for replies on the Incoming tab of {}.",
                                    mailbox.name
                                ),
                            )),
                        },
                    ));
                }
            }
        }
        Ok(PsaTestReport {
            ok: checks.iter().all(|c| c.ok),
            checks,
        })
    }
}
