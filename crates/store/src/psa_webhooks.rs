//! HaloPSA's webhook to Mailroom: every delivery the receiver got (stored before it answers),
//! the ticket index the deliveries keep current, and the agent actions they announced.
//!
//! Invariants:
//! - A delivery row is written before the receiver answers, whatever verifying it found.
//! - A verified delivery's effects (ticket index, agent action) are written in the same
//!   transaction as its row, so a delivery is never half applied.
//! - A payload id is applied once: a second verified delivery with the same id is stored as a
//!   `replay` and changes nothing.
//! - A ticket's index entry only moves forward in time: an older delivery arriving late does
//!   not overwrite a newer state.
//! - Refused deliveries are kept to the newest [`REFUSED_KEPT`], so a flood of forgeries cannot
//!   grow the database without limit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::inbound::{parse_ts, ts};
use crate::{flag, Result, Store, StoreError};

/// How many refused (not verified, not replayed) deliveries are kept.
pub const REFUSED_KEPT: i64 = 1000;

/// What verifying a delivery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Signed with Mailroom's certificate, fresh, first seen: applied.
    Verified,
    /// Verified, but its payload id was applied before: acknowledged, not applied again.
    Replay,
    /// Verified, but its timestamp is older than the receiver accepts.
    Stale,
    /// A signature is present but does not verify with Mailroom's certificate.
    Forged,
    /// No signature at all.
    Unsigned,
    /// Signed with another certificate (its thumbprint header names a different one).
    WrongCertificate,
    /// Mailroom has no certificate to verify with.
    NoCertificate,
    /// Signed, but the body is not a HaloPSA webhook payload.
    Malformed,
}

text_enum!(Verification {
    Verified => "verified",
    Replay => "replay",
    Stale => "stale",
    Forged => "forged",
    Unsigned => "unsigned",
    WrongCertificate => "wrong_certificate",
    NoCertificate => "no_certificate",
    Malformed => "malformed",
});

/// A delivery as the receiver stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPsaDelivery {
    pub received_at: DateTime<Utc>,
    pub payload_id: Option<String>,
    pub webhook_id: Option<String>,
    pub event: Option<String>,
    pub ticket_id: Option<i64>,
    pub action_id: Option<i64>,
    pub verification: Verification,
    pub detail: String,
    /// The HTTP status answered.
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PsaDelivery {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub payload_id: Option<String>,
    pub webhook_id: Option<String>,
    pub event: Option<String>,
    pub ticket_id: Option<i64>,
    pub action_id: Option<i64>,
    pub verification: Verification,
    pub detail: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A ticket's state as HaloPSA's webhook last described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PsaTicketState {
    pub ticket_id: i64,
    pub summary: Option<String>,
    pub client_id: Option<i64>,
    pub site_id: Option<i64>,
    pub user_id: Option<i64>,
    pub status_id: Option<i64>,
    pub tickettype_id: Option<i64>,
    pub closed: bool,
    pub deleted: bool,
    /// The delivery's timestamp (HaloPSA's time of the event).
    pub updated_at: DateTime<Utc>,
    pub last_event: String,
}

/// An action an agent added in HaloPSA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PsaAgentAction {
    pub ticket_id: i64,
    pub action_id: i64,
    pub outcome: Option<String>,
    pub note: Option<String>,
    pub hidden_from_user: bool,
    pub agent_id: Option<i64>,
    pub received_at: DateTime<Utc>,
    pub delivery_id: i64,
    pub handled_at: Option<DateTime<Utc>>,
}

/// What a verified delivery changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryEffects {
    pub ticket: Option<PsaTicketState>,
    /// The action (its `delivery_id` and `received_at` are filled in on write).
    pub action: Option<PsaAgentAction>,
}

/// What storing a verified delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First seen: stored and applied.
    Applied { id: i64 },
    /// Its payload id was applied before (by delivery `first`): stored as a replay.
    Replay { id: i64, first: i64 },
}

