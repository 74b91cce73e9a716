//! Agents' replies: HaloPSA's webhook reports each action an agent adds
//! (`psa_agent_actions`); an action that emails the end user becomes an outgoing email from
//! the mailbox the ticket came in through — a reply threaded to the customer's newest email on
//! the ticket — or from the *outgoing default* mailbox for tickets that did not start as email.
//!
//! The action is read from the PSA (the webhook's key fields do not say whether it emails):
//! it emails when `sendemail` is set, or when it is visible to the user and names recipients
//! (`emailto`). The subject carries the ticket tag (`[ID:n]`), which the inbound rules match,
//! so the customer's answer lands on the same ticket. The body is the action's note,
//! sanitised.
//!
//! Invariants: one outgoing email per action (`psa-action:{ticket}:{action}`); an action is
//! marked handled once its email is stored (or once it is known to send nothing), so a restart
//! or a replayed webhook never makes a second one.

use chrono::Utc;
use mailroom_mailproc::{format_tag, sanitize_html_default, text_to_html, ThreadTag};
use mailroom_store::outbound::NewOutbound;
use mailroom_store::psa_webhooks::PsaAgentAction;

use crate::{Core, CoreError};

/// Settings key of the *outgoing default* mailbox (its id).
pub const OUTGOING_DEFAULT_KEY: &str = "outbound.default_mailbox";

/// Addresses in a PSA list field (`;` or `,` separated).
fn addresses(field: Option<&str>) -> Vec<String> {
    field
        .unwrap_or_default()
        .split([';', ','])
        .map(str::trim)
        .filter(|a| a.contains('@'))
        .map(str::to_string)
        .collect()
}

/// What became of one agent action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    /// An outgoing email was stored (its id).
    Queued(i64),
    /// The action emails nobody.
    NotAnEmail,
    /// It should email, but cannot: why (the action stays unhandled, so a fix takes effect).
    Blocked(String),
}

impl Core {
    /// The *outgoing default* mailbox's id, if one is chosen.
    pub async fn outgoing_default_mailbox(&self) -> Result<Option<String>, CoreError> {
        Ok(self.store().setting(OUTGOING_DEFAULT_KEY).await?)
    }

    /// Chooses the mailbox agents' replies go out from for tickets that did not start as email.
    pub async fn set_outgoing_default_mailbox(&self, id: Option<&str>) -> Result<(), CoreError> {
        match id {
            Some(id) => {
                self.store()
                    .mailbox(id)
                    .await
                    .map_err(|_| CoreError::InvalidInput(format!("there is no mailbox '{id}'")))?;
                self.store().set_setting(OUTGOING_DEFAULT_KEY, &id).await?;
            }
            None => {
                self.store()
                    .delete_settings_prefixed(OUTGOING_DEFAULT_KEY)
                    .await?;
            }
        }
        Ok(())
    }

    /// Turns every unhandled agent action into an outgoing email (or marks it as sending
    /// nothing). Returns what became of each.
    pub async fn queue_agent_replies(
        &self,
    ) -> Result<Vec<(PsaAgentAction, ActionOutcome)>, CoreError> {
        let pending = self.store().psa_agent_actions(true).await?;
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let psa = self.psa_client().await?;
        let mut done = Vec::new();
        for action in pending {
            let outcome = self.queue_agent_reply(&psa, &action).await?;
            if !matches!(outcome, ActionOutcome::Blocked(_)) {
                self.store()
                    .mark_psa_agent_action_handled(action.ticket_id, action.action_id, Utc::now())
                    .await?;
            }
            match &outcome {
                ActionOutcome::Queued(id) => tracing::info!(
                    ticket = action.ticket_id,
                    action = action.action_id,
                    outbound = id,
                    "agent reply queued"
                ),
                ActionOutcome::Blocked(why) => tracing::warn!(
                    ticket = action.ticket_id,
                    action = action.action_id,
                    "agent reply cannot be sent: {why}"
                ),
                ActionOutcome::NotAnEmail => {}
            }
            done.push((action, outcome));
        }
        Ok(done)
    }

