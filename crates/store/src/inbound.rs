//! The inbound pipeline's tables: emails and their state machine, attempts with their
//! requests and log lines, PSA write intents, thread keys and sync cursors.
//!
//! State machine of an email (column `state`):
//! `seen` → `claimed` → `psa_written` → `done`, or `claimed` → `skipped`; a failed attempt
//! goes to `retrying` (with `next_attempt_at`) and after the last attempt to `failed`.
//! A claim is released (`claim_token` NULL, a `claimed` email back to the state it was claimed
//! from) when its process stops, and every claim is released when a process starts holding the
//! data directory's lock (no other process can own one then); a released or a lease-expired
//! claim is claimable again, and the `psa_writes` intent row tells the next attempt whether the
//! PSA write already happened.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use mailroom_trace::HttpExchange;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{numbered, Arg, Result, Store, StoreError};

/// Timestamps are stored as fixed-width RFC 3339 UTC text, so they sort and compare as text.
pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads a stored timestamp (RFC 3339).
pub(crate) fn parse_ts(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp '{text}': {e}")))
}

/// Reads an optional stored timestamp.
pub(crate) fn parse_ts_opt(text: Option<String>) -> Result<Option<DateTime<Utc>>> {
    text.as_deref().map(parse_ts).transpose()
}

/// Where an email is in its processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailState {
    Seen,
    Claimed,
    PsaWritten,
    Done,
    Skipped,
    Retrying,
    Failed,
}

text_enum!(EmailState {
    Seen => "seen",
    Claimed => "claimed",
    PsaWritten => "psa_written",
    Done => "done",
    Skipped => "skipped",
    Retrying => "retrying",
    Failed => "failed",
});

impl EmailState {
    /// The status the inbound log shows.
    pub fn status(self) -> LogStatus {
        match self {
            EmailState::Done => LogStatus::Processed,
            EmailState::Skipped => LogStatus::Skipped,
            EmailState::Failed => LogStatus::Failed,
            EmailState::Retrying => LogStatus::Retrying,
            EmailState::Seen | EmailState::Claimed | EmailState::PsaWritten => LogStatus::Pending,
        }
    }
}

/// The inbound log's status filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStatus {
    Pending,
    Processed,
    Skipped,
    Failed,
    Retrying,
}

impl LogStatus {
    fn states(self) -> &'static [&'static str] {
        match self {
            LogStatus::Pending => &["seen", "claimed", "psa_written"],
            LogStatus::Processed => &["done"],
            LogStatus::Skipped => &["skipped"],
            LogStatus::Failed => &["failed"],
            LogStatus::Retrying => &["retrying"],
        }
    }
}

/// One email as the log and the engine see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundEmail {
    pub id: i64,
    pub mailbox_id: String,
    pub graph_message_id: String,
    pub internet_message_id: Option<String>,
    pub conversation_id: Option<String>,
    pub received_at: DateTime<Utc>,
    pub from_address: String,
    pub from_name: String,
    pub subject: String,
    pub state: EmailState,
    pub status: LogStatus,
    pub outcome: Option<String>,
    pub skip_reason: Option<String>,
    pub skip_detail: Option<String>,
    pub ticket_id: Option<i64>,
    pub action_id: Option<i64>,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// The state the email was in when it was last claimed (`seen`, `retrying`, `claimed`,
    /// `psa_written`): a first try, a retry, or the recovery of a dead process's claim.
    pub claimed_from: Option<EmailState>,
}

impl InboundEmail {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Self> {
        let state = EmailState::parse(row.try_get("state")?)?;
        Ok(InboundEmail {
            id: row.try_get("id")?,
            mailbox_id: row.try_get("mailbox_id")?,
            graph_message_id: row.try_get("graph_message_id")?,
            internet_message_id: row.try_get("internet_message_id")?,
            conversation_id: row.try_get("conversation_id")?,
            received_at: parse_ts(row.try_get("received_at")?)?,
            from_address: row.try_get("from_address")?,
            from_name: row.try_get("from_name")?,
            subject: row.try_get("subject")?,
            state,
            status: state.status(),
            outcome: row.try_get("outcome")?,
            skip_reason: row.try_get("skip_reason")?,
            skip_detail: row.try_get("skip_detail")?,
            ticket_id: row.try_get("ticket_id")?,
            action_id: row.try_get("action_id")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at: parse_ts_opt(row.try_get("next_attempt_at")?)?,
            error_code: row.try_get("error_code")?,
            error_message: row.try_get("error_message")?,
            updated_at: parse_ts(row.try_get("updated_at")?)?,
            claimed_from: row
                .try_get::<Option<&str>, _>("claimed_from")?
                .map(EmailState::parse)
                .transpose()?,
        })
    }
}

