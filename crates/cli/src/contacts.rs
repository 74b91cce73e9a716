//! `mailroom contacts`: Outlook contacts into HaloPSA users.
//! - `mappings show [--json]`: the field mappings, and the fields on each side;
//! - `mappings set OUTLOOK=PSA…` (replaces them), `--add OUTLOOK=PSA`, `--remove PSA`,
//!   `--defaults`;
//! - `settings [--default-site ID | --no-default-site] [--update-existing yes|no]
//!   [--exclude-domain D…] [--json]`;
//! - `import --mailbox NAME [--dry-run] [--json] [--batch N]`: the preview, or the run with
//!   progress on stderr (Ctrl-C cancels between batches);
//! - `runs [--mailbox NAME] [--json]`, `show RUN [--outcome O] [--json]`: the import log.

use std::io::Write as _;
use std::sync::Arc;

use mailroom_engine::contacts::fields::{default_mappings, FieldMapping, CONTACT_FIELDS};
use mailroom_engine::contacts::plan::Action;
use mailroom_engine::contacts::run::{ImportProgress, RunOptions, DEFAULT_BATCH};
use mailroom_engine::Core;
use mailroom_store::contacts::ContactOutcome;
use tokio_util::sync::CancellationToken;

use crate::outbound::mailbox_id;

