//! The cursor of a delta round in progress (table `delta_round_cursors`).
//!
//! A delta round reads pages until Graph returns the round's `@odata.deltaLink`. Each page's
//! sightings are stored, then the page's `@odata.nextLink` is stored here, so a round cut short
//! (a throttled page, a crash) resumes at the page that failed instead of starting over. The
//! mailbox's deltaLink (`mailbox_sync`) is only replaced when the round completes, and the row
//! here is then removed.

use chrono::{DateTime, Utc};

use crate::inbound::ts;
use crate::{Result, Store, StoreError};

/// Where an unfinished delta round continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRoundCursor {
    /// The `@odata.nextLink` of the next page to read.
    pub next_link: String,
    /// Pages of this round read so far.
    pub pages: i64,
    /// When the round's first page was read.
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn parse(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp '{text}': {e}")))
}

impl Store {
    /// The unfinished delta round of `mailbox_id`'s `folder`, if any.
    pub async fn delta_round_cursor(
        &self,
        mailbox_id: &str,
        folder: &str,
    ) -> Result<Option<DeltaRoundCursor>> {
        let row: Option<(String, i64, String, String)> = sqlx::query_as(
            "SELECT next_link, pages, started_at, updated_at FROM delta_round_cursors
             WHERE mailbox_id = $1 AND folder = $2",
        )
        .bind(mailbox_id)
        .bind(folder)
        .fetch_optional(self.pool())
        .await?;
        row.map(|(next_link, pages, started, updated)| {
            Ok(DeltaRoundCursor {
                next_link,
                pages,
                started_at: parse(&started)?,
                updated_at: parse(&updated)?,
            })
        })
        .transpose()
    }

    /// Records that a page of the round was read (its sightings stored) and the round goes on
    /// at `next_link`.
    pub async fn advance_delta_round(
        &self,
        mailbox_id: &str,
        folder: &str,
        next_link: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO delta_round_cursors (mailbox_id, folder, next_link, pages, started_at, updated_at)
             VALUES ($1, $2, $3, 1, $4, $5)
             ON CONFLICT (mailbox_id, folder) DO UPDATE SET next_link = excluded.next_link,
                 pages = delta_round_cursors.pages + 1, updated_at = excluded.updated_at",
        )
        .bind(mailbox_id)
        .bind(folder)
        .bind(next_link)
        .bind(ts(now))
        .bind(ts(now))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets the unfinished round (it completed, or its state expired and a resync starts).
    pub async fn clear_delta_round(&self, mailbox_id: &str, folder: &str) -> Result<()> {
        sqlx::query("DELETE FROM delta_round_cursors WHERE mailbox_id = $1 AND folder = $2")
            .bind(mailbox_id)
            .bind(folder)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::testing::on_both!(a_round_cursor_advances_and_clears);
    async fn a_round_cursor_advances_and_clears(store: Store) {
        let mb = store
            .add_mailbox(&crate::NewMailbox {
                name: "Support".into(),
                method: crate::MailboxMethod::Scan,
                cloud: crate::Cloud::Global,
                authority_url: None,
                graph_url: None,
                tenant_id: "t".into(),
                client_id: "c".into(),
                credential_kind: crate::CredentialKind::Secret,
                shared_mailbox: None,
                mailbox_address: Some("support@contoso.test".into()),
            })
            .await
            .unwrap();
        assert_eq!(
            store.delta_round_cursor(&mb.id, "inbox").await.unwrap(),
            None
        );
        let t0 = Utc::now();
        store
            .advance_delta_round(&mb.id, "inbox", "https://g/1", t0)
            .await
            .unwrap();
        store
            .advance_delta_round(&mb.id, "inbox", "https://g/2", t0)
            .await
            .unwrap();
        let c = store
            .delta_round_cursor(&mb.id, "inbox")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.next_link, "https://g/2");
        assert_eq!(c.pages, 2);
        assert_eq!(
            store.delta_round_cursor(&mb.id, "other").await.unwrap(),
            None
        );
        store.clear_delta_round(&mb.id, "inbox").await.unwrap();
        assert_eq!(
            store.delta_round_cursor(&mb.id, "inbox").await.unwrap(),
            None
        );
    }
}
