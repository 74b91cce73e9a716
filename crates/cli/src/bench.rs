//! `mailroom bench backlog --emails N`: the engine against the in-process sandbox, with the
//! sandbox's rate limits (Graph: 4 concurrent and 10,000 per 10 minutes per mailbox; HaloPSA:
//! a rolling window, default 300 per 5 minutes) and a fixed injected latency on every Graph and
//! PSA request. Prints throughput, the ceiling those limits allow for this run, requests per
//! email and duplicates/lost (which must be 0).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailroom_engine::events::EventBus;
use mailroom_engine::pipeline::{Pipeline, PipelineConfig};
use mailroom_engine::sync::{scan_once, SyncOptions};
use mailroom_graph::{
    AppOnlyTokens, AppRegistration, ClientCredential, Cloud, GraphClient, IdentityClient,
    MailboxRef, Secret,
};
use mailroom_graph_sandbox::InboundMail;
use mailroom_psa::{PsaClient, PsaConfig, RollingWindow};
use mailroom_sandbox::{FaultRule, Sandbox, SandboxOptions, SandboxSeed, Service};
use mailroom_store::{CredentialKind, MailboxMethod, NewMailbox, Store};
use serde::Serialize;
use url::Url;

/// Graph's per-app, per-mailbox concurrency limit (reference §6).
const GRAPH_CONCURRENCY: f64 = 4.0;

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    kind: BenchKind,
}

#[derive(clap::Subcommand)]
enum BenchKind {
    /// Process a backlog of N emails delivered to one mailbox.
    Backlog(BacklogArgs),
    /// Exactly once under PSA/Graph fault bursts, SIGKILLs and Ctrl-C (`mailroom run` as a
    /// child process; needs a keyring).
    #[cfg(unix)]
    Chaos(crate::chaos::ChaosArgs),
    /// Several `mailroom serve` workers on one throwaway PostgreSQL: exactly once while one
    /// is SIGKILLed and started again; emails per second, lease takeovers.
    #[cfg(unix)]
    Workers(crate::workers::WorkersArgs),
    /// Webhook mode: N emails delivered one at a time; notification → ticket latency.
    Webhook(WebhookArgs),
    /// A contact import of N contacts under the PSA's rate limit (needs a keyring).
    Contacts(crate::bench_contacts::ContactsArgs),
    /// The inbound log's queries at N entries: p50/p99 of each, and the database's size.
    Log(crate::bench_log::LogArgs),
}

#[derive(clap::Args)]
struct WebhookArgs {
    /// Emails to deliver, one after the other.
    #[arg(long, default_value_t = 50)]
    emails: usize,
    /// Latency injected into every Graph and PSA request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct WebhookReport {
    emails: usize,
    latency_ms: u64,
    p50_ms: f64,
    p99_ms: f64,
    /// Median of (Graph + PSA requests of one email) × injected latency.
    injected_round_trips_p50_ms: f64,
    graph_requests_per_email: f64,
    psa_requests_per_email: f64,
    lost: usize,
}

#[derive(clap::Args)]
struct BacklogArgs {
    /// Emails to deliver (one in five is a reply to an earlier one).
    #[arg(long, default_value_t = 100)]
    emails: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Latency injected into every Graph and PSA request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// PSA rolling-window limit: requests per window.
    #[arg(long, default_value_t = 300)]
    psa_requests: u32,
    /// PSA rolling-window length in seconds.
    #[arg(long, default_value_t = 300)]
    psa_window_secs: u64,
    /// Conversations processed at once.
    #[arg(long, default_value_t = 24)]
    concurrency: usize,
    /// What happens to a processed email in the mailbox (the mailbox's setting), which decides
    /// the Graph requests each email costs.
    #[arg(long, value_enum, default_value_t = ProcessedMailArg::Move)]
    processed_mail: ProcessedMailArg,
    /// Senders the PSA does not know yet (on a site's domain: each becomes a user), besides
    /// the two it knows; the emails go round all senders.
    #[arg(long, default_value_t = 0)]
    new_senders: usize,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ProcessedMailArg {
    Move,
    MarkRead,
    Leave,
}

impl ProcessedMailArg {
    fn setting(self) -> &'static str {
        match self {
            Self::Move => "move",
            Self::MarkRead => "mark_read",
            Self::Leave => "leave",
        }
    }
}

