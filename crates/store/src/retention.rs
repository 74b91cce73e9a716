//! Retention: old attempts (their requests and log lines go with them) and old request bodies
//! are removed in small batches, each its own short transaction, so processing never waits
//! long; the freed pages go back to the file system where the database allows it. An email's
//! own row is never removed here: its de-duplication key is what keeps a mail seen again (a
//! delta round started afresh) from becoming a second ticket.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::inbound::ts;
use crate::{Result, Store};

/// The database file's size and its free pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StoreSize {
    pub bytes: u64,
    pub free_bytes: u64,
    /// Whether freed pages are given back to the file system (`auto_vacuum = incremental`, on
    /// for databases created since retention exists); otherwise SQLite reuses them.
    pub reclaims: bool,
}

impl Store {
    /// Drops the bodies of up to `batch` HTTP exchanges recorded before `before` (their
    /// method, URL, status, headers and timing stay). Returns how many.
    pub async fn prune_request_bodies(&self, before: DateTime<Utc>, batch: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE attempt_requests SET request_body = NULL, response_body = NULL
             WHERE id IN (SELECT id FROM attempt_requests
                          WHERE (request_body IS NOT NULL OR response_body IS NOT NULL)
                            AND started_at < $1
                          ORDER BY started_at LIMIT $2)",
        )
        .bind(ts(before))
        .bind(batch)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Removes up to `batch` finished attempts started before `before`, with their requests
    /// and log lines. Returns how many attempts.
    pub async fn prune_attempts(&self, before: DateTime<Utc>, batch: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM processing_attempts
             WHERE id IN (SELECT id FROM processing_attempts
                          WHERE started_at < $1 AND finished_at IS NOT NULL
                          ORDER BY started_at LIMIT $2)",
        )
        .bind(ts(before))
        .bind(batch)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Gives up to `pages` free pages back to the file system (a no-op for a database that
    /// reuses them instead). Returns how many bytes the file shrank.
    pub async fn reclaim_free_pages(&self, pages: i64) -> Result<u64> {
        let before = self.size().await?;
        if !before.reclaims || before.free_bytes == 0 {
            return Ok(0);
        }
        // The pragma frees pages as its rows are stepped through: fetch them all.
        sqlx::query(&format!("PRAGMA incremental_vacuum({})", pages.max(1)))
            .fetch_all(self.pool())
            .await?;
        let after = self.size().await?;
        Ok(before.bytes.saturating_sub(after.bytes))
    }

    /// The database file's size, free space and whether it gives freed pages back. On
    /// PostgreSQL: the database's size; its own autovacuum reuses freed space.
    pub async fn size(&self) -> Result<StoreSize> {
        if self.backend() == crate::Backend::Postgres {
            let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(self.pool())
                .await?;
            return Ok(StoreSize {
                bytes: bytes.max(0) as u64,
                free_bytes: 0,
                reclaims: false,
            });
        }
        let mut conn = self.pool().acquire().await?;
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&mut *conn)
            .await?;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut *conn)
            .await?;
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&mut *conn)
            .await?;
        let auto_vacuum: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&mut *conn)
            .await?;
        Ok(StoreSize {
            bytes: (page_size * pages) as u64,
            free_bytes: (page_size * free) as u64,
            reclaims: auto_vacuum == 2,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    crate::testing::on_both!(old_attempts_and_bodies_go_in_batches_and_recent_ones_stay);
    async fn old_attempts_and_bodies_go_in_batches_and_recent_ones_stay(store: Store) {
        let now = Utc::now();
        // 1,200 entries, one every 30 s over the 10 hours up to 40 days ago.
        let old = store
            .fill_synthetic_log(1200, now - Duration::days(40))
            .await
            .unwrap();
        assert_eq!(
            store.size().await.unwrap().reclaims,
            store.backend() == crate::Backend::Sqlite,
            "a new SQLite database gives pages back; PostgreSQL's autovacuum reuses them"
        );
        let attempts_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM processing_attempts")
            .fetch_one(store.pool())
            .await
            .unwrap();

        // Bodies older than 30 days go, 500 at a time; the exchanges themselves stay.
        let cut = now - Duration::days(30);
        let mut pruned = Vec::new();
        loop {
            let n = store.prune_request_bodies(cut, 500).await.unwrap();
            if n == 0 {
                break;
            }
            pruned.push(n);
        }
        assert!(
            pruned.len() >= 3 && pruned.iter().all(|n| *n <= 500),
            "{pruned:?}"
        );
        let sample = store.attempts(old.sample_email_id).await.unwrap();
        assert_eq!(sample.len(), 1);
        assert!(sample[0]
            .requests
            .iter()
            .all(|r| r.request_body.is_none() && r.response_body.is_none()));
        assert_eq!(sample[0].requests.len(), 2);
        assert_eq!(sample[0].log.len(), 4);

        // Attempts of the older half go with their requests and log; the emails stay.
        let cut = now - Duration::days(40) - Duration::hours(5);
        while store.prune_attempts(cut, 500).await.unwrap() > 0 {}
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM processing_attempts")
            .fetch_one(store.pool())
            .await
            .unwrap();
        let recent: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM processing_attempts WHERE started_at >= $1")
                .bind(ts(cut))
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert!(
            left < attempts_before && left == recent && recent > 0,
            "{left} {recent}"
        );
        assert!(store
            .attempts(old.sample_email_id)
            .await
            .unwrap()
            .is_empty());
        let orphans: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM attempt_requests WHERE attempt_id NOT IN (SELECT id FROM processing_attempts))
                  + (SELECT COUNT(*) FROM attempt_log WHERE attempt_id NOT IN (SELECT id FROM processing_attempts))",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(orphans, 0);
        let emails: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbound_emails")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(emails, 1200, "an email's row is kept");

        // The freed pages go back to the file system (SQLite; PostgreSQL reuses them).
        if store.backend() == crate::Backend::Postgres {
            return;
        }
        let size = store.size().await.unwrap();
        assert!(size.free_bytes > 0);
        let shrank = store.reclaim_free_pages(1_000_000).await.unwrap();
        assert!(shrank > 0);
        assert_eq!(store.size().await.unwrap().free_bytes, 0);
    }
}
