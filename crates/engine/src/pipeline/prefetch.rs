//! Messages read in the delta round, kept for the attempt that processes them.
//!
//! The intake selects every field an attempt needs ([`super::attempt::MESSAGE_FIELDS`]) in the
//! delta round itself, so processing a new email needs no `GET /messages/{id}` of its own: per
//! email Graph then counts only the update of the mailbox (move or mark read) and its share of a
//! delta page. The store of read messages is memory only and bounded in bytes; an attempt that
//! finds nothing here (after a restart, a retry, a reprocess, a message the budget left out,
//! or one Graph returned without its headers) reads the message as before.

use std::collections::BTreeMap;
use std::sync::Mutex;

use mailroom_graph::Message;

/// Default bound of the message bodies and headers kept at once.
pub const DEFAULT_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// Read messages by email id, oldest first; the oldest give way when the budget is exceeded.
#[derive(Debug)]
pub struct Prefetched {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    bytes: usize,
    /// Email ids grow with every new sighting, so the first entry is the oldest.
    messages: BTreeMap<i64, (Message, usize)>,
}

impl Prefetched {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Keeps `msg` for email `id` when it carries what an attempt reads (its body and its
    /// Internet headers: Graph returns the headers only when selected, so a round begun without
    /// the selection has none) and fits the budget.
    pub fn offer(&self, id: i64, msg: &Message) {
        if msg.body.is_none() || msg.internet_message_headers.is_none() {
            return;
        }
        let size = approximate_size(msg);
        if size > self.budget {
            return;
        }
        let mut inner = self.inner.lock().expect("prefetch lock");
        if let Some((_, old)) = inner.messages.insert(id, (msg.clone(), size)) {
            inner.bytes -= old;
        }
        inner.bytes += size;
        while inner.bytes > self.budget {
            let Some((_, (_, size))) = inner.messages.pop_first() else {
                break;
            };
            inner.bytes -= size;
        }
    }

    /// The message read for email `id`, once: a later attempt reads it afresh.
    pub fn take(&self, id: i64) -> Option<Message> {
        let mut inner = self.inner.lock().expect("prefetch lock");
        let (msg, size) = inner.messages.remove(&id)?;
        inner.bytes -= size;
        Some(msg)
    }

    /// Forgets email `id` (an attempt that must read the message afresh).
    pub fn forget(&self, id: i64) {
        self.take(id);
    }

    /// Messages and bytes held now.
    #[cfg(test)]
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock().expect("prefetch lock");
        (inner.messages.len(), inner.bytes)
    }
}

/// The bytes a message holds, near enough for a budget: its body, headers and the rest.
fn approximate_size(msg: &Message) -> usize {
    let body = msg.body.as_ref().map_or(0, |b| b.content.len());
    let headers: usize = msg
        .internet_message_headers
        .iter()
        .flatten()
        .map(|h| h.name.len() + h.value.len() + 16)
        .sum();
    body + headers + 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, body: usize, headers: bool) -> Message {
        let mut v = serde_json::json!({
            "id": id,
            "body": {"contentType": "html", "content": "x".repeat(body)},
        });
        if headers {
            v["internetMessageHeaders"] =
                serde_json::json!([{"name": "Message-ID", "value": "<a@b>"}]);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_message_is_taken_once() {
        let p = Prefetched::new(DEFAULT_BUDGET_BYTES);
        p.offer(1, &message("m1", 10, true));
        assert_eq!(p.take(1).unwrap().id, "m1");
        assert!(p.take(1).is_none());
        assert_eq!(p.usage(), (0, 0));
    }

    #[test]
    fn a_message_without_headers_or_body_is_not_kept() {
        let p = Prefetched::new(DEFAULT_BUDGET_BYTES);
        p.offer(1, &message("m1", 10, false));
        let no_body: Message = serde_json::from_value(serde_json::json!({"id": "m2"})).unwrap();
        p.offer(2, &no_body);
        assert_eq!(p.usage(), (0, 0));
    }

    #[test]
    fn the_oldest_give_way_to_the_budget() {
        let p = Prefetched::new(3 * 2100);
        for id in 1..=5 {
            p.offer(id, &message(&format!("m{id}"), 1000, true));
        }
        let (n, bytes) = p.usage();
        assert!(bytes <= 3 * 2100, "{bytes}");
        assert_eq!(n, 3);
        assert!(p.take(1).is_none() && p.take(2).is_none());
        assert_eq!(p.take(5).unwrap().id, "m5");
        // A message larger than the whole budget is not kept (nor does it evict the rest).
        p.offer(9, &message("m9", 10_000, true));
        assert!(p.take(9).is_none());
        assert_eq!(p.take(4).unwrap().id, "m4");
    }
}
