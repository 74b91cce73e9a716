//! `mailroom psa`: the HaloPSA connection and the integration wizard, headless.
//! - `connect`: save the instance URL, API application and tenant (secret to the keyring), then
//!   check the connection;
//! - `show`: the saved connection (never the secret) and each wizard step's last result;
//! - `check [--step S] [--json]`: the wizard's checks (crates/engine integration.rs), each item
//!   with what to change when it fails; exits non-zero when a step needs attention;
//! - `scope`: the ticket types (read live) and the wizard's scope; with options, changes it;
//! - `tab`: save the ticket tab's Iframe secret and scheme, print the tab's URL;
//! - `setup <step>`: "Create it for me" (the ticket tab, the resolve action, the webhook
//!   certificate, the PSA webhook), or `setup all`: every step Mailroom can do, then the
//!   end-to-end test;
//! - `test`: the connection's checks for mail processing (credentials, scopes, ticket types,
//!   the reply outcome of every mailbox); `--end-to-end` runs the integration's end-to-end
//!   test instead;
//! - `deliveries`: the newest deliveries of HaloPSA's webhook as the receiver took them.
//!
//! The webhook and end-to-end steps need the receiver: when no engine runs on its address,
//! these commands start one for as long as they run.

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
    /// Show or change how PSA writes are batched: new tickets (and replies) of emails processed
    /// together share one request.
    Batching {
        /// Most records in one request (1 sends each on its own; default 20).
        #[arg(long)]
        records: Option<u32>,
        /// Longest wait for other emails to share a request, in milliseconds (default 250).
        #[arg(long)]
        wait_ms: Option<u32>,
    },
    /// Show the saved connection and each integration step's last check.
    Show {
        /// Print JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
    /// Check the integration steps through the PSA's API (all of them, or one).
    Check {
        /// One step: connection, agent, scope, tab, resolve, certificate, webhook, test.
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
    /// Do a step in HaloPSA through its API ("Create it for me"), or `all` of them. `tab`
    /// creates the ticket tab and allows it on the scope's ticket types; `resolve --status ID`
    /// creates the action "Mailroom resolve"; `certificate` generates the webhook certificate
    /// when there is none (`--out FILE` also writes it as a PFX, its password printed once) and
    /// uploads it; `webhook` creates the signed webhook; `all` does each of them, then runs the
    /// end-to-end test. Needs the optional admin permission.
    Setup {
        /// The step: tab, resolve, certificate, webhook, all.
        step: String,
        /// resolve: the status the action sets (your Closed/Resolved status id; `all` picks
        /// the status named Closed when none was chosen).
        #[arg(long)]
        status: Option<i64>,
        /// certificate: generate a new certificate even if one is kept, and write it as a PFX
        /// here.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// resolve: close a ticket when its requester's reply asks to (`on` or `off`).
        #[arg(long)]
        close_on_request: Option<String>,
        /// resolve: the phrases that ask to close (comma-separated).
        #[arg(long, value_delimiter = ',')]
        close_phrases: Option<Vec<String>>,
    },
    /// Deliveries of HaloPSA's webhook as Mailroom's receiver took them, newest first.
    Deliveries {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print JSON (with headers and bodies) instead of a list.
        #[arg(long)]
        json: bool,
    },
    /// Check the HaloPSA connection for mail processing: sign-in, permissions, ticket types,
    /// reply outcomes.
    Test {
        /// Run the integration's end-to-end test (a test ticket through the webhook and the
        /// tab, then deleted) instead.
        #[arg(long)]
        end_to_end: bool,
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
        PsaCommand::Batching { records, wait_ms } => {
            let mut batching = core.psa_batching().await?;
            if records.is_some() || wait_ms.is_some() {
                batching.max_records = records.unwrap_or(batching.max_records);
                batching.max_wait_ms = wait_ms.unwrap_or(batching.max_wait_ms);
                core.set_psa_batching(batching).await?;
                println!("Saved; the engine applies it when it next starts.");
            }
            println!(
                "Up to {} record(s) per request; an email waits at most {} ms for others to share it.",
                batching.max_records, batching.max_wait_ms
            );
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
        PsaCommand::Setup {
            step,
            status,
            out,
            close_on_request,
            close_phrases,
        } => {
            if close_on_request.is_some() || close_phrases.is_some() {
                let current = core.resolve_settings().await?;
                let enabled = match close_on_request.as_deref() {
                    None => current.close_on_request,
                    Some("on") => true,
                    Some("off") => false,
                    Some(other) => {
                        anyhow::bail!("--close-on-request takes on or off, not '{other}'")
                    }
                };
                let saved = core
                    .set_close_on_request(
                        enabled,
                        close_phrases.clone().unwrap_or(current.close_phrases),
                    )
                    .await?;
                println!(
                    "close on request: {} (phrases: {})",
                    if saved.close_on_request { "on" } else { "off" },
                    saved.close_phrases.join(", ")
                );
            }
            if step.trim() == "all" {
                return setup_all(core, *status).await;
            }
            let result = match Step::parse(step)? {
                Step::Tab => core.create_ticket_tab().await?,
                Step::Resolve => {
                    if let Some(status) = status {
                        core.set_resolve_status(*status).await?;
                    }
                    core.create_resolve_action().await?
                }
                Step::Certificate => setup_certificate(core, out.as_deref()).await?,
                Step::Webhook => {
                    let _receiver = core.start_psa_receiver().await?;
                    core.create_psa_webhook().await?
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
        PsaCommand::Deliveries { limit, json } => {
            let deliveries = core.psa_webhook_deliveries(*limit, None).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&deliveries)?);
                return Ok(());
            }
            if deliveries.is_empty() {
                println!(
                    "no delivery received yet (webhook URL: {})",
                    core.psa_webhook_url().await?
                );
            }
            for d in &deliveries {
                println!(
                    "#{:<6} {}  {:<24} ticket {:<8} {} {:<18} {}",
                    d.id,
                    d.received_at.format("%Y-%m-%d %H:%M:%S"),
                    d.event.as_deref().unwrap_or("-"),
                    d.ticket_id
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "-".into()),
                    d.status,
                    d.verification,
                    d.detail
                );
            }
            Ok(())
        }
        PsaCommand::Test {
            end_to_end: true,
            json,
        } => {
            let _receiver = core.start_psa_receiver().await?;
            let result = core
                .run_end_to_end_test(mailroom_engine::integration::DELIVERY_WAIT)
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                print_step(&result);
            }
            if !result.ok {
                anyhow::bail!("a link of the chain is broken (see above)");
            }
            Ok(())
        }
        PsaCommand::Test {
            end_to_end: false,
            json,
        } => {
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

/// `setup certificate`: a certificate generated when none is kept (or `out` asks for a new
/// one, written there as a PFX with its password printed once), then uploaded.
async fn setup_certificate(
    core: &Core,
    out: Option<&std::path::Path>,
) -> anyhow::Result<StepResult> {
    if out.is_some() || core.webhook_certificate().await?.is_none() {
        let generated = core.generate_webhook_certificate().await?;
        println!(
            "generated certificate {} ({}), valid until {}",
            generated.certificate.thumbprint,
            generated.certificate.subject,
            generated.certificate.not_after.format("%Y-%m-%d")
        );
        if let Some(path) = out {
            mailroom_engine::integration::write_private_file(path, &generated.pfx)
                .map_err(|e| anyhow::anyhow!("{} cannot be written: {e}", path.display()))?;
            println!(
                "PFX written to {}; its password (shown only now): {}",
                path.display(),
                generated.password
            );
        }
    }
    Ok(core.upload_webhook_certificate().await?)
}

/// `setup all`: every step Mailroom can do through the API, in the wizard's order — the scope
/// (HaloPSA's default ticket type, the tab on the agent-selectable types) and the resolve
/// status (the one named Closed) when none were chosen, the tab, the resolve action, the
/// certificate, the webhook — then the end-to-end test, and every step's check.
async fn setup_all(core: &Core, status: Option<i64>) -> anyhow::Result<()> {
    let _receiver = core.start_psa_receiver().await?;
    let scope = core.integration_scope().await?;
    if scope.settings.tab_ticket_type_ids.is_empty() {
        let mut settings = scope.settings.clone();
        settings.tab_ticket_type_ids = scope
            .ticket_types
            .iter()
            .filter(|t| t.agents_can_select)
            .map(|t| t.id)
            .collect();
        println!(
            "scope: the tab on {} agent-selectable ticket type(s)",
            settings.tab_ticket_type_ids.len()
        );
        core.set_integration_scope(settings).await?;
    }
    let resolve = core.integration_resolve().await?;
    let status = status.or(resolve.settings.status_id).or_else(|| {
        resolve
            .statuses
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case("closed"))
            .map(|s| s.id)
    });
    match status {
        Some(id) => {
            core.set_resolve_status(id).await?;
        }
        None => anyhow::bail!(
            "no status is named Closed: name the resolve action's status with --status ID"
        ),
    }
    if core.ticket_tab_settings().await?.is_none() {
        println!(
            "note: the ticket tab's Iframe secret is not saved yet: copy it from HaloPSA and run `mailroom psa tab`"
        );
    }
    print_step(&core.create_ticket_tab().await?);
    print_step(&core.create_resolve_action().await?);
    print_step(&setup_certificate(core, None).await?);
    print_step(&core.create_psa_webhook().await?);
    print_step(
        &core
            .run_end_to_end_test(mailroom_engine::integration::DELIVERY_WAIT)
            .await?,
    );
    let results = core.check_integration().await?;
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.step.id())
        .collect();
    if !failed.is_empty() {
        anyhow::bail!(
            "set up, but these steps still need attention: {} (see `mailroom psa check`)",
            failed.join(", ")
        );
    }
    println!("every step is done");
    Ok(())
}
