//! Webhooks mailboxes: the Graph subscription of a mailbox (*Create subscription*, *Cancel
//! subscription*, its details and events). The receiver runs with the engine, which
//! registers every Webhooks mailbox with it.

use mailroom_engine::webhooks::{SubscriptionEvent, SubscriptionRecord, Webhooks};
use mailroom_engine::{CoreError, ErrorCode};
use serde::Serialize;
use tauri::State;

use super::inbound::InboundState;
use super::{UiError, UiResult};

/// What the Incoming tab shows for a Webhooks mailbox.
#[derive(Debug, Serialize)]
pub struct SubscriptionInfo {
    /// The subscription, when there is one.
    pub subscription: Option<SubscriptionRecord>,
    /// The URL Graph posts notifications to (the public base URL or the loopback receiver).
    pub notification_url: String,
    /// Recent subscription events, newest first.
    pub events: Vec<SubscriptionEvent>,
}

async fn service(inbound: &InboundState) -> UiResult<Webhooks> {
    let watching = inbound.engine().state() == mailroom_engine::engine::EngineState::Watching;
    inbound.webhooks().await.ok_or_else(|| UiError {
        code: ErrorCode::NotConfigured,
        message: if watching {
            // A console manages the workers' subscriptions once Graph can reach them.
            mailroom_engine::webhooks::WebhookError::NoPublicUrl.to_string()
        } else {
            "The webhook receiver is not running: connect the mailbox and set up the PSA connection first.".into()
        },
    })
}

async fn info(webhooks: &Webhooks, mailbox_id: &str) -> UiResult<SubscriptionInfo> {
    let subscription = webhooks
        .subscription(mailbox_id)
        .await
        .map_err(CoreError::from)?;
    let mut events = webhooks.events(mailbox_id).await.map_err(CoreError::from)?;
    events.reverse();
    events.truncate(20);
    Ok(SubscriptionInfo {
        subscription,
        notification_url: webhooks.notification_url(mailbox_id),
        events,
    })
}

/// The mailbox's subscription details.
#[tauri::command]
pub async fn subscription_show(
    inbound: State<'_, InboundState>,
    mailbox_id: String,
) -> UiResult<SubscriptionInfo> {
    let webhooks = service(&inbound).await?;
    info(&webhooks, &mailbox_id).await
}

/// *Create subscription* (replaces an existing one).
#[tauri::command]
pub async fn subscription_create(
    inbound: State<'_, InboundState>,
    mailbox_id: String,
) -> UiResult<SubscriptionInfo> {
    let webhooks = service(&inbound).await?;
    webhooks
        .create_subscription(&mailbox_id)
        .await
        .map_err(CoreError::from)?;
    info(&webhooks, &mailbox_id).await
}

/// *Cancel subscription*.
#[tauri::command]
pub async fn subscription_cancel(
    inbound: State<'_, InboundState>,
    mailbox_id: String,
) -> UiResult<SubscriptionInfo> {
    let webhooks = service(&inbound).await?;
    webhooks
        .cancel_subscription(&mailbox_id)
        .await
        .map_err(CoreError::from)?;
    info(&webhooks, &mailbox_id).await
}

/// Recent subscription events of every mailbox, newest first (the Monitoring view's
/// *Subscription events*); read from the store, so it works before the receiver runs.
#[tauri::command]
pub async fn subscription_events_all(
    state: State<'_, crate::AppState>,
) -> UiResult<Vec<SubscriptionEvent>> {
    Ok(state.core.subscription_events_all(50).await?)
}

/// The webhook receiver's settings (bind address, port, public base URL, lifetime, fallback).
#[tauri::command]
pub async fn webhook_settings_get(
    state: State<'_, crate::AppState>,
) -> UiResult<mailroom_engine::webhooks::WebhookSettings> {
    Ok(state.core.webhook_settings().await?)
}

/// Saves the receiver's settings (validated); they apply at the next start of the app.
#[tauri::command]
pub async fn webhook_settings_set(
    state: State<'_, crate::AppState>,
    settings: mailroom_engine::webhooks::WebhookSettings,
) -> UiResult<()> {
    Ok(state.core.set_webhook_settings(&settings).await?)
}
