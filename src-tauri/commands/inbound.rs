//! The sync engine in the window: start it, the inbound log and its details, *Import emails*,
//! *Reprocess*, the PSA connection, and live events streamed in batches over a Channel.

use std::sync::Arc;
use std::time::Duration;

use mailroom_engine::events::{batched, CancellationToken, EngineEvent, EventBus, SyncStatus};
use mailroom_engine::pipeline::Pipeline;
use mailroom_engine::psa_connection::PsaConnection;
use mailroom_engine::sync::{ScanReport, SyncOptions, SyncSupervisor};
use mailroom_engine::webhooks::Webhooks;
use mailroom_engine::ErrorCode;
use mailroom_store::inbound::{AttemptDetail, InboundEmail, LogQuery, LogStatus};
use mailroom_store::MailboxMethod;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use super::{UiError, UiResult};
use crate::AppState;

/// Events are sent to the window at most every this often …
const BATCH_EVERY: Duration = Duration::from_millis(250);
/// … or as soon as this many are waiting.
const BATCH_MAX: usize = 100;

/// The engine of the window (managed state).
#[derive(Default)]
pub struct InboundState {
    events: EventBus,
    supervisor: tokio::sync::Mutex<Option<Arc<SyncSupervisor>>>,
    /// The webhook receiver (started with the engine).
    webhooks: tokio::sync::Mutex<Option<Webhooks>>,
}

impl InboundState {
    /// The webhook service, once the engine runs.
    pub async fn webhooks(&self) -> Option<Webhooks> {
        self.webhooks.lock().await.clone()
    }
}

fn ui(code: ErrorCode, message: impl Into<String>) -> UiError {
    UiError {
        code,
        message: message.into(),
    }
}

/// Starts syncing every enabled, connected mailbox not synced yet (call it again after a
/// mailbox is connected); returns the status of every synced mailbox.
#[tauri::command]
pub async fn engine_start(
    state: State<'_, AppState>,
    inbound: State<'_, InboundState>,
) -> UiResult<Vec<SyncStatus>> {
    let mut slot = inbound.supervisor.lock().await;
    let core = &state.core;
    if let Some(sandbox) = state.sandbox.as_ref() {
        // Sandbox mode: the emulated HaloPSA is the PSA connection.
        if core.psa_connection().await?.is_none() {
            let psa = &sandbox.tenant().psa;
            core.set_psa_connection(
                &sandbox.psa_url(),
                &psa.client_id,
                mailroom_secrets::SecretValue::new(psa.client_secret.clone()),
                Some(&psa.tenant),
            )
            .await?;
        }
    }
    if slot.is_none() {
        let pipeline = Arc::new(Pipeline::from_core(core, inbound.events.clone()).await?);
        *slot = Some(Arc::new(SyncSupervisor::new(
            pipeline,
            SyncOptions::default(),
        )));
    }
    let supervisor = slot.as_ref().expect("just set").clone();
    let mut hooks_slot = inbound.webhooks.lock().await;
    if hooks_slot.is_none() {
        let mut options = core
            .webhook_settings()
            .await?
            .options()
            .map_err(|e| ui(ErrorCode::InvalidInput, e))?;
        if state.sandbox.is_some() {
            // Sandbox mode: subscriptions are created at each launch; any free port.
            options.bind.set_port(0);
        }
        let (service, _) = core
            .start_webhooks(
                options,
                supervisor.pipeline().clock().clone(),
                Some(supervisor.clone()),
            )
            .await?;
        *hooks_slot = Some(service);
    }
    let webhooks = hooks_slot.as_ref().expect("just set").clone();
    drop(hooks_slot);
    for mailbox in core.mailboxes().await? {
        if !mailbox.enabled || supervisor.has_mailbox(&mailbox.id) {
            continue;
        }
        match core.graph_client_for(&mailbox).await {
            Ok(graph) if mailbox.method == MailboxMethod::Webhook => {
                webhooks.add_mailbox(mailbox, graph).await
            }
            Ok(graph) => supervisor.start_mailbox(mailbox, graph),
            Err(e) => tracing::warn!(mailbox = %mailbox.name, "not synced yet: {e}"),
        }
    }
    if state.sandbox.is_some() {
        // Sandbox mode: every connected Webhooks mailbox (helpdesk@) gets its subscription, so
        // that its mail becomes a ticket at once.
        for mailbox in core.mailboxes().await? {
            if mailbox.method == MailboxMethod::Webhook
                && supervisor.has_mailbox(&mailbox.id)
                && matches!(webhooks.subscription(&mailbox.id).await, Ok(None))
            {
                if let Err(e) = webhooks.create_subscription(&mailbox.id).await {
                    tracing::warn!(mailbox = %mailbox.name, "sandbox subscription not created: {e}");
                }
            }
        }
    }
    Ok(supervisor.statuses())
}

