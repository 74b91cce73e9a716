//! A mailbox's Outlook address book: the default *Contacts* folder and its child folders, the
//! contacts in them, and the change log that drives contact delta (per folder, as Graph's).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::seed::SeedContact;
use crate::state::make_id;

/// A contact folder. The default one (*Contacts*) has no parent; `GET contactFolders` lists
/// its children, as Graph does.
#[derive(Debug, Clone)]
pub(crate) struct ContactFolder {
    pub id: String,
    pub display_name: String,
    pub parent_id: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Contact {
    pub id: String,
    pub folder_id: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    /// Bumped by each change: the change key and the etag follow it.
    pub version: u64,
    pub seed: SeedContact,
}

/// One change of the address book: a contact added or changed in a folder, or removed from it.
#[derive(Debug, Clone)]
pub(crate) struct ContactChange {
    pub seq: u64,
    pub folder_id: String,
    pub contact_id: String,
    pub removed: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct AddressBook {
    /// `folders[0]` is the default *Contacts* folder.
    pub folders: Vec<ContactFolder>,
    pub contacts: Vec<Contact>,
    pub log: Vec<ContactChange>,
    next_seq: u64,
    next_contact: u64,
}

/// A contact delta round in progress (`$skiptoken`) or finished (`$deltatoken`).
#[derive(Debug, Clone)]
pub(crate) enum ContactDeltaState {
    Page {
        mailbox: String,
        folder_id: String,
        /// Contact ids still to return, and whether each was removed.
        items: Vec<(String, bool)>,
        offset: usize,
        watermark: u64,
    },
    Token {
        mailbox: String,
        folder_id: String,
        watermark: u64,
        issued: DateTime<Utc>,
    },
}

/// Contact delta rounds by token.
pub(crate) type ContactDeltas = HashMap<String, ContactDeltaState>;

impl AddressBook {
    pub fn new(owner_id: &str) -> Self {
        Self {
            folders: vec![ContactFolder {
                id: make_id("AAMkAD", &format!("folder|{owner_id}|contacts")),
                display_name: "Contacts".into(),
                parent_id: None,
            }],
            next_seq: 1,
            ..Self::default()
        }
    }

    pub fn default_folder_id(&self) -> &str {
        &self.folders[0].id
    }

    /// The folder at `path` (`"Suppliers"`, `"Customers/Key accounts"`; empty: the default
    /// folder), created with its parents as needed.
    pub fn folder_for_path(&mut self, owner_id: &str, path: &str) -> String {
        let mut parent = self.default_folder_id().to_owned();
        for name in path.split('/').map(str::trim).filter(|s| !s.is_empty()) {
            let found = self.folders.iter().find(|f| {
                f.parent_id.as_deref() == Some(parent.as_str())
                    && f.display_name.eq_ignore_ascii_case(name)
            });
            parent = match found {
                Some(f) => f.id.clone(),
                None => {
                    let id = make_id(
                        "AAMkAD",
                        &format!("contactfolder|{owner_id}|{}", self.folders.len()),
                    );
                    self.folders.push(ContactFolder {
                        id: id.clone(),
                        display_name: name.to_owned(),
                        parent_id: Some(parent.clone()),
                    });
                    id
                }
            };
        }
        parent
    }

    pub fn folder(&self, id: &str) -> Option<&ContactFolder> {
        self.folders.iter().find(|f| f.id == id)
    }

    /// The watermark: every change so far has a sequence number at most this.
    pub fn watermark(&self) -> u64 {
        self.next_seq - 1
    }

    fn record(&mut self, folder_id: &str, contact_id: &str, removed: bool) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.log.push(ContactChange {
            seq,
            folder_id: folder_id.to_owned(),
            contact_id: contact_id.to_owned(),
            removed,
        });
    }

    pub fn add(
        &mut self,
        owner_id: &str,
        mut seed: SeedContact,
        at: DateTime<Utc>,
    ) -> (String, String) {
        let folder_id = self.folder_for_path(owner_id, seed.folder.as_deref().unwrap_or(""));
        seed.mailbox = owner_id.to_owned();
        self.next_contact += 1;
        let id = make_id(
            "AAMkAD",
            &format!("contact|{owner_id}|{}", self.next_contact),
        );
        self.contacts.push(Contact {
            id: id.clone(),
            folder_id: folder_id.clone(),
            created: at,
            modified: at,
            version: 1,
            seed,
        });
        self.record(&folder_id, &id, false);
        (id, folder_id)
    }

    /// Applies `change` to a contact; false when there is none with that id.
    pub fn update(
        &mut self,
        id: &str,
        at: DateTime<Utc>,
        change: impl FnOnce(&mut SeedContact),
    ) -> bool {
        let Some(c) = self.contacts.iter_mut().find(|c| c.id == id) else {
            return false;
        };
        change(&mut c.seed);
        c.modified = at;
        c.version += 1;
        let folder_id = c.folder_id.clone();
        self.record(&folder_id, id, false);
        true
    }

    pub fn remove(&mut self, id: &str) -> bool {
        let Some(pos) = self.contacts.iter().position(|c| c.id == id) else {
            return false;
        };
        let c = self.contacts.remove(pos);
        self.record(&c.folder_id, id, true);
        true
    }

    /// What changed in `folder_id` after `watermark`: each contact once, in the order of its
    /// last change; a contact removed (or changed, then removed) is reported removed.
    pub fn changes_since(&self, folder_id: &str, watermark: u64) -> Vec<(String, bool)> {
        let mut last: Vec<(String, bool)> = Vec::new();
        for ch in self
            .log
            .iter()
            .filter(|c| c.seq > watermark && c.folder_id == folder_id)
        {
            last.retain(|(id, _)| *id != ch.contact_id);
            last.push((ch.contact_id.clone(), ch.removed));
        }
        last
    }
}
