//! Contact imports: a mailbox's Outlook contacts into HaloPSA users, through field mappings,
//! matched by email address, new users put on the site of their email domain.
//!
//! - [`fields`]: the Outlook and HaloPSA fields, the default mappings and their checks.
//! - [`plan`]: the decisions (create / update / unchanged / skipped), without I/O — the preview.
//! - [`run`]: carrying a plan out in batches, with progress, cancellation, claims and resume.
//! - [`imports`]: imports in the running engine's background, and each mailbox's schedule.
//!
//! Invariants: one HaloPSA user per address — an address is claimed in the store before a user
//! is created for it, and a claim left without an answer is settled by reading HaloPSA again
//! before anything is created; a contact deleted in Outlook is reported, never deleted in the
//! PSA; a PSA user is only ever changed in mapped fields whose value differs.

pub mod fields;
pub mod imports;
pub mod plan;
pub mod run;

use mailroom_graph::{Contact, GraphClient};
use mailroom_psa::{PsaClient, Site};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connect::ConnectError;
use crate::{Core, CoreError};
use fields::{default_mappings, psa_user_fields, validate_mappings, FieldMapping, PsaUserField};
use plan::{plan, Planned, SourceContact, UserIndex};

const SETTINGS_KEY: &str = "contacts.import";

/// How contacts are imported (shared by every mailbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImportSettings {
    pub mappings: Vec<FieldMapping>,
    /// The site of a new user whose email domain matches no site.
    pub default_site_id: Option<i64>,
    /// Update existing users' mapped fields that differ (else leave them as they are).
    pub update_existing: bool,
    /// Contacts whose address is in these domains are skipped.
    pub excluded_domains: Vec<String>,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            mappings: default_mappings(),
            default_site_id: None,
            update_existing: true,
            excluded_domains: Vec::new(),
        }
    }
}

/// What the preview shows: every contact's decision and the counts.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub mailbox_id: String,
    pub contacts: Vec<Planned>,
    pub counts: PreviewCounts,
    /// HaloPSA users read to match against.
    pub psa_users: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PreviewCounts {
    pub create: usize,
    pub update: usize,
    pub unchanged: usize,
    pub skipped: usize,
}

impl PreviewCounts {
    pub fn of(planned: &[Planned]) -> Self {
        let mut c = Self::default();
        for p in planned {
            match p.action {
                plan::Action::Create { .. } => c.create += 1,
                plan::Action::Update { .. } => c.update += 1,
                plan::Action::Unchanged { .. } => c.unchanged += 1,
                plan::Action::Skip { .. } => c.skipped += 1,
            }
        }
        c
    }
}

fn to_source(contact: Contact, folder: &str) -> SourceContact {
    SourceContact {
        id: contact.id.clone(),
        folder: folder.to_string(),
        value: serde_json::to_value(&contact).unwrap_or(Value::Null),
    }
}

/// Reads every contact of every folder (the default folder first, then each folder depth
/// first, named by its path).
pub async fn read_address_book(
    graph: &GraphClient,
) -> Result<Vec<SourceContact>, mailroom_graph::GraphError> {
    let mut book: Vec<SourceContact> = graph
        .contacts()
        .await?
        .into_iter()
        .map(|c| to_source(c, ""))
        .collect();
    let folders = graph.contact_folders().await?;
    for f in &folders {
        let path = folder_path(&folders, f);
        for c in graph.folder_contacts(Some(&f.id)).await? {
            book.push(to_source(c, &path));
        }
    }
    Ok(book)
}

/// What changed in the address book since the stored delta links (a scheduled import).
#[derive(Debug, Clone, Default)]
pub struct AddressBookChanges {
    /// Contacts added or changed (every contact of a folder read from scratch).
    pub changed: Vec<SourceContact>,
    /// Ids of contacts deleted (or moved out of a folder and not into another one read).
    pub removed: Vec<String>,
    /// The delta link of each folder, to store once the run is done.
    pub cursors: Vec<(String, String)>,
}

/// Continues every folder's delta round from `stored` (one `$batch` request when nothing
/// changed); without stored links, lists the folders and reads each from scratch. A folder
/// whose link expired is read from scratch; one that no longer exists is dropped.
pub async fn read_address_book_changes(
    graph: &GraphClient,
    stored: &[(String, String)],
) -> Result<AddressBookChanges, mailroom_graph::GraphError> {
    use mailroom_graph::{DeltaCursor, GraphErrorKind};
    let cursors: Vec<(String, DeltaCursor)> = if stored.is_empty() {
        let folders = graph.contact_folders().await?;
        let default = match graph.probe_contacts().await? {
            Some(c) => c.parent_folder_id,
            None => folders.first().and_then(|f| f.parent_folder_id.clone()),
        };
        default
            .into_iter()
            .chain(folders.into_iter().map(|f| f.id))
            .map(|id| (id, DeltaCursor::Initial))
            .collect()
    } else {
        stored
            .iter()
            .map(|(f, l)| (f.clone(), DeltaCursor::Link(l.clone())))
            .collect()
    };
    let mut out = AddressBookChanges::default();
    for (folder, round) in graph.contact_delta_rounds(&cursors).await? {
        let round = match round {
            Err(e) if e.kind == GraphErrorKind::SyncStateNotFound => {
                graph
                    .contact_delta_round(&folder, &DeltaCursor::Initial)
                    .await?
            }
            Err(e) if e.kind == GraphErrorKind::NotFound => continue,
            other => other?,
        };
        out.changed
            .extend(round.contacts.into_iter().map(|c| to_source(c, "")));
        out.removed.extend(round.removed_ids);
        if let DeltaCursor::Link(link) = round.next {
            out.cursors.push((folder, link));
        }
    }
    // A contact moved between folders is removed from one and added to the other.
    out.removed
        .retain(|id| !out.changed.iter().any(|c| c.id == *id));
    Ok(out)
}

