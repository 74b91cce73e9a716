//! What the guides only advise, checked (issue 25): the blast radius of an app-only
//! application — can it read a mailbox that must stay out of its reach (a *canary* the admin
//! names)? — and the identity of a Webhooks mailbox: does its address belong to the user the
//! directory names? Each finding has a state, what was found and the fix beside it.

use chrono::{DateTime, Utc};
use mailroom_graph::{granted_permissions, GraphClient, GraphErrorKind, MailboxRef};
use mailroom_store::{Mailbox, MailboxMethod};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Core, CoreError};

/// The mailbox setting naming the canary.
pub const CANARY_SETTING: &str = "canary_address";

/// How often the engine checks every mailbox again on its own.
pub const RECHECK_EVERY: chrono::Duration = chrono::Duration::hours(24);

/// A finding of *Test connection*, *Check now* or the daily re-check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxCheck {
    /// `blast_radius`, `identity` (Webhooks mailboxes), `sign_in` (scan mailboxes of a user's
    /// own inbox).
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

/// A mailbox's findings and when they were made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxChecks {
    pub mailbox_id: String,
    /// When the checks last ran (`None`: never).
    pub checked_at: Option<DateTime<Utc>>,
    /// When the engine runs them again on its own.
    pub next_check_at: Option<DateTime<Utc>>,
    pub checks: Vec<MailboxCheck>,
}

impl MailboxChecks {
    fn new(mailbox_id: &str, checked_at: Option<DateTime<Utc>>, checks: Vec<MailboxCheck>) -> Self {
        MailboxChecks {
            mailbox_id: mailbox_id.to_string(),
            checked_at,
            next_check_at: checked_at.map(|at| at + RECHECK_EVERY),
            checks,
        }
    }
}

impl Core {
    /// The checks of a mailbox with a token already in hand (Test connection has one).
    pub(super) async fn run_checks(
        &self,
        mailbox: &Mailbox,
        graph_root: url::Url,
        tokens: std::sync::Arc<dyn mailroom_graph::TokenProvider>,
        granted: &[String],
    ) -> Vec<MailboxCheck> {
        // The other mailboxes Mailroom serves with the same application are in its reach on
        // purpose: never sampled.
        let served: Vec<String> = self
            .store()
            .mailboxes()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.id != mailbox.id && m.client_id.eq_ignore_ascii_case(&mailbox.client_id))
            .filter_map(|m| m.mailbox_address)
            .collect();
        [
            identity(mailbox, graph_root.clone(), tokens.clone(), granted).await,
            blast_radius(mailbox, graph_root, tokens, granted, &served).await,
            who_signs_in(mailbox),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Records a mailbox's findings, made at `at`.
    pub(super) async fn record_checks(
        &self,
        mailbox_id: &str,
        checks: &[MailboxCheck],
        at: DateTime<Utc>,
    ) -> Result<MailboxChecks, CoreError> {
        // As the store keeps it (milliseconds).
        let at = chrono::SubsecRound::trunc_subsecs(at, 3);
        let findings = serde_json::to_value(checks).unwrap_or(Value::Null);
        self.store()
            .record_mailbox_checks(mailbox_id, &findings, at)
            .await?;
        Ok(MailboxChecks::new(mailbox_id, Some(at), checks.to_vec()))
    }

    /// *Check now* (and the daily re-check): runs a mailbox's checks and records them. A
    /// Webhooks mailbox's checks need its application's token; a scan mailbox's need none.
    pub async fn check_mailbox(
        &self,
        mailbox_id: &str,
        now: DateTime<Utc>,
    ) -> Result<MailboxChecks, CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        let checks = match mailbox.method {
            MailboxMethod::Scan => who_signs_in(&mailbox).into_iter().collect(),
            MailboxMethod::Webhook => {
                let (app, tokens) = self.tokens_for(&mailbox).await?;
                let provider = tokens.provider();
                provider
                    .access_token()
                    .await
                    .map_err(|e| CoreError::from(super::diagnosis::ConnectError::identity(&e)))?;
                let granted = tokens
                    .current()
                    .await
                    .as_ref()
                    .map(granted_permissions)
                    .unwrap_or_default();
                self.run_checks(&mailbox, app.cloud.graph_url(), provider, &granted)
                    .await
            }
        };
        self.record_checks(&mailbox.id, &checks, now).await
    }

