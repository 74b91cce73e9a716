//! The PSA writes of an attempt, exactly once: a new ticket or an action on the thread's ticket
//! (with attachments and inline images), each behind a stored intent that a later attempt
//! reconciles by Message-ID; and the thread index that finds a reply's ticket.

use std::collections::HashMap;

use mailroom_mailproc::{
    rewrite_cid_references, AttachmentDecision, AttachmentPlan, MailboxSettings, ParsedEmail,
    SenderMatch,
};
use mailroom_psa::{
    normalize_message_id, ErrorKind as PsaKind, NewAction, NewAttachment, NewTicket, Update,
};
use mailroom_store::inbound::{InboundEmail, PsaWriteKind};
use mailroom_store::StoreError;

use super::attempt::{StepError, StepLog};
use super::batch::Created;
use super::settings::{ProcessingSettings, ReplyVisibility};
use super::Pipeline;

/// Prefix of thread keys a ticket's mail only refers to (In-Reply-To / References).
pub(super) const REF_PREFIX: &str = "ref:";

pub(super) struct NewTicketParts {
    pub(super) summary: String,
    pub(super) details_html: String,
    pub(super) user: SenderMatch,
    pub(super) tickettype_id: Option<i64>,
    pub(super) attachments: Vec<AttachmentPlan>,
}

impl Pipeline {
    pub(super) fn attachments_to_send(
        parsed: &ParsedEmail,
        plans: &[AttachmentPlan],
        log: &StepLog,
    ) -> (Vec<NewAttachment>, Vec<(String, String)>) {
        let mut out = Vec::new();
        let mut inline = Vec::new();
        for p in plans {
            let Some(a) = parsed.attachments.get(p.index) else {
                continue;
            };
            match &p.decision {
                AttachmentDecision::Skip { code, reason } => {
                    log.info(format!(
                        "Attachment {} not uploaded ({code}): {reason}",
                        a.name
                    ));
                }
                AttachmentDecision::Upload | AttachmentDecision::Inline { .. } => {
                    let Some(bytes) = a.bytes.as_deref() else {
                        log.warn(format!(
                            "Attachment {} has no content; not uploaded",
                            a.name
                        ));
                        continue;
                    };
                    let mut na =
                        NewAttachment::from_bytes(&a.name, Some(a.content_type.clone()), bytes);
                    na.isimage = Some(a.is_image());
                    if let AttachmentDecision::Inline { content_id } = &p.decision {
                        inline.push((content_id.clone(), a.name.clone()));
                    }
                    log.info(format!(
                        "Attachment {} ({} bytes{}) will be uploaded",
                        a.name,
                        bytes.len(),
                        if matches!(p.decision, AttachmentDecision::Inline { .. }) {
                            ", inline"
                        } else {
                            ""
                        }
                    ));
                    out.push(na);
                }
            }
        }
        (out, inline)
    }

    pub(super) fn attachment_url(&self, a: &mailroom_psa::Attachment) -> String {
        a.link.clone().filter(|l| !l.is_empty()).unwrap_or_else(|| {
            format!(
                "{}/api/Attachment/image?id={}",
                self.psa.config().base_url.trim_end_matches('/'),
                a.id
            )
        })
    }

    /// cid → URL of the uploaded attachment with that file name.
    pub(super) fn cid_map(
        &self,
        inline: &[(String, String)],
        uploaded: &[mailroom_psa::Attachment],
    ) -> HashMap<String, String> {
        inline
            .iter()
            .filter_map(|(cid, name)| {
                uploaded
                    .iter()
                    .find(|u| u.filename.as_deref() == Some(name.as_str()))
                    .map(|u| (cid.clone(), self.attachment_url(u)))
            })
            .collect()
    }

