//! Change-notification subscriptions on the mailbox's inbox: create (within the
//! expiration cap), renew, reauthorize, delete, list.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::error::{GraphError, GraphErrorKind};
use super::transport::Call;
use super::GraphClient;
use crate::models::*;
use crate::secret::Secret;

/// Default maximum subscription lifetime in minutes (reference §4.4: 4,230 is the conservative
/// documented value; the server's `ExtensionError` clamp is honoured as well).
pub const DEFAULT_SUBSCRIPTION_MAX_MINUTES: i64 = 4230;

impl GraphClient {
    /// Creates a subscription (`changeType=created`). If Graph answers with the
    /// `ExtensionError` "Subscription expiration can only be N minutes in the future", retries
    /// once at N minutes (less one for clock skew).
    pub async fn create_subscription(
        &self,
        resource: &str,
        notification_url: &str,
        lifecycle_url: Option<&str>,
        client_state: &Secret,
        expiration: DateTime<Utc>,
    ) -> Result<Subscription, GraphError> {
        let cap = self.clock.now() + chrono::Duration::minutes(self.subscription_max_minutes);
        let mut expiration = expiration.min(cap);
        let mut clamped = false;
        loop {
            let mut body = json!({
                "changeType": "created",
                "notificationUrl": notification_url,
                "resource": resource,
                "expirationDateTime": expiration.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "clientState": client_state.expose(),
                "latestSupportedTlsVersion": "v1_2",
            });
            if let Some(l) = lifecycle_url {
                body["lifecycleNotificationUrl"] = json!(l);
            }
            let call = Call::new(http::Method::POST, self.versioned(&["subscriptions"])).json(body);
            match self.json::<Subscription>(call).await {
                Err(e) if !clamped => match parse_expiration_cap(&e) {
                    Some(minutes) => {
                        clamped = true;
                        expiration =
                            self.clock.now() + chrono::Duration::minutes((minutes - 1).max(1));
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// The subscription resource for this mailbox's inbox:
    /// `users/{upn}/mailFolders('Inbox')/messages`.
    pub fn inbox_resource(&self) -> String {
        format!("{}/mailFolders('Inbox')/messages", self.mailbox_resource())
    }

    /// Extends a subscription (`PATCH`), clamped like [`GraphClient::create_subscription`].
    pub async fn renew_subscription(
        &self,
        id: &str,
        expiration: DateTime<Utc>,
    ) -> Result<Subscription, GraphError> {
        let cap = self.clock.now() + chrono::Duration::minutes(self.subscription_max_minutes);
        let mut expiration = expiration.min(cap);
        let mut clamped = false;
        loop {
            let call = Call::new(http::Method::PATCH, self.versioned(&["subscriptions", id])).json(
                json!({ "expirationDateTime": expiration.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) }),
            );
            match self.json::<Subscription>(call).await {
                Err(e) if !clamped => match parse_expiration_cap(&e) {
                    Some(minutes) => {
                        clamped = true;
                        expiration =
                            self.clock.now() + chrono::Duration::minutes((minutes - 1).max(1));
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// `POST /subscriptions/{id}/reauthorize` (answer to `reauthorizationRequired`).
    pub async fn reauthorize_subscription(&self, id: &str) -> Result<(), GraphError> {
        self.send(Call::new(
            http::Method::POST,
            self.versioned(&["subscriptions", id, "reauthorize"]),
        ))
        .await?;
        Ok(())
    }

    /// `DELETE /subscriptions/{id}` (204).
    pub async fn delete_subscription(&self, id: &str) -> Result<(), GraphError> {
        self.send(Call::new(
            http::Method::DELETE,
            self.versioned(&["subscriptions", id]),
        ))
        .await?;
        Ok(())
    }

    /// Lists the app's subscriptions.
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, GraphError> {
        self.paged(
            Call::new(http::Method::GET, self.versioned(&["subscriptions"])),
            None,
        )
        .await
    }
}

/// Extracts N from "Subscription expiration can only be N minutes in the future".
pub fn parse_expiration_cap(error: &GraphError) -> Option<i64> {
    if error.kind != GraphErrorKind::BadRequest {
        return None;
    }
    let msg = error.message.as_str();
    let idx = msg.find("can only be ")?;
    let rest = &msg[idx + "can only be ".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    if !rest[digits.len()..].trim_start().starts_with("minutes") {
        return None;
    }
    digits.parse().ok()
}
