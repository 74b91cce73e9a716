//! Subscription upkeep: create, cancel, renew, and the subscription log.

use mailroom_graph::{GraphClient, Secret};
use mailroom_secrets::{SecretKey, SecretKind, SecretValue};
use mailroom_store::inbound::ts;

use crate::events::EngineEvent;

use super::{
    delete_client_state, random_client_state, StoredNotification, SubscriptionEvent,
    SubscriptionEventKind, SubscriptionRecord, WebhookError, Webhooks,
};

impl Webhooks {
    /// Creates the mailbox's subscription (inbox messages, `created`, expiry at the configured
    /// maximum, clamped to Graph's limit) with a new random clientState, replacing (and
    /// deleting at Graph) any previous one.
    pub async fn create_subscription(
        &self,
        mailbox_id: &str,
    ) -> Result<SubscriptionRecord, WebhookError> {
        let (_, graph) = self.graph_of(mailbox_id).await?;
        if let Some(old) = self.subscription(mailbox_id).await? {
            if let Err(e) = graph.delete_subscription(&old.subscription_id).await {
                tracing::info!(mailbox = %self.label(mailbox_id), "previous subscription not deleted: {e}");
            }
        }
        let record = self.create_inner(mailbox_id, &graph).await?;
        self.record_event(
            mailbox_id,
            SubscriptionEventKind::Created,
            &format!(
                "subscription {} on {} until {}",
                record.subscription_id,
                record.resource,
                ts(record.expires_at)
            ),
        )
        .await;
        Ok(record)
    }