    pub(super) async fn new_ticket(
        &self,
        email: &InboundEmail,
        parsed: &ParsedEmail,
        log: &StepLog,
        parts: NewTicketParts,
    ) -> Result<(i64, ()), StepError> {
        let key = Self::message_key(email, parsed);
        let (user_id, site_id, client_id) = self.resolve_user(&parts.user, log).await?;
        let (attachments, inline) = Self::attachments_to_send(parsed, &parts.attachments, log);
        let ticket = NewTicket {
            summary: parts.summary.clone(),
            details_html: parts.details_html.clone(),
            tickettype_id: parts.tickettype_id,
            client_id,
            site_id,
            user_id,
            email_message_id: Some(key.clone()),
            internet_message_id: Some(key.clone()),
            emailtolist: Some(
                parsed
                    .to
                    .iter()
                    .map(|m| m.address.clone())
                    .collect::<Vec<_>>()
                    .join(";"),
            )
            .filter(|s| !s.is_empty()),
            emailcclist: Some(
                parsed
                    .cc
                    .iter()
                    .map(|m| m.address.clone())
                    .collect::<Vec<_>>()
                    .join(";"),
            )
            .filter(|s| !s.is_empty()),
            attachments,
            ..Default::default()
        };
        self.store
            .record_psa_intent(email.id, PsaWriteKind::Ticket, &key, None, self.clock.now())
            .await?;
        let Created {
            record: created,
            batch,
        } = self
            .tickets
            .create(&self.psa, ticket, key.clone(), log.write_slot())
            .await?;
        log.info(format!(
            "Created ticket {} \"{}\" (Message-ID {key}){}",
            created.id,
            parts.summary,
            super::batch::shared_with(batch, "new ticket(s)")
        ));
        self.confirm(
            email,
            parsed,
            created.id,
            created.id,
            "ticket_created",
            None,
        )
        .await?;
        if !inline.is_empty() {
            let uploaded = created.attachments.clone().unwrap_or_default();
            let map = self.cid_map(&inline, &uploaded);
            if !map.is_empty() {
                let html = rewrite_cid_references(&parts.details_html, &map);
                let mut fields = serde_json::Map::new();
                fields.insert("details_html".into(), serde_json::Value::String(html));
                self.psa
                    .update_ticket(&Update {
                        id: created.id,
                        fields,
                    })
                    .await?;
                log.info(format!(
                    "Pointed {} inline image(s) in the ticket details at the uploaded attachments",
                    map.len()
                ));
            }
        }
        Ok((created.id, ()))
    }

    /// The PSA write is done: the mail's thread keys go in first, then the write is confirmed.
    /// A process killed in between finds the write unconfirmed and reconciles it (recording
    /// the keys again does nothing), so a confirmed write always has its keys and a later
    /// reply finds its ticket.
    pub(super) async fn confirm(
        &self,
        email: &InboundEmail,
        parsed: &ParsedEmail,
        object_id: i64,
        ticket_id: i64,
        outcome: &str,
        action_id: Option<i64>,
    ) -> Result<(), StepError> {
        self.record_thread_keys(&email.mailbox_id, parsed, ticket_id)
            .await?;
        let now = self.clock.now();
        self.store
            .confirm_psa_write(email.id, object_id, ticket_id, now)
            .await?;
        self.store
            .mark_psa_written(email.id, outcome, ticket_id, action_id, now)
            .await?;
        Ok(())
    }

    /// Records the keys of a mail now on `ticket_id`: its own Message-ID and conversation as
    /// they are, the ids it replies to / references as `ref:<id>`. Only own keys make a later
    /// mail with that Message-ID a duplicate; both kinds thread replies.
    pub(super) async fn record_thread_keys(
        &self,
        mailbox_id: &str,
        parsed: &ParsedEmail,
        ticket_id: i64,
    ) -> Result<(), StoreError> {
        let own = mailroom_mailproc::own_keys(parsed);
        let mut keys = own.clone();
        for k in mailroom_mailproc::thread_keys(parsed) {
            if !own.contains(&k) {
                keys.push(format!("{REF_PREFIX}{k}"));
            }
        }
        self.store
            .add_thread_keys(mailbox_id, &keys, ticket_id, self.clock.now())
            .await
    }

    /// The thread index for one mail: its own Message-ID only matches own keys; every other
    /// key also matches `ref:` keys.
    pub(super) async fn thread_index(
        &self,
        mailbox_id: &str,
        parsed: &ParsedEmail,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let own: Vec<String> = parsed
            .message_id
            .as_deref()
            .map(|m| mailroom_mailproc::message_id_keys(m).to_vec())
            .unwrap_or_default();
        let mut index = HashMap::new();
        for key in mailroom_mailproc::thread_keys(parsed) {
            let mut found = self.store.ticket_for_thread_key(mailbox_id, &key).await?;
            if found.is_none() && !own.contains(&key) {
                found = self
                    .store
                    .ticket_for_thread_key(mailbox_id, &format!("{REF_PREFIX}{key}"))
                    .await?;
            }
            if let Some(ticket) = found {
                index.insert(key, ticket);
            }
        }
        Ok(index)
    }

