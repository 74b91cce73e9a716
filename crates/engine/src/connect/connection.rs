//! App-only connect (probing the mailbox's inbox), Disconnect, and Test connection
//! (permissions probed one by one, the newest inbox messages).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use mailroom_graph::{
    granted_permissions, missing_permissions, required_permissions, GraphClient, GraphErrorKind,
    MessageQuery,
};
use mailroom_secrets::SecretKind;
use mailroom_store::{Mailbox, MailboxMethod};
use serde::Serialize;

use super::checks::MailboxCheck;
use super::credentials::{credential_warning, CredentialWarning};
use super::diagnosis::{consent_missing, ConnectError};
use super::{access_method, display_ref, mailbox_ref};
use crate::{Core, CoreError};

/// The account a mailbox is connected as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    pub mailbox_id: String,
    /// The signed-in UPN (delegated) or the mailbox address (app-only).
    pub account: String,
    /// Display name of the signed-in user, when known.
    pub display_name: Option<String>,
    /// The permissions the token grants.
    pub granted: Vec<String>,
    /// Needed permissions the token does not grant.
    pub missing: Vec<String>,
}

/// One probe call for one needed permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionProbe {
    pub permission: String,
    /// Whether the token grants it.
    pub granted: bool,
    /// `ok`, `failed` or `not_probed` (a permission that can only be exercised by a side
    /// effect, e.g. sending mail, is checked against the token only).
    pub outcome: String,
    pub detail: String,
}

/// A message of the inbox listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboxMessage {
    pub subject: String,
    pub from: String,
    pub received: Option<DateTime<Utc>>,
}

/// The result of *Test connection*.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionTest {
    pub mailbox_id: String,
    /// The mailbox Graph calls address (`me` or `users/{upn}`).
    pub mailbox: String,
    pub messages: Vec<InboxMessage>,
    pub granted: Vec<String>,
    pub required: Vec<String>,
    pub missing: Vec<String>,
    pub probes: Vec<PermissionProbe>,
    pub warning: Option<CredentialWarning>,
    /// What the guides only advise, checked (the application's blast radius).
    pub checks: Vec<MailboxCheck>,
    /// Whether every probe passed and nothing is missing.
    pub ok: bool,
}