    async fn queue_agent_reply(
        &self,
        psa: &mailroom_psa::PsaClient,
        action: &PsaAgentAction,
    ) -> Result<ActionOutcome, CoreError> {
        let full = match psa.list_actions(action.ticket_id).await {
            Ok(list) => list.into_iter().find(|a| a.id == action.action_id),
            Err(e) if e.kind == mailroom_psa::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let Some(full) = full else {
            return Ok(ActionOutcome::NotAnEmail);
        };
        let to = addresses(full.emailto.as_deref());
        let emails =
            full.sendemail == Some(true) || (full.hiddenfromuser != Some(true) && !to.is_empty());
        if !emails {
            return Ok(ActionOutcome::NotAnEmail);
        }
        let ticket = psa.get_ticket(action.ticket_id).await?;
        let to = if to.is_empty() {
            ticket
                .user_email
                .clone()
                .into_iter()
                .filter(|a| a.contains('@'))
                .collect()
        } else {
            to
        };
        if to.is_empty() {
            return Ok(ActionOutcome::Blocked(format!(
                "the action on ticket {} names no recipient and the ticket's user has no email address",
                action.ticket_id
            )));
        }
        // The mailbox the ticket came in through, answering its newest email; else the default.
        let inbound = self.store().emails_for_ticket(action.ticket_id).await?;
        let (mailbox_id, reply_to) = match inbound.last() {
            Some(email) => (
                email.mailbox_id.clone(),
                Some(email.graph_message_id.clone()),
            ),
            None => match self.outgoing_default_mailbox().await? {
                Some(id) => (id, None),
                None => {
                    return Ok(ActionOutcome::Blocked(format!(
                    "ticket {} did not start as email and no outgoing default mailbox is chosen",
                    action.ticket_id
                )))
                }
            },
        };
        let mailbox = self.store().mailbox(&mailbox_id).await?;
        let domain = mailbox
            .mailbox_address
            .as_deref()
            .and_then(|a| a.split('@').nth(1))
            .unwrap_or("mailroom.invalid")
            .to_string();
        let summary = ticket.summary.clone().unwrap_or_default();
        let tag = format_tag(action.ticket_id, &ThreadTag::default());
        let subject = match full
            .emailsubject
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            Some(s) if s.contains(&tag) => s.to_string(),
            Some(s) => format!("{s} {tag}"),
            None => format!("RE: {summary} {tag}"),
        };
        let body = match (
            full.emailbody_html.as_deref(),
            full.note_html.as_deref(),
            full.note.as_deref(),
        ) {
            (Some(html), _, _) if !html.trim().is_empty() => sanitize_html_default(html),
            (_, Some(html), _) if !html.trim().is_empty() => sanitize_html_default(html),
            (_, _, Some(text)) => text_to_html(text),
            _ => String::new(),
        };
        let attachment_ids: Vec<i64> = psa
            .list_attachments(action.ticket_id, Some(action.action_id))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.action_id == Some(action.action_id))
            .map(|a| a.id)
            .collect();
        let nonce: u32 = rand::random();
        let (id, _) = self
            .store()
            .insert_outbound(
                &NewOutbound {
                    source_key: format!("psa-action:{}:{}", action.ticket_id, action.action_id),
                    mailbox_id,
                    ticket_id: Some(action.ticket_id),
                    action_id: Some(action.action_id),
                    reply_to_message_id: reply_to,
                    internet_message_id: format!(
                        "<mailroom.{}.{}.{nonce:08x}@{domain}>",
                        action.ticket_id, action.action_id
                    ),
                    to,
                    cc: addresses(full.emailcc.as_deref()),
                    subject,
                    body_html: body,
                    attachment_ids,
                },
                Utc::now(),
            )
            .await?;
        Ok(ActionOutcome::Queued(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_lists_split_on_semicolons_and_commas() {
        assert_eq!(
            addresses(Some("pat@fabrikam.test; lee@fabrikam.test,not-an-address")),
            ["pat@fabrikam.test", "lee@fabrikam.test"]
        );
        assert!(addresses(None).is_empty());
    }
}