#[derive(Debug, Serialize)]
struct BacklogReport {
    emails: usize,
    latency_ms: u64,
    psa_limit: String,
    seconds: f64,
    emails_per_second: f64,
    ceiling_emails_per_second: f64,
    ratio: f64,
    steady_state_ceiling_emails_per_second: f64,
    binding_limit: String,
    /// The mailbox's processed-mail setting of this run.
    processed_mail: String,
    graph_requests_per_email: f64,
    /// Graph requests by method and route, per email.
    graph_routes_per_email: Vec<(String, f64)>,
    psa_requests_per_email: f64,
    /// PSA requests by method and route, per email (so that a regression names its call).
    psa_routes_per_email: Vec<(String, f64)>,
    /// Tickets per `POST /Tickets` and actions per `POST /Actions`, on average.
    mean_ticket_batch: f64,
    mean_action_batch: f64,
    /// Users per `POST /Users`, on average, and users created (one per new sender).
    mean_user_batch: f64,
    users_created: usize,
    /// Seconds from the email's arrival (all before the start) to its ticket or action, p99.
    p99_seconds_to_ticket: f64,
    tickets: usize,
    actions: usize,
    duplicates: usize,
    lost: usize,
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    match &args.kind {
        BenchKind::Backlog(a) => backlog(a).await,
        BenchKind::Webhook(a) => webhook(a).await,
        BenchKind::Contacts(a) => crate::bench_contacts::contacts(a).await,
        BenchKind::Log(a) => crate::bench_log::log(a).await,
        #[cfg(unix)]
        BenchKind::Chaos(a) => crate::chaos::chaos(a).await,
        #[cfg(unix)]
        BenchKind::Workers(a) => crate::workers::workers(a).await,
    }
}

/// What both benchmarks start from: the sandbox with an empty inbox, the PSA rolling window
/// given (on both the sandbox and the client) and a fixed latency injected on every Graph and
/// PSA request; a throwaway store holding one app-only mailbox; and the clients the engine
/// needs. The PSA client is built directly, so no keyring is needed for it.
struct BenchTenant {
    sb: Sandbox,
    _dir: tempfile::TempDir,
    store: Store,
    mailbox: mailroom_store::Mailbox,
    clock: mailroom_clock::SharedClock,
    psa: PsaClient,
    graph: GraphClient,
}

const BENCH_MAILBOX: &str = "support@contoso.test";

/// The sandbox of the backlog benchmarks: an empty inbox, the PSA's rolling window of
/// `psa_requests` per `psa_window_secs`, `latency_ms` on every Graph and PSA request, and
/// notifications to the engine's receiver on 127.0.0.1 (Graph itself requires HTTPS).
pub(crate) async fn backlog_sandbox(
    latency_ms: u64,
    psa_requests: u32,
    psa_window_secs: u64,
) -> anyhow::Result<Sandbox> {
    let mut seed = SandboxSeed::default();
    seed.graph.messages.clear();
    seed.halo.behaviour.rate_limit = Some(mailroom_halo_sandbox::RateLimit {
        requests: psa_requests.max(1),
        window_secs: psa_window_secs.max(1) as i64,
    });
    let sb = Sandbox::start(SandboxOptions {
        seed: Some(seed),
        loopback_webhooks: true,
        ..Default::default()
    })
    .await?;
    for service in [Service::Graph, Service::Psa] {
        sb.faults()
            .add(FaultRule::latency(service, "*", latency_ms))?;
    }
    Ok(sb)
}

