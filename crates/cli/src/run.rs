//! `mailroom run`: the sync loop, headless, until Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use mailroom_engine::events::{EngineEvent, EventBus, SyncState};
use mailroom_engine::pipeline::Pipeline;
use mailroom_engine::sync::{SyncOptions, SyncSupervisor};
use mailroom_engine::Core;
use mailroom_store::inbound::LogStatus;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Scan interval in seconds for every polling mailbox; overrides the interval stored in
    /// each mailbox's processing settings (60 s unless changed). Without it, each mailbox
    /// uses its own.
    #[arg(long)]
    interval: Option<u64>,
}

pub async fn run(core: &Core, args: &RunArgs) -> anyhow::Result<()> {
    let events = EventBus::new();
    let pipeline = Arc::new(Pipeline::from_core(core, events.clone()).await?);
    let clock = pipeline.clock().clone();
    let supervisor = Arc::new(SyncSupervisor::new(
        pipeline,
        SyncOptions {
            interval_override: args.interval.map(|s| Duration::from_secs(s.max(1))),
            ..Default::default()
        },
    ));
    let mut started = 0;
    // Webhooks mailboxes: the receiver, their fallback scans and subscription upkeep (only
    // when there is one, so that `run` never needs the receiver's port otherwise).
    let any_webhook = core
        .mailboxes()
        .await?
        .iter()
        .any(|m| m.enabled && m.method == mailroom_store::MailboxMethod::Webhook);
    let mut webhooks = None;
    if any_webhook {
        let options = core
            .webhook_settings()
            .await?
            .options()
            .map_err(anyhow::Error::msg)?;
        let (service, skipped) = core
            .start_webhooks(options, clock, Some(supervisor.clone()))
            .await?;
        println!(
            "Webhook receiver on {} (notifications to {})",
            service.local_addr(),
            service.base_url()
        );
        for (mailbox, why) in &skipped {
            eprintln!("{}: not synced: {why}", mailbox.name);
        }
        webhooks = Some(service);
    }
    for mailbox in core.mailboxes().await? {
        if mailbox.method == mailroom_store::MailboxMethod::Webhook
            && supervisor.has_mailbox(&mailbox.id)
        {
            println!("{}: syncing (webhooks, with a fallback scan)", mailbox.name);
            started += 1;
            continue;
        }
        if !mailbox.enabled {
            println!("{}: disabled, not synced", mailbox.name);
            continue;
        }
        match core.graph_client_for(&mailbox).await {
            Ok(graph) => {
                println!("{}: syncing", mailbox.name);
                supervisor.start_mailbox(mailbox, graph);
                started += 1;
            }
            Err(e) => eprintln!("{}: not synced: {e}", mailbox.name),
        }
    }
    if started == 0 {
        anyhow::bail!(
            "no mailbox could be started; connect a mailbox first (mailroom mailbox list)"
        );
    }
    let mut rx = events.subscribe();
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
                Ok(EngineEvent::MailboxSync(status)) if status.state == SyncState::Error => {
                    eprintln!(
                        "mailbox {}: {}",
                        status.mailbox_id,
                        status.error.unwrap_or_default()
                    );
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
    println!("Stopping (finishing attempts in progress)…");
    if let Some(w) = &webhooks {
        w.shutdown();
    }
    supervisor.shutdown().await;
    printer.abort();
    Ok(())
}
