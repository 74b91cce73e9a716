//! The sandbox tenant, when the app runs with `--sandbox`.

use mailroom_graph_sandbox::InboundMail;
use tauri::State;

use super::{UiError, UiResult};
use crate::sandbox_mode::{self, SandboxInfo, SandboxState};

/// The sandbox's URLs and mailboxes, or `None` outside sandbox mode.
#[tauri::command]
pub async fn sandbox_info(state: State<'_, SandboxState>) -> UiResult<Option<SandboxInfo>> {
    Ok(state.sandbox.as_ref().map(sandbox_mode::info))
}

/// Customers that write in, in turn: a known PSA user, a new sender of a known domain, and a
/// sender of an unknown domain.
const CUSTOMERS: &[(&str, &str, &str)] = &[
    (
        "pat@fabrikam.test",
        "Pat Smith",
        "Shared calendar stopped syncing on my phone",
    ),
    (
        "dana@northwind.test",
        "Dana Ortiz",
        "New starter on Monday needs an account",
    ),
    (
        "sam@outlook.test",
        "Sam Lee",
        "Cannot reach the customer portal",
    ),
    (
        "lee@fabrikam.test",
        "Lee Chen",
        "Meeting room screen shows no signal",
    ),
];

/// Delivers a customer email "from outside" into the sandbox's support mailbox.
#[tauri::command]
pub async fn sandbox_send_test_email(state: State<'_, SandboxState>) -> UiResult<String> {
    let sandbox = state.sandbox.as_ref().ok_or_else(|| UiError {
        code: mailroom_engine::ErrorCode::InvalidInput,
        message: "Test emails can only be sent in sandbox mode (start with --sandbox).".into(),
    })?;
    let n = state
        .test_emails_sent
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (from, name, subject) = CUSTOMERS[n % CUSTOMERS.len()];
    let to = format!("support@{}", sandbox.tenant().domain);
    sandbox
        .graph()
        .deliver(InboundMail {
            to: to.clone(),
            from: from.into(),
            from_name: Some(name.into()),
            subject: subject.into(),
            body_html: Some(format!(
                "<p>Hello,</p><p>{subject}. Could you take a look?</p><p>Thanks,<br>{name}</p>"
            )),
            ..Default::default()
        })
        .map_err(|e| UiError {
            code: mailroom_engine::ErrorCode::Internal,
            message: format!("The sandbox could not deliver the email: {e}"),
        })?;
    Ok(format!("Sent \"{subject}\" from {from} to {to}."))
}
