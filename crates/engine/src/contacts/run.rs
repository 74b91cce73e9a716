//! Carrying out an import: the plan's rows recorded as they are decided, updates and creates
//! sent to HaloPSA in batches (one `POST /Users` with several users), progress after each
//! batch, cancellation between batches, and a run interrupted by a stop resumed where it was.
//!
//! Never a second user for one address: each new user's address is claimed in the store before
//! the batch is sent and linked to the user HaloPSA answered with. When a batch fails or the
//! answer lacks a user, the batch's addresses are read back from HaloPSA: found ones are linked
//! (they were created), missing ones are sent again one at a time; a batch refused as invalid
//! is settled with as few requests as the refusal allows ([`Runner::settle_refused_batch`]),
//! so one bad value does not cost a read-back per user. Claims left unanswered by a
//! stop are settled the same way — by HaloPSA's user list — before the next run creates anything.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use mailroom_psa::{ErrorKind, PsaClient, PsaError};
use mailroom_store::contacts::{
    ContactOutcome, EmailClaim, ImportCounts, ImportRow, ImportRun, ImportTrigger, RunState,
};
use mailroom_trace::{Collector, HttpExchange};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::fields::validate_mappings;
use super::plan::{plan, text_of, Action, Planned};
use super::{
    address_book_error, complete_matched_users, read_address_book, read_address_book_changes,
    read_psa_directory, AddressBookChanges,
};
use crate::{Core, CoreError};

/// Users sent in one `POST /Users`.
pub const DEFAULT_BATCH: usize = 20;

/// How a run is made.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub trigger: ImportTrigger,
    /// Users per `POST /Users` (1 sends each alone).
    pub batch_size: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            trigger: ImportTrigger::Manual,
            batch_size: DEFAULT_BATCH,
        }
    }
}

/// Where a run is, after each batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportProgress {
    pub run_id: i64,
    pub mailbox_id: String,
    pub done: i64,
    pub total: i64,
    /// Contacts decided per second so far in this process.
    pub per_second: f64,
    /// Seconds left at that rate.
    pub eta_seconds: Option<f64>,
    pub counts: ImportCounts,
}

/// Receives progress (the app forwards it to the window; the CLI prints it).
pub type ProgressSink = Arc<dyn Fn(ImportProgress) + Send + Sync>;

fn row(
    p: &Planned,
    outcome: ContactOutcome,
    reason: Option<String>,
    user: Option<i64>,
    changes: Value,
) -> ImportRow {
    ImportRow {
        contact_id: p.contact_id.clone(),
        display_name: p.display_name.clone(),
        email: p.email.clone(),
        outcome,
        reason,
        psa_user_id: user,
        site_id: p.site_id,
        changes,
        requests: json!([]),
        at: Utc::now(),
    }
}

fn exchanges_json(exchanges: Vec<HttpExchange>) -> Value {
    serde_json::to_value(exchanges).unwrap_or_else(|_| json!([]))
}

/// The user of an answer that has `address` (any of its email fields, any case).
fn answered_id(answer: &[Map<String, Value>], address: &str) -> Option<i64> {
    answer
        .iter()
        .find(|u| {
            ["emailaddress", "email2", "email3"]
                .iter()
                .any(|k| text_of(u, k).is_some_and(|a| a.eq_ignore_ascii_case(address)))
        })
        .and_then(|u| u.get("id").and_then(Value::as_i64))
}

/// Whether a failed call may have reached HaloPSA's data (so a read-back must decide).
fn may_have_landed(e: &PsaError) -> bool {
    !matches!(
        e.kind,
        ErrorKind::Unauthorized | ErrorKind::Forbidden | ErrorKind::NotFound
    )
}

/// Whether to stop the run (HaloPSA unusable for now) rather than fail one contact.
fn stops_run(e: &PsaError) -> bool {
    matches!(
        e.kind,
        ErrorKind::Unauthorized
            | ErrorKind::Forbidden
            | ErrorKind::RateLimited
            | ErrorKind::Server
            | ErrorKind::Transport
    )
}