#[derive(clap::Subcommand)]
pub enum ContactsCommand {
    /// Field mappings: Outlook contact field → HaloPSA user field.
    #[command(subcommand)]
    Mappings(MappingsCommand),
    /// The default site for new users, updating existing users, excluded domains.
    Settings {
        /// Site of new users whose email domain no site has.
        #[arg(long)]
        default_site: Option<i64>,
        #[arg(long, conflicts_with = "default_site")]
        no_default_site: bool,
        /// Update existing users' mapped fields that differ (yes) or leave them (no).
        #[arg(long, value_parser = parse_yes_no)]
        update_existing: Option<bool>,
        /// Skip contacts of this domain (repeat; replaces the list). `--exclude-domain ""`
        /// clears it.
        #[arg(long)]
        exclude_domain: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Import a mailbox's contacts (or, with --dry-run, show what an import would do).
    Import {
        /// Mailbox name or id.
        #[arg(long)]
        mailbox: String,
        /// Show the preview only: nothing is written.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
        /// Users per POST to HaloPSA.
        #[arg(long, default_value_t = DEFAULT_BATCH)]
        batch: usize,
    },
    /// Import runs, newest first.
    Runs {
        #[arg(long)]
        mailbox: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One run: each contact's outcome.
    Show {
        run: i64,
        /// Only contacts with this outcome (created, updated, unchanged, skipped, failed, removed).
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum MappingsCommand {
    /// The mappings, and every field on each side.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change the mappings.
    Set {
        /// OUTLOOK=PSA pairs replacing every mapping (e.g. givenName=firstname).
        pairs: Vec<String>,
        /// Add (or re-point) one mapping.
        #[arg(long)]
        add: Vec<String>,
        /// Remove the mapping into this PSA field.
        #[arg(long)]
        remove: Vec<String>,
        /// Start again from the default mappings.
        #[arg(long)]
        defaults: bool,
    },
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" => Ok(true),
        "no" | "off" | "false" => Ok(false),
        _ => Err(format!("'{s}': say yes or no")),
    }
}

fn pair(text: &str) -> anyhow::Result<FieldMapping> {
    let (outlook, psa) = text.split_once('=').ok_or_else(|| {
        anyhow::anyhow!("'{text}' is not OUTLOOK=PSA (for example givenName=firstname)")
    })?;
    Ok(FieldMapping {
        outlook: outlook.trim().into(),
        psa: psa.trim().into(),
    })
}

fn print_mappings(mappings: &[FieldMapping]) {
    for m in mappings {
        println!("  {:<34} → {}", m.outlook, m.psa);
    }
}

fn progress_line(p: &ImportProgress) {
    let eta = p
        .eta_seconds
        .map(|s| format!(", about {:.0} s left", s))
        .unwrap_or_default();
    eprint!(
        "\r{} of {} contacts ({:.1}/s{eta})          ",
        p.done, p.total, p.per_second
    );
    let _ = std::io::stderr().flush();
}

pub async fn run(core: &Core, command: &ContactsCommand) -> anyhow::Result<()> {
    match command {
        ContactsCommand::Mappings(MappingsCommand::Show { json }) => {
            let settings = core.contact_import_settings().await?;
            let (psa_fields, unread) = core.contact_psa_fields().await;
            if let Some(why) = unread {
                eprintln!("HaloPSA's custom fields could not be read: {why}");
            }
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "mappings": settings.mappings,
                        "outlook_fields": CONTACT_FIELDS,
                        "psa_fields": psa_fields,
                    }))?
                );
                return Ok(());
            }
            println!("mappings (Outlook → HaloPSA):");
            print_mappings(&settings.mappings);
            println!(
                "Outlook fields: {}",
                CONTACT_FIELDS
                    .iter()
                    .map(|f| f.key)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "HaloPSA fields: {}",
                psa_fields
                    .iter()
                    .map(|f| f.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        ContactsCommand::Mappings(MappingsCommand::Set {
            pairs,
            add,
            remove,
            defaults,
        }) => {
            let mut settings = core.contact_import_settings().await?;
            if *defaults {
                settings.mappings = default_mappings();
            }
            if !pairs.is_empty() {
                settings.mappings = pairs
                    .iter()
                    .map(|p| pair(p))
                    .collect::<anyhow::Result<_>>()?;
            }
            for r in remove {
                let before = settings.mappings.len();
                settings.mappings.retain(|m| m.psa != *r);
                if settings.mappings.len() == before {
                    anyhow::bail!("no mapping goes into '{r}'");
                }
            }
            for a in add {
                let m = pair(a)?;
                settings.mappings.retain(|x| x.psa != m.psa);
                settings.mappings.push(m);
            }
            let saved = core.set_contact_import_settings(settings).await?;
            println!("mappings saved (Outlook → HaloPSA):");
            print_mappings(&saved.mappings);
            Ok(())
        }
        ContactsCommand::Settings {
            default_site,
            no_default_site,
            update_existing,
            exclude_domain,
            json,
        } => {
            let mut settings = core.contact_import_settings().await?;
            let mut changed = false;
            if let Some(site) = default_site {
                let sites = core.psa_client().await?.list_sites(None).await?;
                if !sites.iter().any(|s| s.id == *site) {
                    anyhow::bail!(
                        "HaloPSA has no site {site}; its sites are: {}",
                        sites
                            .iter()
                            .map(|s| format!("{} ({})", s.id, s.name.clone().unwrap_or_default()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                settings.default_site_id = Some(*site);
                changed = true;
            }
            if *no_default_site {
                settings.default_site_id = None;
                changed = true;
            }
            if let Some(update) = update_existing {
                settings.update_existing = *update;
                changed = true;
            }
            if !exclude_domain.is_empty() {
                settings.excluded_domains = exclude_domain.clone();
                changed = true;
            }
            let settings = if changed {
                core.set_contact_import_settings(settings).await?
            } else {
                settings
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&settings)?);
            } else {
                println!(
                    "default site for new users: {}",
                    settings
                        .default_site_id
                        .map_or("none".into(), |s| s.to_string())
                );
                println!(
                    "update existing users: {}",
                    if settings.update_existing {
                        "yes"
                    } else {
                        "no"
                    }
                );
                println!(
                    "excluded domains: {}",
                    if settings.excluded_domains.is_empty() {
                        "none".into()
                    } else {
                        settings.excluded_domains.join(", ")
                    }
                );
            }
            Ok(())
        }
        ContactsCommand::Import {
            mailbox,
            dry_run,
            json,
            batch,
        } => {
            let id = mailbox_id(core, mailbox).await?;
            if *dry_run {
                let preview = core.preview_contact_import(&id).await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&preview)?);
                    return Ok(());
                }
                for p in &preview.contacts {
                    let (what, detail) = match &p.action {
                        Action::Create { .. } => (
                            "create",
                            format!("on {}", p.site_name.clone().unwrap_or_default()),
                        ),
                        Action::Update { changes, .. } => (
                            "update",
                            changes
                                .iter()
                                .map(|c| c.field.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                        Action::Unchanged { note, .. } => {
                            ("unchanged", note.clone().unwrap_or_default())
                        }
                        Action::Skip { reason } => ("skip", reason.clone()),
                    };
                    println!(
                        "{what:<9} {:<32} {:<40} {detail}",
                        p.display_name,
                        p.email.clone().unwrap_or_default()
                    );
                }
                let c = preview.counts;
                println!(
                    "{} contacts: {} to create, {} to update, {} unchanged, {} skipped (nothing was written)",
                    preview.contacts.len(),
                    c.create,
                    c.update,
                    c.unchanged,
                    c.skipped
                );
                return Ok(());
            }
            // One engine per data directory: the app (or `mailroom run`) imports from its own
            // window; a run a stopped process left is taken up again under the lock.
            let _lock =
                mailroom_store::DataDirLock::acquire(core.data_dir(), "mailroom contacts import")?;
            core.store().interrupt_contact_imports().await?;
            let cancel = CancellationToken::new();
            let on_ctrl_c = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    on_ctrl_c.cancel();
                }
            });
            let progress: Option<mailroom_engine::contacts::run::ProgressSink> =
                (!*json).then(|| Arc::new(|p: ImportProgress| progress_line(&p)) as _);
            let run = core
                .run_contact_import(
                    &id,
                    RunOptions {
                        batch_size: *batch,
                        ..RunOptions::default()
                    },
                    progress,
                    cancel,
                )
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&run)?);
                return Ok(());
            }
            eprintln!();
            let c = run.counts;
            println!(
                "run {} {}: {} contacts — created {}, updated {}, unchanged {}, skipped {}, failed {}",
                run.id, run.state, run.total, c.created, c.updated, c.unchanged, c.skipped, c.failed
            );
            if c.failed > 0 {
                println!(
                    "see why: mailroom contacts show {} --outcome failed",
                    run.id
                );
            }
            Ok(())
        }
        ContactsCommand::Runs {
            mailbox,
            limit,
            json,
        } => {
            let id = match mailbox {
                Some(m) => Some(mailbox_id(core, m).await?),
                None => None,
            };
            let runs = core
                .store()
                .contact_import_runs(id.as_deref(), (*limit).clamp(1, 1000))
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(());
            }
            if runs.is_empty() {
                println!("no contact import yet");
            }
            for r in runs {
                let c = r.counts;
                println!(
                    "{:>5}  {}  {:<9} {:<11} {:>5} contacts  created {} updated {} unchanged {} skipped {} failed {}",
                    r.id,
                    r.started_at.format("%Y-%m-%d %H:%M"),
                    r.trigger,
                    r.state,
                    r.total,
                    c.created,
                    c.updated,
                    c.unchanged,
                    c.skipped,
                    c.failed
                );
            }
            Ok(())
        }
        ContactsCommand::Show { run, outcome, json } => {
            let outcome: Option<ContactOutcome> = match outcome {
                Some(o) => Some(o.parse().map_err(|_| {
                    anyhow::anyhow!("'{o}' is not an outcome: created, updated, unchanged, skipped, failed or removed")
                })?),
                None => None,
            };
            let found = core
                .store()
                .contact_import_run(*run)
                .await?
                .ok_or_else(|| anyhow::anyhow!("there is no import run {run}"))?;
            let rows = core
                .store()
                .contact_import_rows(*run, outcome, 100_000, 0)
                .await?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"run": found, "contacts": rows})
                    )?
                );
                return Ok(());
            }
            for r in rows {
                println!(
                    "{:<9} {:<32} {:<40} {}",
                    r.outcome,
                    r.display_name,
                    r.email.unwrap_or_default(),
                    r.reason.unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}
