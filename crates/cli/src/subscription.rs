//! `mailroom subscription create|show|cancel`: the Graph change-notification subscription of a
//! *Webhooks* mailbox.
//!
//! `create` briefly runs the webhook receiver (configured address and port, public base URL)
//! to answer Graph's validation handshake; notifications then reach the receiver of
//! `mailroom run` or the app, which must use the same settings. Stop `mailroom run` first when
//! both would bind the same port.

use mailroom_engine::webhooks::{SubscriptionRecord, Webhooks};
use mailroom_engine::{Core, CoreError};

use crate::mailbox::{explain, find};

#[derive(clap::Subcommand)]
pub enum SubscriptionCommand {
    /// Create (or replace) the mailbox's subscription.
    Create {
        /// Mailbox name or id.
        mailbox: String,
    },
    /// Show the mailbox's subscription and its recent events.
    Show {
        /// Mailbox name or id.
        mailbox: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel (delete) the mailbox's subscription.
    Cancel {
        /// Mailbox name or id.
        mailbox: String,
    },
    /// Show the webhook receiver's settings, or change them with the flags given (the app and
    /// `mailroom run` use them at their next start; recreate subscriptions after changing the
    /// public URL or port).
    Receiver {
        /// Address the receiver binds (e.g. 127.0.0.1, or 0.0.0.0 behind a firewall).
        #[arg(long)]
        bind: Option<String>,
        /// Port the receiver binds (0 = any free port).
        #[arg(long)]
        port: Option<u16>,
        /// Public HTTPS base URL of the tunnel or reverse proxy forwarding to the receiver.
        #[arg(long)]
        public_url: Option<String>,
        /// Forget the public URL (notifications go to the bound address).
        #[arg(long, conflicts_with = "public_url")]
        no_public_url: bool,
        /// Seconds between the fallback scans of Webhooks mailboxes, which catch notifications
        /// Graph lost (default 900).
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
        fallback_interval: Option<u64>,
    },
}

fn print_record(record: &SubscriptionRecord) {
    println!("subscription      {}", record.subscription_id);
    println!("resource          {}", record.resource);
    println!("expires           {}", record.expires_at.to_rfc3339());
    println!("created           {}", record.created_at.to_rfc3339());
    println!(
        "last notification {}",
        record
            .last_notification_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "never".into())
    );
    println!("renewals          {}", record.renewals);
}

async fn receiver(core: &Core, mailbox_key: &str) -> anyhow::Result<(Webhooks, String)> {
    let mailbox = find(core, mailbox_key).await?;
    if mailbox.method != mailroom_store::MailboxMethod::Webhook {
        anyhow::bail!(
            "mailbox '{}' uses the scan method; subscriptions are for Webhooks mailboxes",
            mailbox.name
        );
    }
    let settings = core.webhook_settings().await.map_err(explain)?;
    let options = settings.options().map_err(anyhow::Error::msg)?;
    let graph = core.graph_client_for(&mailbox).await.map_err(explain)?;
    let webhooks = Webhooks::start(
        options,
        core.store().clone(),
        core.secrets().clone(),
        mailroom_clock::system(),
        None,
    )
    .await
    .map_err(|e| explain(CoreError::from(e)))?;
    let id = mailbox.id.clone();
    webhooks.add_mailbox(mailbox, graph).await;
    Ok((webhooks, id))
}

/// Runs one subcommand.
pub async fn run(core: &Core, command: &SubscriptionCommand) -> anyhow::Result<()> {
    match command {
        SubscriptionCommand::Receiver {
            bind,
            port,
            public_url,
            no_public_url,
            fallback_interval,
        } => {
            let mut settings = core.webhook_settings().await.map_err(explain)?;
            let changed = bind.is_some()
                || port.is_some()
                || public_url.is_some()
                || *no_public_url
                || fallback_interval.is_some();
            if let Some(secs) = fallback_interval {
                settings.fallback_interval_secs = Some(*secs);
            }
            if let Some(bind) = bind {
                settings.bind_address = Some(bind.clone());
            }
            if let Some(port) = port {
                settings.port = Some(*port);
            }
            if let Some(url) = public_url {
                settings.public_base_url = Some(url.clone());
            }
            if *no_public_url {
                settings.public_base_url = None;
            }
            if changed {
                core.set_webhook_settings(&settings)
                    .await
                    .map_err(explain)?;
            }
            let options = settings.options().map_err(anyhow::Error::msg)?;
            println!("bind              {}", options.bind);
            println!(
                "fallback scan     every {} s",
                options.fallback_interval.as_secs()
            );
            println!(
                "public base URL   {}",
                settings
                    .public_base_url
                    .as_deref()
                    .unwrap_or("(none: notifications go to the bound address)")
            );
        }
        SubscriptionCommand::Create { mailbox } => {
            let (webhooks, id) = receiver(core, mailbox).await?;
            let result = webhooks.create_subscription(&id).await;
            webhooks.shutdown();
            let record = result.map_err(|e| explain(CoreError::from(e)))?;
            println!("notifications go to {}", webhooks.notification_url(&id));
            print_record(&record);
        }
        SubscriptionCommand::Show { mailbox, json } => {
            let mailbox = find(core, mailbox).await?;
            let (webhooks, id) = receiver(core, &mailbox.id).await?;
            let record = webhooks.subscription(&id).await;
            let events = webhooks.events(&id).await;
            webhooks.shutdown();
            let record = record.map_err(|e| explain(CoreError::from(e)))?;
            let events = events.map_err(|e| explain(CoreError::from(e)))?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "subscription": record,
                        "events": events,
                    }))?
                );
                return Ok(());
            }
            match &record {
                Some(r) => print_record(r),
                None => println!("{}: no subscription", mailbox.name),
            }
            for e in events.iter().rev().take(10).rev() {
                println!("{}  {:<12} {}", e.at.to_rfc3339(), e.kind, e.detail);
            }
        }
        SubscriptionCommand::Cancel { mailbox } => {
            let (webhooks, id) = receiver(core, mailbox).await?;
            let result = webhooks.cancel_subscription(&id).await;
            webhooks.shutdown();
            result.map_err(|e| explain(CoreError::from(e)))?;
            println!("subscription cancelled");
        }
    }
    Ok(())
}
