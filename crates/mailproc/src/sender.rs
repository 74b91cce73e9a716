//! Sender matching against a snapshot of the PSA directory.

use serde::{Deserialize, Serialize};

use crate::parsed::Mailbox;

/// A PSA end user, as the engine's directory snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUser {
    /// User id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Primary address (`emailaddress`).
    pub email: String,
    /// Further addresses (`email2`, `email3`).
    #[serde(default)]
    pub other_emails: Vec<String>,
    /// Site id.
    pub site_id: i64,
    /// Client id.
    pub client_id: i64,
    /// Inactive users are matched only when no active user has the address.
    #[serde(default)]
    pub inactive: bool,
}

/// A PSA site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySite {
    /// Site id.
    pub id: i64,
    /// Site name.
    pub name: String,
    /// Client id.
    pub client_id: i64,
    /// `emaildomain`: one or more domains separated by `,`, `;` or spaces
    /// (a leading `@` or `*.` is ignored).
    #[serde(default)]
    pub emaildomain: String,
    /// Inactive sites never receive new users.
    #[serde(default)]
    pub inactive: bool,
}

impl DirectorySite {
    /// The site's domains, lower-cased, without `@` / `*.` prefixes.
    pub fn domains(&self) -> Vec<String> {
        self.emaildomain
            .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .map(|d| {
                d.trim()
                    .trim_start_matches('*')
                    .trim_start_matches('@')
                    .trim_start_matches('.')
                    .trim_end_matches('.')
                    .to_lowercase()
            })
            .filter(|d| !d.is_empty())
            .collect()
    }
}

/// Snapshot of PSA users and sites.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// End users.
    pub users: Vec<DirectoryUser>,
    /// Sites.
    pub sites: Vec<DirectorySite>,
}

/// What to do with a sender that is not a known user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnknownSender {
    /// Create the user on the site whose email domain matches; if none
    /// matches, on the default site (when configured), else reject.
    #[default]
    CreateUserOnMatchingSite,
    /// Always create the user on the default site.
    CreateUserOnDefaultSite,
    /// Log the ticket against the default user.
    UseDefaultUser,
    /// Do not accept mail from unknown senders.
    Reject,
}

/// Sender-matching settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SenderPolicy {
    /// Behaviour for unknown senders.
    pub unknown_sender: UnknownSender,
    /// Default site for new users (HaloPSA `newuser_default_site`).
    pub default_site_id: Option<i64>,
    /// Default user (HaloPSA `defaultuserid`).
    pub default_user_id: Option<i64>,
    /// Let `mail.fabrikam.test` match a site with domain `fabrikam.test`.
    pub match_subdomains: bool,
}

/// A person's name split for user creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName {
    /// Full display name (`name`).
    pub display: String,
    /// First name (`firstname`).
    pub first: String,
    /// Surname (`surname`); may be empty.
    pub last: String,
}

/// Result of [`match_sender`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SenderMatch {
    /// A known user.
    ExistingUser {
        /// User id.
        user_id: i64,
        /// Site id.
        site_id: i64,
        /// Client id.
        client_id: i64,
    },
    /// Create a user on the site whose email domain matched.
    NewUserOnSite {
        /// Site id.
        site_id: i64,
        /// Client id.
        client_id: i64,
        /// Name for the new user.
        name: PersonName,
        /// Address for the new user.
        email: String,
    },
    /// Create a user on the default site.
    NewUserOnDefaultSite {
        /// Site id.
        site_id: i64,
        /// Client id (`None` when the default site is not in the snapshot).
        client_id: Option<i64>,
        /// Name for the new user.
        name: PersonName,
        /// Address for the new user.
        email: String,
    },
    /// Use the configured default user.
    DefaultUser {
        /// User id.
        user_id: i64,
        /// Site id.
        site_id: i64,
        /// Client id.
        client_id: i64,
    },
    /// Do not accept the sender.
    Reject {
        /// Admin-readable reason.
        reason: String,
    },
}

