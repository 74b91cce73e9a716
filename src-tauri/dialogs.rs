//! The native file dialogs, opened by the backend: the webview never names a file for the
//! backend to read or write, it only asks for a dialog.

use std::path::PathBuf;

use mailroom_engine::CoreError;
use tauri::{AppHandle, Manager};
use tauri_plugin_dialog::DialogExt;

/// Which dialog.
pub enum PfxDialog<'a> {
    /// Pick an existing PKCS#12 file (`.pfx` or `.p12`).
    Open,
    /// Choose where to save one, proposing `file_name`.
    Save { file_name: &'a str },
}

/// Shows the dialog titled `title` over the main window and answers the chosen local path, or
/// `None` when the admin cancelled it.
pub async fn choose_pfx(
    app: &AppHandle,
    title: &str,
    kind: PfxDialog<'_>,
) -> Result<Option<PathBuf>, CoreError> {
    let (chosen_tx, chosen_rx) = tokio::sync::oneshot::channel();
    let mut dialog = app.dialog().file().set_title(title);
    if let Some(window) = app.get_webview_window("main") {
        dialog = dialog.set_parent(&window);
    }
    match kind {
        PfxDialog::Open => dialog
            .add_filter("PKCS#12 certificate", &["pfx", "p12"])
            .pick_file(move |file| {
                let _ = chosen_tx.send(file);
            }),
        PfxDialog::Save { file_name } => dialog
            .set_file_name(file_name)
            .add_filter("PKCS#12 certificate", &["pfx"])
            .save_file(move |file| {
                let _ = chosen_tx.send(file);
            }),
    }
    let Some(file) = chosen_rx.await.ok().flatten() else {
        return Ok(None);
    };
    file.into_path()
        .map(Some)
        .map_err(|e| CoreError::InvalidInput(format!("The chosen place is not a local file: {e}")))
}

/// Shows a save dialog titled `title` proposing `file_name` (files of `filter` with
/// `extensions`) and answers the chosen local path, or `None` when cancelled.
pub async fn choose_save_file(
    app: &AppHandle,
    title: &str,
    file_name: &str,
    filter: &str,
    extensions: &[&str],
) -> Result<Option<PathBuf>, CoreError> {
    let (chosen_tx, chosen_rx) = tokio::sync::oneshot::channel();
    let mut dialog = app.dialog().file().set_title(title);
    if let Some(window) = app.get_webview_window("main") {
        dialog = dialog.set_parent(&window);
    }
    dialog
        .set_file_name(file_name)
        .add_filter(filter, extensions)
        .save_file(move |file| {
            let _ = chosen_tx.send(file);
        });
    let Some(file) = chosen_rx.await.ok().flatten() else {
        return Ok(None);
    };
    file.into_path()
        .map(Some)
        .map_err(|e| CoreError::InvalidInput(format!("The chosen place is not a local file: {e}")))
}