/// An email seen in a mailbox (from a delta page or a notification).
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub mailbox_id: String,
    pub graph_message_id: String,
    pub internet_message_id: Option<String>,
    pub conversation_id: Option<String>,
    pub received_at: DateTime<Utc>,
    pub from_address: String,
    pub from_name: String,
    pub subject: String,
}

impl Sighting {
    fn dedupe_key(&self) -> String {
        match &self.internet_message_id {
            Some(id) if !id.trim().is_empty() => {
                format!("mid:{}", id.trim().trim_matches(['<', '>']).to_lowercase())
            }
            _ => format!("gid:{}", self.graph_message_id),
        }
    }
}

/// What an attempt was started by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptTrigger {
    Scan,
    Webhook,
    Retry,
    Reprocess,
    Recovery,
}

impl AttemptTrigger {
    fn as_str(self) -> &'static str {
        match self {
            AttemptTrigger::Scan => "scan",
            AttemptTrigger::Webhook => "webhook",
            AttemptTrigger::Retry => "retry",
            AttemptTrigger::Reprocess => "reprocess",
            AttemptTrigger::Recovery => "recovery",
        }
    }
}

/// A line of an attempt's processing log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub level: String,
    pub message: String,
}

/// One attempt with everything it did, for the details view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptDetail {
    pub id: i64,
    pub number: i64,
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub result: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub requests: Vec<HttpExchange>,
    pub log: Vec<LogLine>,
}

/// What a PSA write creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsaWriteKind {
    /// A new ticket.
    Ticket,
    /// An action on an existing ticket.
    Action,
}

text_enum!(PsaWriteKind { Ticket => "ticket", Action => "action" });

/// A PSA write recorded before it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsaWrite {
    pub kind: PsaWriteKind,
    pub message_key: String,
    pub ticket_id: Option<i64>,
    pub object_id: Option<i64>,
    pub confirmed: bool,
}

/// Filters and keyset paging for the inbound log.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogQuery {
    pub mailbox_id: Option<String>,
    pub status: Option<LogStatus>,
    /// Words matched against sender and subject (full-text, prefix match per word).
    pub search: Option<String>,
    /// Only mail from this address (exact, case-insensitive).
    pub sender: Option<String>,
    /// Only mail that created or updated this PSA ticket.
    pub ticket_id: Option<i64>,
    /// Only mail received at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only mail received before this time.
    pub until: Option<DateTime<Utc>>,
    /// Return entries older than this one (`received_at`, `id`) — the last row of the page before.
    pub before: Option<(DateTime<Utc>, i64)>,
    pub limit: Option<i64>,
}

/// The most full-text hits a log search fetches by id; a search matching more walks the log.
pub const SEARCH_LIST_MAX: i64 = 2000;

/// How many log keys a search that matches many emails walks per full-text query.
const SEARCH_WALK_CHUNK: i64 = 1000;

/// The words of a log search (letters, digits and `@._-`), each matched as a prefix.
fn search_words(search: &str) -> Option<Vec<String>> {
    let words: Vec<String> = search
        .split(|c: char| !c.is_alphanumeric() && c != '@' && c != '.' && c != '_' && c != '-')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    (!words.is_empty()).then_some(words)
}

impl Store {
    /// Records an email as seen, once: a second sighting of the same email (same Message-ID,
    /// or same Graph id without one) returns the existing row. Returns `(id, newly_seen)`.
    pub async fn record_sighting(&self, s: &Sighting, now: DateTime<Utc>) -> Result<(i64, bool)> {
        let now = ts(now);
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO inbound_emails (mailbox_id, dedupe_key, graph_message_id, internet_message_id,
                 conversation_id, received_at, from_address, from_name, subject, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (mailbox_id, dedupe_key) DO NOTHING
             RETURNING id",
        )
        .bind(&s.mailbox_id)
        .bind(s.dedupe_key())
        .bind(&s.graph_message_id)
        .bind(&s.internet_message_id)
        .bind(&s.conversation_id)
        .bind(ts(s.received_at))
        .bind(&s.from_address)
        .bind(&s.from_name)
        .bind(&s.subject)
        .bind(&now)
        .bind(&now)
        .fetch_optional(self.pool())
        .await?;
        if let Some(id) = inserted {
            return Ok((id, true));
        }
        let id: i64 = sqlx::query_scalar(
            "SELECT id FROM inbound_emails WHERE mailbox_id = $1 AND dedupe_key = $2",
        )
        .bind(&s.mailbox_id)
        .bind(s.dedupe_key())
        .fetch_one(self.pool())
        .await?;
        // Unprocessed mail keeps following its current Graph id.
        sqlx::query(
            "UPDATE inbound_emails SET graph_message_id = $1, updated_at = $2
             WHERE id = $3 AND state IN ('seen', 'retrying', 'failed') AND graph_message_id <> $4",
        )
        .bind(&s.graph_message_id)
        .bind(&now)
        .bind(id)
        .bind(&s.graph_message_id)
        .execute(self.pool())
        .await?;
        Ok((id, false))
    }