    /// When a reply names messages (In-Reply-To / References) the local index does not know
    /// and nothing else threads it (no subject tag, no known conversation), asks the PSA
    /// whether one of them is mail it sent from a ticket (an action's `email_message_id`).
    /// A hit goes into `index` under that key, so the plan threads the reply to the ticket.
    pub(super) async fn psa_thread_lookup(
        &self,
        mailbox_id: &str,
        parsed: &ParsedEmail,
        rules: &MailboxSettings,
        settings: &ProcessingSettings,
        index: &mut HashMap<String, i64>,
        log: &StepLog,
    ) -> Result<(), StepError> {
        if !rules.thread_by_headers
            || settings.psa_thread_lookup == mailroom_psa::ActionLookup::Disabled
            || mailroom_mailproc::find_ticket_id(&parsed.subject, &rules.tag).is_some()
        {
            return Ok(());
        }
        let keys = mailroom_mailproc::reply_keys(parsed);
        let conversation = parsed
            .conversation_id
            .as_deref()
            .filter(|_| rules.thread_by_conversation)
            .map(mailroom_mailproc::conversation_key);
        if keys.is_empty()
            || keys.iter().any(|k| index.contains_key(k))
            || conversation.is_some_and(|c| index.contains_key(&c))
        {
            return Ok(());
        }
        // In-Reply-To first, then the most recent References; a few at most. Mail this mailbox
        // received itself is not mail the PSA sent: asking would cost a PSA request per reply
        // whose original is still waiting its turn (issue 23 #9).
        let mut candidates = Vec::new();
        for key in keys.iter().filter(|k| !k.starts_with('<')) {
            if candidates.len() == 3 {
                break;
            }
            if self.store.received_message_id(mailbox_id, key).await? {
                continue;
            }
            candidates.push(key);
        }
        for key in candidates {
            if let Some(action) = self
                .psa
                .find_action_by_email_message_id(key, &settings.psa_thread_lookup)
                .await?
            {
                log.info(format!(
                    "{key} is mail the PSA sent from ticket {} (action {}); threading the reply to that ticket",
                    action.ticket_id, action.id
                ));
                index.insert(key.clone(), action.ticket_id);
                return Ok(());
            }
        }
        log.info("None of the messages this mail replies to is known here or in the PSA");
        Ok(())
    }

    /// Looks for the object an unconfirmed intent may have created; confirms it when found.
    pub(super) async fn reconcile(
        &self,
        email: &InboundEmail,
        parsed: &ParsedEmail,
        w: &mailroom_store::inbound::PsaWrite,
        log: &StepLog,
    ) -> Result<Option<(i64, Option<i64>)>, StepError> {
        let key = &w.message_key;
        if w.kind == PsaWriteKind::Ticket {
            log.info(format!(
                "An earlier attempt started creating a ticket; looking it up by Message-ID {key}"
            ));
            if let Some(t) = self
                .psa
                .find_tickets_by_message_id(key)
                .await?
                .into_iter()
                .min_by_key(|t| t.id)
            {
                log.info(format!(
                    "Found ticket {} created by the earlier attempt; not creating another",
                    t.id
                ));
                self.confirm(email, parsed, t.id, t.id, "ticket_created", None)
                    .await?;
                return Ok(Some((t.id, None)));
            }
        } else if let Some(ticket_id) = w.ticket_id {
            log.info(format!(
                "An earlier attempt started adding an action; looking for Message-ID {key} on ticket {ticket_id}"
            ));
            let wanted = normalize_message_id(key);
            if let Some(a) = self
                .psa
                .list_actions(ticket_id)
                .await?
                .into_iter()
                .find(|a| {
                    a.email_message_id
                        .as_deref()
                        .is_some_and(|m| normalize_message_id(m) == wanted)
                })
            {
                log.info(format!(
                    "Found action {} added by the earlier attempt; not adding another",
                    a.id
                ));
                self.confirm(email, parsed, a.id, ticket_id, "action_added", Some(a.id))
                    .await?;
                return Ok(Some((ticket_id, Some(a.id))));
            }
        }
        log.info("Nothing was written by the earlier attempt; writing now");
        Ok(None)
    }