async fn bench_tenant(
    latency_ms: u64,
    psa_requests: u32,
    psa_window_secs: u64,
) -> anyhow::Result<BenchTenant> {
    let sb = backlog_sandbox(latency_ms, psa_requests, psa_window_secs).await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("mailroom.db")).await?;
    let t = sb.tenant();
    let mailbox = store
        .add_mailbox(&NewMailbox {
            name: "Support".into(),
            method: MailboxMethod::Webhook,
            cloud: mailroom_store::Cloud::Custom,
            authority_url: Some(sb.authority_url()),
            graph_url: Some(sb.graph_url()),
            tenant_id: t.tenant_id.clone(),
            client_id: t.daemon_app.client_id.clone(),
            credential_kind: CredentialKind::Secret,
            shared_mailbox: None,
            mailbox_address: Some(BENCH_MAILBOX.into()),
        })
        .await?;
    let clock: mailroom_clock::SharedClock = sb.clock();
    let mut config = PsaConfig::new(
        sb.psa_url(),
        t.psa.client_id.clone(),
        t.psa.client_secret.clone(),
    );
    config.tenant = Some(t.psa.tenant.clone());
    config.rate_limit = RollingWindow {
        requests: psa_requests.max(1),
        window: Duration::from_secs(psa_window_secs.max(1)),
    };
    let psa = PsaClient::new(config, clock.clone())?;
    let app = AppRegistration {
        cloud: Cloud::Custom {
            authority_url: Url::parse(&sb.authority_url())?,
            graph_url: Url::parse(&sb.graph_url())?,
        },
        tenant: t.tenant_id.clone(),
        client_id: t.daemon_app.client_id.clone(),
        credential: ClientCredential::Secret(Secret::new(
            t.daemon_app.client_secret.clone().unwrap_or_default(),
        )),
    };
    let graph = GraphClient::new(
        Url::parse(&sb.graph_url())?,
        Arc::new(AppOnlyTokens::new(IdentityClient::new(clock.clone()), app)),
        MailboxRef::User(BENCH_MAILBOX.into()),
    )
    .with_clock(clock.clone())
    .with_immutable_ids(true);
    Ok(BenchTenant {
        sb,
        _dir: dir,
        store,
        mailbox,
        clock,
        psa,
        graph,
    })
}

