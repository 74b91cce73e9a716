//! `mailroom psa`: the HaloPSA connection and the integration wizard, headless.
//! - `connect`: save the instance URL, API application and tenant (secret to the keyring), then
//!   check the connection;
//! - `show`: the saved connection (never the secret) and each wizard step's last result;
//! - `check [--step S] [--json]`: the wizard's checks (crates/engine integration.rs), each item
//!   with what to change when it fails; exits non-zero when a step needs attention;
//! - `scope`: the ticket types (read live) and the wizard's scope; with options, changes it;
//! - `tab`: save the ticket tab's Iframe secret and scheme, print the tab's URL;
//! - `setup <step>`: "Create it for me" (the ticket tab, the resolve action);
//! - `test`: the connection's checks for mail processing (credentials, scopes, ticket types,
//!   the reply outcome of every mailbox).

use std::io::BufRead;

use mailroom_engine::integration::{Step, StepResult};
use mailroom_engine::Core;
use mailroom_secrets::SecretValue;

#[derive(clap::Subcommand)]
pub enum PsaCommand {
    /// Save the HaloPSA connection and check it.
    Connect {
        /// The instance URL, e.g. https://yourcompany.halopsa.com.
        #[arg(long)]
        url: String,
        /// The API application's Client ID.
        #[arg(long)]
        client_id: String,
        /// The tenant (instances hosted by Halo that sign in through a shared server).
        #[arg(long)]
        tenant: Option<String>,
        /// The client secret; read from standard input when not set.
        #[arg(long, env = "MAILROOM_PSA_CLIENT_SECRET", hide_env_values = true)]
        client_secret: Option<String>,
    },
    /// Show the saved connection and each integration step's last check.
    Show {
        /// Print JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
    /// Check the integration steps through the PSA's API (all of them, or one).
    Check {
        /// One step: connection, agent, scope, tab, resolve.
        #[arg(long)]
        step: Option<String>,
        /// Print JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
    /// Show the ticket types (read live) and the scope; with options, change it and check it.
    Scope {
        /// The type of tickets logged from email when a mailbox names none (a ticket type id,
        /// or `none` for HaloPSA's own default).
        #[arg(long)]
        default_ticket_type: Option<String>,
        /// The ticket types that show Mailroom's tab (comma-separated ids; empty for none).
        #[arg(long, value_delimiter = ',')]
        tab_ticket_types: Option<Vec<String>>,
        /// Print JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
    /// Save the ticket tab's Iframe secret (from MAILROOM_TAB_SECRET, else standard input) and
    /// how its secure URL parameter is checked, then check the tab step; prints the tab's URL.
    Tab {
        /// `jwt` (HS256 token in `token`) or `hmac_hex` (signature of agent, ticket and time).
        #[arg(long, default_value = "jwt")]
        scheme: String,
        #[arg(long, env = "MAILROOM_TAB_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Do a step in HaloPSA through its API ("Create it for me"): `tab` creates the ticket tab
    /// and allows it on the scope's ticket types; `resolve --status ID` creates the action
    /// "Mailroom resolve". Needs the optional admin permission.
    Setup {
        /// The step: tab, resolve.
        step: String,
        /// resolve: the status the action sets (your Closed/Resolved status id).
        #[arg(long)]
        status: Option<i64>,
    },
    /// Check the HaloPSA connection for mail processing: sign-in, permissions, ticket types,
    /// reply outcomes.
    Test {
        /// Print JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
}

fn print_step(result: &StepResult) {
    let mark = if result.ok { "ok    " } else { "FAILED" };
    println!("{mark} {}: {}", result.step.title(), result.summary);
    for item in &result.items {
        let mark = match (item.ok, item.optional) {
            (true, _) => "  ok    ",
            (false, true) => "  (opt) ",
            (false, false) => "  FAILED",
        };
        println!("{mark} {}: {}", item.label, item.detail);
        if let (false, Some(fix)) = (item.ok, &item.fix) {
            println!("         fix: {fix}");
        }
    }
}

fn ticket_type_id(text: &str) -> anyhow::Result<i64> {
    text.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("'{text}' is not a ticket type id (see `mailroom psa scope`)"))
}

fn read_secret() -> anyhow::Result<String> {
    eprintln!("Secret (then Enter):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn run(core: &Core, command: &PsaCommand) -> anyhow::Result<()> {
    match command {
        PsaCommand::Connect {
            url,
            client_id,
            tenant,
            client_secret,
        } => {
            let secret = match client_secret {
                Some(s) => s.clone(),
                None => read_secret()?,
            };
            let conn = core
                .set_psa_connection(url, client_id, SecretValue::new(secret), tenant.as_deref())
                .await?;
            println!("saved: {} (client {})", conn.base_url, conn.client_id);
            let result = core.check_integration_step(Step::Connection).await?;
            print_step(&result);
            if !result.ok {
                anyhow::bail!("saved, but Mailroom cannot sign in to the PSA (see above)");
            }
            Ok(())
        }
        PsaCommand::Show { json } => {
            let status = core.integration_status().await?;
            let conn = core.psa_connection().await?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "connection": conn,
                        "integration": status,
                    }))?
                );
                return Ok(());
            }
            match &conn {
                Some(c) => println!(
                    "connection: {} (client {}{})",
                    c.base_url,
                    c.client_id,
                    c.tenant
                        .as_deref()
                        .map(|t| format!(", tenant {t}"))
                        .unwrap_or_default()
                ),
                None => println!("connection: none (mailroom psa connect)"),
            }
            for step in &status.steps {
                match &step.result {
                    Some(result) => print_step(result),
                    None => println!("-      {}: not checked (mailroom psa check)", step.title),
                }
            }
            Ok(())
        }
        PsaCommand::Check { step, json } => {
            let results = match step {
                Some(id) => vec![core.check_integration_step(Step::parse(id)?).await?],
                None => core.check_integration().await?,
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                results.iter().for_each(print_step);
            }
            if results.iter().any(|r| !r.ok) {
                anyhow::bail!("a step of the integration needs attention (see above)");
            }
            Ok(())
        }
        PsaCommand::Scope {
            default_ticket_type,
            tab_ticket_types,
            json,
        } => {
            if default_ticket_type.is_some() || tab_ticket_types.is_some() {
                let mut settings = core.scope_settings().await?;
                if let Some(text) = default_ticket_type {
                    settings.default_ticket_type_id = match text.trim() {
                        "none" | "" => None,
                        id => Some(ticket_type_id(id)?),
                    };
                }
                if let Some(ids) = tab_ticket_types {
                    settings.tab_ticket_type_ids = ids
                        .iter()
                        .filter(|s| !s.trim().is_empty())
                        .map(|s| ticket_type_id(s))
                        .collect::<anyhow::Result<_>>()?;
                }
                let result = core.set_integration_scope(settings).await?;
                if !*json {
                    print_step(&result);
                }
            }
            let view = core.integration_scope().await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&view)?);
                return Ok(());
            }
            let name = |id: i64| {
                view.ticket_types
                    .iter()
                    .find(|t| t.id == id)
                    .map(|t| format!("{} ({id})", t.name))
                    .unwrap_or_else(|| format!("{id} (gone)"))
            };
            println!("ticket types:");
            for t in &view.ticket_types {
                println!("  {:>5}  {}", t.id, t.name);
            }
            println!(
                "default for tickets from email: {}",
                view.settings
                    .default_ticket_type_id
                    .map(name)
                    .unwrap_or_else(|| "HaloPSA's default".into())
            );
            println!(
                "types that show Mailroom's tab: {}",
                if view.settings.tab_ticket_type_ids.is_empty() {
                    "none chosen".to_string()
                } else {
                    view.settings
                        .tab_ticket_type_ids
                        .iter()
                        .map(|id| name(*id))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            Ok(())
        }
        PsaCommand::Tab { scheme, secret } => {
            let scheme = match scheme.trim() {
                "jwt" => mailroom_engine::ticket_tab::TabAuthScheme::Jwt,
                "hmac_hex" => mailroom_engine::ticket_tab::TabAuthScheme::HmacHex,
                other => anyhow::bail!("'{other}' is not a scheme: use jwt or hmac_hex"),
            };
            let secret = match secret {
                Some(s) => s.clone(),
                None => read_secret()?,
            };
            core.set_ticket_tab(SecretValue::new(secret), scheme)
                .await?;
            println!("tab URL for HaloPSA: {}", core.ticket_tab_url().await?);
            print_step(&core.check_integration_step(Step::Tab).await?);
            Ok(())
        }
        PsaCommand::Setup { step, status } => {
            let result = match Step::parse(step)? {
                Step::Tab => core.create_ticket_tab().await?,
                Step::Resolve => {
                    if let Some(status) = status {
                        core.set_resolve_status(*status).await?;
                    }
                    core.create_resolve_action().await?
                }
                other => anyhow::bail!(
                    "the {} step has nothing Mailroom can create; do it as `mailroom psa check --step {}` says",
                    other.title(),
                    other.id()
                ),
            };
            print_step(&result);
            if !result.ok {
                anyhow::bail!("done, but the step still needs attention (see above)");
            }
            Ok(())
        }
        PsaCommand::Test { json } => {
            let report = core.test_psa_connection().await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for check in &report.checks {
                    let mark = if check.ok { "ok    " } else { "FAILED" };
                    println!("{mark} {}: {}", check.label, check.detail);
                    if let Some(fix) = &check.fix {
                        println!("       fix: {fix}");
                    }
                }
            }
            if !report.ok {
                anyhow::bail!("the HaloPSA connection has problems (see above)");
            }
            Ok(())
        }
    }
}
