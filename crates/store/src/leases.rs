//! Named leases shared by every worker on one database: one holder at a time, renewed while
//! it works, taken over once it expires (its holder died or hung). A mailbox's delta round is
//! one such lease, so only one worker reads a mailbox's changes at a time.

use chrono::{DateTime, Duration, Utc};

use crate::inbound::ts;
use crate::{Result, Store};

impl Store {
    /// Takes the lease `name` for `holder` until `now + ttl`, or renews it if `holder` has it.
    /// Returns false while another holder's lease runs. Taking an expired lease of another
    /// holder counts as a takeover ([`Store::lease_takeovers`]).
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool> {
        let granted: Option<String> = sqlx::query_scalar(
            "INSERT INTO work_leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET
                 takeovers = work_leases.takeovers
                     + CASE WHEN work_leases.holder NOT IN (excluded.holder, '') THEN 1 ELSE 0 END,
                 holder = excluded.holder, expires_at = excluded.expires_at
             WHERE work_leases.holder = excluded.holder OR work_leases.expires_at < $4
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(ts(now + ttl))
        .bind(ts(now))
        .fetch_optional(self.pool())
        .await?;
        Ok(granted.is_some())
    }

    /// Gives the lease up (a clean stop, the work done): the next worker takes it at once,
    /// without a takeover. A lease held by someone else is left alone. (The row stays, with no
    /// holder, to keep its count of takeovers.)
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query(
            "UPDATE work_leases SET holder = '', expires_at = '' WHERE name = $1 AND holder = $2",
        )
        .bind(name)
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takeovers so far: leases taken after they expired, and emails whose claim was taken
    /// after its lease ran out. Each is a worker that died or hung.
    pub async fn lease_takeovers(&self) -> Result<LeaseTakeovers> {
        let (leases, claims): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT CAST(COALESCE(SUM(takeovers), 0) AS BIGINT) FROM work_leases),
                    (SELECT CAST(COALESCE(SUM(takeovers), 0) AS BIGINT) FROM inbound_emails
                     WHERE takeovers > 0)",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(LeaseTakeovers { leases, claims })
    }
}

/// See [`Store::lease_takeovers`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseTakeovers {
    /// Named leases (a mailbox's delta round) taken after they expired.
    pub leases: i64,
    /// Email claims taken after their lease ran out.
    pub claims: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::testing::on_both!(one_holder_at_a_time_and_an_expired_lease_is_taken_over);
    async fn one_holder_at_a_time_and_an_expired_lease_is_taken_over(store: Store) {
        let t0 = Utc::now();
        let ttl = Duration::seconds(30);
        assert!(store.acquire_lease("delta:a", "w1", t0, ttl).await.unwrap());
        assert!(!store.acquire_lease("delta:a", "w2", t0, ttl).await.unwrap());
        assert!(store.acquire_lease("delta:b", "w2", t0, ttl).await.unwrap());
        // Renewed by its holder: still w1's after the first term.
        let t1 = t0 + Duration::seconds(20);
        assert!(store.acquire_lease("delta:a", "w1", t1, ttl).await.unwrap());
        assert!(!store
            .acquire_lease("delta:a", "w2", t0 + Duration::seconds(40), ttl)
            .await
            .unwrap());
        assert_eq!(store.lease_takeovers().await.unwrap().leases, 0);
        // w1 stops renewing: w2 takes it over once it has expired.
        let t2 = t1 + ttl + Duration::seconds(1);
        assert!(store.acquire_lease("delta:a", "w2", t2, ttl).await.unwrap());
        assert!(!store.acquire_lease("delta:a", "w1", t2, ttl).await.unwrap());
        assert_eq!(store.lease_takeovers().await.unwrap().leases, 1);
        // Released: taken at once, no takeover.
        store.release_lease("delta:a", "w1").await.unwrap();
        assert!(!store.acquire_lease("delta:a", "w3", t2, ttl).await.unwrap());
        store.release_lease("delta:a", "w2").await.unwrap();
        assert!(store.acquire_lease("delta:a", "w3", t2, ttl).await.unwrap());
        assert_eq!(store.lease_takeovers().await.unwrap().leases, 1);
    }

    crate::testing::on_both!(concurrent_workers_get_one_lease_holder);
    async fn concurrent_workers_get_one_lease_holder(store: Store) {
        let now = Utc::now();
        let mut tasks = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .acquire_lease("delta:shared", &format!("w{w}"), now, Duration::seconds(30))
                    .await
                    .unwrap()
            }));
        }
        let mut granted = 0;
        for t in tasks {
            granted += usize::from(t.await.unwrap());
        }
        assert_eq!(granted, 1);
    }
}