    /// Claims up to `limit` emails of a mailbox that are due: new ones, retries whose time
    /// has come, and claims older than `lease` (left by a process that died).
    pub async fn claim_due(
        &self,
        mailbox_id: &str,
        claim_token: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<InboundEmail>> {
        let stale = ts(now - lease);
        let now = ts(now);
        // Several workers claim from one PostgreSQL database: rows another worker is
        // claiming right now are skipped, never waited for and claimed twice. (SQLite has
        // one writer at a time.) A claim whose lease ran out while its token was set is a
        // takeover: its worker died. An email whose conversation has an earlier email not
        // finished yet (new, being worked on, or waiting to be retried) waits for it: a reply
        // is claimed once its original is done (or skipped, or has failed for good), whichever
        // worker claims either, even when two claims run at once — never a second ticket
        // because the PSA throttled the original.
        macro_rules! claim_sql {
            ($lock:literal) => {
                concat!(
                    "UPDATE inbound_emails SET claimed_from = state, state = 'claimed',
                         takeovers = takeovers + CASE WHEN state IN ('claimed', 'psa_written')
                             AND claim_token IS NOT NULL THEN 1 ELSE 0 END,
                         claim_token = $1, claimed_at = $2, updated_at = $3
                     WHERE id IN (
                         SELECT id FROM inbound_emails e
                         WHERE mailbox_id = $4 AND (
                             state = 'seen'
                             OR (state = 'retrying' AND next_attempt_at <= $5)
                             OR (state IN ('claimed', 'psa_written')
                                 AND (claim_token IS NULL OR claimed_at < $6)))
                           AND NOT EXISTS (
                             SELECT 1 FROM inbound_emails p
                             WHERE p.mailbox_id = e.mailbox_id
                               AND p.conversation_id = e.conversation_id
                               AND (p.received_at, p.id) < (e.received_at, e.id)
                               AND p.state IN ('seen', 'claimed', 'psa_written', 'retrying'))
                         ORDER BY received_at, id LIMIT $7",
                    $lock,
                    ")
                     RETURNING *"
                )
            };
        }
        let sql = match self.backend() {
            crate::Backend::Sqlite => claim_sql!(""),
            crate::Backend::Postgres => claim_sql!(" FOR UPDATE SKIP LOCKED"),
        };
        let rows = sqlx::query(sql)
            .bind(claim_token)
            .bind(&now)
            .bind(&now)
            .bind(mailbox_id)
            .bind(&now)
            .bind(&stale)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        let mut emails = rows
            .iter()
            .map(InboundEmail::from_row)
            .collect::<Result<Vec<_>>>()?;
        emails.sort_by_key(|e| (e.received_at, e.id));
        Ok(emails)
    }

    /// Renews the claims made with `claim_token` (a worker still processing them): their
    /// lease starts again at `now`, so no other worker takes them over while they are worked
    /// on. Returns how many were renewed.
    pub async fn renew_claims(&self, claim_token: &str, now: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE inbound_emails SET claimed_at = $1
             WHERE claim_token = $2 AND state IN ('claimed', 'psa_written')",
        )
        .bind(ts(now))
        .bind(claim_token)
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    /// Releases the claims made with `claim_token` (a stopping worker's): a `claimed` email
    /// goes back to the state it was claimed from, a `psa_written` one keeps its state; neither
    /// keeps a token, so the next claim takes them at once. Attempts of those emails left open
    /// are closed as `interrupted`. Returns how many claims were released.
    pub async fn release_claims(&self, claim_token: &str, now: DateTime<Utc>) -> Result<u64> {
        self.release_claims_where(Some(claim_token), now).await
    }

    /// Releases every claim in the store, whoever made it (see [`Store::release_claims`]).
    /// Taking the data directory's lock proves that no other process works on this SQLite
    /// store, so whatever is still claimed was left by a process that died (a SIGKILL, a power
    /// cut) and is processed at once instead of after its lease. On PostgreSQL other workers
    /// may be alive and holding their claims: nothing is released (a dead worker's claims are
    /// taken over when their lease runs out).
    pub async fn release_all_claims(
        &self,
        _held: &crate::DataDirLock,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        if self.backend() == crate::Backend::Postgres {
            return Ok(0);
        }
        // The same proof frees the work leases a killed process left.
        sqlx::query("UPDATE work_leases SET holder = '', expires_at = '' WHERE holder <> ''")
            .execute(self.pool())
            .await?;
        self.release_claims_where(None, now).await
    }

    async fn release_claims_where(&self, token: Option<&str>, now: DateTime<Utc>) -> Result<u64> {
        let now = ts(now);
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE processing_attempts SET finished_at = $1, result = 'interrupted',
                 error_code = 'interrupted',
                 error_message = 'Mailroom stopped during this attempt; the email was released and is processed again.'
             WHERE finished_at IS NULL AND email_id IN (
                 SELECT id FROM inbound_emails
                 WHERE state IN ('claimed', 'psa_written') AND claim_token IS NOT NULL
                   AND ($2 IS NULL OR claim_token = $3))",
        )
        .bind(&now)
        .bind(token)
        .bind(token)
        .execute(&mut *tx)
        .await?;
        let released = sqlx::query(
            "UPDATE inbound_emails
             SET state = CASE WHEN state = 'claimed' THEN COALESCE(claimed_from, 'seen') ELSE state END,
                 claim_token = NULL, updated_at = $1
             WHERE state IN ('claimed', 'psa_written') AND claim_token IS NOT NULL
               AND ($2 IS NULL OR claim_token = $3)",
        )
        .bind(&now)
        .bind(token)
        .bind(token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(released)
    }

    /// Whether `message_id` (with or without angle brackets, any case) is mail this mailbox
    /// received itself — seen, pending or processed. A reply to such mail is threaded locally
    /// (by its thread keys once the original is processed, or by its conversation), never by
    /// asking the PSA whether it sent it.
    pub async fn received_message_id(&self, mailbox_id: &str, message_id: &str) -> Result<bool> {
        let key = format!(
            "mid:{}",
            message_id.trim().trim_matches(['<', '>']).to_lowercase()
        );
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM inbound_emails WHERE mailbox_id = $1 AND dedupe_key = $2",
        )
        .bind(mailbox_id)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }

    /// When the earliest retry of a mailbox is due (`None`: no email waits for a retry).
    pub async fn next_retry_at(&self, mailbox_id: &str) -> Result<Option<DateTime<Utc>>> {
        let at: Option<String> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM inbound_emails WHERE mailbox_id = $1 AND state = 'retrying'",
        )
        .bind(mailbox_id)
        .fetch_one(self.pool())
        .await?;
        parse_ts_opt(at)
    }