struct Runner<'a> {
    core: &'a Core,
    psa: PsaClient,
    run: ImportRun,
    progress: Option<ProgressSink>,
    started: Instant,
    decided_here: i64,
    counts: ImportCounts,
    /// Addresses whose users a stopped process created without hearing back, found in
    /// HaloPSA when this run started: their contacts count as created.
    settled: std::collections::HashSet<String>,
}

impl Runner<'_> {
    async fn record(&mut self, rows: Vec<ImportRow>) -> Result<(), CoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.decided_here += rows.len() as i64;
        self.counts = self
            .core
            .store()
            .record_contact_rows(self.run.id, &rows)
            .await?;
        Ok(())
    }

    fn report(&self) {
        let Some(sink) = &self.progress else { return };
        let done = self.counts.done();
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let per_second = self.decided_here as f64 / elapsed;
        let left = (self.run.total - done).max(0) as f64;
        sink(ImportProgress {
            run_id: self.run.id,
            mailbox_id: self.run.mailbox_id.clone(),
            done,
            total: self.run.total,
            per_second,
            eta_seconds: (per_second > 0.0).then(|| left / per_second),
            counts: self.counts,
        });
    }

    /// Sends a batch of updates; a failed batch is sent again one user at a time so that one
    /// refused value fails only its own contact.
    async fn updates(&mut self, batch: &[&Planned]) -> Result<(), CoreError> {
        let body: Vec<Map<String, Value>> = batch
            .iter()
            .filter_map(|p| match &p.action {
                Action::Update {
                    user_id, fields, ..
                } => {
                    let mut m = fields.clone();
                    m.insert("id".into(), json!(user_id));
                    Some(m)
                }
                _ => None,
            })
            .collect();
        let collector = Collector::new();
        let result = mailroom_trace::with_sink(collector.clone(), self.psa.post_users(&body)).await;
        match result {
            Ok(_) => {
                let requests = exchanges_json(collector.drain());
                let rows = batch
                    .iter()
                    .map(|p| {
                        let (user, changes) = match &p.action {
                            Action::Update {
                                user_id, changes, ..
                            } => (*user_id, json!(changes)),
                            _ => unreachable!("only updates are batched here"),
                        };
                        ImportRow {
                            requests: requests.clone(),
                            ..row(p, ContactOutcome::Updated, None, Some(user), changes)
                        }
                    })
                    .collect();
                self.record(rows).await
            }
            Err(e) if stops_run(&e) => Err(e.into()),
            Err(_) if batch.len() > 1 => {
                // Updates are idempotent: halves go again until the refused one is alone.
                let (first, second) = batch.split_at(batch.len() / 2);
                Box::pin(self.updates(first)).await?;
                Box::pin(self.updates(second)).await
            }
            Err(e) => {
                let p = batch[0];
                let (user, changes) = match &p.action {
                    Action::Update {
                        user_id, changes, ..
                    } => (*user_id, json!(changes)),
                    _ => unreachable!("only updates are batched here"),
                };
                let failed = ImportRow {
                    requests: exchanges_json(collector.drain()),
                    ..row(
                        p,
                        ContactOutcome::Failed,
                        Some(e.message.clone()),
                        Some(user),
                        changes,
                    )
                };
                self.record(vec![failed]).await
            }
        }
    }

    /// Claims the batch's addresses, sends the new users, links what HaloPSA answered, and
    /// settles the rest by reading HaloPSA back.
    async fn creates(&mut self, batch: &[&Planned]) -> Result<(), CoreError> {
        let store = self.core.store();
        let mut to_send: Vec<&Planned> = Vec::new();
        let mut rows = Vec::new();
        for p in batch {
            let email = p.email.as_deref().unwrap_or_default();
            match store
                .claim_contact_email(email, &self.run.mailbox_id, &p.contact_id, Utc::now())
                .await?
            {
                EmailClaim::New => to_send.push(p),
                EmailClaim::Linked(id) => rows.push(row(
                    p,
                    ContactOutcome::Unchanged,
                    Some(format!(
                        "Mailroom created HaloPSA user {id} for this address before"
                    )),
                    Some(id),
                    json!([]),
                )),
                EmailClaim::Unsettled => match self.read_back(email).await? {
                    Some(id) => {
                        store.link_contact_email(email, id, Utc::now()).await?;
                        rows.push(row(
                            p,
                            ContactOutcome::Created,
                            None,
                            Some(id),
                            fields_of(p),
                        ));
                    }
                    None => to_send.push(p),
                },
            }
        }
        self.record(rows).await?;
        if to_send.is_empty() {
            return Ok(());
        }
        let body: Vec<Map<String, Value>> = to_send
            .iter()
            .filter_map(|p| match &p.action {
                Action::Create { fields } => Some(fields.clone()),
                _ => None,
            })
            .collect();
        let collector = Collector::new();
        let result = mailroom_trace::with_sink(collector.clone(), self.psa.post_users(&body)).await;
        let (answer, error) = match result {
            Ok(answer) => (answer, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let mut requests = exchanges_json(collector.drain());
        let mut rows = Vec::new();
        let mut unanswered: Vec<&Planned> = Vec::new();
        for p in &to_send {
            let email = p.email.as_deref().unwrap_or_default();
            match answered_id(&answer, email) {
                Some(id) => {
                    store.link_contact_email(email, id, Utc::now()).await?;
                    rows.push(ImportRow {
                        requests: requests.clone(),
                        ..row(p, ContactOutcome::Created, None, Some(id), fields_of(p))
                    });
                }
                None => unanswered.push(p),
            }
        }
        self.record(rows).await?;
        if unanswered.is_empty() {
            return Ok(());
        }
        if let Some(e) = &error {
            if !may_have_landed(e) {
                for p in &unanswered {
                    store
                        .release_contact_email(p.email.as_deref().unwrap_or_default())
                        .await?;
                }
                return Err(e.clone().into());
            }
        }
        if let Some(e) = error.as_ref() {
            if e.kind == ErrorKind::Validation && unanswered.len() > 1 {
                return self.settle_refused_batch(unanswered, requests).await;
            }
        }
        // Some users may exist without HaloPSA having said so: read them back.
        let mut again: Vec<&Planned> = Vec::new();
        let mut rows = Vec::new();
        for p in unanswered {
            let email = p.email.as_deref().unwrap_or_default();
            let collector = Collector::new();
            let found = mailroom_trace::with_sink(collector.clone(), self.read_back(email)).await?;
            if let Value::Array(list) = &mut requests {
                if let Value::Array(more) = exchanges_json(collector.drain()) {
                    list.extend(more);
                }
            }
            match found {
                Some(id) => {
                    store.link_contact_email(email, id, Utc::now()).await?;
                    rows.push(row(
                        p,
                        ContactOutcome::Created,
                        None,
                        Some(id),
                        fields_of(p),
                    ));
                }
                None => again.push(p),
            }
        }
        self.record(rows).await?;
        match error {
            Some(e) if stops_run(&e) => {
                // Nothing landed for these; the claims go, the next run sends them.
                for p in &again {
                    store
                        .release_contact_email(p.email.as_deref().unwrap_or_default())
                        .await?;
                }
                Err(e.into())
            }
            _ if batch.len() > 1 => {
                for p in &again {
                    store
                        .release_contact_email(p.email.as_deref().unwrap_or_default())
                        .await?;
                }
                for p in again {
                    Box::pin(self.creates(&[p])).await?;
                }
                Ok(())
            }
            e => {
                let reason = match e {
                    Some(e) => e.message,
                    None => {
                        "HaloPSA accepted the user but it cannot be found by its address".into()
                    }
                };
                let mut rows = Vec::new();
                for p in again {
                    store
                        .release_contact_email(p.email.as_deref().unwrap_or_default())
                        .await?;
                    rows.push(ImportRow {
                        requests: requests.clone(),
                        ..row(
                            p,
                            ContactOutcome::Failed,
                            Some(reason.clone()),
                            None,
                            fields_of(p),
                        )
                    });
                }
                self.record(rows).await
            }
        }
    }

    /// A batch of new users HaloPSA refused as invalid (400): it may have saved the users before
    /// the refused one (no transaction per request) or none ([U], reference §2). They are read
    /// back in order until one is missing — found ones were created. When some were found, the
    /// missing one is the refused user and goes alone, the rest as a batch; when none was, the
    /// batch goes again in halves until the refused user is alone. Reading back every user (and
    /// sending each alone) would spend HaloPSA's rate limit on a whole batch for one bad value.
    async fn settle_refused_batch(
        &mut self,
        unanswered: Vec<&Planned>,
        mut requests: Value,
    ) -> Result<(), CoreError> {
        let store = self.core.store();
        let mut rows = Vec::new();
        let mut missing_at = unanswered.len();
        for (i, p) in unanswered.iter().enumerate() {
            let email = p.email.as_deref().unwrap_or_default();
            let collector = Collector::new();
            let found = mailroom_trace::with_sink(collector.clone(), self.read_back(email)).await?;
            if let (Value::Array(list), Value::Array(more)) =
                (&mut requests, exchanges_json(collector.drain()))
            {
                list.extend(more);
            }
            match found {
                Some(id) => {
                    store.link_contact_email(email, id, Utc::now()).await?;
                    rows.push(ImportRow {
                        requests: requests.clone(),
                        ..row(p, ContactOutcome::Created, None, Some(id), fields_of(p))
                    });
                }
                None => {
                    missing_at = i;
                    break;
                }
            }
        }
        self.record(rows).await?;
        let rest = &unanswered[missing_at..];
        for p in rest {
            store
                .release_contact_email(p.email.as_deref().unwrap_or_default())
                .await?;
        }
        if rest.is_empty() {
            return Ok(());
        }
        let (first, second) = if missing_at > 0 {
            // Saved up to the refused user: it goes alone, the rest together.
            rest.split_at(1)
        } else {
            rest.split_at(rest.len() / 2)
        };
        Box::pin(self.creates(first)).await?;
        if !second.is_empty() {
            Box::pin(self.creates(second)).await?;
        }
        Ok(())
    }

    /// The HaloPSA user with this address, read now (several: the lowest id).
    async fn read_back(&self, email: &str) -> Result<Option<i64>, CoreError> {
        let mut users = self.psa.find_users_by_email(email, None).await?;
        users.sort_by_key(|u| u.id);
        Ok(users.first().map(|u| u.id))
    }
}

fn fields_of(p: &Planned) -> Value {
    match &p.action {
        Action::Create { fields } => Value::Object(fields.clone()),
        _ => json!([]),
    }
}

impl Core {
    /// Imports a mailbox's contacts: resumes its interrupted run if there is one, else starts
    /// a new one. Returns the finished (or cancelled, or failed) run.
    pub async fn run_contact_import(
        &self,
        mailbox_id: &str,
        options: RunOptions,
        progress: Option<ProgressSink>,
        cancel: CancellationToken,
    ) -> Result<ImportRun, CoreError> {
        let store = self.store();
        let settings = self.contact_import_settings().await?;
        self.mark_contact_import(mailbox_id).await?;
        let mailbox = store.mailbox(mailbox_id).await?;
        let run = match store.interrupted_contact_import(mailbox_id).await? {
            Some(run) => {
                store.resume_contact_import(run.id).await?;
                run
            }
            None => {
                store
                    .start_contact_import(mailbox_id, options.trigger, Utc::now())
                    .await?
            }
        };
        let decided = store.decided_contacts(run.id).await?;
        let run_requests = Collector::new();
        let scheduled = run.trigger == ImportTrigger::Scheduled;
        let read = mailroom_trace::with_sink(run_requests.clone(), async {
            let graph = self.graph_client_for(&mailbox).await?;
            let graph_failed = |e: mailroom_graph::GraphError| address_book_error(e, &mailbox);
            let changes = if scheduled {
                let stored = store.contact_delta_cursors(mailbox_id).await?;
                read_address_book_changes(&graph, &stored)
                    .await
                    .map_err(graph_failed)?
            } else {
                AddressBookChanges {
                    changed: read_address_book(&graph).await.map_err(graph_failed)?,
                    ..AddressBookChanges::default()
                }
            };
            if changes.changed.is_empty() {
                // Nothing to match: HaloPSA is not read at all.
                return Ok::<_, CoreError>((changes, None));
            }
            let psa = self.psa_client().await?;
            let mut directory = read_psa_directory(&psa).await?;
            validate_mappings(&settings.mappings, &directory.fields)
                .map_err(CoreError::InvalidInput)?;
            complete_matched_users(&psa, &mut directory, &changes.changed, &settings).await?;
            Ok((changes, Some((psa, directory))))
        })
        .await;
        let (changes, reached) = match read {
            Ok(r) => r,
            Err(e) => {
                store
                    .finish_contact_import(
                        run.id,
                        RunState::Failed,
                        Some(&e.to_string()),
                        &exchanges_json(run_requests.drain()),
                        Utc::now(),
                    )
                    .await?;
                return Err(e);
            }
        };
        let removed_rows = self
            .removed_rows(mailbox_id, &changes.removed, &decided)
            .await?;
        let total_removed = changes.removed.len() as i64;
        let Some((psa, directory)) = reached else {
            store
                .set_contact_import_total(run.id, total_removed)
                .await?;
            store.record_contact_rows(run.id, &removed_rows).await?;
            for (folder, link) in &changes.cursors {
                store
                    .set_contact_delta_cursor(mailbox_id, folder, link, Utc::now())
                    .await?;
            }
            return Ok(store
                .finish_contact_import(
                    run.id,
                    RunState::Finished,
                    None,
                    &exchanges_json(run_requests.drain()),
                    Utc::now(),
                )
                .await?);
        };
        // Claims a stop left unanswered: HaloPSA's list, just read, says what exists.
        let mut settled = std::collections::HashSet::new();
        for email in store.unsettled_contact_emails().await? {
            match directory
                .users
                .matching(std::slice::from_ref(&email))
                .first()
            {
                Some(u) => {
                    let id = u.get("id").and_then(Value::as_i64).unwrap_or_default();
                    store.link_contact_email(&email, id, Utc::now()).await?;
                    settled.insert(email);
                }
                None => store.release_contact_email(&email).await?,
            }
        }
        let planned = plan(
            &changes.changed,
            &directory.users,
            &directory.sites,
            &settings,
            &directory.fields,
        );
        let total = planned.len() as i64 + total_removed;
        store.set_contact_import_total(run.id, total).await?;
        let run = ImportRun { total, ..run };
        let counts = store
            .contact_import_run(run.id)
            .await?
            .map(|r| r.counts)
            .unwrap_or_default();
        let mut runner = Runner {
            core: self,
            psa,
            counts,
            run,
            progress,
            started: Instant::now(),
            decided_here: 0,
            settled,
        };
        let todo: Vec<&Planned> = planned
            .iter()
            .filter(|p| !decided.contains(&p.contact_id))
            .collect();
        runner.record(removed_rows).await?;
        let outcome = runner
            .carry_out(&todo, options.batch_size.max(1), &cancel)
            .await;
        if matches!(outcome, Ok(true)) {
            for (folder, link) in &changes.cursors {
                store
                    .set_contact_delta_cursor(mailbox_id, folder, link, Utc::now())
                    .await?;
            }
        }
        let (state, error) = match &outcome {
            Ok(true) => (RunState::Finished, None),
            Ok(false) => (RunState::Cancelled, None),
            Err(e) => (RunState::Failed, Some(e.to_string())),
        };
        let run = store
            .finish_contact_import(
                runner.run.id,
                state,
                error.as_deref(),
                &exchanges_json(run_requests.drain()),
                Utc::now(),
            )
            .await?;
        runner.report();
        outcome.map(|_| run)
    }
}

impl Core {
    /// Rows for contacts Outlook reports deleted: named from their last outcome; the HaloPSA
    /// user is kept.
    async fn removed_rows(
        &self,
        mailbox_id: &str,
        removed: &[String],
        decided: &std::collections::HashSet<String>,
    ) -> Result<Vec<ImportRow>, CoreError> {
        let mut rows = Vec::new();
        for id in removed.iter().filter(|id| !decided.contains(*id)) {
            let last = self.store().last_contact_row(mailbox_id, id).await?;
            let user = last.as_ref().and_then(|r| r.psa_user_id);
            rows.push(ImportRow {
                contact_id: id.clone(),
                display_name: last
                    .as_ref()
                    .map_or_else(|| "(a contact)".into(), |r| r.display_name.clone()),
                email: last.as_ref().and_then(|r| r.email.clone()),
                outcome: ContactOutcome::Removed,
                reason: Some(match user {
                    Some(u) => format!("Deleted in Outlook; HaloPSA user {u} is kept"),
                    None => "Deleted in Outlook".into(),
                }),
                psa_user_id: user,
                site_id: last.as_ref().and_then(|r| r.site_id),
                changes: json!([]),
                requests: json!([]),
                at: Utc::now(),
            });
        }
        Ok(rows)
    }
}

impl Runner<'_> {
    /// Records the decided rows, then sends updates and creates batch by batch. `Ok(false)`
    /// when cancelled.
    async fn carry_out(
        &mut self,
        todo: &[&Planned],
        batch_size: usize,
        cancel: &CancellationToken,
    ) -> Result<bool, CoreError> {
        let mut rows = Vec::new();
        for p in todo {
            match &p.action {
                Action::Skip { reason } => rows.push(row(
                    p,
                    ContactOutcome::Skipped,
                    Some(reason.clone()),
                    None,
                    json!([]),
                )),
                Action::Unchanged { user_id, .. }
                    if p.email.as_ref().is_some_and(|e| self.settled.contains(e)) =>
                {
                    rows.push(row(
                        p,
                        ContactOutcome::Created,
                        Some("Created before Mailroom stopped; found in HaloPSA".into()),
                        Some(*user_id),
                        json!([]),
                    ))
                }
                Action::Unchanged { user_id, note } => rows.push(row(
                    p,
                    ContactOutcome::Unchanged,
                    note.clone(),
                    Some(*user_id),
                    json!([]),
                )),
                _ => {}
            }
        }
        self.record(rows).await?;
        self.report();
        let updates: Vec<&Planned> = todo
            .iter()
            .copied()
            .filter(|p| matches!(p.action, Action::Update { .. }))
            .collect();
        let creates: Vec<&Planned> = todo
            .iter()
            .copied()
            .filter(|p| matches!(p.action, Action::Create { .. }))
            .collect();
        for batch in updates.chunks(batch_size) {
            if cancel.is_cancelled() {
                return Ok(false);
            }
            self.updates(batch).await?;
            self.report();
        }
        for batch in creates.chunks(batch_size) {
            if cancel.is_cancelled() {
                return Ok(false);
            }
            self.creates(batch).await?;
            self.report();
        }
        Ok(true)
    }
}
