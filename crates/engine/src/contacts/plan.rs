//! The import's decisions, without I/O: for each contact — create (on which site), update
//! (which fields), unchanged, or skipped (and why) — from the address book, HaloPSA's users and
//! sites, and the import settings. The preview shows exactly this; the run carries it out.

use std::collections::HashMap;

use mailroom_psa::Site;
use serde::Serialize;
use serde_json::{Map, Value};

use super::fields::{contact_value, FieldKind, PsaUserField, CUSTOM_PREFIX};
use super::ImportSettings;

/// A contact as read from Outlook: its id, the folder it is in, and Graph's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceContact {
    pub id: String,
    pub folder: String,
    pub value: Value,
}

impl SourceContact {
    pub fn display_name(&self) -> String {
        contact_value(&self.value, "displayName")
            .or_else(|| {
                let parts: Vec<String> = ["givenName", "surname"]
                    .iter()
                    .filter_map(|k| contact_value(&self.value, k))
                    .collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            })
            .unwrap_or_else(|| "(no name)".into())
    }
}

/// One field an update changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: String,
    pub from: Option<String>,
    pub to: String,
}

/// What the import does with one contact.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// A new PSA user with these fields (site included).
    Create {
        fields: Map<String, Value>,
    },
    /// The PSA user with these changes (`fields`: what is posted with its id).
    Update {
        user_id: i64,
        changes: Vec<Change>,
        fields: Map<String, Value>,
    },
    Unchanged {
        user_id: i64,
        note: Option<String>,
    },
    Skip {
        reason: String,
    },
}

/// The decision for one contact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planned {
    pub contact_id: String,
    pub display_name: String,
    pub folder: String,
    /// The address the contact is matched and created by.
    pub email: Option<String>,
    /// Every valid address the mappings give it (lower case).
    pub addresses: Vec<String>,
    /// The site a new user goes on (or the existing user's).
    pub site_id: Option<i64>,
    pub site_name: Option<String>,
    #[serde(flatten)]
    pub action: Action,
}

/// HaloPSA's users, found by any of their addresses (lower case).
#[derive(Debug, Default)]
pub struct UserIndex {
    by_email: HashMap<String, Vec<usize>>,
    users: Vec<Map<String, Value>>,
}

const USER_EMAIL_FIELDS: [&str; 3] = ["emailaddress", "email2", "email3"];

