//! `mailroom outbound`: the outgoing mail (agents' replies sent from the connected mailboxes).
//! - `list [--mailbox NAME] [--json]`: newest first, with status and ticket;
//! - `show ID [--json]`: one email with its attempts (processing log, requests);
//! - `resend ID`: a failed email tried again now (a sent one is never sent twice);
//! - `default-mailbox [NAME|--none]`: the mailbox agents' replies go out from for tickets that
//!   did not start as email.

use mailroom_engine::Core;

#[derive(clap::Subcommand)]
pub enum OutboundCommand {
    /// Outgoing emails, newest first.
    List {
        /// Only this mailbox (name or id).
        #[arg(long)]
        mailbox: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
    /// One outgoing email with its attempts.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Try a failed email again now.
    Resend { id: i64 },
    /// Show or choose the mailbox replies go out from for tickets that did not start as email.
    DefaultMailbox {
        /// Mailbox name or id.
        mailbox: Option<String>,
        /// Choose none.
        #[arg(long)]
        none: bool,
    },
}

/// The id of a mailbox named by name (any case) or id; the error lists the names.
pub(crate) async fn mailbox_id(core: &Core, key: &str) -> anyhow::Result<String> {
    let mailboxes = core.mailboxes().await?;
    mailboxes
        .iter()
        .find(|m| m.id == key || m.name.eq_ignore_ascii_case(key))
        .map(|m| m.id.clone())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no mailbox '{key}'; the mailboxes are: {}",
                mailboxes
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

pub async fn run(core: &Core, command: &OutboundCommand) -> anyhow::Result<()> {
    match command {
        OutboundCommand::List {
            mailbox,
            limit,
            json,
        } => {
            let id = match mailbox {
                Some(m) => Some(mailbox_id(core, m).await?),
                None => None,
            };
            let list = core
                .store()
                .outbound_list(id.as_deref(), (*limit).clamp(1, 1000), None)
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                println!("no outgoing email yet");
            }
            for e in &list {
                println!(
                    "#{:<6} {}  {:<8} ticket {:<8} to {:<30} {}{}",
                    e.id,
                    e.created_at.format("%Y-%m-%d %H:%M:%S"),
                    e.status,
                    e.ticket_id
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "-".into()),
                    e.to.join(", "),
                    e.subject,
                    e.error_message
                        .as_deref()
                        .map(|m| format!(" — {m}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        OutboundCommand::Show { id, json } => {
            let email = core
                .store()
                .outbound(*id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("there is no outgoing email {id}"))?;
            let attempts = core.store().outbound_attempts(*id).await?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "email": email, "attempts": attempts })
                    )?
                );
                return Ok(());
            }
            println!("#{} {} — {}", email.id, email.status, email.subject);
            println!("to: {}  cc: {}", email.to.join(", "), email.cc.join(", "));
            println!("Message-ID: {}", email.internet_message_id);
            for a in &attempts {
                println!(
                    "attempt {} ({}) {} → {}",
                    a.number,
                    a.trigger,
                    a.started_at.format("%H:%M:%S"),
                    a.result.as_deref().unwrap_or("running")
                );
                for line in &a.log {
                    println!("    {} {}", line.at.format("%H:%M:%S"), line.message);
                }
                for r in &a.requests {
                    println!("    {} {} → {:?}", r.method, r.url, r.status);
                }
            }
            Ok(())
        }
        OutboundCommand::Resend { id } => {
            let email = core.resend_outbound(*id).await?;
            println!("#{} {}", email.id, email.status);
            if let Some(e) = &email.error_message {
                anyhow::bail!("not sent: {e}");
            }
            Ok(())
        }
        OutboundCommand::DefaultMailbox { mailbox, none } => {
            if *none {
                core.set_outgoing_default_mailbox(None).await?;
            } else if let Some(m) = mailbox {
                let id = mailbox_id(core, m).await?;
                core.set_outgoing_default_mailbox(Some(&id)).await?;
            }
            match core.outgoing_default_mailbox().await? {
                Some(id) => {
                    let name = core.store().mailbox(&id).await.map(|m| m.name).unwrap_or(id);
                    println!("outgoing default mailbox: {name}");
                }
                None => println!("outgoing default mailbox: none (replies to tickets that did not start as email are not sent)"),
            }
            Ok(())
        }
    }
}
