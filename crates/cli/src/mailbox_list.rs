//! `mailroom mailbox list`.

use mailroom_engine::store_types::MailboxMethod;
use mailroom_engine::Core;

pub async fn run(core: &Core, json: bool) -> anyhow::Result<()> {
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
            MailboxMethod::Scan => "scan",
            MailboxMethod::Webhook => "webhook",
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
