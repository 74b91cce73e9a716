//! OData query options for messages: `$filter` (the subset Outlook clients use), `$orderby`
//! and the InefficientFilter rule.

use chrono::{DateTime, Utc};

use crate::state::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Date(DateTime<Utc>),
    Bool(bool),
    Str(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Clause {
    /// Canonical property path, e.g. `receivedDateTime`, `from/emailAddress/address`.
    pub property: String,
    pub op: Op,
    pub value: Value,
}

const PROPS: &[&str] = &[
    "receivedDateTime",
    "sentDateTime",
    "lastModifiedDateTime",
    "isRead",
    "hasAttachments",
    "isDraft",
    "subject",
    "importance",
    "internetMessageId",
    "conversationId",
    "from/emailAddress/address",
    "sender/emailAddress/address",
    "from/emailAddress/name",
    "displayName",
];

fn canonical(p: &str) -> Option<&'static str> {
    PROPS.iter().copied().find(|c| c.eq_ignore_ascii_case(p))
}

fn tokenize(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            let mut lit = String::from("'");
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        lit.push('\'');
                    }
                    Some('\'') => break,
                    Some(ch) => lit.push(ch),
                    None => return Err("unterminated string literal".into()),
                }
            }
            out.push(lit);
        } else if c.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Parses `a op v and b op w …`.
pub(crate) fn parse_filter(s: &str) -> Result<Vec<Clause>, String> {
    let tokens = tokenize(s)?;
    let mut clauses = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens.len() - i < 3 {
            return Err(format!("Invalid filter clause: '{s}'"));
        }
        let prop = canonical(&tokens[i]).ok_or_else(|| {
            format!(
                "Could not find a property named '{}' on type 'microsoft.graph.message'.",
                tokens[i]
            )
        })?;
        let op = match tokens[i + 1].to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => {
                return Err(format!(
                    "Invalid filter clause: unsupported operator '{other}'"
                ))
            }
        };
        let raw = &tokens[i + 2];
        let value = if let Some(lit) = raw.strip_prefix('\'') {
            Value::Str(lit.to_owned())
        } else if raw.eq_ignore_ascii_case("true") || raw.eq_ignore_ascii_case("false") {
            Value::Bool(raw.eq_ignore_ascii_case("true"))
        } else if let Ok(d) = DateTime::parse_from_rfc3339(raw) {
            Value::Date(d.with_timezone(&Utc))
        } else {
            return Err(format!(
                "Invalid filter clause: cannot parse literal '{raw}'"
            ));
        };
        clauses.push(Clause {
            property: prop.to_owned(),
            op,
            value,
        });
        i += 3;
        if i < tokens.len() {
            if tokens[i].eq_ignore_ascii_case("and") {
                i += 1;
                if i >= tokens.len() {
                    return Err(format!("Invalid filter clause: '{s}'"));
                }
            } else {
                return Err(format!(
                    "Invalid filter clause: only 'and' combinations are supported, found '{}'",
                    tokens[i]
                ));
            }
        }
    }
    Ok(clauses)
}

fn cmp<T: PartialOrd>(a: &T, op: Op, b: &T) -> bool {
    match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
        Op::Lt => a < b,
        Op::Le => a <= b,
    }
}

fn prop_value(m: &Message, prop: &str) -> Value {
    match prop {
        "receivedDateTime" => Value::Date(m.received),
        "sentDateTime" => Value::Date(m.sent),
        "lastModifiedDateTime" => Value::Date(m.last_modified),
        "isRead" => Value::Bool(m.is_read),
        "hasAttachments" => Value::Bool(m.has_attachments()),
        "isDraft" => Value::Bool(m.is_draft),
        "subject" => Value::Str(m.subject.clone()),
        "importance" => Value::Str(m.importance.clone()),
        "internetMessageId" => Value::Str(m.internet_message_id.clone()),
        "conversationId" => Value::Str(m.conversation_id.clone()),
        "from/emailAddress/address" | "sender/emailAddress/address" => {
            Value::Str(m.from.1.to_ascii_lowercase())
        }
        "from/emailAddress/name" => Value::Str(m.from.0.clone().unwrap_or_default()),
        _ => Value::Str(String::new()),
    }
}

/// Whether `m` satisfies every clause.
pub(crate) fn matches(m: &Message, clauses: &[Clause]) -> bool {
    clauses.iter().all(|c| {
        let v = prop_value(m, &c.property);
        match (&v, &c.value) {
            (Value::Date(a), Value::Date(b)) => cmp(a, c.op, b),
            (Value::Bool(a), Value::Bool(b)) => cmp(a, c.op, b),
            (Value::Str(a), Value::Str(b)) => {
                if c.property.ends_with("address") {
                    cmp(a, c.op, &b.to_ascii_lowercase())
                } else {
                    cmp(a, c.op, b)
                }
            }
            _ => false,
        }
    })
}

/// Parses `$orderby=prop [asc|desc], …`.
pub(crate) fn parse_orderby(s: &str) -> Result<Vec<(String, bool)>, String> {
    s.split(',')
        .map(|part| {
            let mut it = part.split_whitespace();
            let p = it.next().ok_or("empty $orderby")?;
            let prop = canonical(p).ok_or_else(|| {
                format!("Could not find a property named '{p}' on type 'microsoft.graph.message'.")
            })?;
            let desc = match it.next().map(|d| d.to_ascii_lowercase()) {
                None => false,
                Some(d) if d == "asc" => false,
                Some(d) if d == "desc" => true,
                Some(d) => return Err(format!("Invalid $orderby direction '{d}'")),
            };
            Ok((prop.to_owned(), desc))
        })
        .collect()
}

/// Outlook's rule: properties in `$orderby` must also appear in `$filter`, in the same order,
/// before any other filter properties.
pub(crate) fn inefficient(filter: &[Clause], order: &[(String, bool)]) -> bool {
    if filter.is_empty() {
        return false;
    }
    order
        .iter()
        .enumerate()
        .any(|(i, (p, _))| filter.get(i).is_none_or(|c| &c.property != p))
}

/// Sorts `msgs` by `order` (default: receivedDateTime desc).
pub(crate) fn sort(msgs: &mut [&Message], order: &[(String, bool)]) {
    let default = [("receivedDateTime".to_owned(), true)];
    let order = if order.is_empty() {
        &default[..]
    } else {
        order
    };
    msgs.sort_by(|a, b| {
        for (p, desc) in order {
            let ord = match (prop_value(a, p), prop_value(b, p)) {
                (Value::Date(x), Value::Date(y)) => x.cmp(&y),
                (Value::Bool(x), Value::Bool(y)) => x.cmp(&y),
                (Value::Str(x), Value::Str(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
                _ => std::cmp::Ordering::Equal,
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        b.key.cmp(&a.key)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_and_orderby_rule() {
        let f =
            parse_filter("receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false").unwrap();
        assert_eq!(f.len(), 2);
        let o = parse_orderby("receivedDateTime desc").unwrap();
        assert!(!inefficient(&f, &o));
        let f2 = parse_filter("isRead eq false").unwrap();
        assert!(inefficient(&f2, &o));
        assert!(parse_filter("from/emailAddress/address eq 'it''s@x.test'").is_ok());
        assert!(parse_filter("isRead eq").is_err());
        assert!(parse_filter("isRead eq false or isRead eq true").is_err());
    }
}
