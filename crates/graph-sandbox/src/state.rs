//! The mutable world behind the emulator: mailboxes, folders, messages, contacts, the delta
//! change log, subscriptions and throttling windows. Everything here is synchronous and lives
//! behind one mutex; no lock is ever held across an `.await`.

use std::collections::{HashMap, VecDeque};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::mime::{self, MimeSpec};
use crate::seed::{AccessRight, DeliveryReport, GraphSeed, MailboxRight, SeedUser};
use crate::InboundAttachment;

/// Well-known folder names the emulator creates in every mailbox, with display names.
pub(crate) const WELL_KNOWN: &[(&str, &str)] = &[
    ("inbox", "Inbox"),
    ("sentitems", "Sent Items"),
    ("deleteditems", "Deleted Items"),
    ("drafts", "Drafts"),
    ("archive", "Archive"),
    ("junkemail", "Junk Email"),
];

/// Deterministic opaque Graph-style id (`AAMkAD…AAA=`), URL-safe.
pub(crate) fn make_id(prefix: &str, seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let mut bytes = digest.to_vec();
    bytes.extend_from_slice(&Sha256::digest(digest)[..12]);
    format!(
        "{prefix}{}AAA=",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub(crate) const MESSAGE_PREFIX: &str = "AAMkAD";
pub(crate) const IMMUTABLE_PREFIX: &str = "AAkALg";

/// Whether `id` has the shape of a Graph item id (else Graph says ErrorInvalidIdMalformed).
pub(crate) fn id_well_formed(id: &str) -> bool {
    (id.starts_with("AAMk") || id.starts_with("AAkAL") || id.starts_with("AQMk"))
        && id.len() >= 16
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=' | '+' | '/'))
}

#[derive(Debug, Clone)]
pub(crate) struct Folder {
    pub id: String,
    pub well_known: Option<&'static str>,
    pub display_name: String,
    pub parent_id: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub content: Vec<u8>,
    pub inline: bool,
    pub content_id: Option<String>,
}

pub(crate) type Recipient = (Option<String>, String);

#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub key: u64,
    pub id: String,
    pub immutable_id: String,
    pub folder_id: String,
    pub change_key: u64,
    pub internet_message_id: String,
    pub conversation_id: String,
    /// Outlook's conversation index: the conversation's 22-byte header block, then one 5-byte
    /// child block per reply level (a reply's index is its parent's plus one block).
    pub conversation_index: Vec<u8>,
    pub subject: String,
    pub from: Recipient,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    pub reply_to: Vec<Recipient>,
    pub body_html: String,
    pub body_text: String,
    pub received: DateTime<Utc>,
    pub sent: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub is_read: bool,
    pub is_draft: bool,
    pub categories: Vec<String>,
    pub flag: String,
    pub importance: String,
    pub attachments: Vec<Attachment>,
    pub headers: Vec<(String, String)>,
    pub mime: String,
}

impl Message {
    /// The item's change key, as Exchange writes it (`CQAAABYAAAA…`): different for every
    /// item and every version of it.
    pub fn change_key_text(&self) -> String {
        let mut raw = Vec::with_capacity(16);
        raw.extend_from_slice(&self.key.to_be_bytes());
        raw.extend_from_slice(&self.change_key.to_be_bytes());
        format!(
            "CQAAABYAAAA{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// `W/"<changeKey>"`, as Graph sends it.
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.change_key_text())
    }

    pub fn has_attachments(&self) -> bool {
        self.attachments.iter().any(|a| !a.inline)
    }
}

/// One entry of a mailbox's change log (drives delta).
#[derive(Debug, Clone)]
pub(crate) struct ChangeEvent {
    pub seq: u64,
    pub folder_id: String,
    pub key: u64,
    pub id_then: String,
    pub immutable_id: String,
    pub removed: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    pub user: SeedUser,
    pub folders: Vec<Folder>,
    pub messages: Vec<Message>,
    pub book: crate::address_book::AddressBook,
    pub sent: Vec<crate::SentMail>,
    pub log: Vec<ChangeEvent>,
}

impl Mailbox {
    pub fn root_id(&self) -> String {
        self.folders[0].id.clone()
    }

    /// Resolves a folder id or well-known name (case-insensitive).
    pub fn folder(&self, key: &str) -> Option<&Folder> {
        let lower = key.to_ascii_lowercase();
        if lower == "msgfolderroot" {
            return self.folders.first();
        }
        self.folders
            .iter()
            .find(|f| f.id == key || f.well_known == Some(lower.as_str()))
    }

    pub fn message_index(&self, id: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.id == id || m.immutable_id == id)
    }
}

