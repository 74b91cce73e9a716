//! `mailroom`: the headless front end over the same core as the desktop app.

use clap::{Parser, Subcommand};
use mailroom_engine::Core;

#[derive(Parser)]
#[command(
    name = "mailroom",
    version,
    about = "Microsoft 365 mailboxes into HaloPSA tickets"
)]
struct Cli {
    /// Data directory (default: $MAILROOM_DATA_DIR or the platform's per-user data directory).
    #[arg(long, global = true, env = "MAILROOM_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage mailboxes.
    #[command(subcommand)]
    Mailbox(MailboxCommand),
}

#[derive(Subcommand)]
enum MailboxCommand {
    /// List configured mailboxes.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let core = match &cli.data_dir {
        Some(dir) => Core::open(dir).await?,
        None => Core::open_default().await?,
    };
    let _log = mailroom_engine::logging::init(core.data_dir(), false);
    match cli.command {
        Command::Mailbox(MailboxCommand::List { json }) => mailbox_list(&core, json).await,
    }
}

async fn mailbox_list(core: &Core, json: bool) -> anyhow::Result<()> {
    let mailboxes = core.mailboxes().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&mailboxes)?);
        return Ok(());
    }
    if mailboxes.is_empty() {
        println!("No mailboxes yet. Add one in the app, or with `mailroom mailbox add`.");
        return Ok(());
    }
    println!(
        "{:<24} {:<8} {:<32} CONNECTED AS",
        "NAME", "METHOD", "MAILBOX"
    );
    for m in mailboxes {
        let method = match m.method {
            mailroom_engine::store_types::MailboxMethod::Scan => "scan",
            mailroom_engine::store_types::MailboxMethod::Webhook => "webhook",
        };
        let address = m
            .mailbox_address
            .or(m.shared_mailbox)
            .unwrap_or_else(|| "(signed-in user's inbox)".into());
        let account = m
            .connected_account
            .unwrap_or_else(|| "not connected".into());
        println!("{:<24} {:<8} {:<32} {}", m.name, method, address, account);
    }
    Ok(())
}
