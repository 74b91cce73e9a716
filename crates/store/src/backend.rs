//! The two databases the store runs on, and what differs between them.
//!
//! Every query is written once, in the SQL both accept: `$N` placeholders, `ON CONFLICT`,
//! `RETURNING`, text timestamps (RFC 3339, UTC, milliseconds, so text order is time order),
//! integer flags (0/1) and `BIGINT` counts. What cannot be written once — full-text search,
//! a list of ids as one parameter, the database's own housekeeping — is a method here.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

/// Which database a [`crate::Store`] is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One file per user (the desktop app, `mailroom run`): the default.
    Sqlite,
    /// A shared server (`mailroom serve --database-url postgres://…`): several workers.
    Postgres,
}

impl Backend {
    /// `FROM` items joining the log (`inbound_emails e`) to a JSON array of its ids (one text
    /// parameter, `?`), the ids first.
    pub(crate) fn log_ids_join(self) -> &'static str {
        match self {
            // CROSS JOIN keeps this join order in SQLite: the ids first, each looked up by key.
            Backend::Sqlite => {
                "json_each(?) AS hit CROSS JOIN inbound_emails e ON e.id = hit.value"
            }
            Backend::Postgres => {
                "json_array_elements_text(CAST(? AS json)) AS hit(value) \
                 JOIN inbound_emails e ON e.id = CAST(hit.value AS BIGINT)"
            }
        }
    }

    /// The ids of log entries whose sender or subject hold every search term (`$1`, from
    /// [`Backend::search_terms`]): at most `$2` of them, or (`in_range`) those with ids from
    /// `$2` to `$3`. SQLite asks its FTS5 table (migration 0002), PostgreSQL the GIN index
    /// on the same expression (postgres/0001).
    pub(crate) fn search_ids(self, in_range: bool) -> &'static str {
        match (self, in_range) {
            (Backend::Sqlite, false) => {
                "SELECT rowid FROM inbound_search WHERE inbound_search MATCH $1 LIMIT $2"
            }
            (Backend::Sqlite, true) => {
                "SELECT rowid FROM inbound_search
                 WHERE inbound_search MATCH $1 AND rowid BETWEEN $2 AND $3"
            }
            (Backend::Postgres, false) => {
                "SELECT id FROM inbound_emails
                 WHERE to_tsvector('simple', translate(from_address || ' ' || from_name || ' ' || subject, '@._-', '    '))
                       @@ to_tsquery('simple', $1)
                 LIMIT $2"
            }
            (Backend::Postgres, true) => {
                "SELECT id FROM inbound_emails
                 WHERE to_tsvector('simple', translate(from_address || ' ' || from_name || ' ' || subject, '@._-', '    '))
                       @@ to_tsquery('simple', $1)
                   AND id BETWEEN $2 AND $3"
            }
        }
    }

    /// The full-text query for search words (letters, digits and `@._-`), each a prefix.
    pub(crate) fn search_terms(self, words: &[String]) -> String {
        match self {
            Backend::Sqlite => words
                .iter()
                .map(|w| format!("\"{}\"*", w.replace('"', "")))
                .collect::<Vec<_>>()
                .join(" "),
            // A word of several tokens (an address) is a phrase, its last token a prefix, as
            // in FTS5.
            Backend::Postgres => words
                .iter()
                .filter_map(|w| {
                    let tokens: Vec<&str> = w
                        .split(|c: char| !c.is_alphanumeric())
                        .filter(|t| !t.is_empty())
                        .collect();
                    let (last, rest) = tokens.split_last()?;
                    let mut phrase: Vec<String> = rest.iter().map(|t| format!("'{t}'")).collect();
                    phrase.push(format!("'{last}':*"));
                    Some(format!("({})", phrase.join(" <-> ")))
                })
                .collect::<Vec<_>>()
                .join(" & "),
        }
    }
}

/// A value bound to a query built at run time, where the binds are collected before the SQL
/// is finished.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
}

impl Arg {
    pub(crate) fn text(value: impl Into<String>) -> Self {
        Arg::Text(Some(value.into()))
    }

    pub(crate) fn bind<'q>(
        self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        match self {
            Arg::Text(v) => query.bind(v),
            Arg::Int(v) => query.bind(v),
        }
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::text(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_string))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<i32> for Arg {
    fn from(v: i32) -> Self {
        Arg::Int(Some(v.into()))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

/// The rows of a multi-row `INSERT … VALUES`, one `Vec<Arg>` per row.
pub(crate) fn value_rows<I: IntoIterator>(
    items: I,
    row: impl FnMut(I::Item) -> Vec<Arg>,
) -> Vec<Vec<Arg>> {
    items.into_iter().map(row).collect()
}

/// A multi-row insert both databases run: its SQL and values.
pub(crate) struct Insert {
    sql: String,
    args: Vec<Arg>,
}

impl Insert {
    /// The statement with every value bound.
    pub(crate) fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut query = sqlx::query(&self.sql);
        for value in &self.args {
            query = value.clone().bind(query);
        }
        query
    }
}

/// `head VALUES (…), (…) tail`, one row per `Vec<Arg>`.
pub(crate) fn insert_values(head: &str, rows: Vec<Vec<Arg>>, tail: &str) -> Insert {
    let mut sql = String::from(head);
    sql.push_str(" VALUES ");
    let mut n = 0;
    for (i, row) in rows.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for j in 0..row.len() {
            n += 1;
            if j > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${n}"));
        }
        sql.push(')');
    }
    sql.push_str(tail);
    Insert {
        sql,
        args: rows.into_iter().flatten().collect(),
    }
}

/// Numbers the `?` placeholders of SQL built at run time, in order (`$1`, `$2`, …): both
/// databases accept the numbered form. `?` inside a quoted string or identifier is kept.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// Reads a 0/1 flag column (stored as an integer in both databases).
pub(crate) fn flag(row: &AnyRow, column: &str) -> sqlx::Result<bool> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ? AND c IN (?, ?) AND d = '?' AND \"e?\" = ?"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3) AND d = '?' AND \"e?\" = $4"
        );
        assert_eq!(numbered("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn search_words_are_prefixes_and_an_address_is_a_phrase() {
        let words = ["printer".to_string(), "megan@contoso.te".to_string()];
        assert_eq!(
            Backend::Sqlite.search_terms(&words),
            "\"printer\"* \"megan@contoso.te\"*"
        );
        assert_eq!(
            Backend::Postgres.search_terms(&words),
            "('printer':*) & ('megan' <-> 'contoso' <-> 'te':*)"
        );
    }
}