/// `Customers/Key accounts` for a nested folder.
fn folder_path(
    all: &[mailroom_graph::ContactFolder],
    folder: &mailroom_graph::ContactFolder,
) -> String {
    let mut names = vec![folder.display_name.clone()];
    let mut parent = folder.parent_folder_id.clone();
    while let Some(p) = parent {
        match all.iter().find(|f| f.id == p) {
            Some(f) if names.len() < 16 => {
                names.push(f.display_name.clone());
                parent = f.parent_folder_id.clone();
            }
            _ => break,
        }
    }
    names.reverse();
    names.join("/")
}

/// What the import reads from HaloPSA: its users (indexed by address), sites and the user
/// fields a mapping can write.
pub struct PsaDirectory {
    pub users: UserIndex,
    pub sites: Vec<Site>,
    pub fields: Vec<PsaUserField>,
}

/// Reads HaloPSA's users and sites, and the user fields (custom ones from a user's record).
pub async fn read_psa_directory(psa: &PsaClient) -> Result<PsaDirectory, mailroom_psa::PsaError> {
    let sites = psa.list_sites(None).await?;
    let records = psa.user_records().await?;
    let first = records
        .first()
        .and_then(|u| u.get("id"))
        .and_then(Value::as_i64);
    let fields = psa_fields_of(psa, first).await?;
    let users = UserIndex::new(records);
    Ok(PsaDirectory {
        users,
        sites,
        fields,
    })
}

/// The HaloPSA user fields a mapping can write: the `Users` schema's, and the custom fields
/// one user's record lists (`GET /Users/{id}`; HaloPSA has no users yet: none).
pub async fn read_psa_fields(psa: &PsaClient) -> Result<Vec<PsaUserField>, mailroom_psa::PsaError> {
    psa_fields_of(psa, psa.any_user_id().await?).await
}

/// [`read_psa_fields`] from a user already known (`None`: HaloPSA has no users yet).
async fn psa_fields_of(
    psa: &PsaClient,
    user_id: Option<i64>,
) -> Result<Vec<PsaUserField>, mailroom_psa::PsaError> {
    let mut fields = psa_user_fields();
    if let Some(id) = user_id {
        fields.extend(fields::custom_fields_of(&psa.user_record(id).await?));
    }
    Ok(fields)
}

/// Reads in whole the users an update is planned for because their listed record lacks a
/// field the update would set (HaloPSA's lists may carry fewer fields than a single read), so
/// that a field the list left out is not taken for an empty one.
async fn complete_matched_users(
    psa: &PsaClient,
    directory: &mut PsaDirectory,
    contacts: &[SourceContact],
    settings: &ImportSettings,
) -> Result<(), mailroom_psa::PsaError> {
    let first = plan(
        contacts,
        &directory.users,
        &directory.sites,
        settings,
        &directory.fields,
    );
    let mut incomplete: Vec<i64> = Vec::new();
    for p in &first {
        let plan::Action::Update {
            user_id, changes, ..
        } = &p.action
        else {
            continue;
        };
        let listed = directory.users.matching(&p.addresses);
        if listed
            .first()
            .is_some_and(|u| changes.iter().any(|c| !plan::has_field(u, &c.field)))
        {
            incomplete.push(*user_id);
        }
    }
    for id in incomplete {
        let whole: Map<String, Value> = psa.user_record(id).await?;
        directory.users.insert(whole);
    }
    Ok(())
}

