//! `mailroom run`: the sync loop, headless, until Ctrl-C. `mailroom serve`: the same as an
//! always-on service — operations endpoints (`/healthz`, `/readyz`, `/metrics`) on their own
//! address, JSON logs on standard output, SIGTERM as well as Ctrl-C for a graceful stop, and
//! no exit when nothing can be synced yet (it stays up, not ready, and tries again).

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
    /// Seconds an email's claim lasts unless its worker renews it (every third of this while
    /// it works on it): when a worker dies, another takes its emails over after this long.
    #[arg(long, env = "MAILROOM_CLAIM_LEASE_SECS", default_value_t = 300)]
    claim_lease_secs: u64,
}

/// `mailroom serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Where the operations endpoints listen (`/healthz`, `/readyz`, `/metrics`); keep it
    /// private (a monitoring network), not the webhook receiver's public address.
    #[arg(long, env = "MAILROOM_OPS_ADDR", default_value = "127.0.0.1:9464")]
    ops_addr: std::net::SocketAddr,
}

pub async fn serve(
    core: &Core,
    lock: &mailroom_store::DataDirLock,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    run_engine(core, lock, &args.run, Some(args.ops_addr)).await
}

pub async fn run(
    core: &Core,
    lock: &mailroom_store::DataDirLock,
    args: &RunArgs,
) -> anyhow::Result<()> {
    run_engine(core, lock, args, None).await
}

/// Until Ctrl-C or SIGTERM.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

async fn run_engine(
    core: &Core,
    lock: &mailroom_store::DataDirLock,
    args: &RunArgs,
    ops_addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let service = ops_addr.is_some();
    // A service logs JSON on standard output: what a console run prints goes there as events.
    macro_rules! say {
        ($($arg:tt)*) => {
            if service { tracing::info!("{}", format!($($arg)*)) } else { println!($($arg)*) }
        };
    }
    macro_rules! complain {
        ($($arg:tt)*) => {
            if service { tracing::warn!("{}", format!($($arg)*)) } else { eprintln!($($arg)*) }
        };
    }
    let events = EventBus::new();
    // Subscribed before the start, so that no event of the first round is missed.
    let mut rx = events.subscribe();
    let options = EngineOptions {
        sync: SyncOptions {
            interval_override: args.interval.map(|s| Duration::from_secs(s.max(1))),
            lease: Duration::from_secs(args.claim_lease_secs.max(3)),
            ..Default::default()
        },
        ..Default::default()
    };
    let engine = std::sync::Arc::new(Engine::start(core.clone(), events, lock, options).await?);
    let ops_cancel = tokio_util::sync::CancellationToken::new();
    if let Some(addr) = ops_addr {
        let bound =
            mailroom_engine::ops::serve(addr, core.clone(), engine.clone(), ops_cancel.clone())
                .await
                .map_err(|e| {
                    anyhow::anyhow!("the operations endpoints cannot listen on {addr}: {e}")
                })?;
        say!("Operations endpoints on http://{bound} (/healthz, /readyz, /metrics)");
    }
    let state = engine.started().await;
    let report = engine.report();
    if let Some((addr, base_url)) = &report.receiver {
        say!("Webhook receiver on {addr} (notifications to {base_url})");
    }
    for mailbox in &report.mailboxes {
        match (&mailbox.not_synced, mailbox.method) {
            (None, MailboxMethod::Webhook) => {
                say!("{}: syncing (webhooks, with a fallback scan)", mailbox.name)
            }
            (None, _) => say!("{}: syncing", mailbox.name),
            (Some(why), _) if why == "disabled" => {
                say!("{}: disabled, not synced", mailbox.name)
            }
            (Some(why), _) => complain!("{}: not synced: {why}", mailbox.name),
        }
    }
    let synced = report
        .mailboxes
        .iter()
        .filter(|m| m.not_synced.is_none())
        .count();
    if synced == 0 && !service {
        engine.stop().await;
        match state {
            EngineState::Degraded { reason, .. } => anyhow::bail!("{reason}"),
            _ => anyhow::bail!(
                "no mailbox could be started; connect a mailbox first (mailroom mailbox list)"
            ),
        }
    }
    if let EngineState::Degraded { reason, .. } = &state {
        complain!("Degraded: {reason} (trying again in the background)");
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
                    say!(
                        "{} {} \"{}\" → {:?}{ticket}{why}",
                        email.received_at.format("%Y-%m-%d %H:%M:%S"),
                        email.from_address,
                        email.subject,
                        email.status
                    );
                }
                Ok(EngineEvent::MailboxSync(status)) if status.state == SyncState::NeedsSignIn => {
                    let (label, name) = name_of(&status.mailbox_id);
                    complain!(
                        "{label}: needs a new sign-in; it is not read until then. {} Run `mailroom mailbox authorize '{name}'`.",
                        status.error.unwrap_or_default(),
                    );
                }
                Ok(EngineEvent::MailboxSync(status)) if status.state == SyncState::Error => {
                    let (label, _) = name_of(&status.mailbox_id);
                    complain!("{label}: {}", status.error.unwrap_or_default());
                }
                Ok(EngineEvent::Engine(EngineState::Degraded { reason, .. })) => {
                    complain!("Degraded: {reason}")
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    complain!("({n} events not shown)")
                }
                Err(_) => break,
            }
        }
    });
    if service {
        say!("Serving; SIGTERM or Ctrl-C stops.");
    } else {
        say!("Running; press Ctrl-C to stop.");
    }
    stop_signal().await?;
    let stopping = std::time::Instant::now();
    say!("Stopping (attempts in flight are interrupted and their emails released)…");
    engine.stop().await;
    ops_cancel.cancel();
    printer.abort();
    say!("Stopped in {} ms.", stopping.elapsed().as_millis());
    Ok(())
}
