//! *Export CSV*: the inbound log under the current filter (mailbox, status, search), every
//! page of it, newest first, as a CSV file a spreadsheet opens.

use std::collections::HashMap;
use std::path::Path;

use mailroom_store::inbound::LogQuery;

use crate::{Core, CoreError};

/// Entries read per page while exporting.
const EXPORT_PAGE: i64 = 500;

impl Core {
    /// Writes every entry `query` matches (its `before` and `limit` are ignored: the export
    /// starts at the newest) to `path`; returns how many.
    pub async fn export_inbound_csv(
        &self,
        query: &LogQuery,
        path: &Path,
    ) -> Result<usize, CoreError> {
        let names: HashMap<String, String> = self
            .store()
            .mailboxes()
            .await?
            .into_iter()
            .map(|m| (m.id, m.name))
            .collect();
        let io = |e: std::io::Error| {
            CoreError::InvalidInput(format!("Could not write {}: {e}", path.display()))
        };
        let mut out = csv::Writer::from_path(path).map_err(|e| io(e.into()))?;
        out.write_record([
            "received_at",
            "mailbox",
            "from_address",
            "from_name",
            "subject",
            "status",
            "ticket_id",
            "attempts",
            "error_code",
            "error_message",
            "skip_reason",
            "message_id",
        ])
        .map_err(|e| io(e.into()))?;
        let mut page = LogQuery {
            before: None,
            limit: Some(EXPORT_PAGE),
            ..query.clone()
        };
        let mut rows = 0;
        loop {
            let entries = self.store().inbound_log(&page).await?;
            for e in &entries {
                let status = serde_json::to_value(e.state.status())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                out.write_record([
                    e.received_at.to_rfc3339(),
                    names.get(&e.mailbox_id).cloned().unwrap_or_default(),
                    e.from_address.clone(),
                    e.from_name.clone(),
                    e.subject.clone(),
                    status,
                    e.ticket_id.map(|t| t.to_string()).unwrap_or_default(),
                    e.attempts.to_string(),
                    e.error_code.clone().unwrap_or_default(),
                    e.error_message.clone().unwrap_or_default(),
                    e.skip_reason.clone().unwrap_or_default(),
                    e.internet_message_id.clone().unwrap_or_default(),
                ])
                .map_err(|e| io(e.into()))?;
            }
            rows += entries.len();
            match entries.last() {
                Some(last) if entries.len() as i64 == EXPORT_PAGE => {
                    page.before = Some((last.received_at, last.id));
                }
                _ => break,
            }
        }
        out.flush().map_err(io)?;
        Ok(rows)
    }
}
