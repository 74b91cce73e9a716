//! `mailroom bench chaos --emails N`: exactly-once under faults and kills.
//!
//! The in-process sandbox serves a backlog of N emails while a chaos task keeps injecting
//! HaloPSA 429 bursts and Graph 429/503 on delta pages. A PSA burst is a time window, as a
//! real instance behaves: every PSA request (the token endpoint included) during a
//! `--burst-ms` window every 10–15 s is refused with the documented plain-text 429 and no
//! `Retry-After`; besides, the sandbox enforces its rolling window (`--psa-requests` per
//! `--psa-window-secs`, by default the real 300 per 5 minutes scaled to 300 per 30 s). The engine runs as a real `mailroom run` child
//! process on a throwaway data directory (its secrets under a throwaway keyring service). It is
//! SIGKILLed `--kills` times at evenly spaced points of the backlog, stopped with Ctrl-C
//! (SIGINT) once in the middle of the work and once at the end — each time the time to exit is
//! measured — and restarted after each stop. At the end every delivered email must be exactly
//! one PSA ticket or action (0 lost, 0 duplicated) and no email may be left unfinished (0
//! stuck). Unix only (signals).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailroom_engine::webhooks::WebhookSettings;
use mailroom_engine::Core;
use mailroom_graph_sandbox::{DeliveredMessage, InboundMail};
use mailroom_sandbox::{FaultRule, Sandbox, Service};
use mailroom_secrets::Secrets;
use mailroom_store::Store;
use serde::Serialize;

pub(crate) const MAILBOX: &str = "support@contoso.test";

#[derive(clap::Args)]
pub struct ChaosArgs {
    /// Emails to deliver (one in five is a reply to an earlier one).
    #[arg(long, default_value_t = 500)]
    emails: usize,
    /// How many times the engine process is SIGKILLed during the run.
    #[arg(long, default_value_t = 2)]
    kills: usize,
    #[command(flatten)]
    tenant: ChaosTenant,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// The sandbox and the faults of the chaos benchmarks (`bench chaos`, `bench workers`).
#[derive(clap::Args)]
pub(crate) struct ChaosTenant {
    /// Latency injected into every Graph and PSA request, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub latency_ms: u64,
    /// PSA rolling-window limit of the sandbox: requests per window (HaloPSA: 300).
    #[arg(long, default_value_t = 300)]
    pub psa_requests: u32,
    /// PSA rolling-window length in seconds (HaloPSA: 300; 30 scales the run ten times).
    #[arg(long, default_value_t = 30)]
    pub psa_window_secs: u64,
    /// Shortest time between the starts of two PSA 429 windows, in seconds (the longest is
    /// 5 s more).
    #[arg(long, default_value_t = 10)]
    pub burst_every_secs: u64,
    /// Length of a PSA 429 window in milliseconds: every PSA request in it gets a 429.
    #[arg(long, default_value_t = 2000)]
    pub burst_ms: u64,
}

impl ChaosTenant {
    /// The sandbox with an empty inbox, this rolling window and latency.
    pub(crate) async fn sandbox(&self) -> anyhow::Result<Sandbox> {
        crate::bench::backlog_sandbox(self.latency_ms, self.psa_requests, self.psa_window_secs)
            .await
    }

