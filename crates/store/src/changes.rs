//! Other processes' changes, live: on a shared PostgreSQL database every inbound-log row
//! written and every problem recorded is announced (`LISTEN/NOTIFY`, migration
//! `postgres/0005`) with the writer's connection name; [`Store::listen`] hands a process
//! everyone's changes but its own. The desktop console shows the service's work this way.
//! SQLite has one process: nothing to listen to.

use std::fmt;

use serde::Deserialize;
use sqlx::postgres::PgListener;

use crate::{redacted, BackendError, Result, Store, StoreError};

/// The channel the triggers announce on.
const CHANNEL: &str = "mailroom_changes";

/// A PostgreSQL store's connection URL under its own application name. `Debug` hides the
/// password.
#[derive(Clone)]
pub(crate) struct Shared {
    url: String,
    name: String,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("url", &redacted(&self.url))
            .field("name", &self.name)
            .finish()
    }
}

impl Shared {
    /// `url` with `application_name` set to a name no other store has.
    pub(crate) fn new(url: &str) -> Self {
        let name = format!(
            "mailroom-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let separator = if url.contains('?') { '&' } else { '?' };
        Shared {
            url: format!("{url}{separator}application_name={name}"),
            name,
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

/// A change another process made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChange {
    /// An inbound-log row was added (`new`) or changed.
    Email { id: i64, new: bool },
    /// A problem was recorded (error notifications).
    Notification { id: i64 },
    /// A processing attempt ended (its log is written then: [`Store::finished_attempt`]).
    AttemptFinished { id: i64 },
    /// The connection to the database was lost and is made again: changes in between were
    /// not heard (reload what is shown).
    Missed,
}

/// Hears other processes' changes ([`Store::listen`]).
pub struct ChangeListener {
    listener: PgListener,
    own: String,
}

impl fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeListener")
            .field("own", &self.own)
            .finish_non_exhaustive()
    }
}

/// A notification's payload, as the trigger builds it.
#[derive(Deserialize)]
struct Payload {
    table: String,
    id: i64,
    #[serde(default)]
    new: bool,
    from: String,
}

impl ChangeListener {
    /// The next change another process made. After [`StoreChange::Missed`] the next call
    /// connects again (and keeps failing while the database is away: back off and call again).
    pub async fn next(&mut self) -> Result<StoreChange> {
        loop {
            let Some(notification) = self.listener.try_recv().await.map_err(backend_error)? else {
                return Ok(StoreChange::Missed);
            };
            let Ok(payload) = serde_json::from_str::<Payload>(notification.payload()) else {
                tracing::debug!(
                    payload = notification.payload(),
                    "a change announcement that is not Mailroom's was ignored"
                );
                continue;
            };
            if payload.from == self.own {
                continue;
            }
            match payload.table.as_str() {
                "inbound_emails" => {
                    return Ok(StoreChange::Email {
                        id: payload.id,
                        new: payload.new,
                    })
                }
                "notifications" => return Ok(StoreChange::Notification { id: payload.id }),
                "processing_attempts" => {
                    return Ok(StoreChange::AttemptFinished { id: payload.id })
                }
                _ => continue,
            }
        }
    }
}

fn backend_error(e: sqlx::Error) -> StoreError {
    StoreError::Database(BackendError(Box::new(e)))
}

/// An ended attempt, as a console's live tail shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedAttempt {
    pub email_id: i64,
    pub mailbox_id: String,
    /// `processed`, `skipped` or `failed`.
    pub result: Option<String>,
    pub log: Vec<crate::inbound::LogLine>,
}