async fn backlog(args: &BacklogArgs) -> anyhow::Result<()> {
    const MAILBOX: &str = BENCH_MAILBOX;
    let n = args.emails.max(1);
    let BenchTenant {
        sb,
        _dir,
        store,
        mailbox,
        clock,
        psa,
        graph,
    } = bench_tenant(args.latency_ms, args.psa_requests, args.psa_window_secs).await?;
    store
        .set_mailbox_settings(
            &mailbox.id,
            &serde_json::json!({"processed_mail": args.processed_mail.setting()}),
        )
        .await?;
    let mailbox = store.mailbox(&mailbox.id).await?;
    let events = EventBus::new();
    let pipeline = Arc::new(Pipeline::new(
        store.clone(),
        psa,
        clock,
        PipelineConfig::default(),
        events.clone(),
    ));

    // The backlog.
    let mut senders = vec![
        ("pat@fabrikam.test".to_string(), "Pat Smith".to_string()),
        ("lee@fabrikam.test".to_string(), "Lee Chen".to_string()),
    ];
    senders.extend(
        (0..args.new_senders).map(|i| (format!("caller{i}@fabrikam.test"), format!("Caller {i}"))),
    );
    let users_before = sb.halo().users().len();
    let mut delivered = Vec::with_capacity(n);
    for i in 0..n {
        let (from, name) = &senders[i % senders.len()];
        let mut mail = InboundMail {
            to: MAILBOX.into(),
            from: from.clone(),
            from_name: Some(name.clone()),
            subject: format!("Backlog issue {i}"),
            body_html: Some(format!("<p>Problem number {i}, please help.</p>")),
            ..Default::default()
        };
        if i % 5 == 4 {
            mail.subject = format!("RE: Backlog issue {}", i - 1);
            mail.in_reply_to = Some(
                delivered
                    .last()
                    .map(|d: &mailroom_graph_sandbox::DeliveredMessage| {
                        d.internet_message_id.clone()
                    })
                    .unwrap_or_default(),
            );
        }
        delivered.push(sb.graph().deliver(mail)?);
    }

    sb.faults().reset_counts();
    let options = SyncOptions {
        concurrency: args.concurrency.max(1),
        batch: 200,
        ..Default::default()
    };
    let started = Instant::now();
    // When each email was processed (its ticket or action written and confirmed), from the
    // engine's events: every email arrived before the start.
    let mut rx = events.subscribe();
    let done_at = tokio::spawn(async move {
        let mut at = std::collections::HashMap::<i64, f64>::new();
        loop {
            match rx.recv().await {
                Ok(mailroom_engine::events::EngineEvent::Email { email, .. })
                    if email.status == mailroom_store::inbound::LogStatus::Processed =>
                {
                    at.entry(email.id)
                        .or_insert_with(|| started.elapsed().as_secs_f64());
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
        at
    });
    loop {
        let report = scan_once(&pipeline, &mailbox, &graph, &options, &Default::default()).await?;
        tracing::debug!(?report, "bench scan");
        if store.unfinished_count(Some(&mailbox.id)).await? == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let ticket_batches = pipeline.ticket_batch_sizes();
    let action_batches = pipeline.action_batch_sizes();
    let user_batches = pipeline.user_batch_sizes();
    drop(pipeline);
    drop(events);
    let mut to_ticket: Vec<f64> = done_at.await?.into_values().collect();
    to_ticket.sort_by(f64::total_cmp);
    let p99_to_ticket = to_ticket
        .get(((to_ticket.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    let mean = |sizes: &std::collections::HashMap<usize, u64>| {
        let batches: u64 = sizes.values().sum();
        let records: u64 = sizes.iter().map(|(size, n)| *size as u64 * n).sum();
        if batches == 0 {
            0.0
        } else {
            records as f64 / batches as f64
        }
    };
    let graph_requests = sb.faults().total(Service::Graph) as f64;
    let psa_requests = sb.faults().total(Service::Psa) as f64;
    let routes = |service: Service| {
        let mut routes: Vec<(String, f64)> = sb
            .faults()
            .request_counts()
            .into_iter()
            .filter(|c| c.service == service)
            .map(|c| {
                (
                    format!("{} {}", c.method, route_template(&c.route)),
                    c.count,
                )
            })
            .fold(
                std::collections::BTreeMap::<String, u64>::new(),
                |mut acc, (route, count)| {
                    *acc.entry(route).or_default() += count;
                    acc
                },
            )
            .into_iter()
            .map(|(route, count)| (route, count as f64 / n as f64))
            .collect();
        routes.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        routes
    };
    let graph_routes = routes(Service::Graph);
    let psa_routes = routes(Service::Psa);

    // Exactly once: count PSA objects per delivered Message-ID.
    let norm = |s: &str| s.trim_matches(['<', '>']).to_lowercase();
    let tickets = sb.halo().tickets();
    let actions = sb.halo().actions();
    let mut per_mail = std::collections::HashMap::<String, usize>::new();
    for v in tickets.iter().chain(actions.iter()) {
        if let Some(m) = v["email_message_id"].as_str() {
            *per_mail.entry(norm(m)).or_default() += 1;
        }
    }
    let mut duplicates = 0;
    let mut lost = 0;
    for d in &delivered {
        match per_mail
            .get(&norm(&d.internet_message_id))
            .copied()
            .unwrap_or(0)
        {
            0 => lost += 1,
            c => duplicates += c - 1,
        }
    }

    // The ceiling for this run.
    let nf = n as f64;
    let g = graph_requests / nf;
    let p = psa_requests / nf;
    let latency = args.latency_ms as f64 / 1000.0;
    let window = args.psa_window_secs.max(1) as f64;
    let limit = args.psa_requests.max(1) as f64;
    let t_graph_concurrency = nf * g * latency / GRAPH_CONCURRENCY;
    // Graph's own limits (reference §6), not the client's: 10,000 requests in any 10 minutes
    // per app and mailbox — a rolling window admits them at once, then as many per window.
    let throttle = mailroom_graph::ThrottleConfig::default();
    let graph_limit = throttle.requests_per_window as f64;
    let graph_window = throttle.window.as_secs_f64();
    let graph_rate = graph_limit / graph_window;
    let t_graph_rate = ((graph_requests / graph_limit).ceil() - 1.0).max(0.0) * graph_window;
    // A rolling window admits `limit` requests at once, then `limit` more per window.
    let t_psa_window = ((psa_requests / limit).ceil() - 1.0).max(0.0) * window;
    let bounds = [
        (
            "Graph 4 concurrent requests per mailbox",
            t_graph_concurrency,
        ),
        (
            "Graph 10,000 requests per 10 minutes per mailbox",
            t_graph_rate,
        ),
        ("HaloPSA rolling window", t_psa_window),
    ];
    let (binding, t_min) =
        bounds
            .iter()
            .cloned()
            .fold(("", 0.0_f64), |acc, b| if b.1 > acc.1 { b } else { acc });
    let ceiling = if t_min > 0.0 {
        nf / t_min
    } else {
        f64::INFINITY
    };
    let steady = [
        GRAPH_CONCURRENCY / (g * latency).max(1e-9),
        graph_rate / g.max(1e-9),
        (limit / window) / p.max(1e-9),
    ]
    .into_iter()
    .fold(f64::INFINITY, f64::min);
    let rate = nf / seconds;
    let report = BacklogReport {
        emails: n,
        latency_ms: args.latency_ms,
        psa_limit: format!("{} per {} s", args.psa_requests, args.psa_window_secs),
        seconds,
        emails_per_second: rate,
        ceiling_emails_per_second: ceiling,
        ratio: rate / ceiling,
        steady_state_ceiling_emails_per_second: steady,
        binding_limit: binding.to_string(),
        processed_mail: args.processed_mail.setting().to_string(),
        graph_requests_per_email: g,
        graph_routes_per_email: graph_routes,
        psa_requests_per_email: p,
        psa_routes_per_email: psa_routes,
        mean_ticket_batch: mean(&ticket_batches),
        mean_action_batch: mean(&action_batches),
        mean_user_batch: mean(&user_batches),
        users_created: sb.halo().users().len() - users_before,
        p99_seconds_to_ticket: p99_to_ticket,
        tickets: tickets.len(),
        actions: actions.len(),
        duplicates,
        lost,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "Backlog benchmark: {n} emails, {} ms injected latency, PSA limit {}",
            args.latency_ms, report.psa_limit
        );
        println!("  elapsed                    {:>10.2} s", report.seconds);
        println!(
            "  throughput                 {:>10.2} emails/s",
            report.emails_per_second
        );
        println!(
            "  ceiling (this run)         {:>10.2} emails/s  (bound: {})",
            report.ceiling_emails_per_second, report.binding_limit
        );
        println!("  ratio                      {:>10.2}", report.ratio);
        println!(
            "  steady-state ceiling       {:>10.2} emails/s",
            report.steady_state_ceiling_emails_per_second
        );
        println!(
            "  Graph requests per email   {:>10.2}  (processed mail: {})",
            report.graph_requests_per_email, report.processed_mail
        );
        for (route, per_email) in &report.graph_routes_per_email {
            println!("    {route:<34} {per_email:>6.3}");
        }
        println!(
            "  PSA requests per email     {:>10.2}",
            report.psa_requests_per_email
        );
        for (route, per_email) in &report.psa_routes_per_email {
            println!("    {route:<34} {per_email:>6.3}");
        }
        println!(
            "  records per POST           {:>10.1} tickets, {:.1} actions",
            report.mean_ticket_batch, report.mean_action_batch
        );
        if report.users_created > 0 {
            println!(
                "  users created              {:>10}  ({:.1} per POST)",
                report.users_created, report.mean_user_batch
            );
        }
        println!(
            "  arrival to ticket, p99     {:>10.2} s",
            report.p99_seconds_to_ticket
        );
        println!(
            "  tickets / actions          {:>5} / {}",
            report.tickets, report.actions
        );
        println!(
            "  duplicates / lost          {:>5} / {}",
            report.duplicates, report.lost
        );
    }
    sb.shutdown().await;
    if duplicates > 0 || lost > 0 {
        anyhow::bail!("exactly-once violated: {duplicates} duplicate(s), {lost} lost");
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Webhook mode: the receiver, a subscription, and the sync task with a fallback scan that
/// never comes; each email is delivered and timed until its ticket exists. Needs a Secret
/// Service (the clientState is a keyring secret; a throwaway service name is used).
async fn webhook(args: &WebhookArgs) -> anyhow::Result<()> {
    use mailroom_engine::sync::SyncSupervisor;
    use mailroom_engine::webhooks::{WebhookOptions, Webhooks};
    const MAILBOX: &str = BENCH_MAILBOX;
    let n = args.emails.max(1);
    // The PSA's documented default window: this mode measures latency, not throughput.
    let BenchTenant {
        sb,
        _dir,
        store,
        mailbox,
        clock,
        psa,
        graph,
    } = bench_tenant(args.latency_ms, 300, 300).await?;
    let pipeline = Arc::new(Pipeline::new(
        store.clone(),
        psa,
        clock.clone(),
        PipelineConfig::default(),
        EventBus::new(),
    ));
    let supervisor = Arc::new(SyncSupervisor::new(pipeline, SyncOptions::default()));
    let secrets =
        mailroom_secrets::Secrets::with_service(format!("mailroom-bench-{}", std::process::id()));
    let hooks = Webhooks::start(
        WebhookOptions {
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            fallback_interval: Duration::from_secs(24 * 3600),
            ..Default::default()
        },
        store.clone(),
        secrets.clone(),
        clock,
        Some(supervisor.clone()),
    )
    .await?;
    hooks.add_mailbox(mailbox.clone(), graph).await;
    hooks.create_subscription(&mailbox.id).await?;
    // Let the task's first (empty) scan finish.
    while !supervisor
        .statuses()
        .iter()
        .any(|s| s.last_sync_at.is_some())
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let norm = |s: &str| s.trim_matches(['<', '>']).to_lowercase();
    let mut latencies = Vec::with_capacity(n);
    let mut injected = Vec::with_capacity(n);
    let (mut graph_total, mut psa_total) = (0u64, 0u64);
    let mut lost = 0;
    for i in 0..n {
        sb.faults().reset_counts();
        let mail = InboundMail {
            to: MAILBOX.into(),
            from: "pat@fabrikam.test".into(),
            from_name: Some("Pat Smith".into()),
            subject: format!("Webhook issue {i}"),
            body_html: Some(format!("<p>Problem number {i}, please help.</p>")),
            ..Default::default()
        };
        let started = Instant::now();
        let d = sb.graph().deliver(mail)?;
        let want = norm(&d.internet_message_id);
        let found = loop {
            if sb.halo().tickets().iter().any(|t| {
                t["email_message_id"]
                    .as_str()
                    .is_some_and(|m| norm(m) == want)
            }) {
                break true;
            }
            if started.elapsed() > Duration::from_secs(30) {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        if !found {
            lost += 1;
            continue;
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        let (g, p) = (
            sb.faults().total(Service::Graph),
            sb.faults().total(Service::Psa),
        );
        graph_total += g;
        psa_total += p;
        injected.push((g + p) as f64 * args.latency_ms as f64);
    }
    hooks.cancel_subscription(&mailbox.id).await.ok();
    hooks.shutdown();
    supervisor.shutdown().await;
    let _ = secrets.delete_owner(&mailbox.id).await;

    latencies.sort_by(f64::total_cmp);
    injected.sort_by(f64::total_cmp);
    let done = latencies.len().max(1) as f64;
    let report = WebhookReport {
        emails: n,
        latency_ms: args.latency_ms,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        injected_round_trips_p50_ms: percentile(&injected, 50.0),
        graph_requests_per_email: graph_total as f64 / done,
        psa_requests_per_email: psa_total as f64 / done,
        lost,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "Webhook benchmark: {n} emails one at a time, {} ms injected latency",
            args.latency_ms
        );
        println!(
            "  notification → ticket  p50 {:.1} ms   p99 {:.1} ms",
            report.p50_ms, report.p99_ms
        );
        println!(
            "  injected round trips   p50 {:.1} ms ({:.1} Graph + {:.1} PSA requests per email)",
            report.injected_round_trips_p50_ms,
            report.graph_requests_per_email,
            report.psa_requests_per_email
        );
        println!("  lost                   {lost}");
    }
    if lost > 0 {
        anyhow::bail!("{lost} emails never became tickets");
    }
    Ok(())
}

/// The sandbox's support@-style mailbox added as a *Webhooks* mailbox with the daemon app's
/// secret, and the sandbox's HaloPSA as the PSA connection (the set-up the keyring-backed
/// benchmarks share).
pub(crate) async fn add_sandbox_mailbox_and_psa(
    core: &mailroom_engine::Core,
    sb: &Sandbox,
    address: &str,
) -> anyhow::Result<mailroom_engine::Mailbox> {
    use mailroom_engine::mailboxes::MailboxSetup;
    use mailroom_secrets::SecretValue;
    let t = sb.tenant();
    let mailbox = core
        .add_mailbox_with_credentials(
            MailboxSetup {
                name: "Support".into(),
                method: MailboxMethod::Webhook,
                cloud: mailroom_engine::store_types::Cloud::Custom,
                authority_url: Some(sb.authority_url()),
                graph_url: Some(sb.graph_url()),
                tenant_id: t.tenant_id.clone(),
                client_id: t.daemon_app.client_id.clone(),
                credential_kind: CredentialKind::Secret,
                client_secret: Some(SecretValue::new(
                    t.daemon_app.client_secret.clone().unwrap_or_default(),
                )),
                shared_mailbox: None,
                mailbox_address: Some(address.into()),
            },
            None,
            None,
        )
        .await?;
    core.set_psa_connection(
        &sb.psa_url(),
        &t.psa.client_id,
        SecretValue::new(t.psa.client_secret.clone()),
        Some(&t.psa.tenant),
    )
    .await?;
    Ok(mailbox)
}

/// A request path with its message id as `{id}` (Graph's routes are counted by raw path), so
/// that requests of the same kind add up.
fn route_template(route: &str) -> String {
    let segments: Vec<&str> = route.split('/').collect();
    segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let after_messages = i > 0 && segments[i - 1] == "messages";
            if after_messages && *s != "delta" {
                "{id}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
