//! Contact imports: runs, the outcome of each contact in a run, the claims that keep one PSA
//! user per address, and the contact delta cursors of scheduled imports.
//!
//! Invariants:
//! - A run's counts are recomputed from its rows in the transaction that writes them, so they
//!   always agree with the rows; a contact has at most one row per run (the last outcome).
//! - An address is claimed (`contact_links`) before the PSA user for it is created and linked
//!   to the user's id once HaloPSA answered; a claim is never dropped while a create for it may
//!   have reached HaloPSA.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::inbound::{parse_ts, parse_ts_opt, ts};
use crate::{Result, Store, StoreError};

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportTrigger {
    Manual,
    Scheduled,
}
text_enum!(ImportTrigger { Manual => "manual", Scheduled => "scheduled" });

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Finished,
    Cancelled,
    Failed,
    /// The process stopped while it ran; the next import of the mailbox resumes it.
    Interrupted,
}
text_enum!(RunState {
    Running => "running",
    Finished => "finished",
    Cancelled => "cancelled",
    Failed => "failed",
    Interrupted => "interrupted",
});

/// What became of one contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactOutcome {
    Created,
    Updated,
    Unchanged,
    Skipped,
    Failed,
    /// Deleted in Outlook: reported, never deleted in the PSA.
    Removed,
}
text_enum!(ContactOutcome {
    Created => "created",
    Updated => "updated",
    Unchanged => "unchanged",
    Skipped => "skipped",
    Failed => "failed",
    Removed => "removed",
});

/// A run's counts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub skipped: i64,
    pub failed: i64,
    pub removed: i64,
}

impl ImportCounts {
    /// Contacts with an outcome so far.
    pub fn done(&self) -> i64 {
        self.created + self.updated + self.unchanged + self.skipped + self.failed + self.removed
    }
}

/// One import run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportRun {
    pub id: i64,
    pub mailbox_id: String,
    pub trigger: ImportTrigger,
    pub state: RunState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Contacts the run looks at (known once the address book was read).
    pub total: i64,
    pub counts: ImportCounts,
    pub error: Option<String>,
    /// The run's own HTTP exchanges (reads of the address book, users, sites).
    pub requests: Value,
}

/// The outcome of one contact in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportRow {
    pub contact_id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub outcome: ContactOutcome,
    pub reason: Option<String>,
    pub psa_user_id: Option<i64>,
    pub site_id: Option<i64>,
    /// `[{field, from, to}]`.
    pub changes: Value,
    /// The PSA requests made for it.
    pub requests: Value,
    pub at: DateTime<Utc>,
}

/// The claim on an address before a PSA user is created for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailClaim {
    /// Claimed now: nothing was created for it before.
    New,
    /// Claimed before and linked to this PSA user.
    Linked(i64),
    /// Claimed before without an answer (the process stopped mid-request): read HaloPSA
    /// before creating anything.
    Unsettled,
}

fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_json(text: String) -> Result<Value> {
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("contact import JSON: {e}")))
}

fn run_from_row(r: &sqlx::any::AnyRow) -> Result<ImportRun> {
    Ok(ImportRun {
        id: r.try_get("id")?,
        mailbox_id: r.try_get("mailbox_id")?,
        trigger: r.try_get::<String, _>("trigger")?.parse()?,
        state: r.try_get::<String, _>("state")?.parse()?,
        started_at: parse_ts(r.try_get("started_at")?)?,
        finished_at: parse_ts_opt(r.try_get("finished_at")?)?,
        total: r.try_get("total")?,
        counts: ImportCounts {
            created: r.try_get("created")?,
            updated: r.try_get("updated")?,
            unchanged: r.try_get("unchanged")?,
            skipped: r.try_get("skipped")?,
            failed: r.try_get("failed")?,
            removed: r.try_get("removed")?,
        },
        error: r.try_get("error")?,
        requests: parse_json(r.try_get("requests")?)?,
    })
}

fn row_from_row(r: &sqlx::any::AnyRow) -> Result<ImportRow> {
    Ok(ImportRow {
        contact_id: r.try_get("contact_id")?,
        display_name: r.try_get("display_name")?,
        email: r.try_get("email")?,
        outcome: r.try_get::<String, _>("outcome")?.parse()?,
        reason: r.try_get("reason")?,
        psa_user_id: r.try_get("psa_user_id")?,
        site_id: r.try_get("site_id")?,
        changes: parse_json(r.try_get("changes")?)?,
        requests: parse_json(r.try_get("requests")?)?,
        at: parse_ts(r.try_get("at")?)?,
    })
}