fn delivery_from_row(r: &sqlx::any::AnyRow) -> Result<PsaDelivery> {
    let headers: String = r.try_get("headers")?;
    Ok(PsaDelivery {
        id: r.try_get("id")?,
        received_at: parse_ts(r.try_get("received_at")?)?,
        payload_id: r.try_get("payload_id")?,
        webhook_id: r.try_get("webhook_id")?,
        event: r.try_get("event")?,
        ticket_id: r.try_get("ticket_id")?,
        action_id: r.try_get("action_id")?,
        verification: r.try_get::<&str, _>("verification")?.parse()?,
        detail: r.try_get("detail")?,
        status: r.try_get::<i64, _>("status")? as u16,
        headers: serde_json::from_str(&headers)
            .map_err(|e| StoreError::Corrupt(format!("delivery headers: {e}")))?,
        body: r.try_get("body")?,
    })
}

fn ticket_from_row(r: &sqlx::any::AnyRow) -> Result<PsaTicketState> {
    Ok(PsaTicketState {
        ticket_id: r.try_get("ticket_id")?,
        summary: r.try_get("summary")?,
        client_id: r.try_get("client_id")?,
        site_id: r.try_get("site_id")?,
        user_id: r.try_get("user_id")?,
        status_id: r.try_get("status_id")?,
        tickettype_id: r.try_get("tickettype_id")?,
        closed: flag(r, "closed")?,
        deleted: flag(r, "deleted")?,
        updated_at: parse_ts(r.try_get("updated_at")?)?,
        last_event: r.try_get("last_event")?,
    })
}

fn action_from_row(r: &sqlx::any::AnyRow) -> Result<PsaAgentAction> {
    let handled: Option<String> = r.try_get("handled_at")?;
    Ok(PsaAgentAction {
        ticket_id: r.try_get("ticket_id")?,
        action_id: r.try_get("action_id")?,
        outcome: r.try_get("outcome")?,
        note: r.try_get("note")?,
        hidden_from_user: flag(r, "hidden_from_user")?,
        agent_id: r.try_get("agent_id")?,
        received_at: parse_ts(r.try_get("received_at")?)?,
        delivery_id: r.try_get("delivery_id")?,
        handled_at: handled.as_deref().map(parse_ts).transpose()?,
    })
}

const INSERT_DELIVERY: &str = "INSERT INTO psa_webhook_deliveries
    (received_at, payload_id, webhook_id, event, ticket_id, action_id, verification, detail, status, headers, body)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

fn bind_delivery<'q>(
    sql: &'q str,
    d: &'q NewPsaDelivery,
    verification: Verification,
    detail: &'q str,
    headers: &'q str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(sql)
        .bind(ts(d.received_at))
        .bind(d.payload_id.as_deref())
        .bind(d.webhook_id.as_deref())
        .bind(d.event.as_deref())
        .bind(d.ticket_id)
        .bind(d.action_id)
        .bind(verification.as_str())
        .bind(detail)
        .bind(i64::from(d.status))
        .bind(headers)
        .bind(&d.body)
}

