//! Errors produced while turning raw input into a [`crate::ParsedEmail`].

/// Why an email could not be parsed.
///
/// Every message tells an administrator what was wrong with the input and
/// what to do about it; none of them contain message content.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MailError {
    /// The input had no bytes at all.
    #[error("the message is empty (0 bytes); the mail server returned no MIME content — re-fetch the message or check that `$value` was requested")]
    Empty,
    /// The input does not start with an RFC 5322 header block.
    #[error("the input is not an RFC 5322 email: no recognisable header (From, To, Subject, Date, Message-ID, …) was found in the first {inspected} bytes; check that the raw MIME (`$value`) and not the JSON was passed")]
    NotAnEmail {
        /// How many bytes were inspected.
        inspected: usize,
    },
    /// The MIME parser gave up on the input.
    #[error("the MIME structure could not be parsed: {detail}; the message is probably truncated or corrupt — re-fetch it, and if it persists skip it and inspect it in the mailbox")]
    Malformed {
        /// What went wrong.
        detail: String,
    },
    /// The input is larger than the configured limit.
    #[error("the message is {size} bytes, above the {limit}-byte limit; raise the limit or handle the message manually")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// A Graph attachment carried `contentBytes` that are not valid base64.
    #[error("attachment {name:?} has contentBytes that are not valid base64 ({detail}); re-fetch the attachment")]
    BadAttachmentEncoding {
        /// Attachment file name.
        name: String,
        /// Decoder message.
        detail: String,
    },
}
