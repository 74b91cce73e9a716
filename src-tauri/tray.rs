//! The tray icon: show the window, or quit (closing the window only hides it).

use tauri::menu::{Menu, MenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager};

const TRAY_ID: &str = "mailroom-tray";

/// Brings the main window back and focuses it.
pub fn show_main_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
}

/// Whether a tray icon exists (without one, closing the window must quit instead of hiding).
pub fn is_installed(app: &AppHandle) -> bool {
    app.tray_by_id(TRAY_ID).is_some()
}

/// Creates the tray icon. A desktop without a tray (or without the appindicator library) gets
/// none, and the app falls back to quitting when the window closes.
pub fn install(app: &AppHandle) -> tauri::Result<()> {
    if std::env::var_os("MAILROOM_NO_TRAY").is_some() {
        return Ok(());
    }
    let show = MenuItem::with_id(app, "show", "Show Mailroom", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Mailroom", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&show, &quit])?;
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Mailroom")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "show" => show_main_window(app),
            "quit" => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                show_main_window(tray.app_handle());
            }
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.build(app))) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("no tray icon: {e}"),
        Err(_) => tracing::warn!("no tray icon: the system tray library is missing"),
    }
    Ok(())
}

/// The tray's attention state: its tooltip says how many problems wait (see Monitoring), or
/// that all is well.
pub fn set_attention(app: &AppHandle, waiting: usize) {
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let tip = if waiting == 0 {
            "Mailroom".to_string()
        } else {
            format!("Mailroom — {waiting} problem(s) need attention")
        };
        if let Err(e) = tray.set_tooltip(Some(tip)) {
            tracing::debug!("tray tooltip not set: {e}");
        }
    }
}