/// Matches `sender` to the directory. Its display name is used for new
/// users (falling back to the address local part).
///
/// Known users win (active before inactive, then lowest id); otherwise
/// [`SenderPolicy::unknown_sender`] decides. For domain matching an exact
/// domain beats a subdomain match, a longer domain beats a shorter one, then
/// the lowest site id wins; inactive sites are ignored.
pub fn match_sender(sender: &Mailbox, dir: &Directory, policy: &SenderPolicy) -> SenderMatch {
    let address = sender.address.trim().to_lowercase();
    let display_name = sender.name.as_deref();
    if let Some(u) = find_user(&address, dir) {
        return SenderMatch::ExistingUser {
            user_id: u.id,
            site_id: u.site_id,
            client_id: u.client_id,
        };
    }
    let name = split_name(display_name, &address);
    let default_site = || -> Option<SenderMatch> {
        let site_id = policy.default_site_id?;
        Some(SenderMatch::NewUserOnDefaultSite {
            site_id,
            client_id: dir
                .sites
                .iter()
                .find(|s| s.id == site_id)
                .map(|s| s.client_id),
            name: name.clone(),
            email: address.clone(),
        })
    };
    match policy.unknown_sender {
        UnknownSender::CreateUserOnMatchingSite => {
            if let Some(site) = find_site(&address, dir, policy.match_subdomains) {
                return SenderMatch::NewUserOnSite {
                    site_id: site.id,
                    client_id: site.client_id,
                    name,
                    email: address,
                };
            }
            default_site().unwrap_or_else(|| SenderMatch::Reject {
                reason: format!(
                    "no site's email domain matches {address} and no default site for new users is configured; set a default site or add the domain to a site"
                ),
            })
        }
        UnknownSender::CreateUserOnDefaultSite => default_site().unwrap_or_else(|| SenderMatch::Reject {
            reason: "the mailbox creates unknown senders on the default site, but no default site is configured".into(),
        }),
        UnknownSender::UseDefaultUser => match policy.default_user_id {
            Some(id) => match dir.users.iter().find(|u| u.id == id) {
                Some(u) => SenderMatch::DefaultUser {
                    user_id: u.id,
                    site_id: u.site_id,
                    client_id: u.client_id,
                },
                None => SenderMatch::Reject {
                    reason: format!("the default user {id} is not in the PSA directory (deleted?); choose another default user"),
                },
            },
            None => SenderMatch::Reject {
                reason: "the mailbox uses a default user for unknown senders, but none is configured".into(),
            },
        },
        UnknownSender::Reject => SenderMatch::Reject {
            reason: format!("{address} is not a known user and the mailbox rejects unknown senders"),
        },
    }
}

fn find_user<'a>(address: &str, dir: &'a Directory) -> Option<&'a DirectoryUser> {
    let matches = |u: &&DirectoryUser| {
        std::iter::once(&u.email)
            .chain(u.other_emails.iter())
            .any(|e| e.trim().eq_ignore_ascii_case(address))
    };
    dir.users
        .iter()
        .filter(matches)
        .min_by_key(|u| (u.inactive, u.id))
}

/// The site whose email domain matches `address` (see [`match_sender`]).
pub fn find_site<'a>(
    address: &str,
    dir: &'a Directory,
    match_subdomains: bool,
) -> Option<&'a DirectorySite> {
    let domain = address.rsplit_once('@')?.1.trim().to_lowercase();
    if domain.is_empty() {
        return None;
    }
    let mut best: Option<((u8, usize, i64), &DirectorySite)> = None;
    for site in dir.sites.iter().filter(|s| !s.inactive) {
        for d in site.domains() {
            let rank = if d == domain {
                Some(0u8)
            } else if match_subdomains && domain.ends_with(&format!(".{d}")) {
                Some(1u8)
            } else {
                None
            };
            if let Some(r) = rank {
                let key = (r, usize::MAX - d.len(), site.id);
                if best.as_ref().map(|(k, _)| key < *k).unwrap_or(true) {
                    best = Some((key, site));
                }
            }
        }
    }
    best.map(|(_, s)| s)
}

/// Splits a display name into first and last name.
///
/// `Smith, Pat` → Pat / Smith; `Pat van der Berg` → Pat / van der Berg;
/// quotes and a trailing `(Company)` or `[EXTERNAL]` are removed; with no
/// usable name the address local part is used (`pat.smith` → Pat / Smith).
pub fn split_name(display_name: Option<&str>, address: &str) -> PersonName {
    let mut n = display_name
        .unwrap_or("")
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string();
    // Drop bracketed decorations: "Pat Smith (Fabrikam)", "[EXTERNAL] Pat".
    for (open, close) in [('(', ')'), ('[', ']')] {
        while let (Some(a), Some(b)) = (n.find(open), n.rfind(close)) {
            if a < b {
                n.replace_range(a..=b, " ");
            } else {
                break;
            }
        }
    }
    let mut n = n.split_whitespace().collect::<Vec<_>>().join(" ");
    if n.contains('@') || n.is_empty() {
        let local = address.split('@').next().unwrap_or("");
        n = local
            .split(['.', '_', '-', '+'])
            .filter(|p| !p.is_empty())
            .map(capitalise)
            .collect::<Vec<_>>()
            .join(" ");
    }
    if n.is_empty() {
        n = address.to_string();
    }
    if let Some((last, first)) = n.split_once(',') {
        let (first, last) = (first.trim(), last.trim());
        if !first.is_empty() && !last.is_empty() {
            return PersonName {
                display: format!("{first} {last}"),
                first: first.into(),
                last: last.into(),
            };
        }
        n = n
            .replace(',', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
    }
    match n.split_once(' ') {
        Some((first, last)) => PersonName {
            display: n.clone(),
            first: first.trim().into(),
            last: last.trim().into(),
        },
        None => PersonName {
            display: n.clone(),
            first: n,
            last: String::new(),
        },
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