    pub(super) async fn create_inner(
        &self,
        mailbox_id: &str,
        graph: &GraphClient,
    ) -> Result<SubscriptionRecord, WebhookError> {
        let state = random_client_state();
        let key = SecretKey::new(mailbox_id, SecretKind::ClientState);
        self.inner
            .secrets
            .set(&key, &SecretValue::new(state.clone()))
            .await?;
        let resource = graph.inbox_resource();
        let expiration =
            self.now() + chrono::Duration::minutes(self.inner.options.max_lifetime_minutes);
        let created = graph
            .create_subscription(
                &resource,
                &self.notification_url(mailbox_id),
                Some(&self.lifecycle_url(mailbox_id)),
                &Secret::new(state.clone()),
                expiration,
            )
            .await;
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                self.record_event(
                    mailbox_id,
                    SubscriptionEventKind::Failed,
                    &format!("create: {e}"),
                )
                .await;
                return Err(e.into());
            }
        };
        let expires_at = created.expiration_date_time.unwrap_or(expiration);
        self.inner
            .store
            .put_webhook_subscription(mailbox_id, &created.id, &resource, expires_at, self.now())
            .await?;
        self.inner
            .client_states
            .lock()
            .expect("client states lock")
            .insert(
                mailbox_id.into(),
                (created.id.clone(), SecretValue::new(state)),
            );
        self.subscription(mailbox_id)
            .await?
            .ok_or_else(|| WebhookError::NoSubscription(self.label(mailbox_id)))
    }

    /// The mailbox's stored subscription, if any.
    pub async fn subscription(
        &self,
        mailbox_id: &str,
    ) -> Result<Option<SubscriptionRecord>, WebhookError> {
        Ok(self.inner.store.webhook_subscription(mailbox_id).await?)
    }

    /// Cancels the mailbox's subscription: deletes it at Graph (a subscription Graph no longer
    /// knows is fine), then locally, with its clientState secret.
    pub async fn cancel_subscription(&self, mailbox_id: &str) -> Result<(), WebhookError> {
        let record = self
            .subscription(mailbox_id)
            .await?
            .ok_or_else(|| WebhookError::NoSubscription(self.label(mailbox_id)))?;
        if let Ok((_, graph)) = self.graph_of(mailbox_id).await {
            match graph.delete_subscription(&record.subscription_id).await {
                Ok(()) => {}
                Err(e) if e.kind == mailroom_graph::GraphErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.inner
            .store
            .delete_webhook_subscription(mailbox_id)
            .await?;
        self.inner
            .client_states
            .lock()
            .expect("client states lock")
            .remove(mailbox_id);
        delete_client_state(&self.inner.secrets, mailbox_id).await;
        self.record_event(
            mailbox_id,
            SubscriptionEventKind::Cancelled,
            &format!("subscription {}", record.subscription_id),
        )
        .await;
        Ok(())
    }

    /// Renews the mailbox's subscription when it expires within `renew_before` of the clock's
    /// now. Returns whether it renewed.
    pub async fn renew_if_due(&self, mailbox_id: &str) -> Result<bool, WebhookError> {
        let Some(record) = self.subscription(mailbox_id).await? else {
            return Ok(false);
        };
        if record.expires_at - self.now() > self.inner.options.renew_before {
            return Ok(false);
        }
        self.renew(mailbox_id, &record).await?;
        Ok(true)
    }

    /// Renews every registered mailbox's subscription that is due (the periodic check).
    pub async fn renew_due(&self) -> Vec<(String, Result<bool, WebhookError>)> {
        let ids: Vec<String> = self
            .inner
            .mailboxes
            .lock()
            .expect("mailboxes lock")
            .keys()
            .cloned()
            .collect();
        let mut out = Vec::new();
        for id in ids {
            let result = self.renew_if_due(&id).await;
            out.push((id, result));
        }
        out
    }

    pub(super) async fn renew(
        &self,
        mailbox_id: &str,
        record: &SubscriptionRecord,
    ) -> Result<SubscriptionRecord, WebhookError> {
        let (_, graph) = self.graph_of(mailbox_id).await?;
        let wanted =
            self.now() + chrono::Duration::minutes(self.inner.options.max_lifetime_minutes);
        let renewed = match graph
            .renew_subscription(&record.subscription_id, wanted)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.record_event(
                    mailbox_id,
                    SubscriptionEventKind::Failed,
                    &format!("renew: {e}"),
                )
                .await;
                return Err(e.into());
            }
        };
        let expires_at = renewed.expiration_date_time.unwrap_or(wanted);
        self.inner
            .store
            .renew_webhook_subscription(mailbox_id, expires_at)
            .await?;
        self.record_event(
            mailbox_id,
            SubscriptionEventKind::Renewed,
            &format!(
                "subscription {} until {}",
                record.subscription_id,
                ts(expires_at)
            ),
        )
        .await;
        self.subscription(mailbox_id)
            .await?
            .ok_or_else(|| WebhookError::NoSubscription(self.label(mailbox_id)))
    }

    /// The mailbox's subscription log, oldest first (rejected notifications are counted per
    /// minute in one event each).
    pub async fn events(&self, mailbox_id: &str) -> Result<Vec<SubscriptionEvent>, WebhookError> {
        Ok(self.inner.store.webhook_events(mailbox_id).await?)
    }

    /// Notifications persisted for a mailbox, oldest first.
    pub async fn notifications(
        &self,
        mailbox_id: &str,
    ) -> Result<Vec<StoredNotification>, WebhookError> {
        Ok(self
            .inner
            .store
            .webhook_notifications(mailbox_id, false)
            .await?)
    }

    /// Tells the engine that the mailbox's subscription may be lost (`detail`: what failed), for
    /// error notifications. The failure itself is already in the subscription log.
    pub(super) fn publish_failure(&self, mailbox_id: &str, detail: String) {
        if let Some(supervisor) = self.supervisor() {
            supervisor
                .pipeline()
                .events()
                .publish(EngineEvent::SubscriptionFailed {
                    mailbox_id: mailbox_id.to_string(),
                    detail,
                });
        }
    }

    /// Logs an event and appends it to the mailbox's subscription log (a store failure is
    /// logged with the event it lost).
    pub(super) async fn record_event(
        &self,
        mailbox_id: &str,
        kind: SubscriptionEventKind,
        detail: &str,
    ) {
        match kind {
            SubscriptionEventKind::Rejected | SubscriptionEventKind::Failed => {
                tracing::warn!(mailbox = %self.label(mailbox_id), %kind, "webhook: {detail}")
            }
            _ => tracing::info!(mailbox = %self.label(mailbox_id), %kind, "webhook: {detail}"),
        }
        if let Err(e) = self
            .inner
            .store
            .record_webhook_event(mailbox_id, kind, detail, self.now())
            .await
        {
            tracing::warn!(
                mailbox = %self.label(mailbox_id),
                "cannot record a webhook event ({kind}: {detail}): {e}"
            );
        }
    }
}