    /// Starts the fault windows (see [`fault_windows`]).
    pub(crate) fn inject_faults(
        &self,
        sb: &Sandbox,
    ) -> (
        tokio::task::JoinHandle<()>,
        std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) {
        fault_windows(
            sb,
            Duration::from_secs(self.burst_every_secs.max(1)),
            Duration::from_millis(self.burst_ms.max(1)),
        )
    }
}

#[derive(Debug, Serialize)]
struct ChaosReport {
    emails: usize,
    seconds: f64,
    kills: usize,
    /// Engine processes started (1 + kills + Ctrl-C restarts).
    runs: usize,
    /// Seconds from SIGINT to exit, for each Ctrl-C.
    ctrl_c_exit_secs: Vec<f64>,
    psa_429_served: u64,
    graph_delta_faults_served: u64,
    tickets: usize,
    actions: usize,
    lost: usize,
    duplicates: usize,
    stuck: usize,
    failed: usize,
}

pub async fn chaos(args: &ChaosArgs) -> anyhow::Result<()> {
    let n = args.emails.max(1);
    let sb = args.tenant.sandbox().await?;

    // The engine's data directory, configured as an admin would, secrets in a throwaway
    // keyring service that the child process is pointed at too.
    let dir = tempfile::tempdir()?;
    let keyring_service = format!("mailroom-chaos-{}", std::process::id());
    let core = Core::open_with_secrets(dir.path(), Secrets::with_service(&keyring_service)).await?;
    let outcome = configure(&core, &sb).await;
    let result = match outcome {
        Ok(()) => run_chaos(args, n, &sb, dir.path(), &keyring_service).await,
        Err(e) => Err(e),
    };
    // Leave no keyring entries behind, whatever happened.
    for mailbox in core.mailboxes().await.unwrap_or_default() {
        let _ = core.secrets().delete_owner(&mailbox.id).await;
    }
    sb.shutdown().await;
    let report = result?;
    print_report(&report, args.json)?;
    if report.lost + report.duplicates + report.stuck > 0 {
        anyhow::bail!(
            "exactly-once violated: {} lost, {} duplicated, {} stuck",
            report.lost,
            report.duplicates,
            report.stuck
        );
    }
    if let Some(slow) = report.ctrl_c_exit_secs.iter().find(|s| **s > 2.0) {
        anyhow::bail!("Ctrl-C took {slow:.2} s to stop mailroom run (limit 2 s)");
    }
    Ok(())
}

pub(crate) async fn configure(core: &Core, sb: &Sandbox) -> anyhow::Result<()> {
    let mailbox = crate::bench::add_sandbox_mailbox_and_psa(core, sb, MAILBOX).await?;
    core.connect_app_only(&mailbox.id).await?;
    // No public URL: the mailbox has no subscription and is read by its fallback scan, every
    // second here, so that the backlog is worked through continuously.
    core.set_webhook_settings(&WebhookSettings {
        port: Some(0),
        fallback_interval_secs: Some(1),
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// The backlog: `n` emails from 25 senders, every fifth a reply to the one before it.
pub(crate) fn deliver_backlog(sb: &Sandbox, n: usize) -> anyhow::Result<Vec<DeliveredMessage>> {
    let mut delivered: Vec<DeliveredMessage> = Vec::with_capacity(n);
    for i in 0..n {
        let sender = i % 25;
        let mut mail = InboundMail {
            to: MAILBOX.into(),
            from: format!("user{sender}@fabrikam.test"),
            from_name: Some(format!("User {sender}")),
            subject: format!("Chaos issue {i}"),
            body_html: Some(format!("<p>Problem number {i}, please help.</p>")),
            ..Default::default()
        };
        if i % 5 == 4 {
            let previous = &delivered[i - 1];
            mail.subject = format!("RE: Chaos issue {}", i - 1);
            mail.in_reply_to = Some(previous.internet_message_id.clone());
        }
        delivered.push(sb.graph().deliver(mail)?);
    }
    Ok(delivered)
}

/// How many delivered emails are in the PSA, and how many PSA objects each has.
pub(crate) fn psa_objects(
    sb: &Sandbox,
    delivered: &[DeliveredMessage],
) -> (usize, usize, usize, usize) {
    let norm = |s: &str| s.trim_matches(['<', '>']).to_lowercase();
    let tickets = sb.halo().tickets();
    let actions = sb.halo().actions();
    let mut per_mail = HashMap::<String, usize>::new();
    for v in tickets.iter().chain(actions.iter()) {
        if let Some(m) = v["email_message_id"].as_str() {
            *per_mail.entry(norm(m)).or_default() += 1;
        }
    }
    let mut present = 0;
    let mut duplicates = 0;
    for d in delivered {
        match per_mail
            .get(&norm(&d.internet_message_id))
            .copied()
            .unwrap_or(0)
        {
            0 => {}
            c => {
                present += 1;
                duplicates += c - 1;
            }
        }
    }
    (present, duplicates, tickets.len(), actions.len())
}

struct Engine {
    child: Child,
}

impl Engine {
    fn start(data_dir: &Path, keyring_service: &str, log: &Path) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = Command::new(std::env::current_exe()?)
            .args(["run", "--interval", "1"])
            .env("MAILROOM_DATA_DIR", data_dir)
            .env("MAILROOM_KEYRING_SERVICE", keyring_service)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Engine { child })
    }

    fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Ctrl-C; returns the seconds the process took to exit (capped by `limit`, after which it
    /// is killed and the limit reported as exceeded).
    async fn interrupt(mut self, limit: Duration) -> anyhow::Result<f64> {
        let pid = self.child.id().to_string();
        let started = Instant::now();
        Command::new("kill").args(["-INT", &pid]).status()?;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let secs = started.elapsed().as_secs_f64();
                if !status.success() {
                    tracing::warn!("mailroom run exited with {status} after Ctrl-C");
                }
                return Ok(secs);
            }
            if started.elapsed() > limit {
                self.child.kill()?;
                self.child.wait()?;
                return Ok(started.elapsed().as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn run_chaos(
    args: &ChaosArgs,
    n: usize,
    sb: &Sandbox,
    data_dir: &Path,
    keyring_service: &str,
) -> anyhow::Result<ChaosReport> {
    let delivered = deliver_backlog(sb, n)?;
    let log: PathBuf = data_dir.join("chaos-engine.log");

    let (chaos, psa_window_429s) = args.tenant.inject_faults(sb);

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs.max(10));
    let mut runs = 0;
    let mut ctrl_c = Vec::new();
    // Stops in order: `kills` SIGKILLs, one Ctrl-C, each at an evenly spaced share of the
    // backlog; then the final run to the end.
    let stops = args.kills + 1;
    let mut result = Ok(());
    for stop in 1..=stops {
        let target = n * stop / (stops + 1);
        let engine = Engine::start(data_dir, keyring_service, &log)?;
        runs += 1;
        if let Err(e) = wait_for(sb, &delivered, target, deadline).await {
            let _ = engine.kill();
            result = Err(e);
            break;
        }
        if stop <= args.kills {
            engine.kill()?;
        } else {
            ctrl_c.push(engine.interrupt(Duration::from_secs(30)).await?);
        }
    }
    let mut stuck_check = None;
    if result.is_ok() {
        let engine = Engine::start(data_dir, keyring_service, &log)?;
        runs += 1;
        let waited = wait_for(sb, &delivered, n, deadline).await;
        // Let the last emails finish their post-actions (mark read / move) before stopping.
        let store = Store::open(data_dir.join(mailroom_store::DATABASE_FILE)).await?;
        if waited.is_ok() {
            while Instant::now() < deadline
                && store.unfinished_count(None).await.unwrap_or(i64::MAX) > 0
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        ctrl_c.push(engine.interrupt(Duration::from_secs(30)).await?);
        stuck_check = Some(store);
        result = waited;
    }
    chaos.abort();
    let seconds = started.elapsed().as_secs_f64();
    if let Err(e) = result {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: String = tail
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        anyhow::bail!("{e}\nlast lines of the engine's log:\n{tail}");
    }

    let (present, duplicates, tickets, actions) = psa_objects(sb, &delivered);
    let store = stuck_check.expect("final run happened");
    let stuck = store.unfinished_count(None).await? as usize;
    let failed = store
        .status_counts(None)
        .await?
        .into_iter()
        .filter(|(s, _)| *s == mailroom_store::inbound::LogStatus::Failed)
        .map(|(_, c)| c as usize)
        .sum();
    store.close().await;
    let (psa_rules, graph_faults) = faults_served(sb);
    let psa_429 = psa_window_429s.load(std::sync::atomic::Ordering::Relaxed) + psa_rules;
    Ok(ChaosReport {
        emails: n,
        seconds,
        kills: args.kills,
        runs,
        ctrl_c_exit_secs: ctrl_c,
        psa_429_served: psa_429,
        graph_delta_faults_served: graph_faults,
        tickets,
        actions,
        lost: n - present,
        duplicates,
        stuck,
        failed,
    })
}

/// The chaos: PSA 429 windows on every route, token endpoint included, and Graph 429 (with
/// Retry-After, as Graph sends it) and 503 on delta pages. A window starts every `every` to
/// `every + 5 s` and lasts `burst`; its rule is removed at its end, what it served counted
/// first (the returned counter). Runs until the task is aborted.
fn fault_windows(
    sb: &Sandbox,
    every: Duration,
    burst: Duration,
) -> (
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let faults = sb.faults().clone();
    let psa_window_429s = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let served = psa_window_429s.clone();
    let task = tokio::spawn(async move {
        let mut tick = 0u64;
        loop {
            // 10–15 s apart (with the defaults), varying deterministically.
            tokio::time::sleep(every + Duration::from_secs((tick * 7) % 6)).await;
            tick += 1;
            if let Ok(id) = faults.add(FaultRule {
                count: None,
                ..FaultRule::psa_rate_limited("*", 1)
            }) {
                tokio::time::sleep(burst).await;
                let applied = faults
                    .rules()
                    .into_iter()
                    .find(|r| r.id == id)
                    .map_or(0, |r| r.applied);
                served.fetch_add(applied, std::sync::atomic::Ordering::Relaxed);
                faults.remove(id);
            }
            if tick.is_multiple_of(2) {
                let _ = faults.add(
                    FaultRule::fail_next(Service::Graph, "*delta*", 2, 429).with_retry_after(1.0),
                );
            } else {
                let _ = faults.add(FaultRule::fail_next(Service::Graph, "*delta*", 2, 503));
            }
        }
    });
    (task, psa_window_429s)
}

/// Graph faults served by the rules still in the sandbox (each burst's PSA rule is counted by
/// [`fault_windows`] as it is removed): `(psa, graph)`.
pub(crate) fn faults_served(sb: &Sandbox) -> (u64, u64) {
    let (mut psa, mut graph) = (0, 0);
    for rule in sb.faults().rules() {
        match rule.rule.service {
            Service::Psa
                if matches!(rule.rule.action, mailroom_sandbox::FaultAction::Fail { .. }) =>
            {
                psa += rule.applied;
            }
            Service::Graph
                if matches!(rule.rule.action, mailroom_sandbox::FaultAction::Fail { .. }) =>
            {
                graph += rule.applied
            }
            _ => {}
        }
    }
    (psa, graph)
}

/// Waits until at least `target` delivered emails are in the PSA.
pub(crate) async fn wait_for(
    sb: &Sandbox,
    delivered: &[DeliveredMessage],
    target: usize,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        let (present, ..) = psa_objects(sb, delivered);
        if present >= target {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "timed out: {present} of {} emails reached the PSA (waiting for {target})",
                delivered.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_report(report: &ChaosReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    let exits = report
        .ctrl_c_exit_secs
        .iter()
        .map(|s| format!("{s:.2} s"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "Chaos benchmark: {} emails, {} SIGKILLs, {} engine runs",
        report.emails, report.kills, report.runs
    );
    println!("  elapsed                     {:>8.1} s", report.seconds);
    println!(
        "  PSA 429s in burst windows   {:>8} (every route, the token endpoint included)",
        report.psa_429_served
    );
    println!(
        "  Graph delta 429/503 served  {:>8}",
        report.graph_delta_faults_served
    );
    println!("  Ctrl-C to exit              {exits}");
    println!(
        "  tickets / actions           {:>8} / {}",
        report.tickets, report.actions
    );
    println!("  failed                      {:>8}", report.failed);
    println!(
        "  lost / duplicated / stuck   {:>8} / {} / {}",
        report.lost, report.duplicates, report.stuck
    );
    Ok(())
}
