//! What the guides only advise, checked (issue 25): the blast radius of an app-only
//! application — can it read a mailbox that must stay out of its reach (a *canary* the admin
//! names)? Each finding has a state, what was found and the fix beside it.

use mailroom_graph::{GraphClient, GraphErrorKind, MailboxRef, MessageQuery};
use mailroom_store::{Mailbox, MailboxMethod};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Core, CoreError};

/// The mailbox setting naming the canary.
pub const CANARY_SETTING: &str = "canary_address";

/// A finding of *Test connection*.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxCheck {
    /// `blast_radius`.
    pub id: String,
    pub title: String,
    /// `ok`, `failed`, `unknown` (an answer whose shape is not documented: shown verbatim), or
    /// `not_checked` (what the check needs is missing).
    pub state: String,
    pub detail: String,
    pub fix: Option<String>,
    /// Graph's request id of the answer the finding rests on.
    pub request_id: Option<String>,
}

/// The two remedies (reference §7), for a client id.
pub fn restrict_app_fix(client_id: &str, mailbox: &str, canary: &str) -> String {
    format!(
        "Restrict the application to the mailboxes it serves. Either an Application Access Policy (Exchange Online PowerShell): put {mailbox} in a mail-enabled security group, then New-ApplicationAccessPolicy -AppId {client_id} -PolicyScopeGroupId <group address> -AccessRight RestrictAccess -Description \"Mailroom\"; check with Test-ApplicationAccessPolicy -Identity {canary} -AppId {client_id} (it must say Denied; changes take up to 30 minutes). Or RBAC for Applications: New-ServicePrincipal -AppId {client_id} -ObjectId <enterprise app object id>, New-ManagementScope with a RecipientRestrictionFilter that matches {mailbox} only, New-ManagementRoleAssignment -App {client_id} -Role \"Application Mail.ReadWrite\" -CustomResourceScope <scope>, and remove the tenant-wide Mail.ReadWrite grant in Entra ID; check with Test-ServicePrincipalAuthorization."
    )
}

impl Core {
    /// Names (or, with `None`, forgets) the mailbox this one's application must not reach.
    pub async fn set_canary_address(
        &self,
        mailbox_id: &str,
        canary: Option<&str>,
    ) -> Result<(), CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        let canary = canary.map(str::trim).filter(|c| !c.is_empty());
        if let Some(c) = canary {
            let valid =
                mailroom_mailproc::Mailbox::new(c, None).is_some_and(|m| m.is_valid_addr_spec());
            if !valid {
                return Err(CoreError::InvalidInput(format!(
                    "'{c}' is not an email address; name a mailbox of your tenant, e.g. ceo@contoso.com."
                )));
            }
            if mailbox
                .mailbox_address
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(c))
            {
                return Err(CoreError::InvalidInput(
                    "The canary must be another mailbox than the one Mailroom processes.".into(),
                ));
            }
        }
        let mut settings = match mailbox.settings {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        match canary {
            Some(c) => settings.insert(CANARY_SETTING.into(), Value::String(c.to_lowercase())),
            None => settings.remove(CANARY_SETTING),
        };
        self.store()
            .set_mailbox_settings(mailbox_id, &Value::Object(settings))
            .await?;
        Ok(())
    }
}

/// The blast radius of a Webhooks mailbox's application: its token reads the canary's inbox
/// (red, with both remedies), is refused with Graph's documented `ErrorAccessDenied` for an
/// Application Access Policy (green), or gets an answer whose shape is not documented (shown
/// verbatim with its request id, never taken as green).
pub(super) async fn blast_radius(
    mailbox: &Mailbox,
    graph_root: url::Url,
    tokens: std::sync::Arc<dyn mailroom_graph::TokenProvider>,
) -> Option<MailboxCheck> {
    if mailbox.method != MailboxMethod::Webhook {
        return None;
    }
    let title = "Other mailboxes out of the application's reach".to_string();
    let target = mailbox.mailbox_address.clone().unwrap_or_default();
    let Some(canary) = mailbox
        .settings
        .get(CANARY_SETTING)
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Some(MailboxCheck {
            id: "blast_radius".into(),
            title,
            state: "not_checked".into(),
            detail: "No mailbox that must stay out of reach is named.".into(),
            fix: Some("Name one (a canary such as the CEO's mailbox) in the mailbox's settings: Test connection then tries to read it with this application's token.".into()),
            request_id: None,
        });
    };
    let graph = GraphClient::new(graph_root, tokens, MailboxRef::User(canary.clone()));
    let read = graph
        .list_messages(
            "inbox",
            &MessageQuery {
                top: Some(1),
                max_pages: Some(1),
                select: vec!["id".into()],
                ..Default::default()
            },
        )
        .await;
    let check = |state: &str, detail: String, fix: Option<String>, request_id: Option<String>| {
        MailboxCheck {
            id: "blast_radius".into(),
            title: title.clone(),
            state: state.into(),
            detail,
            fix,
            request_id,
        }
    };
    Some(match read {
        Ok(_) => check(
            "failed",
            format!("This application read {canary}'s inbox: it can read every mailbox in your tenant, not only {target}."),
            Some(restrict_app_fix(&mailbox.client_id, &target, &canary)),
            None,
        ),
        Err(e) if e.kind == GraphErrorKind::AccessDenied && e.message.contains("OData is disabled") => check(
            "ok",
            format!("Restricted: reading {canary} was refused (an Application Access Policy keeps it out)."),
            None,
            e.request_id.clone(),
        ),
        Err(e) if e.kind == GraphErrorKind::NotFound || e.code.as_deref() == Some("ErrorInvalidUser") => check(
            "not_checked",
            format!("{canary} is not a mailbox of this tenant ({}).", e.message),
            Some("Name a mailbox that exists and must stay out of reach.".into()),
            e.request_id.clone(),
        ),
        Err(e) => check(
            "unknown",
            format!(
                "Reading {canary} got an answer Mailroom cannot interpret as restricted: HTTP {} {} — {}",
                e.status.map(|s| s.to_string()).unwrap_or_else(|| "(none)".into()),
                e.code.clone().unwrap_or_default(),
                e.message
            ),
            Some(format!(
                "Check the restriction in Exchange Online: Test-ApplicationAccessPolicy -Identity {canary} -AppId {} (or Test-ServicePrincipalAuthorization for RBAC for Applications).",
                mailbox.client_id
            )),
            e.request_id.clone(),
        ),
    })
}
