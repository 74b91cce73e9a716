//! Delegated sign-in: authorization code with PKCE in the system browser, answered on
//! a 127.0.0.1 loopback listener, with timeout and cancel.

use std::sync::Arc;
use std::time::Duration;

use mailroom_graph::CancellationToken;
use mailroom_graph::{
    delegated_scopes, granted_permissions, missing_permissions, required_permissions, AccessMethod,
    GraphClient, LoopbackSignIn, MailboxRef, PendingSignIn, SignInOptions,
};
use mailroom_secrets::{SecretKey, SecretKind, SecretValue};
use mailroom_store::{Mailbox, MailboxMethod};

use super::connection::Connection;
use super::diagnosis::ConnectError;
use super::{access_method, cloud_of};
use crate::{Core, CoreError};

/// A sign-in in progress: the loopback listener is running. Open `url` in a browser, then
/// [`Core::finish_authorization`].
pub struct Authorization {
    pub(super) mailbox_id: String,
    pub(super) pending: PendingSignIn,
    pub(super) cancel: CancellationToken,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorization")
            .field("mailbox_id", &self.mailbox_id)
            .field("redirect_uri", &self.pending.redirect_uri())
            .finish()
    }
}

impl Authorization {
    /// The mailbox being authorized.
    pub fn mailbox_id(&self) -> &str {
        &self.mailbox_id
    }

    /// The redirect URI in use (`http://localhost:<port>`).
    pub fn redirect_uri(&self) -> &str {
        self.pending.redirect_uri()
    }

