//! After the PSA write: the email in its mailbox is moved, marked read or left, as the
//! mailbox's settings say.

use mailroom_graph::{GraphClient, GraphErrorKind};
use mailroom_store::inbound::InboundEmail;
use mailroom_store::Mailbox;

use super::attempt::{StepError, StepLog};
use super::settings::{ProcessedMail, ProcessingSettings, WELL_KNOWN_FOLDERS};
use super::Pipeline;

impl Pipeline {
    pub(super) async fn update_mailbox(
        &self,
        graph: &GraphClient,
        mailbox: &Mailbox,
        email: &InboundEmail,
        settings: &ProcessingSettings,
        log: &StepLog,
    ) -> Result<(), StepError> {
        let id = &email.graph_message_id;
        let result = match settings.processed_mail {
            ProcessedMail::Leave => {
                log.info("Left the message in the inbox (setting: leave)");
                return Ok(());
            }
            ProcessedMail::MarkRead => graph.mark_read(id).await.map(|_| {
                log.info("Marked the message read");
            }),
            ProcessedMail::Move => {
                let folder = self.folder_id(graph, mailbox, settings).await?;
                graph.move_to(id, &folder).await.map(|_| {
                    log.info(format!(
                        "Moved the message to {}",
                        settings.processed_folder
                    ));
                })
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind == GraphErrorKind::NotFound => {
                log.info("The message is no longer in the inbox (already moved or deleted); nothing to update");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn folder_id(
        &self,
        graph: &GraphClient,
        mailbox: &Mailbox,
        settings: &ProcessingSettings,
    ) -> Result<String, StepError> {
        let name = settings.processed_folder.trim();
        let name = if name.is_empty() {
            "deleteditems"
        } else {
            name
        };
        if WELL_KNOWN_FOLDERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Ok(name.to_ascii_lowercase());
        }
        let key = (mailbox.id.clone(), name.to_string());
        if let Some(id) = self.folders.lock().expect("folders lock").get(&key) {
            return Ok(id.clone());
        }
        let id = graph.ensure_folder(name).await?;
        self.folders
            .lock()
            .expect("folders lock")
            .insert(key, id.clone());
        Ok(id)
    }
}
