//! Per-mailbox processing settings and the pipeline's tuning.

use std::time::Duration;

use mailroom_http::Backoff;
use mailroom_mailproc::MailboxSettings;
use mailroom_store::Mailbox;
use serde::{Deserialize, Serialize};

/// What happens to an email in the mailbox once it is processed (or skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProcessedMail {
    /// Move it to [`ProcessingSettings::processed_folder`] (HaloPSA's own default moves
    /// processed mail out of the inbox, to Deleted Items).
    #[default]
    Move,
    /// Mark it read and leave it in the inbox.
    MarkRead,
    /// Leave it untouched.
    Leave,
}

/// Per-mailbox processing settings: the planning rules of `mailroom-mailproc` plus what the
/// engine does around them. Stored as the mailbox's settings JSON; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessingSettings {
    /// Threading, loop protection, sender matching, attachments, HTML.
    #[serde(flatten)]
    pub rules: MailboxSettings,
    /// What to do with processed mail.
    pub processed_mail: ProcessedMail,
    /// Destination of [`ProcessedMail::Move`]: a well-known folder name (`deleteditems`,
    /// `archive`, …) or the display name of a top-level folder (created when missing).
    pub processed_folder: String,
    /// Outcome (HaloPSA `Outcome` id) of actions added for replies, picked from the PSA's
    /// list. `None`: the default found by name ([`crate::outcomes::DEFAULT_OUTCOME_NAMES`]);
    /// if the PSA has none of those, replies fail with `outcome_not_configured`.
    pub action_outcome_id: Option<i64>,
    /// Its name, for display (and, without an id, matched against the PSA's outcomes).
    pub action_outcome: String,
    /// Seconds between scans of this mailbox. `None` (the default): the engine's interval
    /// (`mailroom run --interval`, else 60 s). A value set here wins over the engine's default
    /// but not over an explicit `--interval`.
    pub scan_interval_secs: Option<u64>,
    /// How a reply whose In-Reply-To / References the local thread index does not know is
    /// looked up in the PSA (mail the PSA itself sent: its actions' `email_message_id`).
    /// HaloPSA documents no `email_message_id` filter, hence a strategy; default: ticket
    /// search over actions, verified on the candidates' actions.
    pub psa_thread_lookup: mailroom_psa::ActionLookup,
    /// Whether the end user sees the action added for a reply. Default: what the chosen
    /// outcome says (HaloPSA's `hidefromuser`), so a private-note outcome stays private.
    pub reply_visibility: ReplyVisibility,
}

/// Who sees the action added for an inbound reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyVisibility {
    /// As the outcome's `hidefromuser` says.
    #[default]
    FollowOutcome,
    /// Always visible to the end user (in the portal and ticket emails).
    Visible,
    /// Always hidden from the end user (agents only).
    Hidden,
}

impl ReplyVisibility {
    /// `hiddenfromuser` of the action, for an outcome that is `private` or not.
    pub fn hidden(self, outcome_private: bool) -> bool {
        match self {
            ReplyVisibility::FollowOutcome => outcome_private,
            ReplyVisibility::Visible => false,
            ReplyVisibility::Hidden => true,
        }
    }
}

impl Default for ProcessingSettings {
    fn default() -> Self {
        ProcessingSettings {
            rules: MailboxSettings::default(),
            processed_mail: ProcessedMail::Move,
            processed_folder: "deleteditems".into(),
            action_outcome_id: None,
            action_outcome: String::new(),
            scan_interval_secs: None,
            psa_thread_lookup: mailroom_psa::ActionLookup::default(),
            reply_visibility: ReplyVisibility::default(),
        }
    }
}

pub(super) const WELL_KNOWN_FOLDERS: &[&str] = &[
    "inbox",
    "deleteditems",
    "archive",
    "junkemail",
    "drafts",
    "sentitems",
    "outbox",
];

impl ProcessingSettings {
    /// Reads the settings of a mailbox (missing fields take their defaults).
    pub fn of(mailbox: &Mailbox) -> Result<Self, String> {
        if mailbox.settings.is_null() {
            return Ok(Self::default());
        }
        serde_json::from_value(mailbox.settings.clone()).map_err(|e| {
            format!(
                "the processing settings of '{}' are invalid: {e}",
                mailbox.name
            )
        })
    }
}

/// Tuning of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Attempts before an email is marked failed.
    pub max_attempts: u32,
    /// Delays between attempts: the first (`first`) doubled per attempt up to `max`, with
    /// jitter (up to one delay extra, still capped). A `Retry-After` from the PSA or Graph is
    /// the floor and may exceed `max`.
    pub retry: Backoff,
    /// How long PSA sites and looked-up users are cached.
    pub directory_ttl: Duration,
    /// Window of the loop guard (mails of a sender with the same subject).
    pub loop_window: Duration,
    /// How new tickets of emails processed at the same time share one POST.
    pub batch: super::BatchConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_attempts: 8,
            retry: Backoff::new(Duration::from_secs(5), Duration::from_secs(3600)),
            directory_ttl: Duration::from_secs(600),
            loop_window: Duration::from_secs(3600),
            batch: super::BatchConfig::default(),
        }
    }
}