/// The status of every mailbox task (empty while the engine is not started).
#[tauri::command]
pub async fn engine_status(inbound: State<'_, InboundState>) -> UiResult<Vec<SyncStatus>> {
    Ok(inbound
        .supervisor
        .lock()
        .await
        .as_ref()
        .map(|s| s.statuses())
        .unwrap_or_default())
}

/// A page of the inbound log with the counts per status.
#[derive(Debug, Serialize)]
pub struct InboundPage {
    pub items: Vec<InboundEmail>,
    pub counts: Vec<(LogStatus, i64)>,
}

#[tauri::command]
pub async fn inbound_log(state: State<'_, AppState>, query: LogQuery) -> UiResult<InboundPage> {
    let store = state.core.store();
    let items = store
        .inbound_log(&query)
        .await
        .map_err(mailroom_engine::CoreError::from)?;
    let counts = store
        .status_counts(query.mailbox_id.as_deref())
        .await
        .map_err(mailroom_engine::CoreError::from)?;
    Ok(InboundPage { items, counts })
}

/// Every attempt of an email with its requests and processing log.
#[tauri::command]
pub async fn inbound_attempts(
    state: State<'_, AppState>,
    email_id: i64,
) -> UiResult<Vec<AttemptDetail>> {
    Ok(state
        .core
        .store()
        .attempts(email_id)
        .await
        .map_err(mailroom_engine::CoreError::from)?)
}

/// *Reprocess*: queue the email again (a confirmed PSA write is never repeated).
#[tauri::command]
pub async fn inbound_reprocess(
    state: State<'_, AppState>,
    inbound: State<'_, InboundState>,
    email_id: i64,
) -> UiResult<()> {
    let supervisor = inbound.supervisor.lock().await.clone();
    match supervisor {
        Some(s) => s
            .reprocess(email_id)
            .await
            .map_err(|m| ui(ErrorCode::Internal, m)),
        None => Ok(state.core.requeue_email(email_id).await?),
    }
}

/// *Import emails*: one pass over the mailbox now; permission problems come back in words.
#[tauri::command]
pub async fn inbound_import_now(
    inbound: State<'_, InboundState>,
    mailbox_id: String,
) -> UiResult<ScanReport> {
    let supervisor = inbound.supervisor.lock().await.clone().ok_or_else(|| {
        ui(
            ErrorCode::NotConfigured,
            "Mailroom is not processing mail yet: connect HaloPSA and a mailbox first.",
        )
    })?;
    supervisor
        .import_now(&mailbox_id)
        .await
        .map_err(|m| ui(ErrorCode::GraphFailed, m))
}

/// Streams engine events to the window in batches until the window drops the channel.
#[tauri::command]
pub async fn inbound_subscribe(
    inbound: State<'_, InboundState>,
    on_events: Channel<Vec<EngineEvent>>,
) -> UiResult<()> {
    let rx = inbound.events.subscribe();
    tauri::async_runtime::spawn(batched(
        rx,
        BATCH_EVERY,
        BATCH_MAX,
        CancellationToken::new(),
        move |batch| on_events.send(batch).is_ok(),
    ));
    Ok(())
}

#[tauri::command]
pub async fn psa_connection_get(state: State<'_, AppState>) -> UiResult<Option<PsaConnection>> {
    Ok(state.core.psa_connection().await?)
}

#[tauri::command]
pub async fn psa_connection_set(
    state: State<'_, AppState>,
    base_url: String,
    client_id: String,
    client_secret: String,
    tenant: Option<String>,
) -> UiResult<PsaConnection> {
    let conn = state
        .core
        .set_psa_connection(
            &base_url,
            &client_id,
            mailroom_secrets::SecretValue::new(client_secret),
            tenant.as_deref(),
        )
        .await?;
    // Prove it works before the engine relies on it.
    let client = state.core.psa_client().await?;
    client
        .me()
        .await
        .map_err(mailroom_engine::CoreError::from)?;
    Ok(conn)
}