/// A Graph failure while reading the address book, in the admin's terms: a refused read
/// names the permission and where to grant it.
pub(crate) fn address_book_error(
    e: mailroom_graph::GraphError,
    mailbox: &mailroom_store::Mailbox,
) -> CoreError {
    use mailroom_store::MailboxMethod;
    if e.kind != mailroom_graph::GraphErrorKind::AccessDenied {
        return ConnectError::graph(&e, &mailbox.name).into();
    }
    if crate::connect::checks::refused_by_access_policy(&e) {
        return CoreError::NotConfigured(format!(
            "Microsoft 365 refused to read {}'s contacts: an Application Access Policy keeps this app registration out of the mailbox ({}). Add the mailbox to the policy's mail-enabled security group, or change the policy (Get-ApplicationAccessPolicy; Test-ApplicationAccessPolicy -Identity <mailbox> -AppId <client id>).",
            mailbox.name, e.message
        ));
    }
    let fix = match (mailbox.method, mailbox.shared_mailbox.is_some()) {
        (MailboxMethod::Webhook, _) => "add the application permission Contacts.Read to the app registration and grant admin consent",
        (MailboxMethod::Scan, true) => "add the delegated permission Contacts.Read.Shared to the app registration, then Authorize again on the Incoming tab (the signed-in user needs access to the shared mailbox)",
        (MailboxMethod::Scan, false) => "add the delegated permission Contacts.Read to the app registration, then Authorize again on the Incoming tab",
    };
    CoreError::NotConfigured(format!(
        "Microsoft 365 refused to read {}'s contacts ({}). To import contacts, {fix}.",
        mailbox.name, e.message
    ))
}

impl Core {
    /// Marks a mailbox as one contacts are imported from: its sign-in asks for the contacts
    /// permission and *Test connection* checks it.
    pub async fn mark_contact_import(&self, mailbox_id: &str) -> Result<(), CoreError> {
        let mailbox = self.store().mailbox(mailbox_id).await?;
        if mailbox
            .settings
            .get("contact_import")
            .and_then(Value::as_bool)
            == Some(true)
        {
            return Ok(());
        }
        let mut settings = match mailbox.settings {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        settings.insert("contact_import".into(), Value::Bool(true));
        self.store()
            .set_mailbox_settings(mailbox_id, &Value::Object(settings))
            .await?;
        Ok(())
    }

    /// The import settings (the defaults until saved).
    pub async fn contact_import_settings(&self) -> Result<ImportSettings, CoreError> {
        Ok(self
            .store()
            .setting(SETTINGS_KEY)
            .await?
            .unwrap_or_default())
    }

    /// The HaloPSA user fields a mapping can write, read live (custom fields included);
    /// the `Users` schema's alone, with why, when HaloPSA cannot be read.
    pub async fn contact_psa_fields(&self) -> (Vec<PsaUserField>, Option<String>) {
        let read = async { Ok::<_, CoreError>(read_psa_fields(&self.psa_client().await?).await?) };
        match read.await {
            Ok(fields) => (fields, None),
            Err(e) => (psa_user_fields(), Some(e.to_string())),
        }
    }

    /// Saves the import settings after checking them (mappings, excluded domains).
    pub async fn set_contact_import_settings(
        &self,
        settings: ImportSettings,
    ) -> Result<ImportSettings, CoreError> {
        // Checked against HaloPSA's fields; while HaloPSA cannot be read, a custom field is
        // taken on trust (the import checks it again against HaloPSA).
        let (mut known, unread) = self.contact_psa_fields().await;
        if unread.is_some() {
            for m in &settings.mappings {
                if m.psa.starts_with(fields::CUSTOM_PREFIX) && !known.iter().any(|f| f.key == m.psa)
                {
                    known.push(PsaUserField {
                        key: m.psa.clone(),
                        label: m.psa.clone(),
                        kind: fields::FieldKind::Text,
                        custom_id: None,
                    });
                }
            }
        }
        validate_mappings(&settings.mappings, &known).map_err(CoreError::InvalidInput)?;
        let mut settings = settings;
        let mut domains = Vec::new();
        for d in &settings.excluded_domains {
            let d = d.trim().trim_start_matches('@').to_lowercase();
            if d.is_empty() {
                continue;
            }
            if !d.contains('.') || d.contains(char::is_whitespace) || d.contains('@') {
                return Err(CoreError::InvalidInput(format!(
                    "'{d}' is not a domain; write it as example.com."
                )));
            }
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
        settings.excluded_domains = domains;
        self.store().set_setting(SETTINGS_KEY, &settings).await?;
        Ok(settings)
    }

    /// Reads a mailbox's address book and HaloPSA, and decides every contact — nothing is
    /// written anywhere.
    pub async fn preview_contact_import(&self, mailbox_id: &str) -> Result<Preview, CoreError> {
        let settings = self.contact_import_settings().await?;
        self.mark_contact_import(mailbox_id).await?;
        let mailbox = self.store().mailbox(mailbox_id).await?;
        let graph = self.graph_client_for(&mailbox).await?;
        let book = read_address_book(&graph)
            .await
            .map_err(|e| address_book_error(e, &mailbox))?;
        let psa = self.psa_client().await?;
        let mut directory = read_psa_directory(&psa).await?;
        validate_mappings(&settings.mappings, &directory.fields)
            .map_err(CoreError::InvalidInput)?;
        complete_matched_users(&psa, &mut directory, &book, &settings).await?;
        let contacts = plan(
            &book,
            &directory.users,
            &directory.sites,
            &settings,
            &directory.fields,
        );
        Ok(Preview {
            mailbox_id: mailbox_id.to_string(),
            counts: PreviewCounts::of(&contacts),
            psa_users: directory.users.len(),
            contacts,
        })
    }
}
