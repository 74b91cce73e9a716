//! What the guides only advise, checked (issue 25): the blast radius of an app-only
//! application — can it read a mailbox that must stay out of its reach (a *canary* the admin
//! names)? — and the identity of a Webhooks mailbox: does its address belong to the user the
//! directory names? Each finding has a state, what was found and the fix beside it.

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
    /// `blast_radius`, `identity`.
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

/// Whether Graph refused a mailbox because an Application Access Policy keeps the app out:
/// `ErrorAccessDenied` with "Access to OData is disabled." (reference §7.1; a missing permission
/// says "Access is denied. Check credentials and try again." instead).
pub fn refused_by_access_policy(e: &mailroom_graph::GraphError) -> bool {
    e.kind == GraphErrorKind::AccessDenied && e.message.contains("OData is disabled")
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
        Err(e) if refused_by_access_policy(&e) => check(
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

/// Permissions that let an app-only token read a user's directory entry.
const DIRECTORY_READ: [&str; 3] = ["User.Read.All", "User.ReadBasic.All", "Directory.Read.All"];

/// The identity of a Webhooks mailbox: `GET /users/{address}` must resolve, and the address
/// must be the user's principal name, mail or one of its proxy addresses. Without a directory
/// permission the token cannot read the entry: not checked, with the grant that would allow it.
pub(super) async fn identity(
    mailbox: &Mailbox,
    graph_root: url::Url,
    tokens: std::sync::Arc<dyn mailroom_graph::TokenProvider>,
    granted: &[String],
) -> Option<MailboxCheck> {
    if mailbox.method != MailboxMethod::Webhook {
        return None;
    }
    let address = mailbox.mailbox_address.clone()?;
    let check = |state: &str, detail: String, fix: Option<String>, request_id: Option<String>| {
        MailboxCheck {
            id: "identity".into(),
            title: "The mailbox's identity".into(),
            state: state.into(),
            detail,
            fix,
            request_id,
        }
    };
    if !granted
        .iter()
        .any(|g| DIRECTORY_READ.iter().any(|d| g.eq_ignore_ascii_case(d)))
    {
        return Some(check(
            "not_checked",
            format!("The application may not read the directory, so Mailroom cannot confirm that {address} is the user principal name or an address of the mailbox's owner."),
            Some("Grant the application permission User.Read.All (with admin consent) to have Test connection check it.".into()),
            None,
        ));
    }
    let graph = GraphClient::new(graph_root, tokens, MailboxRef::User(address.clone()));
    match graph
        .user_selecting(
            &address,
            &["id", "displayName", "userPrincipalName", "mail", "proxyAddresses"],
        )
        .await
    {
        Ok(user) => {
            let wanted = address.to_lowercase();
            let upn = user.user_principal_name.clone().unwrap_or_default();
            let mail = user.mail.clone().unwrap_or_default();
            let proxies: Vec<String> = user
                .other
                .get("proxyAddresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|p| p.split_once(':').map_or(p, |(_, a)| a).to_lowercase())
                .collect();
            let name = user.display_name.clone().unwrap_or_default();
            if upn.to_lowercase() == wanted || mail.to_lowercase() == wanted || proxies.contains(&wanted) {
                Some(check(
                    "ok",
                    format!("{address} is {name} (user principal name {upn})."),
                    None,
                    None,
                ))
            } else {
                Some(check(
                    "failed",
                    format!("{address} resolves to {name}, whose user principal name is {upn} and whose addresses are {}: not this address.", if proxies.is_empty() { mail.clone() } else { proxies.join(", ") }),
                    Some(format!("Enter the mailbox's own address (its user principal name, {upn}, is safest) as the mailbox address, or add {address} to that mailbox in Exchange.")),
                    None,
                ))
            }
        }
        Err(e) if e.kind == GraphErrorKind::NotFound || e.code.as_deref() == Some("Request_ResourceNotFound") => Some(check(
            "failed",
            format!("No user or shared mailbox of this tenant has the address {address}."),
            Some("Check the mailbox address for a typo, and that the mailbox exists in this tenant.".into()),
            e.request_id.clone(),
        )),
        Err(e) => Some(check(
            "unknown",
            format!(
                "Reading {address}'s directory entry got HTTP {} {} — {}",
                e.status.map(|s| s.to_string()).unwrap_or_else(|| "(none)".into()),
                e.code.clone().unwrap_or_default(),
                e.message
            ),
            None,
            e.request_id.clone(),
        )),
    }
}