/// A user field's value as text; `custom:<name>` reads the custom field of that name.
pub fn field_text(record: &Map<String, Value>, key: &str) -> Option<String> {
    let Some(name) = key.strip_prefix(CUSTOM_PREFIX) else {
        return text_of(record, key);
    };
    let field = record
        .get("customfields")?
        .as_array()?
        .iter()
        .find(|f| f.get("name").and_then(Value::as_str) == Some(name))?;
    match field.get("value")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether a listed record carries `key` at all (a list may leave fields out).
pub fn has_field(record: &Map<String, Value>, key: &str) -> bool {
    if key.starts_with(CUSTOM_PREFIX) {
        record.contains_key("customfields")
    } else {
        record.contains_key(key)
    }
}

/// The body of a `POST /Users` for these field values: custom fields as
/// `customfields: [{id, value}]`, the others by name.
fn body_of(values: &[(String, String)], fields: &[PsaUserField]) -> Map<String, Value> {
    let mut body = Map::new();
    let mut custom = Vec::new();
    for (key, value) in values {
        match fields
            .iter()
            .find(|f| f.key == *key)
            .and_then(|f| f.custom_id)
        {
            Some(id) => custom.push(serde_json::json!({"id": id, "value": value})),
            None => {
                body.insert(key.clone(), Value::String(value.clone()));
            }
        }
    }
    if !custom.is_empty() {
        body.insert("customfields".into(), Value::Array(custom));
    }
    body
}

pub fn text_of(record: &Map<String, Value>, key: &str) -> Option<String> {
    match record.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl UserIndex {
    pub fn new(users: Vec<Map<String, Value>>) -> Self {
        let mut index = Self::default();
        for user in users {
            index.insert(user);
        }
        index
    }

    /// Adds (or replaces, by id) a user.
    pub fn insert(&mut self, user: Map<String, Value>) {
        let id = user.get("id").and_then(Value::as_i64);
        let pos = match self
            .users
            .iter()
            .position(|u| id.is_some() && u.get("id").and_then(Value::as_i64) == id)
        {
            Some(pos) => {
                for list in self.by_email.values_mut() {
                    list.retain(|p| *p != pos);
                }
                self.users[pos] = user;
                pos
            }
            None => {
                self.users.push(user);
                self.users.len() - 1
            }
        };
        for key in USER_EMAIL_FIELDS {
            if let Some(address) = text_of(&self.users[pos], key) {
                let list = self.by_email.entry(address.to_lowercase()).or_default();
                if !list.contains(&pos) {
                    list.push(pos);
                }
            }
        }
    }

    /// The users having any of `addresses`, each once.
    pub fn matching(&self, addresses: &[String]) -> Vec<&Map<String, Value>> {
        let mut found: Vec<usize> = Vec::new();
        for a in addresses {
            for p in self.by_email.get(a).into_iter().flatten() {
                if !found.contains(p) {
                    found.push(*p);
                }
            }
        }
        found.iter().map(|p| &self.users[*p]).collect()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// A valid address, lower case (RFC 5322 addr-spec, as for senders).
fn valid_address(raw: &str) -> Option<String> {
    let mailbox = mailroom_mailproc::Mailbox::new(raw, None)?;
    mailbox
        .is_valid_addr_spec()
        .then(|| mailbox.address.clone())
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// The active site whose email domain is `domain` (or a parent of it); lowest id first.
pub fn site_for_domain<'a>(sites: &'a [Site], domain: &str) -> Option<&'a Site> {
    let domain = domain.to_lowercase();
    let mut matching: Vec<&Site> = sites
        .iter()
        .filter(|s| s.inactive != Some(true))
        .filter(|s| {
            s.emaildomain
                .as_deref()
                .unwrap_or("")
                .split([',', ';', ' '])
                .map(|d| d.trim().trim_start_matches('@').to_lowercase())
                .filter(|d| !d.is_empty())
                .any(|d| domain == d || domain.ends_with(&format!(".{d}")))
        })
        .collect();
    matching.sort_by_key(|s| s.id);
    matching.first().copied()
}

/// Decides every contact. Contacts are taken in the order given; of two with a shared
/// address the first wins and the second is a duplicate.
pub fn plan(
    contacts: &[SourceContact],
    users: &UserIndex,
    sites: &[Site],
    settings: &ImportSettings,
    fields: &[PsaUserField],
) -> Vec<Planned> {
    let kinds: HashMap<String, FieldKind> =
        fields.iter().map(|f| (f.key.clone(), f.kind)).collect();
    let mut claimed: HashMap<String, String> = HashMap::new();
    let excluded: Vec<String> = settings
        .excluded_domains
        .iter()
        .map(|d| d.trim().trim_start_matches('@').to_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    contacts
        .iter()
        .map(|c| {
            let mut planned = Planned {
                contact_id: c.id.clone(),
                display_name: c.display_name(),
                folder: c.folder.clone(),
                email: None,
                addresses: Vec::new(),
                site_id: None,
                site_name: None,
                action: Action::Skip {
                    reason: String::new(),
                },
            };
            let context = Context {
                users,
                sites,
                settings,
                kinds: &kinds,
                fields,
                excluded: &excluded,
            };
            planned.action = decide(c, &mut planned, &context, &mut claimed);
            planned
        })
        .collect()
}

/// What every decision reads.
struct Context<'a> {
    users: &'a UserIndex,
    sites: &'a [Site],
    settings: &'a ImportSettings,
    kinds: &'a HashMap<String, FieldKind>,
    fields: &'a [PsaUserField],
    excluded: &'a [String],
}

fn decide(
    c: &SourceContact,
    planned: &mut Planned,
    cx: &Context<'_>,
    claimed: &mut HashMap<String, String>,
) -> Action {
    let Context {
        users,
        sites,
        settings,
        kinds,
        fields,
        excluded,
    } = *cx;
    let skip = |reason: String| Action::Skip { reason };
    // The mapped values, and the addresses among them.
    let mut values: Vec<(String, FieldKind, String)> = Vec::new();
    let mut invalid: Vec<String> = Vec::new();
    for m in &settings.mappings {
        let Some(kind) = kinds.get(&m.psa).copied() else {
            continue;
        };
        let Some(value) = contact_value(&c.value, &m.outlook) else {
            continue;
        };
        if kind == FieldKind::Email {
            match valid_address(&value) {
                Some(a) => {
                    if !planned.addresses.contains(&a) {
                        planned.addresses.push(a.clone());
                    }
                    values.push((m.psa.clone(), kind, a));
                }
                None => invalid.push(value),
            }
        } else {
            values.push((m.psa.clone(), kind, value));
        }
    }
    let Some(primary) = planned.addresses.first().cloned() else {
        return skip(match invalid.first() {
            Some(bad) => format!("No valid email address ('{bad}' is not one)"),
            None => "No email address".into(),
        });
    };
    planned.email = Some(primary.clone());
    let domain = domain_of(&primary).to_string();
    if excluded
        .iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
    {
        return skip(format!("The domain {domain} is excluded from imports"));
    }
    if let Some(first) = planned.addresses.iter().find_map(|a| claimed.get(a)) {
        return skip(format!("Duplicate of {first} (the same address)"));
    }
    for a in &planned.addresses {
        claimed.insert(
            a.clone(),
            format!("{} in {}", planned.display_name, folder_label(&c.folder)),
        );
    }
    let matches = users.matching(&planned.addresses);
    if matches.len() > 1 {
        let ids: Vec<String> = matches
            .iter()
            .filter_map(|u| u.get("id").map(|v| v.to_string()))
            .collect();
        return skip(format!(
            "{} HaloPSA users have its addresses (ids {}); merge them in HaloPSA first",
            matches.len(),
            ids.join(", ")
        ));
    }
    if let Some(user) = matches.first() {
        let user_id = user.get("id").and_then(Value::as_i64).unwrap_or_default();
        planned.site_id = user
            .get("site_id")
            .and_then(Value::as_f64)
            .map(|s| s as i64);
        planned.site_name = text_of(user, "site_name");
        if !settings.update_existing {
            return Action::Unchanged {
                user_id,
                note: Some("Already a HaloPSA user (updating existing users is off)".into()),
            };
        }
        let changes: Vec<Change> = values
            .iter()
            .filter(|(_, kind, _)| *kind != FieldKind::SiteName)
            .filter_map(|(field, kind, to)| {
                let from = field_text(user, field);
                let same = from.as_deref().is_some_and(|f| {
                    if *kind == FieldKind::Email {
                        f.eq_ignore_ascii_case(to)
                    } else {
                        f == to
                    }
                });
                (!same).then(|| Change {
                    field: field.clone(),
                    from,
                    to: to.clone(),
                })
            })
            .collect();
        return if changes.is_empty() {
            Action::Unchanged {
                user_id,
                note: None,
            }
        } else {
            let posted: Vec<(String, String)> = changes
                .iter()
                .map(|c| (c.field.clone(), c.to.clone()))
                .collect();
            Action::Update {
                user_id,
                fields: body_of(&posted, fields),
                changes,
            }
        };
    }
    // A new user: its site by name (a `site` mapping), by email domain, else the default.
    let by_name = values
        .iter()
        .find(|(_, kind, _)| *kind == FieldKind::SiteName)
        .and_then(|(_, _, name)| {
            sites.iter().find(|s| {
                s.inactive != Some(true)
                    && s.name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        });
    let site = by_name
        .or_else(|| site_for_domain(sites, &domain))
        .or_else(|| {
            settings
                .default_site_id
                .and_then(|id| sites.iter().find(|s| s.id == id))
        });
    let Some(site) = site else {
        return skip(match settings.default_site_id {
            Some(id) => format!("No site has the domain {domain}, and the default site ({id}) no longer exists in HaloPSA"),
            None => format!("No site has the domain {domain}; choose a default site for new users"),
        });
    };
    planned.site_id = Some(site.id);
    planned.site_name = site.name.clone();
    let mut posted: Vec<(String, String)> = values
        .iter()
        .filter(|(_, kind, _)| *kind != FieldKind::SiteName)
        .map(|(field, _, value)| (field.clone(), value.clone()))
        .collect();
    if !posted.iter().any(|(k, _)| k == "name") {
        posted.push(("name".into(), planned.display_name.clone()));
    }
    posted.retain(|(k, _)| k != "emailaddress");
    posted.push(("emailaddress".into(), primary));
    let mut fields = body_of(&posted, fields);
    fields.insert("site_id".into(), Value::from(site.id));
    Action::Create { fields }
}

fn folder_label(folder: &str) -> String {
    if folder.is_empty() {
        "Contacts".into()
    } else {
        folder.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::fields::{default_mappings, psa_user_fields};
    use serde_json::json;

    fn site(id: i64, name: &str, domain: &str) -> Site {
        Site {
            id,
            name: Some(name.into()),
            emaildomain: Some(domain.into()),
            ..Site::default()
        }
    }

    fn contact(id: &str, name: &str, emails: &[&str]) -> SourceContact {
        SourceContact {
            id: id.into(),
            folder: String::new(),
            value: json!({
                "displayName": name,
                "givenName": name.split(' ').next(),
                "emailAddresses": emails.iter().map(|e| json!({"name": name, "address": e})).collect::<Vec<_>>(),
                "jobTitle": "Engineer",
            }),
        }
    }

    fn settings() -> ImportSettings {
        ImportSettings {
            mappings: default_mappings(),
            default_site_id: Some(12),
            update_existing: true,
            excluded_domains: vec!["mail.test".into()],
        }
    }

    fn sites() -> Vec<Site> {
        vec![
            site(10, "Fabrikam HQ", "fabrikam.test"),
            site(11, "Northwind", "northwind.test; nwtraders.test"),
            site(12, "Default Site", ""),
        ]
    }

    fn user(id: i64, email: &str, title: &str) -> Map<String, Value> {
        json!({"id": id, "name": "Pat Smith", "firstname": "Pat", "emailaddress": email, "title": title, "site_id": 10.0, "site_name": "Fabrikam HQ"})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn new_contacts_go_on_the_site_of_their_domain_or_the_default_site() {
        let out = plan(
            &[
                contact("1", "Pat Smith", &["Pat@Fabrikam.test"]),
                contact("2", "Dana Lee", &["dana@nwtraders.test"]),
                contact("3", "Casey Morgan", &["casey@adatum.test"]),
            ],
            &UserIndex::default(),
            &sites(),
            &settings(),
            &psa_user_fields(),
        );
        let sites: Vec<Option<i64>> = out.iter().map(|p| p.site_id).collect();
        assert_eq!(sites, [Some(10), Some(11), Some(12)]);
        let Action::Create { fields } = &out[0].action else {
            panic!("{:?}", out[0].action)
        };
        assert_eq!(fields["emailaddress"], "pat@fabrikam.test");
        assert_eq!(fields["name"], "Pat Smith");
        assert_eq!(fields["title"], "Engineer");
        assert_eq!(fields["site_id"], 10);
    }

    #[test]
    fn existing_users_are_updated_only_in_fields_that_differ() {
        let users = UserIndex::new(vec![user(100, "PAT@fabrikam.test", "Office Manager")]);
        let out = plan(
            &[contact("1", "Pat Smith", &["pat@fabrikam.test"])],
            &users,
            &sites(),
            &settings(),
            &psa_user_fields(),
        );
        let Action::Update {
            user_id, changes, ..
        } = &out[0].action
        else {
            panic!("{:?}", out[0].action)
        };
        assert_eq!(*user_id, 100);
        assert_eq!(
            changes,
            &[Change {
                field: "title".into(),
                from: Some("Office Manager".into()),
                to: "Engineer".into()
            }]
        );
        let users = UserIndex::new(vec![user(100, "pat@fabrikam.test", "Engineer")]);
        let out = plan(
            &[contact("1", "Pat Smith", &["pat@fabrikam.test"])],
            &users,
            &sites(),
            &settings(),
            &psa_user_fields(),
        );
        assert_eq!(
            out[0].action,
            Action::Unchanged {
                user_id: 100,
                note: None
            }
        );
        // Matched by a second address too; updates off leaves the user alone.
        let users = UserIndex::new(vec![user(100, "other@fabrikam.test", "x")]);
        let mut off = settings();
        off.update_existing = false;
        let out = plan(
            &[contact(
                "1",
                "Pat Smith",
                &["pat@fabrikam.test", "other@fabrikam.test"],
            )],
            &users,
            &sites(),
            &off,
            &psa_user_fields(),
        );
        assert!(matches!(
            out[0].action,
            Action::Unchanged {
                user_id: 100,
                note: Some(_)
            }
        ));
    }

    #[test]
    fn what_cannot_be_imported_is_skipped_with_the_reason() {
        let users = UserIndex::new(vec![
            user(100, "a@fabrikam.test", "x"),
            user(101, "b@fabrikam.test", "x"),
        ]);
        let mut none_default = settings();
        none_default.default_site_id = None;
        let out = plan(
            &[
                contact("1", "No Address", &[]),
                contact("2", "Bad Address", &["bad at fabrikam.test"]),
                contact("3", "Private", &["me@mail.test"]),
                contact("4", "Lee Chen", &["lee@fabrikam.test"]),
                contact("5", "Lee Chen again", &["LEE@fabrikam.test"]),
                contact("6", "Two Users", &["a@fabrikam.test", "b@fabrikam.test"]),
                contact("7", "Nowhere", &["x@adatum.test"]),
            ],
            &users,
            &sites(),
            &none_default,
            &psa_user_fields(),
        );
        let reasons: Vec<String> = out
            .iter()
            .map(|p| match &p.action {
                Action::Skip { reason } => reason.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(reasons[0], "No email address");
        assert!(
            reasons[1].contains("'bad at fabrikam.test' is not one"),
            "{}",
            reasons[1]
        );
        assert!(
            reasons[2].contains("mail.test is excluded"),
            "{}",
            reasons[2]
        );
        assert!(reasons[3].starts_with("Create"), "{}", reasons[3]);
        assert!(
            reasons[4].contains("Duplicate of Lee Chen in Contacts"),
            "{}",
            reasons[4]
        );
        assert!(reasons[5].contains("2 HaloPSA users"), "{}", reasons[5]);
        assert!(
            reasons[6].contains("choose a default site"),
            "{}",
            reasons[6]
        );
    }
}
