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
    const FILTER: &str = "PKCS#12 certificate";
    match kind {
        PfxDialog::Open => {
            let (chosen_tx, chosen_rx) = tokio::sync::oneshot::channel();
            dialog(app, title)
                .add_filter(FILTER, &["pfx", "p12"])
                .pick_file(move |file| {
                    let _ = chosen_tx.send(file);
                });
            chosen(chosen_rx).await
        }
        PfxDialog::Save { file_name } => {
            choose_save_file(app, title, file_name, FILTER, &["pfx"]).await
        }
    }
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
    dialog(app, title)
        .set_file_name(file_name)
        .add_filter(filter, extensions)
        .save_file(move |file| {
            let _ = chosen_tx.send(file);
        });
    chosen(chosen_rx).await
}

/// A file dialog titled `title` over the main window.
fn dialog(app: &AppHandle, title: &str) -> tauri_plugin_dialog::FileDialogBuilder<tauri::Wry> {
    let dialog = app.dialog().file().set_title(title);
    match app.get_webview_window("main") {
        Some(window) => dialog.set_parent(&window),
        None => dialog,
    }
}

/// The local path the dialog answered, `None` when cancelled.
async fn chosen(
    rx: tokio::sync::oneshot::Receiver<Option<tauri_plugin_dialog::FilePath>>,
) -> Result<Option<PathBuf>, CoreError> {
    let Some(file) = rx.await.ok().flatten() else {
        return Ok(None);
    };
    file.into_path()
        .map(Some)
        .map_err(|e| CoreError::InvalidInput(format!("The chosen place is not a local file: {e}")))
}
