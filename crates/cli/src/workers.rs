//! `mailroom bench workers --workers 3 --emails 1000`: several `mailroom serve` workers share
//! one PostgreSQL database, and exactly once holds when one of them dies.
//!
//! A throwaway PostgreSQL cluster (Debian's `postgresql` package, as the tests use it) holds
//! the store, secrets sealed in it under a generated key. The in-process sandbox serves a
//! backlog of N emails (every fifth a reply) to one mailbox, read by its fallback scan every
//! second. W `mailroom serve` child processes, each with its own data directory, work on it
//! together: one delta round per mailbox at a time across them (a work lease), emails claimed
//! with `FOR UPDATE SKIP LOCKED`. Worker 1 is SIGKILLed `--kills` times at evenly spaced
//! points of the backlog and started again at once; its claims are taken over by the others
//! once their lease (`--claim-lease-secs`) runs out. `--faults` adds the chaos of `bench
//! chaos` (PSA 429 windows, Graph 429/503 on delta pages). At the end every delivered email
//! must be exactly one PSA ticket or action (0 lost, 0 duplicated) and none may be left
//! unfinished. Unix only (signals).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailroom_engine::Core;
use mailroom_sandbox::{FaultRule, Sandbox, Service};
use mailroom_secrets::sealed::{SealingKey, SealingKeys};
use mailroom_store::Store;
use serde::Serialize;

use crate::chaos::{configure, deliver_backlog, faults_served, psa_objects, wait_for, ChaosTenant};

