//! Tauri commands, grouped by feature. Each is a short async adapter over `mailroom-engine`.

pub mod app;
pub mod connect;
pub mod console;
pub mod contacts;
pub mod inbound;
pub mod integration;
pub mod mailboxes;
pub mod notifications;
pub mod outbound;
pub mod psa;
pub mod retention;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod webhooks;

use mailroom_engine::{CoreError, ErrorCode};
use serde::Serialize;

/// An error as the UI receives it: a stable code to switch on, and a message to show.
#[derive(Debug, Serialize)]
pub struct UiError {
    pub code: ErrorCode,
    pub message: String,
}

impl From<CoreError> for UiError {
    fn from(error: CoreError) -> Self {
        UiError {
            code: error.code(),
            message: error.to_string(),
        }
    }
}

pub type UiResult<T> = Result<T, UiError>;
