//! `mailroom run`: the sync loop, headless, until Ctrl-C.

use std::collections::HashMap;
use std::time::Duration;

use mailroom_engine::engine::{Engine, EngineOptions, EngineState};
use mailroom_engine::events::{EngineEvent, EventBus, SyncState};
use mailroom_engine::sync::SyncOptions;
use mailroom_engine::Core;
use mailroom_store::inbound::LogStatus;
use mailroom_store::MailboxMethod;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Scan interval in seconds for every polling mailbox; overrides the interval stored in
    /// each mailbox's processing settings (60 s unless changed). Without it, each mailbox
    /// uses its own.
    #[arg(long)]
    interval: Option<u64>,
}

pub async fn run(
    core: &Core,
    lock: &mailroom_store::DataDirLock,
    args: &RunArgs,
) -> anyhow::Result<()> {
    let events = EventBus::new();
    // Subscribed before the start, so that no event of the first round is missed.
    let mut rx = events.subscribe();
    let options = EngineOptions {
        sync: SyncOptions {
            interval_override: args.interval.map(|s| Duration::from_secs(s.max(1))),
            ..Default::default()
        },
        ..Default::default()
    };
    let engine = Engine::start(core.clone(), events, lock, options).await?;
    let state = engine.started().await;
    let report = engine.report();
    if let Some((addr, base_url)) = &report.receiver {
        println!("Webhook receiver on {addr} (notifications to {base_url})");
    }
    for mailbox in &report.mailboxes {
        match (&mailbox.not_synced, mailbox.method) {
            (None, MailboxMethod::Webhook) => {
                println!("{}: syncing (webhooks, with a fallback scan)", mailbox.name)
            }
            (None, _) => println!("{}: syncing", mailbox.name),
            (Some(why), _) if why == "disabled" => {
                println!("{}: disabled, not synced", mailbox.name)
            }
            (Some(why), _) => eprintln!("{}: not synced: {why}", mailbox.name),
        }
    }
    let synced = report
        .mailboxes
        .iter()
        .filter(|m| m.not_synced.is_none())
        .count();
    if synced == 0 {
        engine.stop().await;
        match state {
            EngineState::Degraded { reason, .. } => anyhow::bail!("{reason}"),
            _ => anyhow::bail!(
                "no mailbox could be started; connect a mailbox first (mailroom mailbox list)"
            ),
        }
    }
    if let EngineState::Degraded { reason, .. } = &state {
        eprintln!("Degraded: {reason} (trying again in the background)");
    }
    // Errors name mailboxes by their name and address, not by id.
    let mailboxes: HashMap<String, mailroom_engine::Mailbox> = core
        .mailboxes()
        .await?
        .into_iter()
        .map(|m| (m.id.clone(), m))
        .collect();
    let name_of = move |id: &str| {
        mailboxes
            .get(id)
            .map(|m| (mailroom_engine::mailboxes::label(m), m.name.clone()))
            .unwrap_or_else(|| (format!("mailbox {id}"), id.to_string()))
    };
    let printer = tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(EngineEvent::Email { email, .. }) if email.status != LogStatus::Pending => {
                    let ticket = email
                        .ticket_id
                        .map(|t| format!(" ticket {t}"))
                        .unwrap_or_default();
                    let why = email
                        .skip_reason
                        .clone()
                        .or(email.error_code.clone())
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default();
                    println!(
                        "{} {} \"{}\" → {:?}{ticket}{why}",
                        email.received_at.format("%Y-%m-%d %H:%M:%S"),
                        email.from_address,
                        email.subject,
                        email.status
                    );
                }
                Ok(EngineEvent::MailboxSync(status)) if status.state == SyncState::NeedsSignIn => {
                    let (label, name) = name_of(&status.mailbox_id);
                    eprintln!(
                        "{label}: needs a new sign-in; it is not read until then. {} Run `mailroom mailbox authorize '{name}'`.",
                        status.error.unwrap_or_default(),
                    );
                }
                Ok(EngineEvent::MailboxSync(status)) if status.state == SyncState::Error => {
                    let (label, _) = name_of(&status.mailbox_id);
                    eprintln!("{label}: {}", status.error.unwrap_or_default());
                }
                Ok(EngineEvent::Engine(EngineState::Degraded { reason, .. })) => {
                    eprintln!("Degraded: {reason}")
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("({n} events not shown)")
                }
                Err(_) => break,
            }
        }
    });
    println!("Running; press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    let stopping = std::time::Instant::now();
    println!("Stopping (attempts in flight are interrupted and their emails released)…");
    engine.stop().await;
    printer.abort();
    println!("Stopped in {} ms.", stopping.elapsed().as_millis());
    Ok(())
}