/// An item waiting in a delta page.
#[derive(Debug, Clone)]
pub(crate) enum DeltaItem {
    Upsert(u64),
    Removed { id: String, immutable_id: String },
}

#[derive(Debug, Clone)]
pub(crate) struct DeltaToken {
    pub mailbox: String,
    pub folder_id: String,
    pub watermark: u64,
    pub issued: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct DeltaPage {
    pub mailbox: String,
    pub folder_id: String,
    pub items: Vec<DeltaItem>,
    pub offset: usize,
    pub watermark: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub id: String,
    pub resource: String,
    pub mailbox: String,
    pub folder_id: Option<String>,
    pub change_types: Vec<String>,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub client_state: Option<String>,
    pub expiration: DateTime<Utc>,
    pub app_id: String,
    pub creator_id: String,
    pub immutable_ids: bool,
    pub tls: String,
    pub needs_reauthorization: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Limiter {
    pub in_flight: usize,
    pub window: VecDeque<DateTime<Utc>>,
}

/// The emulator's whole state.
#[derive(Debug)]
pub(crate) struct State {
    pub tenant_id: String,
    pub mailboxes: Vec<Mailbox>,
    pub grants: Vec<crate::seed::DelegateGrant>,
    pub policies: Vec<crate::seed::ApplicationAccessPolicy>,
    pub next_key: u64,
    pub next_seq: u64,
    pub counter: u64,
    pub delta_tokens: HashMap<String, DeltaToken>,
    pub delta_pages: HashMap<String, DeltaPage>,
    pub subscriptions: Vec<Subscription>,
    pub limiters: HashMap<(String, String), Limiter>,
    /// Attachment upload sessions by session id.
    pub upload_sessions: HashMap<String, UploadSession>,
    /// Contact delta rounds by token.
    pub contact_deltas: crate::address_book::ContactDeltas,
}

/// A large attachment being uploaded to a draft (`createUploadSession`, then `PUT`s).
#[derive(Debug, Clone)]
pub(crate) struct UploadSession {
    /// The mailbox's user id and the draft's id.
    pub mailbox_id: String,
    pub message_id: String,
    pub name: String,
    pub content_type: String,
    pub size: usize,
    pub inline: bool,
    pub content_id: Option<String>,
    /// The token the upload URL carries.
    pub token: String,
    pub expires: DateTime<Utc>,
    /// The bytes received so far (ranges arrive in order).
    pub received: Vec<u8>,
}

/// What [`State::insert_message`] needs.
pub(crate) struct NewMessage {
    pub from: Recipient,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    pub reply_to: Vec<Recipient>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<InboundAttachment>,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub report: Option<DeliveryReport>,
    pub received: DateTime<Utc>,
    pub is_read: bool,
}

fn strip_angles(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

impl State {
    pub fn new(seed: &GraphSeed, now: DateTime<Utc>) -> Result<Self, crate::GraphSandboxError> {
        let mut state = State {
            tenant_id: seed.tenant_id.clone(),
            mailboxes: Vec::new(),
            grants: seed.grants.clone(),
            policies: seed.policies.clone(),
            next_key: 1,
            next_seq: 1,
            counter: 0,
            delta_tokens: HashMap::new(),
            delta_pages: HashMap::new(),
            subscriptions: Vec::new(),
            limiters: HashMap::new(),
            upload_sessions: HashMap::new(),
            contact_deltas: HashMap::new(),
        };
        for user in &seed.users {
            let root = make_id("AAMkAD", &format!("folder|{}|msgfolderroot", user.id));
            let mut folders = vec![Folder {
                id: root.clone(),
                well_known: Some("msgfolderroot"),
                display_name: "Top of Information Store".into(),
                parent_id: make_id("AAMkAD", &format!("folder|{}|root", user.id)),
            }];
            for (wk, name) in WELL_KNOWN {
                folders.push(Folder {
                    id: make_id("AAMkAD", &format!("folder|{}|{wk}", user.id)),
                    well_known: Some(wk),
                    display_name: (*name).into(),
                    parent_id: root.clone(),
                });
            }
            state.mailboxes.push(Mailbox {
                user: user.clone(),
                folders,
                messages: Vec::new(),
                book: crate::address_book::AddressBook::new(&user.id),
                sent: Vec::new(),
                log: Vec::new(),
            });
        }
        let base = seed.base_time.unwrap_or(now);
        // Oldest first so that threading (conversationId by reference) resolves.
        let mut seeded: Vec<&crate::seed::SeedMessage> = seed.messages.iter().collect();
        seeded.sort_by_key(|m| std::cmp::Reverse(m.minutes_ago));
        for m in seeded {
            let mb = state
                .mailbox_index(&m.mailbox)
                .ok_or_else(|| crate::GraphSandboxError::UnknownMailbox(m.mailbox.clone()))?;
            let folder = state.mailboxes[mb]
                .folder(&m.folder)
                .ok_or_else(|| crate::GraphSandboxError::UnknownFolder(m.folder.clone()))?
                .id
                .clone();
            let new = NewMessage::from_inbound(
                &m.mail,
                base - chrono::Duration::minutes(m.minutes_ago),
                m.is_read,
            )
            .with_report(m.delivery_report.clone());
            state.insert_message(mb, &folder, new);
        }
        for c in &seed.contacts {
            let mb = state
                .mailbox_index(&c.mailbox)
                .ok_or_else(|| crate::GraphSandboxError::UnknownMailbox(c.mailbox.clone()))?;
            let owner = state.mailboxes[mb].user.id.clone();
            state.mailboxes[mb].book.add(&owner, c.clone(), base);
        }
        Ok(state)
    }

    /// Finds a mailbox by object id, UPN or primary address (case-insensitive).
    pub fn mailbox_index(&self, key: &str) -> Option<usize> {
        self.mailboxes.iter().position(|m| {
            m.user.id.eq_ignore_ascii_case(key)
                || m.user.user_principal_name.eq_ignore_ascii_case(key)
                || m.user.mail.eq_ignore_ascii_case(key)
        })
    }

    pub fn next_counter(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn log(&mut self, mb: usize, folder_id: &str, msg_idx: usize, removed: bool) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let m = &self.mailboxes[mb].messages[msg_idx];
        let ev = ChangeEvent {
            seq,
            folder_id: folder_id.to_owned(),
            key: m.key,
            id_then: m.id.clone(),
            immutable_id: m.immutable_id.clone(),
            removed,
        };
        self.mailboxes[mb].log.push(ev);
    }

    /// Creates a message in `folder_id` of mailbox `mb`; returns its index in the mailbox.
    pub fn insert_message(&mut self, mb: usize, folder_id: &str, mut new: NewMessage) -> usize {
        // Exchange resolves tenant recipients to their display names.
        for r in new.to.iter_mut().chain(new.cc.iter_mut()) {
            if r.0.is_none() {
                if let Some(i) = self.mailbox_index(&r.1) {
                    r.0 = Some(self.mailboxes[i].user.display_name.clone());
                }
            }
        }
        let key = self.next_key;
        self.next_key += 1;
        let owner = self.mailboxes[mb].user.id.clone();
        let id = make_id(MESSAGE_PREFIX, &format!("msg|{owner}|{key}|0"));
        let immutable_id = make_id(IMMUTABLE_PREFIX, &format!("imm|{owner}|{key}"));
        let domain = new
            .from
            .1
            .split('@')
            .nth(1)
            .unwrap_or("sandbox.test")
            .to_owned();
        let message_id = new
            .message_id
            .as_deref()
            .map(strip_angles)
            .unwrap_or_else(|| {
                let h = make_id("", &format!("mid|{owner}|{key}"));
                format!("{}@{domain}", &h[..24].replace(['-', '_'], "x"))
            });
        let in_reply_to = new.in_reply_to.as_deref().map(strip_angles);
        let references: Vec<String> = new.references.iter().map(|r| strip_angles(r)).collect();
        // Thread: the conversation of any referenced message in this mailbox, else new.
        let mut conversation_id = None;
        for r in references.iter().chain(in_reply_to.iter()) {
            let wanted = format!("<{r}>");
            if let Some(m) = self.mailboxes[mb]
                .messages
                .iter()
                .find(|m| m.internet_message_id == wanted)
            {
                conversation_id = Some(m.conversation_id.clone());
                break;
            }
        }
        // The parent's conversation index, when the mail it answers is in this mailbox.
        let parent_index = in_reply_to.as_ref().and_then(|r| {
            let wanted = format!("<{r}>");
            self.mailboxes[mb]
                .messages
                .iter()
                .find(|m| m.internet_message_id == wanted)
                .map(|m| m.conversation_index.clone())
        });
        let thread_root = references
            .first()
            .cloned()
            .or_else(|| in_reply_to.clone())
            .unwrap_or_else(|| message_id.clone());
        let conversation_id = conversation_id
            .unwrap_or_else(|| make_id("AAQkAD", &format!("conv|{owner}|{thread_root}")));
        let conversation_index = {
            let mut index = parent_index.unwrap_or_else(|| conversation_header(&conversation_id));
            if in_reply_to.is_some() {
                // A child block: five bytes of time since the parent, as Outlook writes.
                index.extend_from_slice(&(new.received.timestamp() as u64).to_be_bytes()[3..8]);
            }
            index
        };
        let mime = mime::build(&MimeSpec {
            from: &new.from.1,
            from_name: new.from.0.as_deref(),
            to: &new.to,
            cc: &new.cc,
            subject: &new.subject,
            text: new.text.as_deref(),
            html: new.html.as_deref(),
            message_id: &message_id,
            in_reply_to: in_reply_to.as_deref(),
            references: &references,
            date: new.received,
            headers: &new.headers,
            attachments: &new.attachments,
            report: new.report.as_ref(),
        });
        let mut headers = vec![(
            "Received".to_owned(),
            format!(
                "from mx.sandbox.test (127.0.0.1) by sandbox.{} with Microsoft SMTP Server; {}",
                crate::seed::TENANT_DOMAIN,
                new.received.to_rfc2822()
            ),
        )];
        headers.extend(mime::header_block(&mime));
        let (body_html, body_text) = match (&new.html, &new.text) {
            (Some(h), Some(t)) => (h.clone(), t.clone()),
            (Some(h), None) => (h.clone(), mime::html_to_text(h)),
            (None, Some(t)) => (mime::text_to_html(t), t.clone()),
            (None, None) => (mime::text_to_html(""), String::new()),
        };
        let attachments = new
            .attachments
            .iter()
            .enumerate()
            .map(|(i, a)| Attachment {
                id: make_id("AAMkAD", &format!("att|{owner}|{key}|{i}")),
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                content: a.content.clone(),
                inline: a.inline,
                content_id: a.content_id.as_deref().map(strip_angles),
            })
            .collect();
        let importance = new
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Importance"))
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_else(|| "normal".into());
        let message = Message {
            key,
            id,
            immutable_id,
            folder_id: folder_id.to_owned(),
            change_key: 1,
            internet_message_id: format!("<{message_id}>"),
            conversation_id,
            conversation_index,
            subject: new.subject,
            from: new.from,
            to: new.to,
            cc: new.cc,
            reply_to: new.reply_to,
            body_html,
            body_text,
            received: new.received,
            sent: new.received - chrono::Duration::seconds(3),
            last_modified: new.received,
            is_read: new.is_read,
            is_draft: false,
            categories: Vec::new(),
            flag: "notFlagged".into(),
            importance,
            attachments,
            headers,
            mime,
        };
        self.mailboxes[mb].messages.push(message);
        let idx = self.mailboxes[mb].messages.len() - 1;
        self.log(mb, folder_id, idx, false);
        idx
    }

    /// Records that message `idx` changed in place (PATCH).
    pub fn touch(&mut self, mb: usize, idx: usize, now: DateTime<Utc>) {
        let m = &mut self.mailboxes[mb].messages[idx];
        m.change_key += 1;
        m.last_modified = now;
        let folder = m.folder_id.clone();
        self.log(mb, &folder, idx, false);
    }

    /// Moves message `idx` to `dest`; the id changes unless `keep_id`.
    pub fn move_message(
        &mut self,
        mb: usize,
        idx: usize,
        dest: &str,
        keep_id: bool,
        now: DateTime<Utc>,
    ) {
        let src = self.mailboxes[mb].messages[idx].folder_id.clone();
        self.log(mb, &src, idx, true);
        let n = self.next_counter();
        let owner = self.mailboxes[mb].user.id.clone();
        let m = &mut self.mailboxes[mb].messages[idx];
        if !keep_id {
            m.id = make_id(MESSAGE_PREFIX, &format!("msg|{owner}|{}|{n}", m.key));
        }
        m.folder_id = dest.to_owned();
        m.change_key += 1;
        m.last_modified = now;
        self.log(mb, dest, idx, false);
    }

    /// Permanently removes message `idx`.
    pub fn remove_message(&mut self, mb: usize, idx: usize) {
        let src = self.mailboxes[mb].messages[idx].folder_id.clone();
        self.log(mb, &src, idx, true);
        self.mailboxes[mb].messages.remove(idx);
    }

    /// Delta changes of `folder_id` after `watermark` (deduplicated per message).
    pub fn changes_since(&self, mb: usize, folder_id: &str, watermark: u64) -> Vec<DeltaItem> {
        let mbx = &self.mailboxes[mb];
        let mut order: Vec<u64> = Vec::new();
        let mut last: HashMap<u64, &ChangeEvent> = HashMap::new();
        for ev in mbx
            .log
            .iter()
            .filter(|e| e.seq > watermark && e.folder_id == folder_id)
        {
            if !last.contains_key(&ev.key) {
                order.push(ev.key);
            }
            last.insert(ev.key, ev);
        }
        order
            .into_iter()
            .map(|k| {
                let ev = last[&k];
                let present = mbx
                    .messages
                    .iter()
                    .any(|m| m.key == k && m.folder_id == folder_id);
                if ev.removed || !present {
                    DeltaItem::Removed {
                        id: ev.id_then.clone(),
                        immutable_id: ev.immutable_id.clone(),
                    }
                } else {
                    DeltaItem::Upsert(k)
                }
            })
            .collect()
    }

    pub fn has_right(&self, mailbox: &SeedUser, delegate: &str, right: MailboxRight) -> bool {
        let Some(d) = self.mailbox_index(delegate) else {
            return false;
        };
        let delegate_id = &self.mailboxes[d].user.id;
        self.grants.iter().any(|g| {
            self.mailbox_index(&g.mailbox)
                .is_some_and(|i| self.mailboxes[i].user.id == mailbox.id)
                && self
                    .mailbox_index(&g.delegate)
                    .is_some_and(|i| &self.mailboxes[i].user.id == delegate_id)
                && g.rights.contains(&right)
        })
    }

    /// Whether Exchange application access policies let `app_id` reach `mailbox`.
    pub fn policy_allows(&self, app_id: &str, mailbox: &SeedUser) -> bool {
        self.policies
            .iter()
            .filter(|p| p.app_id.eq_ignore_ascii_case(app_id))
            .all(|p| {
                let member = p.mailboxes.iter().any(|k| {
                    self.mailbox_index(k)
                        .is_some_and(|i| self.mailboxes[i].user.id == mailbox.id)
                });
                match p.access_right {
                    AccessRight::RestrictAccess => member,
                    AccessRight::DenyAccess => !member,
                }
            })
    }
}

impl NewMessage {
    pub fn from_inbound(mail: &crate::InboundMail, received: DateTime<Utc>, is_read: bool) -> Self {
        let mut headers = Vec::new();
        let mut message_id = None;
        let mut reply_to = Vec::new();
        let mut cc = Vec::new();
        for (n, v) in &mail.headers {
            if n.eq_ignore_ascii_case("Message-ID") {
                message_id = Some(v.clone());
            } else if n.eq_ignore_ascii_case("Reply-To") {
                reply_to.push((None, strip_angles(v)));
            } else if n.eq_ignore_ascii_case("Cc") {
                cc.extend(v.split(',').map(|a| (None, strip_angles(a))));
            } else if !(n.eq_ignore_ascii_case("Date")
                || n.eq_ignore_ascii_case("From")
                || n.eq_ignore_ascii_case("To")
                || n.eq_ignore_ascii_case("Subject"))
            {
                headers.push((n.clone(), v.clone()));
            }
        }
        NewMessage {
            from: (mail.from_name.clone(), mail.from.clone()),
            to: mail
                .to
                .split(',')
                .map(|a| (None, a.trim().to_owned()))
                .filter(|(_, a)| !a.is_empty())
                .collect(),
            cc,
            reply_to,
            subject: mail.subject.clone(),
            html: mail.body_html.clone(),
            text: mail.body_text.clone(),
            headers,
            attachments: mail.attachments.clone(),
            message_id,
            in_reply_to: mail.in_reply_to.clone(),
            references: mail.references.clone(),
            report: None,
            received,
            is_read,
        }
    }

    pub fn with_report(mut self, report: Option<DeliveryReport>) -> Self {
        self.report = report;
        self
    }
}

/// The 22-byte header block of a conversation's index (a reserved byte, then 21 bytes standing
/// for the start time and GUID), derived from the conversation id.
fn conversation_header(conversation_id: &str) -> Vec<u8> {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(conversation_id.as_bytes());
    let mut header = vec![0x01u8];
    header.extend_from_slice(&digest[..21]);
    header
}
