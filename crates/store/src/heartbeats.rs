//! Heartbeats: every Mailroom process on a database (service workers, desktop apps) records
//! that it is alive every few seconds; the console lists them and warns when none processes
//! mail. A clean stop removes its row; a killed process's row ages out.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::inbound::{parse_ts, ts};
use crate::{Result, Store};

/// How long a process that stopped beating stays listed.
const KEPT_FOR_DAYS: i64 = 7;

/// A Mailroom process on this database, as its last heartbeat left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heartbeat {
    /// `host:pid:random` (unique even when a pid is reused).
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    /// `service` or `desktop`.
    pub role: String,
    /// Whether it processes mail (a console that only watches does not).
    pub processing: bool,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

impl Store {
    /// Records that `beat`'s process is alive at `beat.seen_at`.
    pub async fn record_heartbeat(&self, beat: &Heartbeat) -> Result<()> {
        sqlx::query(
            "INSERT INTO worker_heartbeats
                 (id, host, pid, version, role, processing, started_at, seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET
                 processing = excluded.processing, seen_at = excluded.seen_at",
        )
        .bind(&beat.id)
        .bind(&beat.host)
        .bind(beat.pid)
        .bind(&beat.version)
        .bind(&beat.role)
        .bind(i64::from(beat.processing))
        .bind(ts(beat.started_at))
        .bind(ts(beat.seen_at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets processes silent for a week as of `now` (retention's hourly pass); returns
    /// how many.
    pub async fn prune_heartbeats(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM worker_heartbeats WHERE seen_at < $1")
                .bind(ts(now - Duration::days(KEPT_FOR_DAYS)))
                .execute(self.pool())
                .await?
                .rows_affected(),
        )
    }

    /// A process stopped cleanly: it is no longer listed.
    pub async fn forget_heartbeat(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM worker_heartbeats WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every listed process, the most recently seen first.
    pub async fn heartbeats(&self) -> Result<Vec<Heartbeat>> {
        sqlx::query("SELECT * FROM worker_heartbeats ORDER BY seen_at DESC, id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(Heartbeat {
                    id: r.try_get("id")?,
                    host: r.try_get("host")?,
                    pid: r.try_get("pid")?,
                    version: r.try_get("version")?,
                    role: r.try_get("role")?,
                    processing: r.try_get::<i64, _>("processing")? != 0,
                    started_at: parse_ts(&r.try_get::<String, _>("started_at")?)?,
                    seen_at: parse_ts(&r.try_get::<String, _>("seen_at")?)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::on_both;

    fn beat(id: &str, processing: bool, seen_at: DateTime<Utc>) -> Heartbeat {
        Heartbeat {
            id: id.into(),
            host: "mr-svc-1".into(),
            pid: 4242,
            version: "0.1.0".into(),
            role: "service".into(),
            processing,
            started_at: seen_at - Duration::minutes(5),
            seen_at,
        }
    }

    async fn processes_beat_stop_and_age_out(store: Store) {
        let now = "2026-12-07T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        store
            .record_heartbeat(&beat("a", true, now - Duration::days(8)))
            .await
            .unwrap();
        store
            .record_heartbeat(&beat("b", true, now - Duration::seconds(20)))
            .await
            .unwrap();
        store
            .record_heartbeat(&beat("c", false, now))
            .await
            .unwrap();
        // `a` was silent for more than a week: gone at the next pruning.
        assert_eq!(store.prune_heartbeats(now).await.unwrap(), 1);
        let listed: Vec<String> = store
            .heartbeats()
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(listed, ["c", "b"]);
        // A second beat moves `seen_at` and keeps `started_at`.
        store
            .record_heartbeat(&beat("b", false, now + Duration::seconds(10)))
            .await
            .unwrap();
        let b = store.heartbeats().await.unwrap().remove(0);
        assert_eq!((b.id.as_str(), b.processing), ("b", false));
        assert_eq!(
            b.started_at,
            now - Duration::seconds(20) - Duration::minutes(5)
        );
        store.forget_heartbeat("b").await.unwrap();
        assert_eq!(store.heartbeats().await.unwrap().len(), 1);
    }
    on_both!(processes_beat_stop_and_age_out);
}
