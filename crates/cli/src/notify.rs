//! `mailroom notify`: error notifications, headless.
//! - `show [--json]`: who gets the digests, which problems, from which mailbox, how often, and
//!   the newest problems;
//! - `set [--agent ID]... [--from MAILBOX] [--every MINUTES] [--desktop on|off] [--on KIND]...
//!   [--off KIND]... [--expiring-days N]`: changes them (agents by their PSA id, read live;
//!   kinds: `email_failed`, `mailbox_disconnected`, `subscription_lost`, `credential_expiring`,
//!   `psa_unreachable`, `contacts_failed`, `mailbox_check_failed`);
//! - `test`: sends a digest to each chosen agent now (a test one when no problem waits).

use mailroom_engine::notifications::KINDS;
use mailroom_engine::Core;

#[derive(clap::Subcommand)]
pub enum NotifyCommand {
    /// Show the settings and the newest problems.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change the settings.
    Set {
        /// A PSA agent id (repeat for several; replaces the chosen agents).
        #[arg(long = "agent")]
        agents: Vec<i64>,
        /// The mailbox digests are sent from (name or id).
        #[arg(long)]
        from: Option<String>,
        /// At most one digest per agent every this many minutes.
        #[arg(long)]
        every: Option<i64>,
        /// Desktop notifications in the app: on or off.
        #[arg(long)]
        desktop: Option<String>,
        /// Tell this kind of problem (repeat for several).
        #[arg(long = "on", value_name = "KIND")]
        turn_on: Vec<String>,
        /// Do not tell this kind of problem (repeat for several).
        #[arg(long = "off", value_name = "KIND")]
        turn_off: Vec<String>,
        /// Warn about credentials expiring within this many days.
        #[arg(long)]
        expiring_days: Option<i64>,
    },
    /// Send a digest to each chosen agent now.
    Test,
}

pub async fn run(core: &Core, command: &NotifyCommand) -> anyhow::Result<()> {
    match command {
        NotifyCommand::Show { json } => {
            let settings = core.notification_settings().await?;
            let recent = core.store().recent_notifications(20).await?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "settings": settings, "recent": recent })
                    )?
                );
                return Ok(());
            }
            let from = match &settings.from_mailbox_id {
                Some(id) => core
                    .store()
                    .mailbox(id)
                    .await
                    .map(|m| m.name)
                    .unwrap_or(id.clone()),
                None => "none (no digest is sent)".into(),
            };
            println!("sent from: {from}");
            println!(
                "every:     {} minutes at most, per agent",
                settings.digest_minutes
            );
            println!("desktop:   {}", if settings.desktop { "on" } else { "off" });
            let told: Vec<&str> = KINDS
                .iter()
                .copied()
                .filter(|k| settings.on.allows(k))
                .collect();
            println!(
                "told:      {} (credentials: within {} days)",
                if told.is_empty() {
                    "nothing".to_string()
                } else {
                    told.join(", ")
                },
                settings.on.expiring_days
            );
            if settings.agents.is_empty() {
                println!("agents:    none (mailroom notify set --agent ID)");
            }
            for a in &settings.agents {
                println!("agent:     {} <{}> (id {})", a.name, a.email, a.agent_id);
            }
            for p in &recent {
                println!(
                    "{} {}  {} — {} (fix: {}){}",
                    p.created_at.format("%Y-%m-%d %H:%M"),
                    p.kind,
                    p.title,
                    p.detail,
                    p.fix,
                    if p.digested_at.is_some() {
                        ""
                    } else {
                        " [waiting]"
                    }
                );
            }
            Ok(())
        }
        NotifyCommand::Set {
            agents,
            from,
            every,
            desktop,
            turn_on,
            turn_off,
            expiring_days,
        } => {
            let mut settings = core.notification_settings().await?;
            if !agents.is_empty() {
                let known = core.notifiable_agents().await?;
                settings.agents = agents
                    .iter()
                    .map(|id| {
                        known.iter().find(|a| a.agent_id == *id).cloned().ok_or_else(|| {
                            anyhow::anyhow!(
                                "agent {id} is not an enabled agent with an email address; the agents are: {}",
                                known
                                    .iter()
                                    .map(|a| format!("{} ({})", a.name, a.agent_id))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            if let Some(from) = from {
                let mailboxes = core.mailboxes().await?;
                let id = mailboxes
                    .iter()
                    .find(|m| m.id == *from || m.name.eq_ignore_ascii_case(from))
                    .map(|m| m.id.clone())
                    .ok_or_else(|| anyhow::anyhow!("no mailbox '{from}'"))?;
                settings.from_mailbox_id = Some(id);
            }
            if let Some(every) = every {
                settings.digest_minutes = *every;
            }
            match desktop.as_deref() {
                None => {}
                Some("on") => settings.desktop = true,
                Some("off") => settings.desktop = false,
                Some(other) => anyhow::bail!("--desktop takes on or off, not '{other}'"),
            }
            for (kinds, on) in [(turn_on, true), (turn_off, false)] {
                for kind in kinds {
                    settings.on.set(kind, on).ok_or_else(|| {
                        anyhow::anyhow!(
                            "no kind of problem '{kind}'; the kinds are: {}",
                            KINDS.join(", ")
                        )
                    })?;
                }
            }
            if let Some(days) = expiring_days {
                settings.on.expiring_days = *days;
            }
            core.set_notification_settings(&settings).await?;
            println!("saved");
            Ok(())
        }
        NotifyCommand::Test => {
            let sent = core.send_test_notifications().await?;
            for m in &sent {
                println!("#{} to {}: {}", m.id, m.to.join(", "), m.status);
            }
            if let Some(failed) = sent.iter().find(|m| m.error_message.is_some()) {
                anyhow::bail!(
                    "not sent: {}",
                    failed.error_message.clone().unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}