impl Store {
    /// Starts a run.
    pub async fn start_contact_import(
        &self,
        mailbox_id: &str,
        trigger: ImportTrigger,
        now: DateTime<Utc>,
    ) -> Result<ImportRun> {
        let row = sqlx::query(
            "INSERT INTO contact_import_runs (mailbox_id, trigger, state, started_at)
             VALUES ($1, $2, 'running', $3) RETURNING *",
        )
        .bind(mailbox_id)
        .bind(trigger.as_str())
        .bind(ts(now))
        .fetch_one(self.pool())
        .await?;
        run_from_row(&row)
    }

    /// Marks every running run interrupted (on start: no run survives its process).
    pub async fn interrupt_contact_imports(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE contact_import_runs SET state = 'interrupted' WHERE state = 'running'",
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// The newest interrupted run of a mailbox, to resume.
    pub async fn interrupted_contact_import(&self, mailbox_id: &str) -> Result<Option<ImportRun>> {
        sqlx::query(
            "SELECT * FROM contact_import_runs WHERE mailbox_id = $1 AND state = 'interrupted'
             ORDER BY id DESC LIMIT 1",
        )
        .bind(mailbox_id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
    }

    /// Takes an interrupted run up again.
    pub async fn resume_contact_import(&self, run_id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE contact_import_runs SET state = 'running', finished_at = NULL WHERE id = $1",
        )
        .bind(run_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Sets how many contacts the run looks at.
    pub async fn set_contact_import_total(&self, run_id: i64, total: i64) -> Result<()> {
        sqlx::query("UPDATE contact_import_runs SET total = $1 WHERE id = $2")
            .bind(total)
            .bind(run_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Writes contacts' outcomes (replacing earlier ones of the same contacts in the run) and
    /// recomputes the run's counts, in one transaction.
    pub async fn record_contact_rows(
        &self,
        run_id: i64,
        rows: &[ImportRow],
    ) -> Result<ImportCounts> {
        let mut tx = self.pool().begin().await?;
        for row in rows {
            // Replaced as a new row, so it sorts where it was decided last.
            sqlx::query("DELETE FROM contact_import_rows WHERE run_id = $1 AND contact_id = $2")
                .bind(run_id)
                .bind(&row.contact_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO contact_import_rows
                 (run_id, contact_id, display_name, email, outcome, reason, psa_user_id, site_id,
                  changes, requests, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(run_id)
            .bind(&row.contact_id)
            .bind(&row.display_name)
            .bind(&row.email)
            .bind(row.outcome.as_str())
            .bind(&row.reason)
            .bind(row.psa_user_id)
            .bind(row.site_id)
            .bind(json_text(&row.changes))
            .bind(json_text(&row.requests))
            .bind(ts(row.at))
            .execute(&mut *tx)
            .await?;
        }
        let counted = sqlx::query(
            "UPDATE contact_import_runs SET
               created = (SELECT count(*) FROM contact_import_rows WHERE run_id = $1 AND outcome = 'created'),
               updated = (SELECT count(*) FROM contact_import_rows WHERE run_id = $1 AND outcome = 'updated'),
               unchanged = (SELECT count(*) FROM contact_import_rows WHERE run_id = $1 AND outcome = 'unchanged'),
               skipped = (SELECT count(*) FROM contact_import_rows WHERE run_id = $1 AND outcome = 'skipped'),
               failed = (SELECT count(*) FROM contact_import_rows WHERE run_id = $1 AND outcome = 'failed'),
               removed = (SELECT count(*) FROM contact_import_rows WHERE run_id = $1 AND outcome = 'removed')
             WHERE id = $1 RETURNING *",
        )
        .bind(run_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(run_from_row(&counted)?.counts)
    }

    /// Ends a run.
    pub async fn finish_contact_import(
        &self,
        run_id: i64,
        state: RunState,
        error: Option<&str>,
        requests: &Value,
        now: DateTime<Utc>,
    ) -> Result<ImportRun> {
        let row = sqlx::query(
            "UPDATE contact_import_runs SET state = $1, error = $2, requests = $3, finished_at = $4
             WHERE id = $5 RETURNING *",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(json_text(requests))
        .bind(ts(now))
        .bind(run_id)
        .fetch_one(self.pool())
        .await?;
        run_from_row(&row)
    }

    pub async fn contact_import_run(&self, run_id: i64) -> Result<Option<ImportRun>> {
        sqlx::query("SELECT * FROM contact_import_runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(run_from_row)
            .transpose()
    }

    /// The newest runs, of one mailbox or of all, newest first.
    pub async fn contact_import_runs(
        &self,
        mailbox_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ImportRun>> {
        sqlx::query(
            "SELECT * FROM contact_import_runs WHERE $1 IS NULL OR mailbox_id = $1
             ORDER BY id DESC LIMIT $2",
        )
        .bind(mailbox_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(run_from_row)
        .collect()
    }

    /// A run's contacts (optionally of one outcome), in the order they were decided.
    pub async fn contact_import_rows(
        &self,
        run_id: i64,
        outcome: Option<ContactOutcome>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ImportRow>> {
        // The order rows were written in: SQLite's rowid, PostgreSQL's `seq` column.
        let sql = match self.backend() {
            crate::Backend::Sqlite => {
                "SELECT * FROM contact_import_rows WHERE run_id = $1 AND ($2 IS NULL OR outcome = $2)
                 ORDER BY rowid LIMIT $3 OFFSET $4"
            }
            crate::Backend::Postgres => {
                "SELECT * FROM contact_import_rows WHERE run_id = $1 AND ($2 IS NULL OR outcome = $2)
                 ORDER BY seq LIMIT $3 OFFSET $4"
            }
        };
        sqlx::query(sql)
            .bind(run_id)
            .bind(outcome.map(ContactOutcome::as_str))
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(row_from_row)
            .collect()
    }

    /// The newest outcome recorded for a contact of a mailbox (its name and address when
    /// Outlook reports it deleted and gives only its id).
    pub async fn last_contact_row(
        &self,
        mailbox_id: &str,
        contact_id: &str,
    ) -> Result<Option<ImportRow>> {
        sqlx::query(
            "SELECT r.* FROM contact_import_rows r JOIN contact_import_runs u ON u.id = r.run_id
             WHERE u.mailbox_id = $1 AND r.contact_id = $2 AND r.outcome != 'removed'
             ORDER BY r.run_id DESC LIMIT 1",
        )
        .bind(mailbox_id)
        .bind(contact_id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(row_from_row)
        .transpose()
    }

    /// The contacts a run has decided (a resumed run skips them).
    pub async fn decided_contacts(&self, run_id: i64) -> Result<HashSet<String>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT contact_id FROM contact_import_rows WHERE run_id = $1")
                .bind(run_id)
                .fetch_all(self.pool())
                .await?;
        Ok(ids.into_iter().collect())
    }

    /// Claims `email` (any case) for a PSA user about to be created for a contact.
    pub async fn claim_contact_email(
        &self,
        email: &str,
        mailbox_id: &str,
        contact_id: &str,
        now: DateTime<Utc>,
    ) -> Result<EmailClaim> {
        let key = email.trim().to_lowercase();
        let inserted = sqlx::query(
            "INSERT INTO contact_links (email, mailbox_id, contact_id, claimed_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING",
        )
        .bind(&key)
        .bind(mailbox_id)
        .bind(contact_id)
        .bind(ts(now))
        .execute(self.pool())
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(EmailClaim::New);
        }
        let id: Option<i64> =
            sqlx::query_scalar("SELECT psa_user_id FROM contact_links WHERE email = $1")
                .bind(&key)
                .fetch_one(self.pool())
                .await?;
        Ok(id.map_or(EmailClaim::Unsettled, EmailClaim::Linked))
    }

    /// Notes the PSA user an address's claim led to.
    pub async fn link_contact_email(
        &self,
        email: &str,
        psa_user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("UPDATE contact_links SET psa_user_id = $1, linked_at = $2 WHERE email = $3")
            .bind(psa_user_id)
            .bind(ts(now))
            .bind(email.trim().to_lowercase())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Drops an unlinked claim: HaloPSA refused the create outright, so nothing exists for it.
    pub async fn release_contact_email(&self, email: &str) -> Result<()> {
        sqlx::query("DELETE FROM contact_links WHERE email = $1 AND psa_user_id IS NULL")
            .bind(email.trim().to_lowercase())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Addresses claimed without an answer.
    pub async fn unsettled_contact_emails(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT email FROM contact_links WHERE psa_user_id IS NULL ORDER BY email",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// The stored delta links of a mailbox's contact folders, by folder id.
    pub async fn contact_delta_cursors(&self, mailbox_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT folder_id, link FROM contact_delta_cursors WHERE mailbox_id = $1 ORDER BY folder_id")
            .bind(mailbox_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("folder_id")?, r.try_get("link")?)))
            .collect()
    }

    /// Stores (or replaces) a folder's delta link.
    pub async fn set_contact_delta_cursor(
        &self,
        mailbox_id: &str,
        folder_id: &str,
        link: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO contact_delta_cursors (mailbox_id, folder_id, link, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (mailbox_id, folder_id) DO UPDATE SET link = excluded.link, updated_at = excluded.updated_at",
        )
        .bind(mailbox_id)
        .bind(folder_id)
        .bind(link)
        .bind(ts(now))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets a mailbox's delta links (the next scheduled import reads everything).
    pub async fn clear_contact_delta_cursors(&self, mailbox_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM contact_delta_cursors WHERE mailbox_id = $1")
            .bind(mailbox_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: &str, outcome: ContactOutcome) -> ImportRow {
        ImportRow {
            contact_id: id.into(),
            display_name: format!("Contact {id}"),
            email: Some(format!("{id}@fabrikam.test")),
            outcome,
            reason: None,
            psa_user_id: None,
            site_id: None,
            changes: json!([]),
            requests: json!([]),
            at: Utc::now(),
        }
    }

    crate::testing::on_both!(counts_follow_the_rows_and_a_contact_has_one_outcome_per_run);
    async fn counts_follow_the_rows_and_a_contact_has_one_outcome_per_run(store: Store) {
        let run = store
            .start_contact_import("mbx", ImportTrigger::Manual, Utc::now())
            .await
            .unwrap();
        assert_eq!(run.state, RunState::Running);
        store
            .record_contact_rows(
                run.id,
                &[
                    row("a", ContactOutcome::Failed),
                    row("b", ContactOutcome::Skipped),
                ],
            )
            .await
            .unwrap();
        let counts = store
            .record_contact_rows(run.id, &[row("a", ContactOutcome::Created)])
            .await
            .unwrap();
        assert_eq!((counts.created, counts.failed, counts.skipped), (1, 0, 1));
        assert_eq!(store.decided_contacts(run.id).await.unwrap().len(), 2);
        let created = store
            .contact_import_rows(run.id, Some(ContactOutcome::Created), 10, 0)
            .await
            .unwrap();
        assert_eq!(created[0].contact_id, "a");

        // A stop: the run is interrupted, then resumed.
        assert_eq!(store.interrupt_contact_imports().await.unwrap(), 1);
        let found = store
            .interrupted_contact_import("mbx")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, run.id);
        store.resume_contact_import(run.id).await.unwrap();
        let done = store
            .finish_contact_import(run.id, RunState::Finished, None, &json!([]), Utc::now())
            .await
            .unwrap();
        assert_eq!(done.state, RunState::Finished);
        assert_eq!(done.counts.done(), 2);
        assert!(store
            .interrupted_contact_import("mbx")
            .await
            .unwrap()
            .is_none());
    }

    crate::testing::on_both!(an_address_is_claimed_once_and_an_unanswered_claim_is_unsettled);
    async fn an_address_is_claimed_once_and_an_unanswered_claim_is_unsettled(store: Store) {
        let now = Utc::now();
        assert_eq!(
            store
                .claim_contact_email("Pat@Fabrikam.test", "m", "c1", now)
                .await
                .unwrap(),
            EmailClaim::New
        );
        assert_eq!(
            store
                .claim_contact_email("pat@fabrikam.test", "m", "c2", now)
                .await
                .unwrap(),
            EmailClaim::Unsettled
        );
        assert_eq!(
            store.unsettled_contact_emails().await.unwrap(),
            ["pat@fabrikam.test"]
        );
        store
            .link_contact_email("PAT@fabrikam.test", 42, now)
            .await
            .unwrap();
        assert_eq!(
            store
                .claim_contact_email("pat@fabrikam.test", "m", "c1", now)
                .await
                .unwrap(),
            EmailClaim::Linked(42)
        );
        // A linked claim is never released.
        store
            .release_contact_email("pat@fabrikam.test")
            .await
            .unwrap();
        assert_eq!(
            store
                .claim_contact_email("pat@fabrikam.test", "m", "c1", now)
                .await
                .unwrap(),
            EmailClaim::Linked(42)
        );
        assert_eq!(
            store
                .claim_contact_email("lee@fabrikam.test", "m", "c3", now)
                .await
                .unwrap(),
            EmailClaim::New
        );
        store
            .release_contact_email("lee@fabrikam.test")
            .await
            .unwrap();
        assert_eq!(
            store
                .claim_contact_email("lee@fabrikam.test", "m", "c3", now)
                .await
                .unwrap(),
            EmailClaim::New
        );
    }

    crate::testing::on_both!(delta_cursors_are_kept_per_folder);
    async fn delta_cursors_are_kept_per_folder(store: Store) {
        let now = Utc::now();
        store
            .set_contact_delta_cursor("m", "f1", "link-1", now)
            .await
            .unwrap();
        store
            .set_contact_delta_cursor("m", "f1", "link-2", now)
            .await
            .unwrap();
        store
            .set_contact_delta_cursor("m", "f2", "link-3", now)
            .await
            .unwrap();
        assert_eq!(
            store.contact_delta_cursors("m").await.unwrap(),
            [
                ("f1".to_string(), "link-2".to_string()),
                ("f2".to_string(), "link-3".to_string())
            ]
        );
        store.clear_contact_delta_cursors("m").await.unwrap();
        assert!(store.contact_delta_cursors("m").await.unwrap().is_empty());
    }
}