impl Core {
    /// Connects an app-only (webhook) mailbox: acquires a token with the stored secret or
    /// certificate and probes the mailbox's inbox. On success the mailbox address is recorded
    /// as the connected account.
    pub async fn connect_app_only(&self, mailbox_id: &str) -> Result<Connection, CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        if mailbox.method != MailboxMethod::Webhook {
            return Err(CoreError::InvalidInput(
                "Mailbox scan signs a user in: use Authorize, not Connect.".into(),
            ));
        }
        let (app, tokens) = self.tokens_for(&mailbox).await?;
        let target = mailbox_ref(&mailbox);
        let graph = GraphClient::new(app.cloud.graph_url(), tokens.provider(), target.clone());
        let address = mailbox.mailbox_address.clone().unwrap_or_default();
        let probe = graph.probe_inbox().await;
        let set = tokens.current().await;
        let granted = set.as_ref().map(granted_permissions).unwrap_or_default();
        let missing = missing_permissions(&granted, &required_permissions(access_method(&mailbox)));
        if let Err(e) = probe {
            if e.kind == GraphErrorKind::AccessDenied && !missing.is_empty() && set.is_some() {
                return Err(consent_missing(&missing, mailbox.method).into());
            }
            return Err(ConnectError::graph(&e, &address).into());
        }
        self.store()
            .set_mailbox_connection(&mailbox.id, Some(&address))
            .await?;
        tracing::info!(mailbox = %mailbox.name, "mailbox connected (app-only)");
        Ok(Connection {
            mailbox_id: mailbox.id,
            account: address,
            display_name: None,
            granted,
            missing,
        })
    }

    /// Disconnects: deletes the refresh token from the keyring and clears the connected account.
    /// A Webhooks mailbox's Graph subscription is cancelled first (best effort, logged).
    /// The app registration's own credential (secret/certificate) stays until the mailbox is
    /// removed.
    pub async fn disconnect_mailbox(&self, mailbox_id: &str) -> Result<Mailbox, CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        if mailbox.method == mailroom_store::MailboxMethod::Webhook {
            // While the credentials still work: no orphan subscription keeps posting.
            self.cancel_subscription_on_disconnect(&mailbox).await;
        }
        self.delete_secret(&mailbox.id, SecretKind::RefreshToken)
            .await?;
        self.store()
            .set_mailbox_connection(&mailbox.id, None)
            .await?;
        tracing::info!(mailbox = %mailbox.name, "mailbox disconnected");
        Ok(self.store().mailbox(&mailbox.id).await?)
    }

    /// *Test connection*: lists a few inbox messages, compares granted permissions with what
    /// the method needs, and probes each needed permission.
    pub async fn test_connection(&self, mailbox_id: &str) -> Result<ConnectionTest, CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        let (app, tokens) = self.tokens_for(&mailbox).await?;
        let target = mailbox_ref(&mailbox);
        let shown = display_ref(&target);
        let graph = GraphClient::new(app.cloud.graph_url(), tokens.provider(), target.clone());
        let listing = graph
            .list_messages(
                "inbox",
                &MessageQuery {
                    top: Some(5),
                    max_pages: Some(1),
                    select: vec![
                        "id".into(),
                        "subject".into(),
                        "from".into(),
                        "receivedDateTime".into(),
                    ],
                    orderby: Some("receivedDateTime desc".into()),
                    ..Default::default()
                },
            )
            .await;
        // A token failure is not a permission question: report it as such.
        if let Err(e) = &listing {
            if e.identity.is_some() {
                return Err(ConnectError::graph(e, &shown).into());
            }
        }
        let set = tokens.current().await;
        let granted = set.as_ref().map(granted_permissions).unwrap_or_default();
        let required = required_permissions(access_method(&mailbox));
        let missing = missing_permissions(&granted, &required);
        let missing_set: BTreeSet<&String> = missing.iter().collect();
        let mut probes = Vec::new();
        for permission in &required {
            let is_granted = !missing_set.contains(permission);
            let (outcome, detail) = match permission.as_str() {
                "Mail.ReadWrite" | "Mail.ReadWrite.Shared" => match &listing {
                    Ok(list) => (
                        "ok",
                        format!("listed {} inbox message(s) of {shown}", list.len()),
                    ),
                    Err(e) => ("failed", ConnectError::graph(e, &shown).to_string()),
                },
                "User.Read" => match graph.me().await {
                    Ok(me) => (
                        "ok",
                        format!(
                            "read the signed-in user ({})",
                            me.user_principal_name.unwrap_or_default()
                        ),
                    ),
                    Err(e) => ("failed", ConnectError::graph(&e, "me").to_string()),
                },
                "Contacts.Read" => match graph.probe_contacts().await {
                    Ok(Some(c)) => (
                        "ok",
                        format!(
                            "read the address book (first contact: {})",
                            c.display_name.unwrap_or_default()
                        ),
                    ),
                    Ok(None) => (
                        "ok",
                        "read the address book (its Contacts folder is empty)".to_string(),
                    ),
                    Err(e) => ("failed", ConnectError::graph(&e, &shown).to_string()),
                },
                _ => (
                    "not_probed",
                    if is_granted {
                        "granted by the token; only sending mail would exercise it".to_string()
                    } else {
                        "not granted by the token".to_string()
                    },
                ),
            };
            probes.push(PermissionProbe {
                permission: permission.clone(),
                granted: is_granted,
                outcome: outcome.to_string(),
                detail,
            });
        }
        let messages = listing
            .map(|list| {
                list.into_iter()
                    .map(|m| InboxMessage {
                        subject: m.subject.unwrap_or_default(),
                        from: m
                            .from
                            .and_then(|f| f.email_address.address)
                            .unwrap_or_default(),
                        received: m.received_date_time,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let checks: Vec<MailboxCheck> = self
            .run_checks(&mailbox, app.cloud.graph_url(), tokens.provider(), &granted)
            .await;
        self.record_checks(&mailbox.id, &checks, Utc::now()).await?;
        let ok = missing.is_empty() && probes.iter().all(|p| p.outcome != "failed");
        Ok(ConnectionTest {
            mailbox_id: mailbox.id.clone(),
            mailbox: shown,
            messages,
            granted,
            required,
            missing,
            probes,
            warning: credential_warning(&mailbox, Utc::now()),
            checks,
            ok,
        })
    }
}
