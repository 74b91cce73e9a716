//! `mailroom bench contacts --contacts N`: a contact import of an address book of N generated
//! contacts (three folders, the awkward cases included) into the sandbox's HaloPSA, under its
//! rate limit (default 300 requests per rolling 5 minutes) with a fixed latency injected into
//! every Graph and PSA request. Prints contacts per second, PSA requests per contact, the
//! ceiling the rate limit allows at that rate, and users created twice (which must be 0) —
//! for the first import and for a second one, which must create nothing. Needs a keyring.

use std::collections::HashMap;
use std::time::Instant;

use mailroom_engine::contacts::run::{RunOptions, DEFAULT_BATCH};
use mailroom_engine::contacts::ImportSettings;
use mailroom_engine::Core;
use mailroom_sandbox::{FaultRule, Sandbox, SandboxOptions, SandboxSeed, Service};
use mailroom_secrets::Secrets;
use mailroom_trace::Collector;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

const MAILBOX: &str = "support@contoso.test";

#[derive(clap::Args)]
pub struct ContactsArgs {
    /// Contacts in the address book.
    #[arg(long, default_value_t = 2000)]
    contacts: usize,
    /// Users per POST to HaloPSA.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// Latency injected into every Graph and PSA request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// PSA rolling-window limit: requests per window.
    #[arg(long, default_value_t = 300)]
    psa_requests: u32,
    /// PSA rolling-window length in seconds.
    #[arg(long, default_value_t = 300)]
    psa_window_secs: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One import's figures.
#[derive(Debug, Serialize)]
struct RunFigures {
    seconds: f64,
    contacts_per_second: f64,
    psa_requests: usize,
    psa_requests_per_contact: f64,
    graph_requests: usize,
    /// Contacts per second the PSA's rate limit allows at this many requests per contact.
    ceiling_contacts_per_second: f64,
    created: i64,
    updated: i64,
    unchanged: i64,
    skipped: i64,
    failed: i64,
}

#[derive(Debug, Serialize)]
struct ContactsReport {
    contacts: usize,
    batch: usize,
    latency_ms: u64,
    psa_limit: String,
    first: RunFigures,
    second: RunFigures,
    /// Addresses with more than one HaloPSA user.
    duplicates: usize,
}

pub async fn contacts(args: &ContactsArgs) -> anyhow::Result<()> {
    let mut seed = SandboxSeed::default();
    seed.graph.messages.clear();
    seed.graph.contacts = mailroom_graph_sandbox::generated_address_book(MAILBOX, args.contacts);
    seed.halo.behaviour.rate_limit = Some(mailroom_halo_sandbox::RateLimit {
        requests: args.psa_requests.max(1),
        window_secs: args.psa_window_secs.max(1) as i64,
    });
    let sb = Sandbox::start(SandboxOptions {
        seed: Some(seed),
        ..Default::default()
    })
    .await?;
    for service in [Service::Graph, Service::Psa] {
        sb.faults()
            .add(FaultRule::latency(service, "*", args.latency_ms))?;
    }
    let dir = tempfile::tempdir()?;
    let keyring = format!("mailroom-bench-contacts-{}", std::process::id());
    let core = Core::open_with_secrets(dir.path(), Secrets::with_service(&keyring)).await?;
    let result = bench(&core, &sb, args).await;
    for mailbox in core.mailboxes().await.unwrap_or_default() {
        let _ = core.secrets().delete_owner(&mailbox.id).await;
    }
    let _ = core
        .secrets()
        .delete_owner(mailroom_engine::psa_connection::PSA_CONNECTION_ID)
        .await;
    sb.shutdown().await;
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "contact import: {} contacts, batches of {}, {} ms latency, PSA limit {}",
            report.contacts, report.batch, report.latency_ms, report.psa_limit
        );
        for (name, r) in [
            ("first import", &report.first),
            ("second import", &report.second),
        ] {
            println!(
                "  {name:<14} {:>7.1} s  {:>7.1} contacts/s  {:.3} PSA requests/contact ({} PSA, {} Graph)  ceiling {:.1} contacts/s  created {} updated {} unchanged {} skipped {} failed {}",
                r.seconds,
                r.contacts_per_second,
                r.psa_requests_per_contact,
                r.psa_requests,
                r.graph_requests,
                r.ceiling_contacts_per_second,
                r.created,
                r.updated,
                r.unchanged,
                r.skipped,
                r.failed
            );
        }
        println!("  users created twice: {}", report.duplicates);
    }
    if report.duplicates > 0 || report.second.created > 0 {
        anyhow::bail!("a user was created twice");
    }
    Ok(())
}

async fn bench(core: &Core, sb: &Sandbox, args: &ContactsArgs) -> anyhow::Result<ContactsReport> {
    let mailbox = crate::bench::add_sandbox_mailbox_and_psa(core, sb, MAILBOX).await?;
    core.store()
        .set_setting(
            mailroom_engine::psa_connection::PSA_RATE_LIMIT_SETTING,
            &mailroom_engine::psa_connection::PsaRateLimit {
                requests: args.psa_requests.max(1),
                window_secs: args.psa_window_secs.max(1),
            },
        )
        .await?;
    core.set_contact_import_settings(ImportSettings {
        default_site_id: Some(12),
        ..ImportSettings::default()
    })
    .await?;
    let per_second = f64::from(args.psa_requests.max(1)) / args.psa_window_secs.max(1) as f64;
    let mut figures = Vec::new();
    for _ in 0..2 {
        let collector = Collector::new();
        let started = Instant::now();
        let run = mailroom_trace::with_tap(
            collector.clone(),
            core.run_contact_import(
                &mailbox.id,
                RunOptions {
                    batch_size: args.batch,
                    ..RunOptions::default()
                },
                None,
                CancellationToken::new(),
            ),
        )
        .await?;
        let seconds = started.elapsed().as_secs_f64();
        let exchanges = collector.drain();
        let psa = exchanges
            .iter()
            .filter(|e| e.service == mailroom_trace::Service::Psa)
            .count();
        let graph = exchanges
            .iter()
            .filter(|e| e.service == mailroom_trace::Service::Graph)
            .count();
        let n = run.total.max(1) as f64;
        let per_contact = psa as f64 / n;
        let c = run.counts;
        figures.push(RunFigures {
            seconds,
            contacts_per_second: n / seconds.max(1e-3),
            psa_requests: psa,
            psa_requests_per_contact: per_contact,
            graph_requests: graph,
            ceiling_contacts_per_second: per_second / per_contact.max(1e-9),
            created: c.created,
            updated: c.updated,
            unchanged: c.unchanged,
            skipped: c.skipped,
            failed: c.failed,
        });
    }
    let mut by_address: HashMap<String, usize> = HashMap::new();
    for u in sb.halo().users() {
        if let Some(a) = u["emailaddress"].as_str() {
            *by_address.entry(a.to_lowercase()).or_default() += 1;
        }
    }
    let second = figures.pop().expect("two runs");
    let first = figures.pop().expect("two runs");
    Ok(ContactsReport {
        contacts: args.contacts,
        batch: args.batch,
        latency_ms: args.latency_ms,
        psa_limit: format!("{} per {} s", args.psa_requests, args.psa_window_secs),
        first,
        second,
        duplicates: by_address.values().filter(|n| **n > 1).count(),
    })
}
