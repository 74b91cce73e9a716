//! `mailroom bench log --rows N`: builds a store with N inbound log entries (attempts, requests
//! and log lines included; `mailroom_store::synthetic`) and times every query the log and the
//! Monitoring views run — the first page, each status, each mailbox, a status within a mailbox,
//! searches for a common and a rare word, a deep page, the counts, an email's details — each
//! repeated, with p50 and p99. Prints the table (or JSON) and the database's size.

use std::time::{Duration, Instant};

use mailroom_store::inbound::{LogQuery, LogStatus};
use mailroom_store::synthetic::{COMMON_WORD, RARE_WORD};
use mailroom_store::Store;
use serde::Serialize;

#[derive(clap::Args)]
pub struct LogArgs {
    /// Inbound log entries to build.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Times each query runs.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct QueryFigures {
    query: String,
    p50_ms: f64,
    p99_ms: f64,
    /// Rows the query answered (the last run).
    rows: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    rows: usize,
    build_seconds: f64,
    file_bytes: u64,
    queries: Vec<QueryFigures>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

async fn time<F, Fut>(name: &str, runs: usize, mut query: F) -> anyhow::Result<QueryFigures>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    // One run to warm the page cache, as a log the admin has open is.
    let mut rows = query().await?;
    let mut took = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        rows = query().await?;
        took.push(started.elapsed());
    }
    took.sort();
    Ok(QueryFigures {
        query: name.to_string(),
        p50_ms: percentile(&took, 0.5),
        p99_ms: percentile(&took, 0.99),
        rows,
    })
}

fn page(q: LogQuery) -> LogQuery {
    LogQuery {
        limit: Some(100),
        ..q
    }
}

pub async fn log(args: &LogArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("mailroom.db");
    let store = Store::open(&path).await?;
    let started = Instant::now();
    let built = store
        .fill_synthetic_log(args.rows, chrono::Utc::now())
        .await?;
    let build_seconds = started.elapsed().as_secs_f64();
    let runs = args.runs;
    let mut queries = Vec::new();
    let log = |q: LogQuery| {
        let store = store.clone();
        async move { Ok(store.inbound_log(&page(q)).await?.len()) }
    };
    queries.push(time("first page", runs, || log(LogQuery::default())).await?);
    for status in [
        LogStatus::Processed,
        LogStatus::Skipped,
        LogStatus::Failed,
        LogStatus::Retrying,
        LogStatus::Pending,
    ] {
        let name = format!(
            "status {}",
            serde_json::to_value(status)?.as_str().unwrap_or("")
        );
        queries.push(
            time(&name, runs, || {
                log(LogQuery {
                    status: Some(status),
                    ..Default::default()
                })
            })
            .await?,
        );
    }
    for (n, mailbox) in built.mailbox_ids.iter().enumerate() {
        queries.push(
            time(&format!("mailbox {}", n + 1), runs, || {
                log(LogQuery {
                    mailbox_id: Some(mailbox.clone()),
                    ..Default::default()
                })
            })
            .await?,
        );
    }
    let smallest = built.mailbox_ids.last().cloned();
    queries.push(
        time("mailbox 3, status failed", runs, || {
            log(LogQuery {
                mailbox_id: smallest.clone(),
                status: Some(LogStatus::Failed),
                ..Default::default()
            })
        })
        .await?,
    );
    for (name, word) in [
        ("search common word", COMMON_WORD),
        ("search rare word", RARE_WORD),
    ] {
        queries.push(
            time(name, runs, || {
                log(LogQuery {
                    search: Some(word.to_string()),
                    ..Default::default()
                })
            })
            .await?,
        );
    }
    queries.push(
        time("search common word, mailbox 2", runs, || {
            log(LogQuery {
                search: Some(COMMON_WORD.to_string()),
                mailbox_id: built.mailbox_ids.get(1).cloned(),
                ..Default::default()
            })
        })
        .await?,
    );
    queries.push(
        time("deep page (9/10 down)", runs, || {
            log(LogQuery {
                before: Some(built.deep_page_before),
                ..Default::default()
            })
        })
        .await?,
    );
    // The filters beside status and mailbox: a busy sender (one email in fifty), a ticket,
    // the last 24 hours, and a day a month back.
    let now = chrono::Utc::now();
    let filters: [(&str, LogQuery); 6] = [
        (
            "sender (busy)",
            LogQuery {
                sender: Some(built.busy_sender.clone()),
                ..Default::default()
            },
        ),
        (
            "sender (busy), mailbox 3, status failed",
            LogQuery {
                sender: Some(built.busy_sender.clone()),
                mailbox_id: smallest.clone(),
                status: Some(LogStatus::Failed),
                ..Default::default()
            },
        ),
        (
            "ticket",
            LogQuery {
                ticket_id: Some(built.sample_ticket_id),
                ..Default::default()
            },
        ),
        (
            "last 24 hours, status failed",
            LogQuery {
                since: Some(now - chrono::Duration::hours(24)),
                status: Some(LogStatus::Failed),
                ..Default::default()
            },
        ),
        (
            "one day a month back, mailbox 2",
            LogQuery {
                since: Some(now - chrono::Duration::days(31)),
                until: Some(now - chrono::Duration::days(30)),
                mailbox_id: built.mailbox_ids.get(1).cloned(),
                ..Default::default()
            },
        ),
        (
            "search common word, last 7 days",
            LogQuery {
                search: Some(COMMON_WORD.to_string()),
                since: Some(now - chrono::Duration::days(7)),
                ..Default::default()
            },
        ),
    ];
    for (name, q) in filters {
        queries.push(time(name, runs, || log(q.clone())).await?);
    }
    queries.push(
        time("counts, all mailboxes", runs, || {
            let store = store.clone();
            async move { Ok(store.status_counts(None).await?.len()) }
        })
        .await?,
    );
    let first_mailbox = built.mailbox_ids[0].clone();
    queries.push(
        time("counts, one mailbox", runs, || {
            let store = store.clone();
            let mailbox = first_mailbox.clone();
            async move { Ok(store.status_counts(Some(&mailbox)).await?.len()) }
        })
        .await?,
    );
    queries.push(
        time("unfinished, one mailbox", runs, || {
            let store = store.clone();
            let mailbox = first_mailbox.clone();
            async move { Ok(store.unfinished_count(Some(&mailbox)).await? as usize) }
        })
        .await?,
    );
    queries.push(
        time("an email's attempts", runs, || {
            let store = store.clone();
            async move { Ok(store.attempts(built.sample_email_id).await?.len()) }
        })
        .await?,
    );
    store.close().await;
    let file_bytes = ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|m| m.len())
        .sum();
    let report = Report {
        rows: args.rows,
        build_seconds,
        file_bytes,
        queries,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "Inbound log of {} entries (built in {:.1} s), database {:.0} MB",
            report.rows,
            report.build_seconds,
            report.file_bytes as f64 / 1e6
        );
        println!(
            "{:<32} {:>9} {:>9} {:>6}",
            "query", "p50 ms", "p99 ms", "rows"
        );
        for q in &report.queries {
            println!(
                "{:<32} {:>9.2} {:>9.2} {:>6}",
                q.query, q.p50_ms, q.p99_ms, q.rows
            );
        }
    }
    Ok(())
}
