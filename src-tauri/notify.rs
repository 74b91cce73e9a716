//! Desktop notifications for what needs the admin while the window may be hidden: the
//! problems the engine records for error notifications (`EngineEvent::NeedsAttention`: an
//! email that failed for good, a mailbox whose sign-in was revoked, a credential expiring, the
//! PSA unreachable), and any other step of the PSA integration that was green and failed its
//! periodic check. The tray's tooltip says how many problems wait. The admin turns desktop
//! notifications off in the notification settings (the problems are still recorded and
//! emailed).

use mailroom_engine::events::EngineEvent;
use tauri::AppHandle;
use tauri_plugin_notification::NotificationExt;

fn show(app: &AppHandle, title: &str, body: &str) {
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::info!("no desktop notification shown ({e}); the window shows the problem");
    }
}

/// Forwards the engine's events that need the admin to the desktop's notifications, until the
/// event bus closes. A desktop without a notification service only logs them.
pub fn start(
    app: AppHandle,
    core: mailroom_engine::Core,
    events: mailroom_engine::events::EventBus,
) {
    let mut rx = events.subscribe();
    tauri::async_runtime::spawn(async move {
        let mut waiting = 0usize;
        loop {
            let event = match rx.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let desktop = core
                .notification_settings()
                .await
                .map(|s| s.desktop)
                .unwrap_or(true);
            match event {
                EngineEvent::NeedsAttention {
                    title, detail, fix, ..
                } => {
                    waiting += 1;
                    crate::tray::set_attention(&app, waiting);
                    if desktop {
                        show(&app, &title, &format!("{detail} {fix}"));
                    }
                }
                // The connection step is told as "the PSA unreachable" above.
                EngineEvent::IntegrationBroken {
                    step,
                    title,
                    summary,
                } if step != "connection" && desktop => {
                    show(
                        &app,
                        &format!("HaloPSA integration: {title} needs attention"),
                        &format!("{summary}. Open Mailroom > Integration for the fix."),
                    );
                }
                _ => {}
            }
        }
    });
}
