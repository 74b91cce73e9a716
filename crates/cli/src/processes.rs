//! `mailroom processes`: the Mailroom processes on the database (service workers, desktop
//! apps), by their heartbeats — what the desktop console lists under Monitoring.

use mailroom_engine::Core;

pub async fn run(core: &Core, json: bool) -> anyhow::Result<()> {
    let found = core.processes(chrono::Utc::now()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(());
    }
    if found.processes.is_empty() {
        println!("No Mailroom process has run on this database for a week.");
    } else {
        println!(
            "{:<20} {:>8} {:<8} {:<10} {:<9} {:<20} LAST SEEN",
            "HOST", "PID", "ROLE", "MAIL", "VERSION", "STARTED"
        );
        for p in &found.processes {
            let b = &p.heartbeat;
            let seen = if p.alive {
                format!(
                    "{} s ago",
                    (chrono::Utc::now() - b.seen_at).num_seconds().max(0)
                )
            } else {
                format!("silent since {}", b.seen_at.format("%Y-%m-%d %H:%M:%S UTC"))
            };
            println!(
                "{:<20} {:>8} {:<8} {:<10} {:<9} {:<20} {}",
                b.host,
                b.pid,
                b.role,
                if b.processing { "processes" } else { "watches" },
                b.version,
                b.started_at.format("%Y-%m-%d %H:%M:%S"),
                seen
            );
        }
    }
    if found.processing_alive == 0 {
        println!(
            "No Mailroom process is processing mail on this database: start the service \
             (systemctl start mailroom)."
        );
    }
    Ok(())
}
