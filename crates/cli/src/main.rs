//! `mailroom`: the headless front end over the same core as the desktop app.
//!
//! Each subcommand group lives in its own module; this file only parses and dispatches.

mod bench;
mod bench_contacts;
mod bench_log;
#[cfg(unix)]
mod chaos;
mod contacts;
mod mailbox;
mod mailbox_list;
mod notify;
mod outbound;
mod processes;
mod psa;
mod retention;
mod run;
mod sandbox;
mod secrets;
mod subscription;
#[cfg(unix)]
mod workers;

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
    /// A PostgreSQL database shared by several workers (`postgres://user:password@host/db`)
    /// instead of the data directory's SQLite file. Needs the secrets key
    /// (MAILROOM_SECRETS_KEY_FILE), the same on every worker.
    #[arg(long, global = true, env = mailroom_store::DATABASE_URL_ENV, hide_env_values = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage mailboxes.
    #[command(subcommand)]
    Mailbox(MailboxCommand),
    /// Graph change-notification subscriptions of Webhooks mailboxes.
    #[command(subcommand)]
    Subscription(subscription::SubscriptionCommand),
    /// The HaloPSA connection.
    #[command(subcommand)]
    Psa(psa::PsaCommand),
    /// Outgoing mail: agents' replies sent from the connected mailboxes.
    #[command(subcommand)]
    Outbound(outbound::OutboundCommand),
    /// Contact imports: Outlook contacts into HaloPSA users.
    #[command(subcommand)]
    Contacts(contacts::ContactsCommand),
    /// Error notifications: digests of problems to chosen PSA agents.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// How long processing details are kept; the database's size; prune now.
    Retention(retention::RetentionArgs),
    /// The Mailroom processes on the database (workers, desktop apps) and whether any
    /// processes mail.
    Processes {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The secret store: the OS keyring, or sealed in the database (a server).
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Run the local sandbox tenant (Microsoft identity platform, Graph and HaloPSA).
    Sandbox(sandbox::SandboxArgs),
    /// Run the sync loop for every connected mailbox until Ctrl-C.
    Run(run::RunArgs),
    /// Run as an always-on service: the sync loop, the webhook receivers, health and metrics
    /// endpoints, JSON logs; stops on SIGTERM.
    Serve(run::ServeArgs),
    /// Benchmarks against the in-process sandbox.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum MailboxCommand {
    /// List configured mailboxes.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Connect(mailbox::ConnectCommand),
}

async fn open_core(cli: &Cli) -> anyhow::Result<Core> {
    Ok(
        match cli.database_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => Core::connect(url, data_dir(cli)?).await?,
            None => Core::open(data_dir(cli)?).await?,
        },
    )
}

fn data_dir(cli: &Cli) -> anyhow::Result<std::path::PathBuf> {
    Ok(match &cli.data_dir {
        Some(dir) => dir.clone(),
        None => mailroom_store::data_dir()?,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        // The sandbox has no data directory of its own: it is a separate, stateless tenant.
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Run(args) => {
            // One engine per data directory (the app takes the same lock); held until exit.
            let lock = mailroom_store::DataDirLock::acquire(&data_dir(&cli)?, "mailroom run")?;
            let core = open_core(&cli).await?;
            let _log = mailroom_engine::logging::init(core.data_dir(), false);
            run::run(&core, &lock, args).await
        }
        Command::Serve(args) => {
            let lock = mailroom_store::DataDirLock::acquire(&data_dir(&cli)?, "mailroom serve")?;
            let core = open_core(&cli).await?;
            let _log = mailroom_engine::logging::init_json(core.data_dir());
            run::serve(&core, &lock, args).await
        }
        Command::Subscription(command) => {
            let core = open_core(&cli).await?;
            let _log = mailroom_engine::logging::init(core.data_dir(), false);
            subscription::run(&core, command).await
        }
        Command::Contacts(command) => {
            let core = open_core(&cli).await?;
            let _log = mailroom_engine::logging::init(core.data_dir(), false);
            contacts::run(&core, command).await
        }
        Command::Notify(command) => {
            let core = open_core(&cli).await?;
            let _log = mailroom_engine::logging::init(core.data_dir(), false);
            notify::run(&core, command).await
        }
        Command::Outbound(command) => {
            let core = open_core(&cli).await?;
            let _log = mailroom_engine::logging::init(core.data_dir(), false);
            outbound::run(&core, command).await
        }
        // A new key needs no data directory (nor a key to open one with).
        Command::Secrets(secrets::SecretsCommand::NewKey { file }) => secrets::new_key(file),
        Command::Secrets(command) => {
            let core = open_core(&cli).await?;
            secrets::run(&core, command).await
        }
        Command::Processes { json } => {
            let core = open_core(&cli).await?;
            processes::run(&core, *json).await
        }
        Command::Retention(args) => {
            let core = open_core(&cli).await?;
            let _log = mailroom_engine::logging::init(core.data_dir(), false);
            retention::run(&core, args).await
        }
        Command::Psa(command) => {
            let core = open_core(&cli).await?;
            let _log = mailroom_engine::logging::init(core.data_dir(), false);
            psa::run(&core, command).await
        }
        Command::Mailbox(MailboxCommand::List { json }) => {
            let core = open_core(&cli).await?;
            let _log = mailroom_engine::logging::init(core.data_dir(), false);
            mailbox_list::run(&core, *json).await
        }
        Command::Mailbox(MailboxCommand::Connect(command)) => {
            let core = open_core(&cli).await?;
            let _log = mailroom_engine::logging::init(core.data_dir(), false);
            mailbox::run(&core, command).await
        }
    }
}