    /// One email.
    pub async fn inbound_email(&self, id: i64) -> Result<InboundEmail> {
        let row = sqlx::query("SELECT * FROM inbound_emails WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "email",
                id: id.to_string(),
            })?;
        InboundEmail::from_row(&row)
    }

    /// The emails that opened or updated PSA ticket `ticket_id`, oldest first (the ticket tab).
    pub async fn emails_for_ticket(&self, ticket_id: i64) -> Result<Vec<InboundEmail>> {
        let rows = sqlx::query(
            "SELECT * FROM inbound_emails WHERE ticket_id = $1 ORDER BY received_at, id",
        )
        .bind(ticket_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(InboundEmail::from_row).collect()
    }

    /// Starts a processing attempt and returns its id.
    pub async fn start_attempt(
        &self,
        email_id: i64,
        trigger: AttemptTrigger,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let mut tx = self.pool().begin().await?;
        let number: i64 = sqlx::query_scalar(
            "UPDATE inbound_emails SET attempts = attempts + 1, updated_at = $1 WHERE id = $2 RETURNING attempts",
        )
        .bind(ts(now))
        .bind(email_id)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO processing_attempts (email_id, number, trigger, started_at) VALUES ($1, $2, $3, $4)
             RETURNING id",
        )
        .bind(email_id)
        .bind(number)
        .bind(trigger.as_str())
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Appends an attempt's HTTP exchanges and log lines, and closes it with its result.
    pub async fn finish_attempt(
        &self,
        attempt_id: i64,
        result: &str,
        error: Option<(&str, &str)>,
        requests: &[HttpExchange],
        log: &[LogLine],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        // One statement for all of an attempt's requests: the hourly counts' trigger then
        // locks its counter rows in key order (concurrent workers never deadlock on them).
        if !requests.is_empty() {
            let rows = crate::backend::value_rows(requests.iter().enumerate(), |(seq, r)| {
                vec![
                    Arg::Int(Some(attempt_id)),
                    Arg::Int(Some(seq as i64)),
                    Arg::text(
                        serde_json::to_value(r.service)
                            .unwrap_or_default()
                            .as_str()
                            .unwrap_or(""),
                    ),
                    Arg::text(&r.method),
                    Arg::text(&r.url),
                    Arg::Int(r.status.map(i64::from)),
                    Arg::Int(Some(r.duration_ms as i64)),
                    Arg::text(ts(r.started_at)),
                    Arg::text(serde_json::to_string(&r.request_headers).unwrap_or_default()),
                    Arg::Text(r.request_body.clone()),
                    Arg::text(serde_json::to_string(&r.response_headers).unwrap_or_default()),
                    Arg::Text(r.response_body.clone()),
                    Arg::Text(r.error.clone()),
                ]
            });
            crate::backend::insert_values(
                "INSERT INTO attempt_requests (attempt_id, seq, service, method, url, status,
                     duration_ms, started_at, request_headers, request_body, response_headers,
                     response_body, error)",
                rows,
                "",
            )
            .query()
            .execute(&mut *tx)
            .await?;
        }
        if !log.is_empty() {
            let rows = crate::backend::value_rows(log.iter().enumerate(), |(seq, line)| {
                vec![
                    Arg::Int(Some(attempt_id)),
                    Arg::Int(Some(seq as i64)),
                    Arg::text(ts(line.at)),
                    Arg::text(&line.level),
                    Arg::text(&line.message),
                ]
            });
            crate::backend::insert_values(
                "INSERT INTO attempt_log (attempt_id, seq, at, level, message)",
                rows,
                "",
            )
            .query()
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE processing_attempts SET finished_at = $1, result = $2, error_code = $3, error_message = $4
             WHERE id = $5",
        )
        .bind(ts(now))
        .bind(result)
        .bind(error.map(|e| e.0))
        .bind(error.map(|e| e.1))
        .bind(attempt_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_state(
        &self,
        email_id: i64,
        sql_set: &str,
        binds: Vec<Arg>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let sql = numbered(&format!(
            "UPDATE inbound_emails SET {sql_set}, updated_at = ? WHERE id = ?"
        ));
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = b.bind(query);
        }
        query
            .bind(ts(now))
            .bind(email_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The PSA write is done (ticket created or action added); the mailbox is not updated yet.
    pub async fn mark_psa_written(
        &self,
        email_id: i64,
        outcome: &str,
        ticket_id: i64,
        action_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.set_state(
            email_id,
            "state = 'psa_written', outcome = ?, ticket_id = ?, action_id = ?, error_code = NULL, error_message = NULL",
            vec![Arg::text(outcome), Arg::Int(Some(ticket_id)), Arg::Int(action_id)],
            now,
        )
        .await
    }

    /// Fully processed.
    pub async fn mark_done(&self, email_id: i64, now: DateTime<Utc>) -> Result<()> {
        self.set_state(
            email_id,
            "state = 'done', claim_token = NULL, next_attempt_at = NULL, error_code = NULL, error_message = NULL",
            vec![],
            now,
        )
        .await
    }

    /// Not turned into a ticket, for a stated reason.
    pub async fn mark_skipped(
        &self,
        email_id: i64,
        reason: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.set_state(
            email_id,
            "state = 'skipped', skip_reason = ?, skip_detail = ?, claim_token = NULL, next_attempt_at = NULL",
            vec![Arg::text(reason), Arg::text(detail)],
            now,
        )
        .await
    }

    /// Failed this time; tried again at `next_at`.
    pub async fn mark_retrying(
        &self,
        email_id: i64,
        next_at: DateTime<Utc>,
        code: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.set_state(
            email_id,
            "state = 'retrying', next_attempt_at = ?, error_code = ?, error_message = ?, claim_token = NULL",
            vec![Arg::text(ts(next_at)), Arg::text(code), Arg::text(message)],
            now,
        )
        .await
    }

    /// Given up (until an admin reprocesses it).
    pub async fn mark_failed(
        &self,
        email_id: i64,
        code: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.set_state(
            email_id,
            "state = 'failed', next_attempt_at = NULL, error_code = ?, error_message = ?, claim_token = NULL",
            vec![Arg::text(code), Arg::text(message)],
            now,
        )
        .await
    }

    /// Queues an email for processing again now (the *Reprocess* button). A processed email
    /// keeps its PSA write record, so reprocessing never creates a second ticket.
    pub async fn requeue(&self, email_id: i64, now: DateTime<Utc>) -> Result<()> {
        self.set_state(
            email_id,
            "state = 'retrying', next_attempt_at = ?, claim_token = NULL",
            vec![Arg::text(ts(now))],
            now,
        )
        .await
    }

    /// Records the intent to write to the PSA, before sending it.
    pub async fn record_psa_intent(
        &self,
        email_id: i64,
        kind: PsaWriteKind,
        message_key: &str,
        ticket_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO psa_writes (email_id, kind, message_key, ticket_id, state, created_at)
             VALUES ($1, $2, $3, $4, 'intent', $5)
             ON CONFLICT (email_id) DO UPDATE SET kind = excluded.kind,
                 message_key = excluded.message_key, ticket_id = excluded.ticket_id,
                 created_at = excluded.created_at
             WHERE psa_writes.state = 'intent'",
        )
        .bind(email_id)
        .bind(kind.as_str())
        .bind(message_key)
        .bind(ticket_id)
        .bind(ts(now))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Confirms a PSA write with the id of what it created.
    pub async fn confirm_psa_write(
        &self,
        email_id: i64,
        object_id: i64,
        ticket_id: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE psa_writes SET state = 'confirmed', object_id = $1, ticket_id = $2, confirmed_at = $3 WHERE email_id = $4",
        )
        .bind(object_id)
        .bind(ticket_id)
        .bind(ts(now))
        .bind(email_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The PSA write recorded for an email, if any.
    pub async fn psa_write(&self, email_id: i64) -> Result<Option<PsaWrite>> {
        let row = sqlx::query("SELECT * FROM psa_writes WHERE email_id = $1")
            .bind(email_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| {
            Ok(PsaWrite {
                kind: row.try_get::<&str, _>("kind")?.parse()?,
                message_key: row.try_get("message_key")?,
                ticket_id: row.try_get("ticket_id")?,
                object_id: row.try_get("object_id")?,
                confirmed: row.try_get::<String, _>("state")? == "confirmed",
            })
        })
        .transpose()
    }

    /// Remembers that mail with these thread keys belongs to `ticket_id`.
    pub async fn add_thread_keys(
        &self,
        mailbox_id: &str,
        keys: &[String],
        ticket_id: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for key in keys {
            sqlx::query(
                "INSERT INTO ticket_threads (mailbox_id, thread_key, ticket_id, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (mailbox_id, thread_key) DO NOTHING",
            )
            .bind(mailbox_id)
            .bind(key)
            .bind(ticket_id)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The ticket a thread key belongs to, if known.
    pub async fn ticket_for_thread_key(&self, mailbox_id: &str, key: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT ticket_id FROM ticket_threads WHERE mailbox_id = $1 AND thread_key = $2",
        )
        .bind(mailbox_id)
        .bind(key)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The stored delta link of a mailbox's inbox.
    pub async fn delta_link(&self, mailbox_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT delta_link FROM mailbox_sync WHERE mailbox_id = $1",
        )
        .bind(mailbox_id)
        .fetch_optional(self.pool())
        .await?
        .flatten())
    }

    /// Stores (or clears, on a full resync) the delta link and the sync outcome.
    pub async fn set_sync_result(
        &self,
        mailbox_id: &str,
        delta_link: Option<&str>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO mailbox_sync (mailbox_id, delta_link, last_sync_at, last_error) VALUES ($1, $2, $3, $4)
             ON CONFLICT (mailbox_id) DO UPDATE SET
                 delta_link = CASE WHEN excluded.last_error IS NULL THEN excluded.delta_link ELSE mailbox_sync.delta_link END,
                 last_sync_at = excluded.last_sync_at, last_error = excluded.last_error",
        )
        .bind(mailbox_id)
        .bind(delta_link)
        .bind(ts(now))
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A page of the inbound log, newest first, with optional filters.
    ///
    /// Every form answers from an index at a million entries (`mailroom bench log`): the
    /// keyset is a row value (`(received_at, id) < (?, ?)`, which the indexes serve). A search
    /// whose words match few emails (at most [`SEARCH_LIST_MAX`]) fetches those by id and sorts
    /// them; one that matches many walks the filtered log newest first in chunks of keys (from
    /// the indexes alone) and asks the full-text index once per chunk, for the chunk's id
    /// range, until a page is found.
    pub async fn inbound_log(&self, q: &LogQuery) -> Result<Vec<InboundEmail>> {
        let limit = q.limit.unwrap_or(100).clamp(1, 500);
        let Some(search) = q.search.as_deref().and_then(search_words) else {
            return self.log_page(q, None, limit).await;
        };
        let hits: Vec<i64> = sqlx::query_scalar(self.backend().search_ids(false))
            .bind(self.backend().search_terms(&search))
            .bind(SEARCH_LIST_MAX + 1)
            .fetch_all(self.pool())
            .await?;
        if hits.len() as i64 <= SEARCH_LIST_MAX {
            return self.log_page(q, Some(&hits), limit).await;
        }
        let mut found: Vec<i64> = Vec::new();
        let mut walk = LogQuery {
            search: None,
            ..q.clone()
        };
        loop {
            let keys = self.log_keys(&walk, SEARCH_WALK_CHUNK).await?;
            let (Some(newest), Some(oldest)) = (keys.first(), keys.last()) else {
                break;
            };
            let (low, high) = keys.iter().fold((newest.1, newest.1), |(lo, hi), (_, id)| {
                (lo.min(*id), hi.max(*id))
            });
            let matching: std::collections::HashSet<i64> =
                sqlx::query_scalar(self.backend().search_ids(true))
                    .bind(self.backend().search_terms(&search))
                    .bind(low)
                    .bind(high)
                    .fetch_all(self.pool())
                    .await?
                    .into_iter()
                    .collect();
            found.extend(
                keys.iter()
                    .map(|(_, id)| *id)
                    .filter(|id| matching.contains(id)),
            );
            if found.len() as i64 >= limit || (keys.len() as i64) < SEARCH_WALK_CHUNK {
                break;
            }
            walk.before = Some(*oldest);
        }
        found.truncate(limit as usize);
        self.log_page(q, Some(&found), limit).await
    }

    /// The filters of a log query (mailbox, status, sender, ticket, time range, keyset) as SQL
    /// clauses and their values. Each is served by an index (migrations 0002, 0009, 0016, 0019).
    fn log_filters(q: &LogQuery) -> (Vec<String>, Vec<Arg>) {
        let mut clauses: Vec<String> = Vec::new();
        let mut binds: Vec<Arg> = Vec::new();
        if let Some(mailbox) = &q.mailbox_id {
            clauses.push("e.mailbox_id = ?".into());
            binds.push(Arg::text(mailbox));
        }
        if let Some(sender) = q.sender.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            // Addresses are stored lower-case (the pipeline's sighting).
            clauses.push("e.from_address = ?".into());
            binds.push(Arg::text(sender.to_lowercase()));
        }
        if let Some(ticket) = q.ticket_id {
            clauses.push("e.ticket_id = ?".into());
            binds.push(Arg::Int(Some(ticket)));
        }
        if let Some(since) = q.since {
            clauses.push("e.received_at >= ?".into());
            binds.push(Arg::text(ts(since)));
        }
        if let Some(until) = q.until {
            clauses.push("e.received_at < ?".into());
            binds.push(Arg::text(ts(until)));
        }
        if let Some(status) = q.status {
            let states = status.states();
            clauses.push(format!(
                "e.state IN ({})",
                vec!["?"; states.len()].join(", ")
            ));
            binds.extend(states.iter().map(|s| Arg::text(s.to_string())));
        }
        if let Some((at, id)) = q.before {
            clauses.push("(e.received_at, e.id) < (?, ?)".into());
            binds.push(Arg::text(ts(at)));
            binds.push(Arg::Int(Some(id)));
        }
        (clauses, binds)
    }

    /// A page of whole entries, filtered; with `ids`, only those (looked up by id first).
    async fn log_page(
        &self,
        q: &LogQuery,
        ids: Option<&[i64]>,
        limit: i64,
    ) -> Result<Vec<InboundEmail>> {
        let (clauses, binds) = Self::log_filters(q);
        let mut sql = String::from("SELECT e.* FROM ");
        let mut all_binds = Vec::new();
        if let Some(ids) = ids {
            sql.push_str(self.backend().log_ids_join());
            all_binds.push(Arg::text(
                serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()),
            ));
        } else {
            sql.push_str("inbound_emails e");
        }
        all_binds.extend(binds);
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(" ORDER BY e.received_at DESC, e.id DESC LIMIT ?");
        let sql = numbered(&sql);
        let mut query = sqlx::query(&sql);
        for b in all_binds {
            query = b.bind(query);
        }
        let rows = query.bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(InboundEmail::from_row).collect()
    }

    /// The keys `(received_at, id)` of a page, filtered: the indexes alone answer.
    async fn log_keys(&self, q: &LogQuery, limit: i64) -> Result<Vec<(DateTime<Utc>, i64)>> {
        let (clauses, binds) = Self::log_filters(q);
        let mut sql = String::from("SELECT e.received_at, e.id FROM inbound_emails e");
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(" ORDER BY e.received_at DESC, e.id DESC LIMIT ?");
        let sql = numbered(&sql);
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = b.bind(query);
        }
        query
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|row| Ok((parse_ts(&row.try_get::<String, _>(0)?)?, row.try_get(1)?)))
            .collect()
    }

    /// Every attempt of an email with its requests and log, oldest first.
    pub async fn attempts(&self, email_id: i64) -> Result<Vec<AttemptDetail>> {
        let rows =
            sqlx::query("SELECT * FROM processing_attempts WHERE email_id = $1 ORDER BY number")
                .bind(email_id)
                .fetch_all(self.pool())
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let requests =
                sqlx::query("SELECT * FROM attempt_requests WHERE attempt_id = $1 ORDER BY seq")
                    .bind(id)
                    .fetch_all(self.pool())
                    .await?
                    .iter()
                    .map(|r| -> Result<HttpExchange> {
                        let service: String = r.try_get("service")?;
                        let headers = |col: &str| -> Result<Vec<(String, String)>> {
                            let raw: String = r.try_get(col)?;
                            serde_json::from_str(&raw)
                                .map_err(|e| StoreError::Corrupt(e.to_string()))
                        };
                        Ok(HttpExchange {
                            service: serde_json::from_value(serde_json::Value::String(service))
                                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                            method: r.try_get("method")?,
                            url: r.try_get("url")?,
                            request_headers: headers("request_headers")?,
                            request_body: r.try_get("request_body")?,
                            status: r.try_get::<Option<i64>, _>("status")?.map(|s| s as u16),
                            response_headers: headers("response_headers")?,
                            response_body: r.try_get("response_body")?,
                            started_at: parse_ts(r.try_get("started_at")?)?,
                            duration_ms: r.try_get::<i64, _>("duration_ms")? as u64,
                            error: r.try_get("error")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
            let log = sqlx::query("SELECT * FROM attempt_log WHERE attempt_id = $1 ORDER BY seq")
                .bind(id)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|r| -> Result<LogLine> {
                    Ok(LogLine {
                        at: parse_ts(r.try_get("at")?)?,
                        level: r.try_get("level")?,
                        message: r.try_get("message")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            out.push(AttemptDetail {
                id,
                number: row.try_get("number")?,
                trigger: row.try_get("trigger")?,
                started_at: parse_ts(row.try_get("started_at")?)?,
                finished_at: parse_ts_opt(row.try_get("finished_at")?)?,
                result: row.try_get("result")?,
                error_code: row.try_get("error_code")?,
                error_message: row.try_get("error_message")?,
                requests,
                log,
            });
        }
        Ok(out)
    }

    /// How many other emails of `from_address` with exactly this subject a mailbox received
    /// before the email `email_id` (received at `until`) and not before `since` — the loop
    /// guard's input. Only looks back: mail received later is never counted, and among mails
    /// received at the same instant only those stored first (lower id) count.
    pub async fn count_recent_same_subject(
        &self,
        mailbox_id: &str,
        from_address: &str,
        subject: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        email_id: i64,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM inbound_emails
             WHERE mailbox_id = $1 AND lower(from_address) = lower($2) AND received_at >= $3
               AND subject = $4 AND id <> $5
               AND (received_at < $6 OR (received_at = $7 AND id < $8))",
        )
        .bind(mailbox_id)
        .bind(from_address)
        .bind(ts(since))
        .bind(subject)
        .bind(email_id)
        .bind(ts(until))
        .bind(ts(until))
        .bind(email_id)
        .fetch_one(self.pool())
        .await?)
    }

    /// The tickets that thread keys belong to (only keys that are known).
    pub async fn tickets_for_thread_keys(
        &self,
        mailbox_id: &str,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, i64>> {
        let mut out = std::collections::HashMap::new();
        for key in keys {
            if let Some(ticket) = self.ticket_for_thread_key(mailbox_id, key).await? {
                out.insert(key.clone(), ticket);
            }
        }
        Ok(out)
    }

    /// Emails not finished yet (`seen`, `claimed`, `psa_written`, `retrying`), of one mailbox
    /// or of all.
    pub async fn unfinished_count(&self, mailbox_id: Option<&str>) -> Result<i64> {
        // From the counters the triggers keep (migration 0016): a few rows, never the table.
        let n = match mailbox_id {
            Some(m) => {
                sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM inbound_state_counts WHERE mailbox_id = $1
                       AND state IN ('seen', 'claimed', 'psa_written', 'retrying')",
                )
                .bind(m)
                .fetch_one(self.pool())
                .await?
            }
            None => {
                sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM inbound_state_counts
                     WHERE state IN ('seen', 'claimed', 'psa_written', 'retrying')",
                )
                .fetch_one(self.pool())
                .await?
            }
        };
        Ok(n)
    }

    /// Number of emails per log status, of one mailbox or of all (for the Monitoring header).
    pub async fn status_counts(&self, mailbox_id: Option<&str>) -> Result<Vec<(LogStatus, i64)>> {
        // From the counters the triggers keep (migration 0016): a few rows, never the table.
        let rows: Vec<(String, i64)> = match mailbox_id {
            Some(m) => {
                sqlx::query_as(
                    "SELECT state, n FROM inbound_state_counts WHERE mailbox_id = $1 AND n > 0",
                )
                .bind(m)
                .fetch_all(self.pool())
                .await?
            }
            None => sqlx::query_as(
                "SELECT state, CAST(SUM(n) AS BIGINT) FROM inbound_state_counts GROUP BY state HAVING SUM(n) > 0",
            )
            .fetch_all(self.pool())
            .await?,
        };
        let mut out: Vec<(LogStatus, i64)> = Vec::new();
        for (state, n) in rows {
            let status = EmailState::parse(&state)?.status();
            match out.iter_mut().find(|(s, _)| *s == status) {
                Some(entry) => entry.1 += n,
                None => out.push((status, n)),
            }
        }
        Ok(out)
    }

    /// The sync cursor row of a mailbox: `(delta_link, last_sync_at, last_error)`.
    pub async fn sync_state(
        &self,
        mailbox_id: &str,
    ) -> Result<Option<(Option<String>, Option<DateTime<Utc>>, Option<String>)>> {
        let row: Option<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT delta_link, last_sync_at, last_error FROM mailbox_sync WHERE mailbox_id = $1",
        )
        .bind(mailbox_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|(link, at, err)| Ok((link, parse_ts_opt(at)?, err)))
            .transpose()
    }

    /// Forgets the stored delta link (the next scan is a full resync; sightings de-duplicate).
    pub async fn clear_delta_link(&self, mailbox_id: &str) -> Result<()> {
        sqlx::query("UPDATE mailbox_sync SET delta_link = NULL WHERE mailbox_id = $1")
            .bind(mailbox_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