    /// [`Core::check_mailbox`] at the current time (*Check now*).
    pub async fn check_mailbox_now(&self, mailbox_id: &str) -> Result<MailboxChecks, CoreError> {
        self.check_mailbox(mailbox_id, Utc::now()).await
    }

    /// The last recorded findings of a mailbox (none when it was never checked).
    pub async fn mailbox_checks(&self, mailbox_id: &str) -> Result<MailboxChecks, CoreError> {
        self.store().mailbox(mailbox_id).await?;
        Ok(match self.store().mailbox_checks(mailbox_id).await? {
            Some(recorded) => MailboxChecks::new(
                mailbox_id,
                Some(recorded.checked_at),
                serde_json::from_value(recorded.findings).unwrap_or_default(),
            ),
            None => MailboxChecks::new(mailbox_id, None, Vec::new()),
        })
    }

    /// The daily re-check: every enabled, connected mailbox whose checks are older than
    /// [`RECHECK_EVERY`] (or, never checked, that was connected longer ago) is checked again. Returns the findings that are now red, with the
    /// mailbox's name, for the error notifications; a mailbox that cannot be checked (no token)
    /// is skipped — its sign-in problem is notified on its own.
    pub async fn recheck_due_mailboxes(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Mailbox, MailboxCheck)>, CoreError> {
        let mut red = Vec::new();
        for mailbox in self.store().mailboxes().await? {
            if !mailbox.enabled || mailbox.connected_account.is_none() {
                continue;
            }
            let last = match self.store().mailbox_checks(&mailbox.id).await? {
                Some(last) => Some(last.checked_at),
                None => mailbox.connected_at,
            };
            let due = last.is_none_or(|at| at + RECHECK_EVERY <= now);
            if !due {
                continue;
            }
            match self.check_mailbox(&mailbox.id, now).await {
                Ok(found) => red.extend(
                    found
                        .checks
                        .into_iter()
                        .filter(|c| c.state == "failed")
                        .map(|c| (mailbox.clone(), c)),
                ),
                Err(e) => tracing::info!(mailbox = %mailbox.name, "mailbox checks not run: {e}"),
            }
        }
        Ok(red)
    }

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

/// How many other mailboxes the blast-radius check samples when no canary is named and the
/// application may read the directory.
pub const SAMPLED_MAILBOXES: usize = 3;

/// What reading one other mailbox's inbox with the application's token gave.
enum Reach {
    /// The inbox was read.
    Read,
    /// Refused with Graph's documented answer for an Application Access Policy.
    Refused(Option<String>),
    /// No such mailbox (or a user without one).
    NoMailbox(String, Option<String>),
    /// Any other answer: shown verbatim.
    Other(mailroom_graph::GraphError),
}

async fn reach(
    graph_root: &url::Url,
    tokens: &std::sync::Arc<dyn mailroom_graph::TokenProvider>,
    address: &str,
) -> Reach {
    let graph = GraphClient::new(
        graph_root.clone(),
        tokens.clone(),
        MailboxRef::User(address.to_string()),
    );
    let read = graph.probe_inbox().await;
    match read {
        Ok(()) => Reach::Read,
        Err(e) if refused_by_access_policy(&e) => Reach::Refused(e.request_id),
        Err(e)
            if e.kind == GraphErrorKind::NotFound
                || e.code.as_deref() == Some("ErrorInvalidUser") =>
        {
            Reach::NoMailbox(e.message, e.request_id)
        }
        Err(e) => Reach::Other(e),
    }
}

/// The mailboxes to try when no canary is named: the first few users of the directory other
/// than the processed mailbox (`None` when the directory cannot be listed).
async fn sample_mailboxes(
    graph_root: &url::Url,
    tokens: &std::sync::Arc<dyn mailroom_graph::TokenProvider>,
    target: &str,
    served: &[String],
) -> Result<Vec<String>, mailroom_graph::GraphError> {
    let graph = GraphClient::new(
        graph_root.clone(),
        tokens.clone(),
        MailboxRef::User(target.to_string()),
    );
    let users = graph
        .users(SAMPLED_MAILBOXES * 4, &["id", "userPrincipalName", "mail"])
        .await?;
    Ok(users
        .into_iter()
        .filter_map(|u| u.mail.or(u.user_principal_name))
        .filter(|a| !a.eq_ignore_ascii_case(target))
        .filter(|a| !served.iter().any(|s| s.eq_ignore_ascii_case(a)))
        .take(SAMPLED_MAILBOXES)
        .collect())
}

/// The blast radius of a Webhooks mailbox's application: its token reads the canary's inbox
/// (red, with both remedies), is refused with Graph's documented `ErrorAccessDenied` for an
/// Application Access Policy (green), or gets an answer whose shape is not documented (shown
/// verbatim with its request id, never taken as green). Without a canary, an application that
/// may read the directory has a few other mailboxes sampled instead (not those Mailroom serves
/// with the same application, `served`), and the finding names them.
pub(super) async fn blast_radius(
    mailbox: &Mailbox,
    graph_root: url::Url,
    tokens: std::sync::Arc<dyn mailroom_graph::TokenProvider>,
    granted: &[String],
    served: &[String],
) -> Option<MailboxCheck> {
    if mailbox.method != MailboxMethod::Webhook {
        return None;
    }
    let title = "Other mailboxes out of the application's reach".to_string();
    let target = mailbox.mailbox_address.clone().unwrap_or_default();
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
    let canary = mailbox
        .settings
        .get(CANARY_SETTING)
        .and_then(Value::as_str)
        .map(str::to_string);
    let (tried, sampled) = match canary {
        Some(c) => (vec![c], false),
        None if may_read_directory(granted) => {
            match sample_mailboxes(&graph_root, &tokens, &target, served).await {
                Ok(found) if found.is_empty() => {
                    return Some(check(
                        "not_checked",
                        "The directory lists no other mailbox to try.".into(),
                        Some(NAME_A_CANARY.into()),
                        None,
                    ))
                }
                Ok(found) => (found, true),
                Err(e) => {
                    return Some(check(
                        "not_checked",
                        format!("Listing the directory's users to sample other mailboxes failed: {}", e.message),
                        Some(NAME_A_CANARY.into()),
                        e.request_id,
                    ))
                }
            }
        }
        None => {
            return Some(check(
                "not_checked",
                "No mailbox that must stay out of reach is named.".into(),
                Some(format!("{NAME_A_CANARY} Or grant the application User.Read.All: Test connection then samples a few other mailboxes of the directory.")),
                None,
            ))
        }
    };
    let mut outcomes = Vec::new();
    for address in &tried {
        outcomes.push((address.clone(), reach(&graph_root, &tokens, address).await));
    }
    let names = tried.join(", ");
    let how = if sampled {
        format!(" (sampled from the directory: {names})")
    } else {
        String::new()
    };
    let refused_names: Vec<&str> = outcomes
        .iter()
        .filter(|(_, r)| matches!(r, Reach::Refused(_)))
        .map(|(a, _)| a.as_str())
        .collect();
    if let Some((read, _)) = outcomes.iter().find(|(_, r)| matches!(r, Reach::Read)) {
        let detail = if refused_names.is_empty() {
            format!("This application read {read}'s inbox{how}: it can read every mailbox in your tenant, not only {target}.")
        } else {
            format!(
                "This application read {read}'s inbox{how}, though {} was refused: a policy restricts it, but not to {target} alone.",
                refused_names.join(", ")
            )
        };
        return Some(check(
            "failed",
            detail,
            Some(restrict_app_fix(&mailbox.client_id, &target, read)),
            None,
        ));
    }
    if let Some((address, Reach::Other(e))) =
        outcomes.iter().find(|(_, r)| matches!(r, Reach::Other(_)))
    {
        return Some(check(
            "unknown",
            format!(
                "Reading {address} got an answer Mailroom cannot interpret as restricted: HTTP {} {} — {}",
                e.status.map(|s| s.to_string()).unwrap_or_else(|| "(none)".into()),
                e.code.clone().unwrap_or_default(),
                e.message
            ),
            Some(format!(
                "Check the restriction in Exchange Online: Test-ApplicationAccessPolicy -Identity {address} -AppId {} (or Test-ServicePrincipalAuthorization for RBAC for Applications).",
                mailbox.client_id
            )),
            e.request_id.clone(),
        ));
    }
    let refused: Vec<(&String, &Option<String>)> = outcomes
        .iter()
        .filter_map(|(a, r)| match r {
            Reach::Refused(id) => Some((a, id)),
            _ => None,
        })
        .collect();
    if refused.is_empty() || (!sampled && refused.len() < outcomes.len()) {
        // Every address tried (or the named canary) has no mailbox.
        let (address, message, request_id) = outcomes
            .iter()
            .find_map(|(a, r)| match r {
                Reach::NoMailbox(m, id) => Some((a.clone(), m.clone(), id.clone())),
                _ => None,
            })
            .unwrap_or_default();
        return Some(check(
            "not_checked",
            format!("{address} is not a mailbox of this tenant ({message})."),
            Some("Name a mailbox that exists and must stay out of reach.".into()),
            request_id,
        ));
    }
    let shown: Vec<&str> = refused.iter().map(|(a, _)| a.as_str()).collect();
    Some(check(
        "ok",
        format!(
            "Restricted: reading {} was refused (an Application Access Policy keeps {} out){}.",
            shown.join(", "),
            if shown.len() == 1 { "it" } else { "them" },
            if sampled {
                ", sampled from the directory"
            } else {
                ""
            }
        ),
        None,
        refused[0].1.clone(),
    ))
}

const NAME_A_CANARY: &str = "Name a mailbox that must stay out of reach (a canary such as the CEO's mailbox) in the mailbox's safety checks: Test connection then tries to read it with this application's token.";

/// Whether the token's permissions let it read the directory's users.
fn may_read_directory(granted: &[String]) -> bool {
    granted
        .iter()
        .any(|g| DIRECTORY_READ.iter().any(|d| g.eq_ignore_ascii_case(d)))
}

/// Who signs in to a scan mailbox of a user's own inbox: the account the admin named must be
/// the one connected. A shared mailbox is opened by whichever delegate signs in (its Full
/// Access is what counts), so it has no such check.
pub(super) fn who_signs_in(mailbox: &Mailbox) -> Option<MailboxCheck> {
    if mailbox.method != MailboxMethod::Scan || mailbox.shared_mailbox.is_some() {
        return None;
    }
    let check = |state: &str, detail: String, fix: Option<String>| MailboxCheck {
        id: "sign_in".into(),
        title: "Who signs in".into(),
        state: state.into(),
        detail,
        fix,
        request_id: None,
    };
    let expected = super::sign_in::expected_account(mailbox);
    let connected = mailbox.connected_account.clone();
    Some(match (expected, connected) {
        (None, Some(account)) => check(
            "not_checked",
            format!("{account} signed in: its inbox is processed. No account is named, so any account that signs in next would have its inbox processed instead."),
            Some(format!("Name {account} as the account that signs in: a sign-in by anyone else is then refused.")),
        ),
        (None, None) => check(
            "not_checked",
            "No account is named: whoever completes the sign-in has their inbox processed.".into(),
            Some("Name the account whose inbox Mailroom processes: the sign-in page is pre-filled with it and any other account is refused.".into()),
        ),
        (Some(expected), None) => check(
            "not_checked",
            format!("{expected} must sign in; nobody is signed in yet."),
            Some("Authorize, and sign in as that account.".into()),
        ),
        (Some(expected), Some(account)) if account.eq_ignore_ascii_case(&expected) => check(
            "ok",
            format!("{account} is signed in, the account named for this mailbox."),
            None,
        ),
        (Some(expected), Some(account)) => check(
            "failed",
            format!("{account} is signed in, but the account named for this mailbox is {expected}: {account}'s inbox is being processed."),
            Some(format!("Disconnect, then Authorize and sign in as {expected} (a private browser window avoids an account the browser remembers).")),
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
    if !may_read_directory(granted) {
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
            &[
                "id",
                "displayName",
                "userPrincipalName",
                "mail",
                "proxyAddresses",
                "accountEnabled",
            ],
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
            // A shared mailbox's account is disabled: say so, it is what admins expect there.
            let shared = user.other.get("accountEnabled") == Some(&Value::Bool(false));
            let kind = if shared {
                "the shared mailbox"
            } else {
                "the user"
            };
            if upn.to_lowercase() == wanted || mail.to_lowercase() == wanted || proxies.contains(&wanted) {
                Some(check(
                    "ok",
                    format!("{address} is {kind} {name} (user principal name {upn})."),
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
