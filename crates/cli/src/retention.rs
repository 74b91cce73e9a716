//! `mailroom retention`: how long attempts and request bodies are kept, the database's size,
//! and a pruning pass now (`--prune-now`; the engine prunes on its own every hour).
//! `--request-bodies-days N` and `--attempts-days N` change the settings.

use mailroom_engine::retention::RetentionSettings;
use mailroom_engine::Core;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct RetentionArgs {
    /// Days the bodies of an attempt's HTTP exchanges are kept.
    #[arg(long)]
    request_bodies_days: Option<u32>,
    /// Days an email's attempts, with their exchanges and processing log, are kept.
    #[arg(long)]
    attempts_days: Option<u32>,
    /// Prune now what is older than the settings allow.
    #[arg(long)]
    prune_now: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Shown {
    settings: RetentionSettings,
    size: mailroom_store::retention::StoreSize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pruned: Option<mailroom_engine::retention::PruneReport>,
}

pub async fn run(core: &Core, args: &RetentionArgs) -> anyhow::Result<()> {
    let mut settings = core.retention().await?;
    if args.request_bodies_days.is_some() || args.attempts_days.is_some() {
        settings.request_bodies_days = args
            .request_bodies_days
            .unwrap_or(settings.request_bodies_days);
        settings.attempts_days = args.attempts_days.unwrap_or(settings.attempts_days);
        core.set_retention(settings).await?;
    }
    let pruned = if args.prune_now {
        let cancel = CancellationToken::new();
        let on_ctrl_c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        Some(core.prune(chrono::Utc::now(), &cancel).await?)
    } else {
        None
    };
    let shown = Shown {
        settings,
        size: core.store_size().await?,
        pruned,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    println!(
        "Request bodies kept {} days; attempts, their requests and processing log {} days.",
        shown.settings.request_bodies_days, shown.settings.attempts_days
    );
    println!(
        "Database: {:.1} MB, {:.1} MB of it free{}.",
        shown.size.bytes as f64 / 1e6,
        shown.size.free_bytes as f64 / 1e6,
        if shown.size.reclaims {
            " (given back to the file system after pruning)"
        } else {
            " (reused by new data)"
        }
    );
    if let Some(p) = shown.pruned {
        println!(
            "Pruned {} attempt(s) and the bodies of {} request(s); {:.1} MB given back{}.",
            p.attempts,
            p.request_bodies,
            p.reclaimed_bytes as f64 / 1e6,
            if p.interrupted {
                " (stopped early)"
            } else {
                ""
            }
        );
    }
    Ok(())
}