impl Store {
    /// An ended attempt's email, result and processing log.
    pub async fn finished_attempt(&self, attempt_id: i64) -> Result<FinishedAttempt> {
        use sqlx::Row as _;
        let row = sqlx::query(
            "SELECT a.email_id, a.result, e.mailbox_id FROM processing_attempts a
             JOIN inbound_emails e ON e.id = a.email_id WHERE a.id = $1",
        )
        .bind(attempt_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "attempt",
            id: attempt_id.to_string(),
        })?;
        let log = sqlx::query(
            "SELECT at, level, message FROM attempt_log WHERE attempt_id = $1 ORDER BY seq",
        )
        .bind(attempt_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(crate::inbound::LogLine {
                at: crate::inbound::parse_ts(r.try_get("at")?)?,
                level: r.try_get("level")?,
                message: r.try_get("message")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(FinishedAttempt {
            email_id: row.try_get("email_id")?,
            mailbox_id: row.try_get("mailbox_id")?,
            result: row.try_get("result")?,
            log,
        })
    }

    /// Listens for other processes' changes: `None` on SQLite, whose one process publishes
    /// its own events.
    pub async fn listen(&self) -> Result<Option<ChangeListener>> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(&shared.url)
            .await
            .map_err(backend_error)?;
        listener.listen(CHANNEL).await.map_err(backend_error)?;
        Ok(Some(ChangeListener {
            listener,
            own: shared.name.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::testing::on_both;

    async fn next(listener: &mut ChangeListener) -> StoreChange {
        tokio::time::timeout(Duration::from_secs(10), listener.next())
            .await
            .expect("a change is heard within 10 s")
            .unwrap()
    }

    async fn hears_other_processes_changes_only(store: Store) {
        let Some(mut listener) = store.listen().await.unwrap() else {
            assert!(
                store.path().is_some(),
                "only SQLite has nothing to listen to"
            );
            return;
        };
        // Another process: a second store on the same database.
        let other = Store::connect(&redacted_free_url(&store)).await.unwrap();
        // This store's own write is not announced to itself …
        store
            .insert_notification("own", "email_failed", None, "t", "d", "f", Utc::now())
            .await
            .unwrap();
        // … the other's are.
        let theirs = other
            .insert_notification("theirs", "email_failed", None, "t", "d", "f", Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            next(&mut listener).await,
            StoreChange::Notification { id: theirs.id }
        );
        let mailbox = other
            .add_mailbox(&crate::mailboxes::NewMailbox {
                name: "Support".into(),
                method: crate::mailboxes::MailboxMethod::Scan,
                cloud: crate::mailboxes::Cloud::Global,
                authority_url: None,
                graph_url: None,
                tenant_id: "t".into(),
                client_id: "c".into(),
                credential_kind: crate::mailboxes::CredentialKind::Public,
                shared_mailbox: None,
                mailbox_address: None,
            })
            .await
            .unwrap();
        let (email, _) = other
            .record_sighting(
                &crate::inbound::Sighting {
                    mailbox_id: mailbox.id.clone(),
                    graph_message_id: "AAMk-1".into(),
                    internet_message_id: Some("<m-1@fabrikam.test>".into()),
                    conversation_id: None,
                    received_at: Utc::now(),
                    from_address: "kim@fabrikam.test".into(),
                    from_name: "Kim".into(),
                    subject: "Printer jammed".into(),
                },
                Utc::now(),
            )
            .await
            .unwrap();
        assert_eq!(
            next(&mut listener).await,
            StoreChange::Email {
                id: email,
                new: true
            }
        );
        other.requeue(email, Utc::now()).await.unwrap();
        assert_eq!(
            next(&mut listener).await,
            StoreChange::Email {
                id: email,
                new: false
            }
        );
        // An attempt's end, with its log.
        let attempt = other
            .start_attempt(email, crate::inbound::AttemptTrigger::Scan, Utc::now())
            .await
            .unwrap();
        let line = crate::inbound::LogLine {
            at: Utc::now(),
            level: "info".into(),
            message: "Ticket 1001 created".into(),
        };
        other
            .finish_attempt(
                attempt,
                "processed",
                None,
                &[],
                std::slice::from_ref(&line),
                Utc::now(),
            )
            .await
            .unwrap();
        loop {
            match next(&mut listener).await {
                StoreChange::Email { .. } => continue,
                change => {
                    assert_eq!(change, StoreChange::AttemptFinished { id: attempt });
                    break;
                }
            }
        }
        let finished = store.finished_attempt(attempt).await.unwrap();
        assert_eq!(
            (
                finished.email_id,
                finished.result.as_deref(),
                finished.mailbox_id
            ),
            (email, Some("processed"), mailbox.id.clone())
        );
        assert_eq!(finished.log[0].message, line.message);
    }
    on_both!(hears_other_processes_changes_only);

    /// The URL the store was connected with, without the name this store added.
    fn redacted_free_url(store: &Store) -> String {
        let url = &store.shared.as_ref().unwrap().url;
        url.rsplit_once("application_name=")
            .map(|(base, _)| base.trim_end_matches(['?', '&']).to_string())
            .unwrap()
    }
}