#[derive(clap::Args)]
pub struct WorkersArgs {
    /// `mailroom serve` processes sharing the database.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Emails to deliver (one in five is a reply to an earlier one).
    #[arg(long, default_value_t = 1000)]
    emails: usize,
    /// How many times worker 1 is SIGKILLed (and started again) during the run.
    #[arg(long, default_value_t = 1)]
    kills: usize,
    /// Inject PSA 429s and Graph 429/503 on delta pages: the first requests, then in windows
    /// as `bench chaos` does.
    #[arg(long)]
    faults: bool,
    #[command(flatten)]
    tenant: ChaosTenant,
    /// The workers' claim lease: how long a killed worker's emails wait for a takeover.
    #[arg(long, default_value_t = 10)]
    claim_lease_secs: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct WorkersReport {
    workers: usize,
    emails: usize,
    kills: usize,
    faults: bool,
    /// From the workers' start until every email is in the PSA.
    seconds: f64,
    emails_per_sec: f64,
    tickets: usize,
    actions: usize,
    lost: usize,
    duplicates: usize,
    stuck: usize,
    failed: usize,
    /// Emails whose claim another worker took over after its lease ran out.
    claim_takeovers: i64,
    /// Delta round leases taken over after they expired.
    lease_takeovers: i64,
    psa_429_served: u64,
    graph_faults_served: u64,
}

pub async fn workers(args: &WorkersArgs) -> anyhow::Result<()> {
    let n = args.emails.max(1);
    let pg = mailroom_pg_test::TestPostgres::start()?;
    let url = pg.new_database()?;

    let sb = args.tenant.sandbox().await?;

    // Configured as an admin would from the console, against the shared database.
    let dir = tempfile::tempdir()?;
    let key = SealingKey::generate()?;
    let core = Core::connect_sealed(
        &url,
        dir.path().join("console"),
        SealingKeys {
            current: key.clone(),
            previous: None,
        },
    )
    .await?;
    configure(&core, &sb).await?;
    core.store().close().await;
    drop(core);

    let result = run_workers(args, n, &sb, &url, &key, dir.path()).await;
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
    Ok(())
}

/// One `mailroom serve` child process.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    fn start(
        number: usize,
        root: &Path,
        url: &str,
        key: &SealingKey,
        lease: u64,
    ) -> anyhow::Result<Self> {
        let data_dir = root.join(format!("worker-{number}"));
        std::fs::create_dir_all(&data_dir)?;
        let log = root.join(format!("worker-{number}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = Command::new(std::env::current_exe()?)
            .args(["serve", "--interval", "1", "--ops-addr", "127.0.0.1:0"])
            .args(["--claim-lease-secs", &lease.to_string()])
            .env("MAILROOM_DATA_DIR", &data_dir)
            .env(mailroom_store::DATABASE_URL_ENV, url)
            .env("MAILROOM_SECRETS_KEY", key.to_base64().as_str())
            // Never the user's keyring: the secrets are sealed in the database.
            .env(
                "MAILROOM_KEYRING_SERVICE",
                format!("mailroom-unused-{}", key.id()),
            )
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Worker { child, log })
    }

    fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM (what systemd sends), then waits for the exit (killed after `limit`).
    async fn terminate(&mut self, limit: Duration) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let started = Instant::now();
        while self.child.try_wait()?.is_none() {
            if started.elapsed() > limit {
                self.child.kill()?;
                self.child.wait()?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

async fn run_workers(
    args: &WorkersArgs,
    n: usize,
    sb: &Sandbox,
    url: &str,
    key: &SealingKey,
    root: &Path,
) -> anyhow::Result<WorkersReport> {
    let delivered = deliver_backlog(sb, n)?;
    if args.faults {
        // From the first requests on, whenever the windows below fall: the first PSA
        // requests get 429 and the first delta pages 503.
        sb.faults().add(FaultRule::psa_rate_limited("*", 4))?;
        sb.faults()
            .add(FaultRule::fail_next(Service::Graph, "*delta*", 2, 503))?;
    }
    let chaos = args.faults.then(|| args.tenant.inject_faults(sb));
    let lease = args.claim_lease_secs.max(3);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs.max(10));
    let mut workers = (1..=args.workers.max(1))
        .map(|w| Worker::start(w, root, url, key, lease))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut result = Ok(());
    for kill in 1..=args.kills {
        let target = n * kill / (args.kills + 1);
        if let Err(e) = wait_for(sb, &delivered, target, deadline).await {
            result = Err(e);
            break;
        }
        let victim = &mut workers[0];
        victim.kill()?;
        *victim = Worker::start(1, root, url, key, lease)?;
    }
    if result.is_ok() {
        result = wait_for(sb, &delivered, n, deadline).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let store = Store::connect(url).await?;
    if result.is_ok() {
        // The last emails' post-actions (mark read / move) finish before the stop.
        while Instant::now() < deadline && store.unfinished_count(None).await? > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for worker in &mut workers {
        worker.terminate(Duration::from_secs(30)).await?;
    }
    if let Some((task, _)) = &chaos {
        task.abort();
    }
    if let Err(e) = result {
        let log = std::fs::read_to_string(&workers[0].log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        anyhow::bail!("{e}\nlast lines of worker 1's log:\n{}", tail.join("\n"));
    }

    let (present, duplicates, tickets, actions) = psa_objects(sb, &delivered);
    let stuck = store.unfinished_count(None).await? as usize;
    let failed = store
        .status_counts(None)
        .await?
        .into_iter()
        .filter(|(s, _)| *s == mailroom_store::inbound::LogStatus::Failed)
        .map(|(_, c)| c as usize)
        .sum();
    let takeovers = store.lease_takeovers().await?;
    store.close().await;
    let (psa_rules, graph_faults_served) = faults_served(sb);
    let psa_windows = chaos.as_ref().map_or(0, |(_, served)| {
        served.load(std::sync::atomic::Ordering::Relaxed)
    });
    Ok(WorkersReport {
        workers: workers.len(),
        emails: n,
        kills: args.kills,
        faults: args.faults,
        seconds,
        emails_per_sec: n as f64 / seconds.max(f64::EPSILON),
        tickets,
        actions,
        lost: n - present,
        duplicates,
        stuck,
        failed,
        claim_takeovers: takeovers.claims,
        lease_takeovers: takeovers.leases,
        psa_429_served: psa_windows + psa_rules,
        graph_faults_served,
    })
}

fn print_report(report: &WorkersReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    println!(
        "Workers benchmark: {} mailroom serve workers on PostgreSQL, {} emails, {} SIGKILLs{}",
        report.workers,
        report.emails,
        report.kills,
        if report.faults {
            ", PSA and Graph faults"
        } else {
            ""
        }
    );
    println!("  elapsed                     {:>8.1} s", report.seconds);
    println!(
        "  emails per second           {:>8.1}",
        report.emails_per_sec
    );
    println!(
        "  tickets / actions           {:>8} / {}",
        report.tickets, report.actions
    );
    println!(
        "  takeovers (claims / leases) {:>8} / {}",
        report.claim_takeovers, report.lease_takeovers
    );
    if report.faults {
        println!(
            "  faults served (PSA / Graph) {:>8} / {}",
            report.psa_429_served, report.graph_faults_served
        );
    }
    println!("  failed                      {:>8}", report.failed);
    println!(
        "  lost / duplicated / stuck   {:>8} / {} / {}",
        report.lost, report.duplicates, report.stuck
    );
    Ok(())
}
