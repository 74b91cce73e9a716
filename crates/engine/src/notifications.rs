//! Error notifications (the guide's "Send Error Notifications … to specific agents"): problems
//! that need someone — an email that failed for good, a mailbox whose sign-in was revoked, a
//! lost Graph subscription, a credential about to expire, the PSA unreachable — are recorded once each, published for the
//! desktop (`EngineEvent::NeedsAttention`), and told to the chosen PSA agents in a digest
//! email from a chosen connected mailbox, at most one per agent every `digest_minutes`.
//!
//! The digest is outgoing mail like an agent's reply (crates/engine outbound): stored before
//! it is sent, sent exactly once, listed in the outbound log.
//!
//! Invariants: a problem is told once (its key is unique); a kind switched off is not
//! recorded; nothing is emailed without a sending mailbox and at least one agent.

use chrono::{DateTime, Duration, Utc};
use mailroom_store::notifications::StoredNotification;
use mailroom_store::outbound::NewOutbound;
use serde::{Deserialize, Serialize};

use crate::{Core, CoreError};

/// Settings key of [`NotificationSettings`].
const SETTINGS_KEY: &str = "notifications";

/// Settings key prefix of each agent's last digest time.
const LAST_DIGEST_KEY: &str = "notifications.last_digest.";

/// The kinds of problems, by id.
pub const KINDS: &[&str] = &[
    "email_failed",
    "mailbox_disconnected",
    "subscription_lost",
    "credential_expiring",
    "psa_unreachable",
    "contacts_failed",
    "mailbox_check_failed",
];

/// An agent who gets the digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifiedAgent {
    pub agent_id: i64,
    pub name: String,
    pub email: String,
}

/// Which problems are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifyOn {
    /// An email failed after its last retry (or at once, for a permanent error).
    pub email_failed: bool,
    /// A mailbox's sign-in was revoked or its consent withdrawn.
    pub mailbox_disconnected: bool,
    /// A webhook mailbox's Graph subscription could not be renewed or recreated.
    pub subscription_lost: bool,
    /// A mailbox's secret or certificate expires within `expiring_days`.
    pub credential_expiring: bool,
    pub expiring_days: i64,
    /// Mailroom cannot sign in to the PSA.
    pub psa_unreachable: bool,
    /// A contact import failed, or some of its contacts did.
    pub contacts_failed: bool,
    /// The daily re-check found a mailbox check red (the application reads other mailboxes,
    /// the address is not the mailbox's, another account signed in).
    pub mailbox_check_failed: bool,
}

impl Default for NotifyOn {
    fn default() -> Self {
        NotifyOn {
            email_failed: true,
            mailbox_disconnected: true,
            subscription_lost: true,
            credential_expiring: true,
            expiring_days: 14,
            psa_unreachable: true,
            contacts_failed: true,
            mailbox_check_failed: true,
        }
    }
}

impl NotifyOn {
    /// Turns one kind of problem on or off; `None` for an unknown kind.
    pub fn set(&mut self, kind: &str, on: bool) -> Option<()> {
        let flag = match kind {
            "email_failed" => &mut self.email_failed,
            "mailbox_disconnected" => &mut self.mailbox_disconnected,
            "subscription_lost" => &mut self.subscription_lost,
            "credential_expiring" => &mut self.credential_expiring,
            "psa_unreachable" => &mut self.psa_unreachable,
            "contacts_failed" => &mut self.contacts_failed,
            "mailbox_check_failed" => &mut self.mailbox_check_failed,
            _ => return None,
        };
        *flag = on;
        Some(())
    }

    /// Whether problems of `kind` are told (unknown kinds are).
    pub fn allows(&self, kind: &str) -> bool {
        match kind {
            "email_failed" => self.email_failed,
            "mailbox_disconnected" => self.mailbox_disconnected,
            "subscription_lost" => self.subscription_lost,
            "credential_expiring" => self.credential_expiring,
            "psa_unreachable" => self.psa_unreachable,
            "contacts_failed" => self.contacts_failed,
            "mailbox_check_failed" => self.mailbox_check_failed,
            _ => true,
        }
    }
}

/// Error notifications' settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationSettings {
    pub agents: Vec<NotifiedAgent>,
    /// The connected mailbox digests are sent from.
    pub from_mailbox_id: Option<String>,
    pub on: NotifyOn,
    /// At most one digest per agent this often.
    pub digest_minutes: i64,
    /// Show desktop notifications (and the tray's attention state).
    pub desktop: bool,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            agents: Vec::new(),
            from_mailbox_id: None,
            on: NotifyOn::default(),
            digest_minutes: 30,
            desktop: true,
        }
    }
}

