//! HaloPSA list envelopes and page iteration.
//!
//! Paged resources answer `{page_no, page_size, record_count, <plural>: [...]}` when asked with
//! `pageinate=true&page_size=N&page_no=P` (1-based); `record_count` is the total over all pages.
//! Lookup resources answer a bare array. [`split_list`] accepts both, and [`Pager`] decides which
//! page to ask for next and when to stop.

use serde_json::Value;

use crate::error::PsaError;

/// One page of a list reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The items on this page.
    pub items: Vec<Value>,
    /// Total items over all pages, when the reply was an envelope that said so.
    pub record_count: Option<u64>,
}

/// Splits a list reply into its items: a bare array, or an envelope whose items are under
/// `plural` (matched case-insensitively), or failing that the envelope's only array field.
pub fn split_list(reply: Value, plural: &str) -> Result<Page, PsaError> {
    match reply {
        Value::Array(items) => Ok(Page { items, record_count: None }),
        Value::Object(mut map) => {
            let record_count = map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("record_count"))
                .and_then(|(_, v)| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)));
            let key = map
                .keys()
                .find(|k| k.eq_ignore_ascii_case(plural))
                .cloned()
                .or_else(|| {
                    let arrays: Vec<&String> = map.iter().filter(|(_, v)| v.is_array()).map(|(k, _)| k).collect();
                    (arrays.len() == 1).then(|| arrays[0].clone())
                });
            match key.and_then(|k| map.remove(&k)) {
                Some(Value::Array(items)) => Ok(Page { items, record_count }),
                Some(Value::Null) | None if record_count == Some(0) => Ok(Page { items: Vec::new(), record_count }),
                _ => Err(PsaError::protocol(format!(
                    "HaloPSA's list reply has no \"{plural}\" array; this does not look like a HaloPSA API reply."
                ))),
            }
        }
        other => Err(PsaError::protocol(format!(
            "HaloPSA's list reply was {} instead of a list; this does not look like a HaloPSA API reply.",
            match other {
                Value::Null => "null",
                Value::String(_) => "a string",
                Value::Bool(_) => "a boolean",
                _ => "a number",
            }
        ))),
    }
}

/// Number of pages needed for `record_count` items at `page_size` per page.
pub fn pages_needed(record_count: u64, page_size: u32) -> u64 {
    let size = u64::from(page_size.max(1));
    record_count.div_ceil(size)
}

/// Walks the pages of a paged list.
#[derive(Debug, Clone)]
pub struct Pager {
    page_size: u32,
    next_page: u32,
    collected: u64,
    done: bool,
    /// Hard stop against a server that never reports a total and always fills pages.
    max_pages: u32,
}

impl Pager {
    /// A pager starting at page 1.
    pub fn new(page_size: u32) -> Self {
        Pager {
            page_size: page_size.max(1),
            next_page: 1,
            collected: 0,
            done: false,
            max_pages: 10_000,
        }
    }

    /// The query for the next page (`pageinate`, `page_size`, `page_no`), or `None` when done.
    pub fn next_query(&self) -> Option<Vec<(String, String)>> {
        (!self.done).then(|| {
            vec![
                ("pageinate".to_string(), "true".to_string()),
                ("page_size".to_string(), self.page_size.to_string()),
                ("page_no".to_string(), self.next_page.to_string()),
            ]
        })
    }

    /// Takes a page in; returns whether another page should be fetched.
    pub fn absorb(&mut self, page: &Page) -> bool {
        let got = page.items.len() as u64;
        self.collected += got;
        self.next_page += 1;
        self.done = match page.record_count {
            // The server ignored paging and sent everything as a bare array.
            None => true,
            Some(total) => self.collected >= total || got == 0 || self.next_page > self.max_pages,
        };
        !self.done
    }

    /// Items collected so far.
    pub fn collected(&self) -> u64 {
        self.collected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn page_counts() {
        assert_eq!(pages_needed(0, 50), 0);
        assert_eq!(pages_needed(1, 50), 1);
        assert_eq!(pages_needed(50, 50), 1);
        assert_eq!(pages_needed(51, 50), 2);
        assert_eq!(pages_needed(123, 50), 3);
        assert_eq!(pages_needed(5, 0), 5);
    }

    #[test]
    fn envelopes_and_bare_arrays_split() {
        let page = split_list(
            json!({"page_no":1,"page_size":2,"record_count":5,"Users":[{"id":1},{"id":2}]}),
            "users",
        )
        .unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.record_count, Some(5));
        let page = split_list(json!([{"id":1}]), "tickets").unwrap();
        assert_eq!(
            page,
            Page {
                items: vec![json!({"id":1})],
                record_count: None
            }
        );
        let page = split_list(json!({"record_count":3,"things":[{"id":1}]}), "tickets").unwrap();
        assert_eq!(page.items.len(), 1);
        let page = split_list(json!({"record_count":0}), "tickets").unwrap();
        assert!(page.items.is_empty());
        assert!(split_list(json!({"record_count":3}), "tickets").is_err());
        assert!(split_list(json!("<html>"), "tickets").is_err());
    }

    #[test]
    fn pager_walks_until_record_count() {
        let mut pager = Pager::new(2);
        let mut queries = Vec::new();
        let total = 5;
        let mut served = 0;
        while let Some(query) = pager.next_query() {
            queries.push(query[2].1.clone());
            let n = (total - served).min(2);
            served += n;
            let page = Page {
                items: (0..n).map(|i| json!({"id": i})).collect(),
                record_count: Some(total as u64),
            };
            pager.absorb(&page);
        }
        assert_eq!(queries, vec!["1", "2", "3"]);
        assert_eq!(pager.collected(), 5);
        assert_eq!(pages_needed(5, 2), 3);
    }

    #[test]
    fn pager_stops_on_empty_page_or_bare_array() {
        let mut pager = Pager::new(10);
        // Server claims 30 but runs dry after one page.
        assert!(pager.absorb(&Page {
            items: vec![json!({}); 10],
            record_count: Some(30)
        }));
        assert!(!pager.absorb(&Page {
            items: vec![],
            record_count: Some(30)
        }));
        assert!(pager.next_query().is_none());
        let mut pager = Pager::new(10);
        assert!(!pager.absorb(&Page {
            items: vec![json!({}); 3],
            record_count: None
        }));
    }
}
