//! Desktop notifications for what needs the admin while the window may be hidden: a mailbox
//! whose sign-in was revoked (it is not read until someone signs in again), and a step of the
//! PSA integration that was green and failed its periodic check.

use mailroom_engine::events::{EngineEvent, SyncState};
use tauri::AppHandle;
use tauri_plugin_notification::NotificationExt;

/// Forwards the engine's events that need the admin to the desktop's notifications, until the
/// event bus closes. A desktop without a notification service only logs them.
pub fn start(
    app: AppHandle,
    core: mailroom_engine::Core,
    events: mailroom_engine::events::EventBus,
) {
    let mut rx = events.subscribe();
    tauri::async_runtime::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(EngineEvent::MailboxSync(status)) if status.state == SyncState::NeedsSignIn => {
                    let name = match core.store().mailbox(&status.mailbox_id).await {
                        Ok(m) => m.name,
                        Err(_) => "A mailbox".into(),
                    };
                    let shown = app
                        .notification()
                        .builder()
                        .title(format!("{name}: sign in again"))
                        .body(format!(
                            "Mailroom stopped reading this mailbox: {} Open Mailroom and use Authorize on its Incoming tab.",
                            status.error.unwrap_or_default()
                        ))
                        .show();
                    if let Err(e) = shown {
                        tracing::info!(mailbox = %name, "no desktop notification shown ({e}); the mailbox is marked in the window");
                    }
                }
                Ok(EngineEvent::IntegrationBroken { title, summary, .. }) => {
                    let shown = app
                        .notification()
                        .builder()
                        .title(format!("HaloPSA integration: {title} needs attention"))
                        .body(format!(
                            "{summary}. Open Mailroom > Integration for the fix."
                        ))
                        .show();
                    if let Err(e) = shown {
                        tracing::info!("no desktop notification shown ({e}); the Integration area shows the step in red");
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}