    /// Cancelling this token ends the wait with [`ErrorCode::SignInCancelled`].
    pub fn canceller(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

impl Core {
    /// Starts the delegated sign-in: binds the loopback listener and returns the authorize URL
    /// to open in the system browser. The signed-in user's inbox (or the shared mailbox) is
    /// what gets processed.
    pub async fn start_authorization(
        &self,
        mailbox_id: &str,
    ) -> Result<(url::Url, Authorization), CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        if mailbox.method != MailboxMethod::Scan {
            return Err(CoreError::InvalidInput(
                "Webhook mailboxes use application permissions: use Connect, not Authorize.".into(),
            ));
        }
        let app = self.app_registration(&mailbox).await?;
        let scopes = match access_method(&mailbox) {
            AccessMethod::MailboxScan {
                shared_mailbox,
                contacts,
            } => delegated_scopes(shared_mailbox, contacts),
            AccessMethod::Webhooks { .. } => unreachable!("scan mailbox"),
        };
        // The account whose inbox is processed, when the admin named it: pre-filled, and any
        // other account refused when the browser comes back.
        let options = SignInOptions {
            login_hint: expected_account(&mailbox),
            ..SignInOptions::default()
        };
        let (url, pending) = LoopbackSignIn::start(&app, &scopes, options)
            .await
            .map_err(|e| CoreError::from(ConnectError::sign_in(&e)))?;
        tracing::info!(mailbox = %mailbox.name, redirect_uri = %pending.redirect_uri(), "sign-in started");
        Ok((
            url,
            Authorization {
                mailbox_id: mailbox.id,
                pending,
                cancel: CancellationToken::new(),
            },
        ))
    }

    /// Waits for the browser to come back (or `timeout` / cancellation), stores the refresh
    /// token in the keyring and the connected account in the store.
    pub async fn finish_authorization(
        &self,
        authorization: Authorization,
        timeout: Duration,
    ) -> Result<Connection, CoreError> {
        let Authorization {
            mailbox_id,
            pending,
            cancel,
        } = authorization;
        let mailbox = self.store().mailbox(&mailbox_id).await?;
        let tokens = match pending.wait(timeout, cancel).await {
            Ok(tokens) => tokens,
            Err(e) => {
                let err = ConnectError::sign_in(&e);
                tracing::warn!(mailbox = %mailbox.name, code = ?err.code(), "sign-in failed: {err}");
                return Err(err.into());
            }
        };
        let Some(refresh) = tokens.refresh_token.clone() else {
            return Err(ConnectError::NotConnected(
                "The sign-in returned no refresh token: the app registration needs the delegated offline_access permission."
                    .into(),
            )
            .into());
        };
        let mut account = tokens.account.as_ref().and_then(|a| a.upn.clone());
        let mut display_name = tokens.account.as_ref().and_then(|a| a.name.clone());
        if account.is_none() {
            let graph = GraphClient::new(
                cloud_of(&mailbox)?.graph_url(),
                Arc::new(mailroom_graph::StaticToken(tokens.access_token.clone())),
                MailboxRef::Me,
            );
            let me = graph
                .me()
                .await
                .map_err(|e| CoreError::from(ConnectError::graph(&e, "me")))?;
            account = me.user_principal_name.or(me.mail);
            display_name = me.display_name;
        }
        let account = account.unwrap_or_else(|| "(unknown account)".into());
        if let Some(expected) = expected_account(&mailbox) {
            if !account.eq_ignore_ascii_case(&expected) {
                tracing::warn!(mailbox = %mailbox.name, %account, %expected, "another account signed in; refused");
                return Err(CoreError::InvalidInput(format!(
                    "{account} signed in, but {} processes the inbox of {expected}: nothing was stored. Authorize again and sign in as {expected} (a private browser window avoids an account the browser remembers).",
                    mailbox.name
                )));
            }
        }
        self.secrets()
            .set(
                &SecretKey::new(&mailbox.id, SecretKind::RefreshToken),
                &SecretValue::new(refresh.expose()),
            )
            .await?;
        self.store()
            .set_mailbox_connection(&mailbox.id, Some(&account))
            .await?;
        let granted = granted_permissions(&tokens);
        let missing = missing_permissions(&granted, &required_permissions(access_method(&mailbox)));
        tracing::info!(mailbox = %mailbox.name, %account, "mailbox connected (delegated)");
        Ok(Connection {
            mailbox_id: mailbox.id,
            account,
            display_name,
            granted,
            missing,
        })
    }
}

/// The mailbox setting naming the account whose inbox a (non-shared) scan mailbox processes.
pub const EXPECTED_ACCOUNT_SETTING: &str = "expected_account";

/// The account a scan mailbox must be signed in as: named by the admin, and only for the
/// signed-in user's own inbox (a shared mailbox is opened by whichever delegate signs in).
pub(super) fn expected_account(mailbox: &Mailbox) -> Option<String> {
    if mailbox.method != MailboxMethod::Scan || mailbox.shared_mailbox.is_some() {
        return None;
    }
    mailbox
        .settings
        .get(EXPECTED_ACCOUNT_SETTING)
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
}

impl Core {
    /// Names (or, with `None`, forgets) the account whose inbox a scan mailbox processes: the
    /// sign-in pre-fills it and refuses any other account.
    pub async fn set_expected_account(
        &self,
        mailbox_id: &str,
        account: Option<&str>,
    ) -> Result<(), CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        if mailbox.method != MailboxMethod::Scan || mailbox.shared_mailbox.is_some() {
            return Err(CoreError::InvalidInput(
                "Only a scan mailbox of the signed-in user's own inbox has an expected account (a shared mailbox is opened by any delegate; a Webhooks mailbox has its address).".into(),
            ));
        }
        let account = account.map(str::trim).filter(|a| !a.is_empty());
        if let Some(a) = account {
            if !mailroom_mailproc::Mailbox::new(a, None).is_some_and(|m| m.is_valid_addr_spec()) {
                return Err(CoreError::InvalidInput(format!(
                    "'{a}' is not an account name; write the user's sign-in address, e.g. support@contoso.com."
                )));
            }
        }
        let mut settings = match mailbox.settings {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        match account {
            Some(a) => settings.insert(EXPECTED_ACCOUNT_SETTING.into(), a.to_lowercase().into()),
            None => settings.remove(EXPECTED_ACCOUNT_SETTING),
        };
        self.store()
            .set_mailbox_settings(mailbox_id, &serde_json::Value::Object(settings))
            .await?;
        Ok(())
    }
}
