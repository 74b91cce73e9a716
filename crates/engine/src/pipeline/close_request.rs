//! Closing a ticket when its requester's reply asks to (the integration's resolve step, off by
//! default): after the reply is added to the ticket, a reply whose own text (not the quoted
//! history) contains one of the configured phrases, sent by the ticket's user, gets the action
//! "Mailroom resolve" with a private note naming the email that closed it.
//!
//! Closing never fails the email: the reply is already on the ticket, so anything in the way
//! (the action missing, the PSA refusing) is logged as a warning on the attempt and the ticket
//! stays open. A retried attempt does not close twice: a closed ticket is left as it is.

use mailroom_mailproc::{
    trim_quoted_html, trim_quoted_text, ParsedEmail, QuoteTrimming, SenderMatch,
};
use mailroom_psa::NewAction;

use super::attempt::StepLog;
use super::Pipeline;
use crate::integration::{ResolveSettings, RESOLVE_ACTION, RESOLVE_KEY};

/// Lower-cased words of `text`, one space apart (tags dropped from HTML).
fn normalized(text: &str, html: bool) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' if html => {
                in_tag = true;
                plain.push(' ');
            }
            '>' if html && in_tag => in_tag = false,
            _ if in_tag => {}
            _ => plain.push(c),
        }
    }
    let plain = if html {
        html_escape::decode_html_entities(&plain).into_owned()
    } else {
        plain
    };
    plain
        .split(|c: char| c.is_whitespace() || (c.is_ascii_punctuation() && c != '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The configured phrase the reply's own text contains, if any (whole words, case and
/// punctuation ignored).
pub(crate) fn close_phrase<'a>(parsed: &ParsedEmail, phrases: &'a [String]) -> Option<&'a str> {
    let trimming = QuoteTrimming::default();
    let text = match (&parsed.text_body, &parsed.html_body) {
        (Some(text), _) => normalized(&trim_quoted_text(text, &trimming), false),
        (None, Some(html)) => normalized(&trim_quoted_html(html, &trimming), true),
        (None, None) => return None,
    };
    let haystack = format!(" {text} ");
    phrases
        .iter()
        .find(|p| {
            let needle = normalized(p, false);
            !needle.is_empty() && haystack.contains(&format!(" {needle} "))
        })
        .map(String::as_str)
}

impl Pipeline {
    /// Closes `ticket_id` with the resolve action when the settings ask for it and the reply
    /// (from the ticket's user) contains a closing phrase.
    pub(super) async fn close_if_requested(
        &self,
        parsed: &ParsedEmail,
        ticket_id: i64,
        sender: &SenderMatch,
        log: &StepLog,
    ) {
        let settings: ResolveSettings = match self.store.setting(RESOLVE_KEY).await {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => {
                log.warn(format!(
                    "The resolve settings cannot be read ({e}); the ticket stays open"
                ));
                return;
            }
        };
        if !settings.close_on_request {
            return;
        }
        let Some(phrase) = close_phrase(parsed, &settings.close_phrases) else {
            return;
        };
        let SenderMatch::ExistingUser { user_id, .. } = sender else {
            log.info(format!(
                "The reply says \"{phrase}\", but its sender is not a known user of the ticket; the ticket stays open"
            ));
            return;
        };
        let ticket = match self.psa.get_ticket(ticket_id).await {
            Ok(t) => t,
            Err(e) => {
                log.warn(format!("The reply says \"{phrase}\", but ticket {ticket_id} cannot be read ({e}); it stays open"));
                return;
            }
        };
        if ticket.user_id != Some(*user_id) {
            log.info(format!(
                "The reply says \"{phrase}\", but its sender is not the ticket's requester; the ticket stays open"
            ));
            return;
        }
        if ticket.hasbeenclosed == Some(true)
            || (settings.status_id.is_some() && ticket.status_id == settings.status_id)
        {
            log.info(format!(
                "The reply says \"{phrase}\"; ticket {ticket_id} is already closed"
            ));
            return;
        }
        let outcome = match self.psa.outcomes().await {
            Ok(list) => list
                .into_iter()
                .find(|o| o.outcome.as_deref() == Some(RESOLVE_ACTION)),
            Err(e) => {
                log.warn(format!("The reply says \"{phrase}\", but the PSA's actions cannot be read ({e}); the ticket stays open"));
                return;
            }
        };
        let Some(outcome) = outcome else {
            log.warn(format!(
                "The reply says \"{phrase}\", but HaloPSA has no action \"{RESOLVE_ACTION}\"; set it up in Integration (step 5). The ticket stays open"
            ));
            return;
        };
        let when = parsed
            .date
            .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "an unknown date".into());
        let from = parsed
            .from
            .as_ref()
            .map(|f| f.address.clone())
            .unwrap_or_default();
        let note = format!(
            "<p>Closed by Mailroom: the requester's email \"{}\" from {} of {when} asks to close this ticket (it says \"{}\").</p>",
            mailroom_mailproc::escape_html(&parsed.subject),
            mailroom_mailproc::escape_html(&from),
            mailroom_mailproc::escape_html(phrase),
        );
        let action = NewAction {
            ticket_id,
            outcome_id: Some(outcome.id),
            note_html: Some(note),
            hiddenfromuser: true,
            sendemail: Some(false),
            ..Default::default()
        };
        match self.psa.create_action(&action).await {
            Ok(created) => log.info(format!(
                "Closed ticket {ticket_id} with \"{RESOLVE_ACTION}\" (action {}): the reply says \"{phrase}\"",
                created.id
            )),
            Err(e) => log.warn(format!(
                "The reply says \"{phrase}\", but closing ticket {ticket_id} failed ({e}); it stays open"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(text: Option<&str>, html: Option<&str>) -> ParsedEmail {
        ParsedEmail {
            text_body: text.map(str::to_string),
            html_body: html.map(str::to_string),
            ..Default::default()
        }
    }

    fn phrases() -> Vec<String> {
        crate::integration::DEFAULT_CLOSE_PHRASES
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn a_phrase_in_the_reply_is_found_but_not_in_the_quoted_history_or_inside_words() {
        let p = phrases();
        assert_eq!(
            close_phrase(
                &email(Some("Works now, thanks!\nPlease   CLOSE it."), None),
                &p
            ),
            Some("please close")
        );
        assert_eq!(
            close_phrase(
                &email(
                    Some("Still broken.\n\nOn Mon, Pat wrote:\n> please close this"),
                    None
                ),
                &p
            ),
            None
        );
        assert_eq!(
            close_phrase(
                &email(None, Some("<p>Fixed &ndash; you <b>can</b> close</p>")),
                &p
            ),
            Some("you can close")
        );
        assert_eq!(
            close_phrase(&email(Some("please closet the door"), None), &p),
            None
        );
    }
}
