//! The sync engine in the window: its state, the inbound log and its details, *Import emails*,
//! *Reprocess*, the PSA connection, and live events streamed in batches over a Channel.

use std::time::Duration;

use mailroom_engine::engine::{EngineError, EngineHandle, EngineState, StartReport};
use mailroom_engine::events::{batched, CancellationToken, EngineEvent, SyncStatus};
use mailroom_engine::sync::ScanReport;
use mailroom_engine::webhooks::Webhooks;
use mailroom_store::inbound::{AttemptDetail, InboundEmail, LogQuery, LogStatus};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use super::{UiError, UiResult};
use crate::AppState;

/// Events are sent to the window at most every this often …
const BATCH_EVERY: Duration = Duration::from_millis(250);
/// … or as soon as this many are waiting.
const BATCH_MAX: usize = 100;

/// The engine of the window (managed state): the one [`EngineHandle`] of the process, and the
/// window's live-event subscription.
pub struct InboundState {
    engine: EngineHandle,
    /// Cancels the forwarder of the current subscription; a reload of the window subscribes
    /// again and so cancels the old one (no forwarder is left per reload).
    subscription: std::sync::Mutex<Option<CancellationToken>>,
}

impl InboundState {
    pub fn new(engine: EngineHandle) -> Self {
        InboundState {
            engine,
            subscription: Default::default(),
        }
    }

    /// The engine handle.
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// The webhook service, once the engine runs it.
    pub async fn webhooks(&self) -> Option<Webhooks> {
        self.engine.webhooks()
    }
}

impl From<EngineError> for UiError {
    fn from(error: EngineError) -> Self {
        UiError {
            code: error.code(),
            message: error.to_string(),
        }
    }
}

/// The engine's state, its last start-up round and every mailbox task's status.
#[derive(Debug, Serialize)]
pub struct EngineStatus {
    pub state: EngineState,
    pub report: StartReport,
    pub mailboxes: Vec<SyncStatus>,
    /// Notifications the webhook receiver answered 503 because its queue was full (Graph
    /// retries them; a growing number means the engine cannot keep up).
    pub dropped_notifications: u64,
    /// The PSA client's rate-limit window and back-off, while mail is processed.
    pub psa: Option<mailroom_engine::engine::PsaUsage>,
}

fn engine_status_of(engine: &EngineHandle) -> EngineStatus {
    EngineStatus {
        state: engine.state(),
        report: engine.report(),
        mailboxes: engine.statuses(),
        dropped_notifications: engine.webhooks().map_or(0, |w| w.dropped_notifications()),
        psa: engine.psa_usage(),
    }
}

/// What the engine is doing (it starts with the app and keeps itself up; the window only
/// shows this).
#[tauri::command]
pub async fn engine_status(
    state: State<'_, AppState>,
    inbound: State<'_, InboundState>,
) -> UiResult<EngineStatus> {
    let mut status = engine_status_of(inbound.engine());
    // A console syncs nothing itself: each mailbox's last scan as the workers recorded it.
    if status.state == EngineState::Watching {
        status.mailboxes = state.core.recorded_sync_statuses().await?;
    }
    Ok(status)
}

/// Asks the engine to pick up a change now (a mailbox connected, the PSA connection saved).
#[tauri::command]
pub async fn engine_refresh(inbound: State<'_, InboundState>) -> UiResult<EngineStatus> {
    inbound.engine().refresh();
    Ok(engine_status_of(inbound.engine()))
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

/// The home dashboard: a card per mailbox, the charts' buckets, the database's size.
#[tauri::command]
pub async fn dashboard(
    state: State<'_, AppState>,
) -> UiResult<mailroom_engine::dashboard::Dashboard> {
    Ok(state.core.dashboard().await?)
}

/// Where an export went.
#[derive(Debug, Serialize)]
pub struct Exported {
    pub path: String,
    pub rows: usize,
}

/// *Export CSV*: the log under the shown filter, to a file the admin picks in the native save
/// dialog; `None` when the dialog was cancelled.
#[tauri::command]
pub async fn inbound_export_csv(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    query: LogQuery,
) -> UiResult<Option<Exported>> {
    let Some(path) = crate::dialogs::choose_save_file(
        &app,
        "Export the inbound log",
        "mailroom-inbound-log.csv",
        "CSV",
        &["csv"],
    )
    .await?
    else {
        return Ok(None);
    };
    let rows = state.core.export_inbound_csv(&query, &path).await?;
    Ok(Some(Exported {
        path: path.display().to_string(),
        rows,
    }))
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
pub async fn inbound_reprocess(inbound: State<'_, InboundState>, email_id: i64) -> UiResult<()> {
    Ok(inbound.engine().reprocess(email_id).await?)
}

/// *Import emails*: one pass over the mailbox now; permission problems come back in words.
#[tauri::command]
pub async fn inbound_import_now(
    inbound: State<'_, InboundState>,
    mailbox_id: String,
) -> UiResult<ScanReport> {
    Ok(inbound.engine().import_now(&mailbox_id).await?)
}

/// Streams engine events to the window in batches until the window subscribes again (a
/// reload) or drops the channel. A lagging stream gets a `resync` event: reload the view.
#[tauri::command]
pub async fn inbound_subscribe(
    inbound: State<'_, InboundState>,
    on_events: Channel<Vec<EngineEvent>>,
) -> UiResult<()> {
    let rx = inbound.engine().events().subscribe();
    let cancel = CancellationToken::new();
    let previous = inbound
        .subscription
        .lock()
        .expect("subscription lock")
        .replace(cancel.clone());
    if let Some(previous) = previous {
        previous.cancel();
    }
    tauri::async_runtime::spawn(batched(rx, BATCH_EVERY, BATCH_MAX, cancel, move |batch| {
        on_events.send(batch).is_ok()
    }));
    Ok(())
}