/// A problem to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: &'static str,
    /// Unique per problem (the same problem seen again is not told again).
    pub key: String,
    pub mailbox_id: Option<String>,
    pub title: String,
    pub detail: String,
    pub fix: String,
}

fn escape(text: &str) -> String {
    mailroom_mailproc::escape_html(text)
}

/// The digest email's HTML: each problem with its mailbox, what happened and the fix.
fn digest_html(problems: &[StoredNotification], mailbox_names: &[(String, String)]) -> String {
    let items: String = problems
        .iter()
        .map(|p| {
            let mailbox = p
                .mailbox_id
                .as_ref()
                .and_then(|id| mailbox_names.iter().find(|(m, _)| m == id))
                .map(|(_, name)| format!(" — mailbox {}", escape(name)))
                .unwrap_or_default();
            format!(
                "<li><p><strong>{}</strong>{mailbox}<br>{}<br><em>Fix:</em> {}<br><small>{}</small></p></li>",
                escape(&p.title),
                escape(&p.detail),
                escape(&p.fix),
                p.created_at.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .collect();
    format!(
        "<p>Mailroom found {} problem(s) that need attention:</p><ul>{items}</ul><p>Open Mailroom (Monitoring, or the mailbox's logs) for the details.</p>",
        problems.len()
    )
}

impl Core {
    /// The error notifications' settings.
    pub async fn notification_settings(&self) -> Result<NotificationSettings, CoreError> {
        Ok(self
            .store()
            .setting(SETTINGS_KEY)
            .await?
            .unwrap_or_default())
    }

    /// Keeps the settings after checking them (addresses, the sending mailbox, the interval).
    pub async fn set_notification_settings(
        &self,
        settings: &NotificationSettings,
    ) -> Result<(), CoreError> {
        if let Some(a) = settings.agents.iter().find(|a| !a.email.contains('@')) {
            return Err(CoreError::InvalidInput(format!(
                "{} has no email address in HaloPSA; give the agent one, or choose another",
                a.name
            )));
        }
        if !(1..=1440).contains(&settings.digest_minutes) {
            return Err(CoreError::InvalidInput(
                "the digest interval must be between 1 and 1440 minutes".into(),
            ));
        }
        if !(1..=365).contains(&settings.on.expiring_days) {
            return Err(CoreError::InvalidInput(
                "warn about expiring credentials between 1 and 365 days ahead".into(),
            ));
        }
        if let Some(id) = &settings.from_mailbox_id {
            self.store().mailbox(id).await.map_err(|_| {
                CoreError::InvalidInput(format!("there is no mailbox '{id}' to send from"))
            })?;
        }
        self.store().set_setting(SETTINGS_KEY, settings).await?;
        Ok(())
    }

    /// The PSA's enabled agents with an email address (to choose who gets the digests).
    pub async fn notifiable_agents(&self) -> Result<Vec<NotifiedAgent>, CoreError> {
        let psa = self.psa_client().await?;
        Ok(psa
            .agents()
            .await?
            .into_iter()
            .filter(|a| a.isdisabled != Some(true) && a.isapiagent != Some(true))
            .filter_map(|a| {
                let email = a.email.clone().filter(|e| e.contains('@'))?;
                Some(NotifiedAgent {
                    agent_id: a.id,
                    name: a.name.clone().unwrap_or_else(|| email.clone()),
                    email,
                })
            })
            .collect())
    }

    /// Records `problem` unless its kind is switched off or it was recorded before; returns
    /// it when it is new.
    pub async fn note_problem(
        &self,
        problem: &Problem,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredNotification>, CoreError> {
        let settings = self.notification_settings().await?;
        if !settings.on.allows(problem.kind) {
            return Ok(None);
        }
        Ok(self
            .store()
            .insert_notification(
                &problem.key,
                problem.kind,
                problem.mailbox_id.as_deref(),
                &problem.title,
                &problem.detail,
                &problem.fix,
                now,
            )
            .await?)
    }

    /// Credentials expiring within the settings' days, as problems (one per credential).
    pub async fn expiring_credentials(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<Problem>, CoreError> {
        let days = self.notification_settings().await?.on.expiring_days;
        Ok(self
            .mailboxes()
            .await?
            .into_iter()
            .filter_map(|m| {
                let expires = m.credential_expires_at?;
                if expires - now > Duration::days(days) {
                    return None;
                }
                let warning = crate::connect::credential_warning(&m, now)?;
                Some(Problem {
                    kind: "credential_expiring",
                    key: format!("credential_expiring:{}:{}", m.id, expires.format("%Y-%m-%d")),
                    mailbox_id: Some(m.id.clone()),
                    title: format!("{}: the credential expires on {}", m.name, expires.format("%Y-%m-%d")),
                    detail: warning.message,
                    fix: "Create a new secret or certificate in Entra and enter it on the mailbox's Incoming tab.".into(),
                })
            })
            .collect())
    }

    /// Stores a digest email to each chosen agent whose last digest is at least
    /// `digest_minutes` old, when problems wait (or, with `force`, now); marks the problems
    /// told. Returns the outgoing emails' ids.
    pub async fn queue_notification_digests(
        &self,
        now: DateTime<Utc>,
        force: bool,
    ) -> Result<Vec<i64>, CoreError> {
        let settings = self.notification_settings().await?;
        let Some(from) = settings.from_mailbox_id.clone() else {
            return Ok(Vec::new());
        };
        if settings.agents.is_empty() {
            return Ok(Vec::new());
        }
        let pending = self.store().pending_notifications().await?;
        if pending.is_empty() && !force {
            return Ok(Vec::new());
        }
        let mailbox = self.store().mailbox(&from).await?;
        let names: Vec<(String, String)> = self
            .mailboxes()
            .await?
            .into_iter()
            .map(|m| (m.id, m.name))
            .collect();
        let domain = mailbox
            .mailbox_address
            .as_deref()
            .and_then(|a| a.split('@').nth(1))
            .unwrap_or("mailroom.invalid")
            .to_string();
        let mut queued = Vec::new();
        let mut all_told = true;
        for agent in &settings.agents {
            let key = format!("{LAST_DIGEST_KEY}{}", agent.agent_id);
            let last: Option<DateTime<Utc>> = self.store().setting(&key).await?;
            let due =
                force || last.is_none_or(|l| now - l >= Duration::minutes(settings.digest_minutes));
            if !due {
                all_told = false;
                continue;
            }
            let (subject, body) = if pending.is_empty() {
                (
                    "Mailroom: test notification".to_string(),
                    "<p>This is a test of Mailroom's error notifications: problems will be listed in emails like this one.</p>".to_string(),
                )
            } else {
                (
                    format!("Mailroom: {} problem(s) need attention", pending.len()),
                    digest_html(&pending, &names),
                )
            };
            let nonce: u32 = rand::random();
            let (id, _) = self
                .store()
                .insert_outbound(
                    &NewOutbound {
                        source_key: format!("digest:{}:{}", agent.agent_id, now.timestamp_millis()),
                        mailbox_id: from.clone(),
                        ticket_id: None,
                        action_id: None,
                        reply_to_message_id: None,
                        internet_message_id: format!(
                            "<mailroom.digest.{}.{nonce:08x}@{domain}>",
                            agent.agent_id
                        ),
                        to: vec![agent.email.clone()],
                        cc: Vec::new(),
                        subject,
                        body_html: body,
                        attachment_ids: Vec::new(),
                    },
                    now,
                )
                .await?;
            self.store().set_setting(&key, &now).await?;
            queued.push(id);
        }
        if all_told && !pending.is_empty() {
            let ids: Vec<i64> = pending.iter().map(|p| p.id).collect();
            self.store().mark_notifications_digested(&ids, now).await?;
        }
        Ok(queued)
    }
}

impl Core {
    /// *Send a test*: a digest to each chosen agent now (a test one when no problem waits),
    /// sent at once. Answers the outgoing emails as they are afterwards.
    pub async fn send_test_notifications(
        &self,
    ) -> Result<Vec<mailroom_store::outbound::OutboundEmail>, CoreError> {
        let ids = self.queue_notification_digests(Utc::now(), true).await?;
        if ids.is_empty() {
            return Err(CoreError::InvalidInput(
                "choose at least one agent and the mailbox the notifications are sent from first"
                    .into(),
            ));
        }
        let mut sent = Vec::new();
        for id in ids {
            sent.push(self.send_outbound(id, "test").await?);
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_names_the_mailbox_and_escapes_what_it_quotes() {
        let problem = StoredNotification {
            id: 1,
            key: "k".into(),
            kind: "email_failed".into(),
            mailbox_id: Some("mb".into()),
            title: "Email failed: <script>".into(),
            detail: "403".into(),
            fix: "Grant Mail.Send".into(),
            created_at: Utc::now(),
            digested_at: None,
        };
        let html = digest_html(&[problem], &[("mb".into(), "Support".into())]);
        assert!(html.contains("mailbox Support"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn kinds_switched_off_are_not_allowed() {
        let on = NotifyOn {
            email_failed: false,
            ..Default::default()
        };
        assert!(!on.allows("email_failed"));
        assert!(on.allows("mailbox_disconnected"));
    }

    #[test]
    fn every_kind_can_be_switched() {
        let mut on = NotifyOn::default();
        for kind in KINDS {
            assert!(on.allows(kind), "{kind} is on by default");
            on.set(kind, false).unwrap();
            assert!(!on.allows(kind), "{kind} is switched off");
        }
        assert!(on.set("no_such_kind", false).is_none());
    }
}