fn headers_json(d: &NewPsaDelivery) -> String {
    serde_json::to_string(&d.headers).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// Stores a refused delivery (anything but `verified`), then drops refused ones beyond the
    /// newest [`REFUSED_KEPT`]. Returns its id.
    pub async fn record_refused_psa_delivery(&self, delivery: &NewPsaDelivery) -> Result<i64> {
        let headers = headers_json(delivery);
        let _turn = self.burst_writes.lock().await;
        let mut tx = self.pool().begin().await?;
        let id: i64 = bind_delivery(
            &format!("{INSERT_DELIVERY} RETURNING id"),
            delivery,
            delivery.verification,
            &delivery.detail,
            &headers,
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        sqlx::query(
            "DELETE FROM psa_webhook_deliveries WHERE verification NOT IN ('verified', 'replay')
               AND id < (SELECT id FROM psa_webhook_deliveries
                         WHERE verification NOT IN ('verified', 'replay')
                         ORDER BY id DESC LIMIT 1 OFFSET $1)",
        )
        .bind(REFUSED_KEPT - 1)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Stores a verified delivery and applies its effects in one transaction — unless its
    /// payload id was applied before, in which case it is stored as a `replay` and nothing
    /// changes.
    pub async fn record_verified_psa_delivery(
        &self,
        delivery: &NewPsaDelivery,
        effects: &DeliveryEffects,
    ) -> Result<Recorded> {
        let headers = headers_json(delivery);
        let _turn = self.burst_writes.lock().await;
        let mut tx = self.pool().begin().await?;
        // The first statement writes, so the transaction takes the write lock at once (waiting
        // its turn) instead of upgrading a read lock, which concurrent writers would refuse.
        let applied: Option<i64> = bind_delivery(
            &format!(
                "{INSERT_DELIVERY} ON CONFLICT (payload_id) WHERE verification = 'verified' DO NOTHING RETURNING id"
            ),
            delivery,
            Verification::Verified,
            &delivery.detail,
            &headers,
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()?;
        let Some(id) = applied else {
            let first: i64 = sqlx::query_scalar(
                "SELECT id FROM psa_webhook_deliveries WHERE payload_id = $1 AND verification = 'verified'",
            )
            .bind(delivery.payload_id.as_deref())
            .fetch_one(&mut *tx)
            .await?;
            let detail = format!(
                "{} — already received as delivery #{first}; not applied again",
                delivery.detail
            );
            let id: i64 = bind_delivery(
                &format!("{INSERT_DELIVERY} RETURNING id"),
                delivery,
                Verification::Replay,
                &detail,
                &headers,
            )
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
            tx.commit().await?;
            return Ok(Recorded::Replay { id, first });
        };
        if let Some(t) = &effects.ticket {
            sqlx::query(
                "INSERT INTO psa_tickets (ticket_id, summary, client_id, site_id, user_id, status_id,
                   tickettype_id, closed, deleted, updated_at, last_event)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT(ticket_id) DO UPDATE SET
                   summary = COALESCE(excluded.summary, psa_tickets.summary),
                   client_id = COALESCE(excluded.client_id, psa_tickets.client_id),
                   site_id = COALESCE(excluded.site_id, psa_tickets.site_id),
                   user_id = COALESCE(excluded.user_id, psa_tickets.user_id),
                   status_id = COALESCE(excluded.status_id, psa_tickets.status_id),
                   tickettype_id = COALESCE(excluded.tickettype_id, psa_tickets.tickettype_id),
                   closed = excluded.closed, deleted = excluded.deleted,
                   updated_at = excluded.updated_at, last_event = excluded.last_event
                 WHERE excluded.updated_at >= psa_tickets.updated_at",
            )
            .bind(t.ticket_id)
            .bind(t.summary.as_deref())
            .bind(t.client_id)
            .bind(t.site_id)
            .bind(t.user_id)
            .bind(t.status_id)
            .bind(t.tickettype_id)
            .bind(i64::from(t.closed))
            .bind(i64::from(t.deleted))
            .bind(ts(t.updated_at))
            .bind(&t.last_event)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(a) = &effects.action {
            sqlx::query(
                "INSERT INTO psa_agent_actions (ticket_id, action_id, outcome, note, hidden_from_user,
                   agent_id, received_at, delivery_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT(ticket_id, action_id) DO NOTHING",
            )
            .bind(a.ticket_id)
            .bind(a.action_id)
            .bind(a.outcome.as_deref())
            .bind(a.note.as_deref())
            .bind(i64::from(a.hidden_from_user))
            .bind(a.agent_id)
            .bind(ts(delivery.received_at))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Recorded::Applied { id })
    }

    /// The newest deliveries first, at most `limit`, older than `before_id` when given.
    pub async fn psa_deliveries(
        &self,
        limit: i64,
        before_id: Option<i64>,
    ) -> Result<Vec<PsaDelivery>> {
        sqlx::query("SELECT * FROM psa_webhook_deliveries WHERE id < $1 ORDER BY id DESC LIMIT $2")
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    /// One delivery.
    pub async fn psa_delivery(&self, id: i64) -> Result<Option<PsaDelivery>> {
        sqlx::query("SELECT * FROM psa_webhook_deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(delivery_from_row)
            .transpose()
    }

    /// How many deliveries are stored, by verification result.
    pub async fn psa_delivery_counts(&self) -> Result<Vec<(Verification, i64)>> {
        sqlx::query(
            "SELECT verification, COUNT(*) AS n FROM psa_webhook_deliveries GROUP BY verification ORDER BY verification",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<&str, _>("verification")?.parse()?, r.try_get("n")?)))
        .collect()
    }

    /// The ticket's state as the webhook last described it.
    pub async fn psa_ticket_state(&self, ticket_id: i64) -> Result<Option<PsaTicketState>> {
        sqlx::query("SELECT * FROM psa_tickets WHERE ticket_id = $1")
            .bind(ticket_id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(ticket_from_row)
            .transpose()
    }

    /// Agent actions announced by the webhook, oldest first; only those not yet handled with
    /// `pending_only`.
    pub async fn psa_agent_actions(&self, pending_only: bool) -> Result<Vec<PsaAgentAction>> {
        let sql = if pending_only {
            "SELECT * FROM psa_agent_actions WHERE handled_at IS NULL ORDER BY delivery_id"
        } else {
            "SELECT * FROM psa_agent_actions ORDER BY delivery_id"
        };
        sqlx::query(sql)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(action_from_row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn delivery(payload_id: &str, verification: Verification, at: DateTime<Utc>) -> NewPsaDelivery {
        NewPsaDelivery {
            received_at: at,
            payload_id: Some(payload_id.into()),
            webhook_id: Some("w".into()),
            event: Some("ticket status changed".into()),
            ticket_id: Some(7),
            action_id: None,
            verification,
            detail: "signed".into(),
            status: 200,
            headers: vec![("X-Halo-Signature".into(), "abc".into())],
            body: "{}".into(),
        }
    }

    fn ticket(status_id: i64, at: DateTime<Utc>) -> PsaTicketState {
        PsaTicketState {
            ticket_id: 7,
            summary: Some("Printer".into()),
            client_id: Some(1),
            site_id: None,
            user_id: None,
            status_id: Some(status_id),
            tickettype_id: None,
            closed: status_id == 9,
            deleted: false,
            updated_at: at,
            last_event: "ticket status changed".into(),
        }
    }

    crate::testing::on_both!(a_payload_id_is_applied_once_and_the_index_only_moves_forward);
    async fn a_payload_id_is_applied_once_and_the_index_only_moves_forward(store: Store) {
        let now = Utc::now();
        let effects = DeliveryEffects {
            ticket: Some(ticket(9, now)),
            action: None,
        };
        let first = store
            .record_verified_psa_delivery(&delivery("a", Verification::Verified, now), &effects)
            .await
            .unwrap();
        let Recorded::Applied { id } = first else {
            panic!("{first:?}")
        };
        let again = store
            .record_verified_psa_delivery(&delivery("a", Verification::Verified, now), &effects)
            .await
            .unwrap();
        assert!(matches!(again, Recorded::Replay { first, .. } if first == id));
        let state = store.psa_ticket_state(7).await.unwrap().unwrap();
        assert!(state.closed);
        // An older delivery arriving late does not reopen the ticket in the index.
        let late = DeliveryEffects {
            ticket: Some(ticket(1, now - Duration::minutes(5))),
            action: None,
        };
        store
            .record_verified_psa_delivery(&delivery("b", Verification::Verified, now), &late)
            .await
            .unwrap();
        assert_eq!(
            store.psa_ticket_state(7).await.unwrap().unwrap().status_id,
            Some(9)
        );
        let list = store.psa_deliveries(10, None).await.unwrap();
        assert_eq!(
            list.iter().map(|d| d.verification).collect::<Vec<_>>(),
            [
                Verification::Verified,
                Verification::Replay,
                Verification::Verified
            ]
        );
        assert_eq!(list[0].headers[0].0, "X-Halo-Signature");
    }

    crate::testing::on_both!(refused_deliveries_are_kept_to_the_newest_thousand);
    async fn refused_deliveries_are_kept_to_the_newest_thousand(store: Store) {
        let now = Utc::now();
        store
            .record_verified_psa_delivery(
                &delivery("ok", Verification::Verified, now),
                &DeliveryEffects::default(),
            )
            .await
            .unwrap();
        for i in 0..(REFUSED_KEPT + 20) {
            store
                .record_refused_psa_delivery(&delivery(&format!("f{i}"), Verification::Forged, now))
                .await
                .unwrap();
        }
        let counts = store.psa_delivery_counts().await.unwrap();
        assert_eq!(
            counts,
            vec![
                (Verification::Forged, REFUSED_KEPT),
                (Verification::Verified, 1)
            ]
        );
        let newest = store.psa_deliveries(1, None).await.unwrap();
        assert_eq!(
            newest[0].payload_id.as_deref(),
            Some(format!("f{}", REFUSED_KEPT + 19).as_str())
        );
    }
}