    /// The outcome for a reply's action, chosen from the PSA's outcome list (cached like the
    /// directory) by the mailbox's setting or the default — never a guessed name.
    pub(super) async fn reply_outcome(
        &self,
        settings: &ProcessingSettings,
        log: &StepLog,
    ) -> Result<crate::outcomes::OutcomeChoice, StepError> {
        let now = self.clock.now();
        let ttl = chrono::Duration::from_std(self.config.directory_ttl)
            .unwrap_or_else(|_| chrono::Duration::minutes(10));
        let mut cache = self.outcomes.lock().await;
        let fresh = cache.as_ref().is_some_and(|(at, _)| now - *at < ttl);
        if !fresh {
            let list = self.psa.outcomes().await?;
            log.info(format!("Loaded {} PSA outcome(s)", list.len()));
            *cache = Some((now, list));
        }
        let list = cache
            .as_ref()
            .map(|(_, l)| l.as_slice())
            .unwrap_or_default();
        let chosen = crate::outcomes::resolve_outcome(
            list,
            settings.action_outcome_id,
            &settings.action_outcome,
        );
        if chosen.is_err() {
            // Let the next attempt see a changed PSA at once.
            *cache = None;
        }
        let chosen = chosen.map_err(|e| StepError::Permanent {
            code: e.code(),
            message: e.to_string(),
        })?;
        log.info(format!(
            "Outcome for the reply: {} (id {}){}",
            chosen.name,
            chosen.id,
            if settings.action_outcome_id.is_none() {
                " — the default; choose one in the mailbox's processing settings to change it"
            } else {
                ""
            }
        ));
        Ok(chosen)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn new_action(
        &self,
        email: &InboundEmail,
        parsed: &ParsedEmail,
        settings: &ProcessingSettings,
        log: &StepLog,
        ticket_id: i64,
        note_html: String,
        sender: &SenderMatch,
        plans: Vec<AttachmentPlan>,
    ) -> Result<i64, StepError> {
        let key = Self::message_key(email, parsed);
        if let SenderMatch::ExistingUser { user_id, .. } = sender {
            log.info(format!("Sender is PSA user {user_id}"));
        }
        let outcome = self.reply_outcome(settings, log).await?;
        let hidden = settings.reply_visibility.hidden(outcome.private);
        log.info(match (hidden, settings.reply_visibility) {
            (true, ReplyVisibility::FollowOutcome) => format!(
                "The action is hidden from the end user (the outcome {} is private)",
                outcome.name
            ),
            (false, ReplyVisibility::FollowOutcome) => format!(
                "The action is visible to the end user (the outcome {} is not private)",
                outcome.name
            ),
            (true, _) => "The action is hidden from the end user (mailbox setting)".into(),
            (false, _) => "The action is visible to the end user (mailbox setting)".into(),
        });
        let (attachments, inline) = Self::attachments_to_send(parsed, &plans, log);
        let action = NewAction {
            ticket_id,
            outcome_id: Some(outcome.id),
            outcome: None,
            note_html: Some(note_html.clone()),
            emailfrom: parsed.from.as_ref().map(|f| f.address.clone()),
            emailto: Some(
                parsed
                    .to
                    .iter()
                    .map(|m| m.address.clone())
                    .collect::<Vec<_>>()
                    .join(";"),
            )
            .filter(|s| !s.is_empty()),
            emailsubject: Some(parsed.subject.clone()),
            email_message_id: Some(key.clone()),
            hiddenfromuser: hidden,
            sendemail: Some(false),
            attachments,
            ..Default::default()
        };
        self.store
            .record_psa_intent(
                email.id,
                PsaWriteKind::Action,
                &key,
                Some(ticket_id),
                self.clock.now(),
            )
            .await?;
        let answer = self
            .actions
            .create(&self.psa, action, key.clone(), log.write_slot())
            .await;
        let created = match answer {
            Ok(Created { record, batch }) => {
                if batch > 1 {
                    log.info(format!(
                        "Sent in one request with {} other action(s)",
                        batch - 1
                    ));
                }
                *record
            }
            Err(e) if e.kind == PsaKind::NotFound => {
                return Err(StepError::Permanent {
                    code: "ticket_not_found",
                    message: format!(
                        "Ticket {ticket_id} (from the subject tag or thread) does not exist in the PSA: {e}"
                    ),
                })
            }
            Err(e) => return Err(e.into()),
        };
        log.info(format!(
            "Added action {} to ticket {ticket_id} (Message-ID {key})",
            created.id
        ));
        self.confirm(
            email,
            parsed,
            created.id,
            ticket_id,
            "action_added",
            Some(created.id),
        )
        .await?;
        if !inline.is_empty() {
            let uploaded = created.attachments.clone().unwrap_or_default();
            let map = self.cid_map(&inline, &uploaded);
            if !map.is_empty() {
                let mut fields = serde_json::Map::new();
                fields.insert("ticket_id".into(), ticket_id.into());
                fields.insert(
                    "note_html".into(),
                    rewrite_cid_references(&note_html, &map).into(),
                );
                let _: serde_json::Value = self
                    .psa
                    .post_one(
                        "Actions",
                        &Update {
                            id: created.id,
                            fields,
                        },
                    )
                    .await?;
                log.info(format!(
                    "Pointed {} inline image(s) in the note at the uploaded attachments",
                    map.len()
                ));
            }
        }
        Ok(created.id)
    }
}
