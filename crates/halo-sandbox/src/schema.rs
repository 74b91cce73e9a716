//! Typed property tables of Halo's component schemas and the input coercion built on them.
//!
//! Every record the sandbox stores has been through [`coerce_object`]: only properties the
//! schema declares are kept, each converted to the JSON type the schema gives it, so that
//! everything the sandbox returns validates against Halo's own OpenAPI document (whose
//! schemas all say `additionalProperties: false`). Unknown input properties are ignored, as
//! ASP.NET model binding does.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::schema_tables::SCHEMAS;

/// JSON type of a schema property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int32,
    Int64,
    Double,
    Str,
    Bool,
    DateTime,
    Uuid,
    Span,
    Byte,
    Any,
    Array(&'static str),
}

/// One property of a schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prop {
    pub kind: Kind,
    pub nullable: bool,
}

/// The properties of one component schema.
#[derive(Debug)]
pub(crate) struct Table {
    pub props: HashMap<&'static str, Prop>,
}

fn tables() -> &'static HashMap<&'static str, Table> {
    static TABLES: OnceLock<HashMap<&'static str, Table>> = OnceLock::new();
    TABLES.get_or_init(|| {
        SCHEMAS
            .iter()
            .map(|(name, body)| {
                let props = body
                    .split(',')
                    .filter(|e| !e.is_empty())
                    .map(|entry| {
                        let (pname, rest) = entry.split_once(':').expect("generated table entry");
                        let (code, nullable) = match rest.strip_suffix('?') {
                            Some(code) => (code, true),
                            None => (rest, false),
                        };
                        let kind = match code {
                            "i32" => Kind::Int32,
                            "i64" => Kind::Int64,
                            "f64" => Kind::Double,
                            "s" => Kind::Str,
                            "b" => Kind::Bool,
                            "dt" => Kind::DateTime,
                            "uuid" => Kind::Uuid,
                            "span" => Kind::Span,
                            "byte" => Kind::Byte,
                            "any" => Kind::Any,
                            other => Kind::Array(
                                other.strip_prefix("arr:").expect("generated table kind"),
                            ),
                        };
                        (pname, Prop { kind, nullable })
                    })
                    .collect();
                (*name, Table { props })
            })
            .collect()
    })
}

/// The table of schema `name` (panics on a name the generator did not emit: a programming error).
pub(crate) fn table(name: &str) -> &'static Table {
    tables()
        .get(name)
        .unwrap_or_else(|| panic!("schema table {name} is not generated"))
}

/// How the sandbox writes `date-time` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateStyle {
    /// RFC 3339 with a `Z` suffix (what the OpenAPI `date-time` format requires).
    Rfc3339Utc,
    /// `2024-01-31T10:00:00.000` without an offset (what .NET emits for unspecified kinds).
    Naive,
}

/// Formats an instant the way the sandbox emits `date-time` properties.
pub(crate) fn format_datetime(at: DateTime<Utc>, style: DateStyle) -> String {
    match style {
        DateStyle::Rfc3339Utc => at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        DateStyle::Naive => at.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
    }
}

/// Parses a date-time the way Halo accepts it (with or without an offset; no offset means UTC).
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(n.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
}

/// A model-binding failure: the JSON path (`[0].site_id`) and a Newtonsoft-style message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub path: String,
    pub message: String,
}

fn int_error(path: &str, raw: &str) -> FieldError {
    FieldError {
        path: path.to_string(),
        message: format!("Could not convert string to integer: {raw}. Path '{path}'."),
    }
}

fn coerce_value(
    prop: Prop,
    value: &Value,
    path: &str,
    style: DateStyle,
) -> Result<Value, FieldError> {
    if value.is_null() {
        // Non-nullable value types get their default, as ASP.NET binding does for `null`.
        return Ok(if prop.nullable {
            Value::Null
        } else {
            match prop.kind {
                Kind::Int32 | Kind::Int64 => Value::from(0),
                Kind::Double => Value::from(0.0),
                Kind::Bool => Value::Bool(false),
                _ => Value::Null,
            }
        });
    }
    let bad = |what: &str| FieldError {
        path: path.to_string(),
        message: format!("Error converting value {value} to type '{what}'. Path '{path}'."),
    };
    match prop.kind {
        Kind::Int32 | Kind::Int64 => {
            let n = match value {
                Value::Number(n) => match n.as_i64() {
                    Some(i) => i,
                    None => return Err(int_error(path, &n.to_string())),
                },
                Value::String(s) => match s.trim().parse::<i64>() {
                    Ok(i) => i,
                    Err(_) => return Err(int_error(path, s)),
                },
                Value::Bool(b) => i64::from(*b),
                _ => return Err(bad("System.Int32")),
            };
            if prop.kind == Kind::Int32 && i32::try_from(n).is_err() {
                return Err(FieldError {
                    path: path.to_string(),
                    message: format!(
                        "Value was either too large or too small for an Int32. Path '{path}'."
                    ),
                });
            }
            Ok(Value::from(n))
        }
        Kind::Double => {
            let f = match value {
                Value::Number(n) => n.as_f64().unwrap_or_default(),
                Value::String(s) => s.trim().parse::<f64>().map_err(|_| bad("System.Double"))?,
                _ => return Err(bad("System.Double")),
            };
            Ok(serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null))
        }
        Kind::Str | Kind::Span | Kind::Byte => match value {
            Value::String(s) => Ok(Value::String(s.clone())),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(if *b { "True" } else { "False" }.into())),
            _ => Err(bad("System.String")),
        },
        Kind::Bool => match value {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::Number(n) => Ok(Value::Bool(n.as_f64().unwrap_or_default() != 0.0)),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(bad("System.Boolean")),
        },
        Kind::DateTime => match value {
            Value::String(s) => parse_datetime(s)
                .map(|dt| Value::String(format_datetime(dt, style)))
                .ok_or_else(|| FieldError {
                    path: path.to_string(),
                    message: format!("Could not convert string to DateTime: {s}. Path '{path}'."),
                }),
            _ => Err(bad("System.DateTime")),
        },
        Kind::Uuid => match value {
            Value::String(s) => uuid::Uuid::parse_str(s)
                .map(|u| Value::String(u.to_string()))
                .map_err(|_| bad("System.Guid")),
            _ => Err(bad("System.Guid")),
        },
        Kind::Any => Ok(value.clone()),
        Kind::Array(item_schema) => match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    match item {
                        Value::Object(obj) => out.push(Value::Object(coerce_object(
                            item_schema,
                            obj,
                            &item_path,
                            style,
                        )?)),
                        _ => return Err(bad("System.Collections.Generic.List")),
                    }
                }
                Ok(Value::Array(out))
            }
            _ => Err(bad("System.Collections.Generic.List")),
        },
    }
}

/// Keeps only the properties schema `schema` declares, converted to their declared types.
///
/// `path` is the JSON path of `obj` in the request body (`[0]`), used in error messages.
pub(crate) fn coerce_object(
    schema: &str,
    obj: &Map<String, Value>,
    path: &str,
    style: DateStyle,
) -> Result<Map<String, Value>, FieldError> {
    let table = table(schema);
    let mut out = Map::new();
    for (key, value) in obj {
        if let Some(prop) = table.props.get(key.as_str()) {
            let field_path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            out.insert(key.clone(), coerce_value(*prop, value, &field_path, style)?);
        }
    }
    Ok(out)
}

/// True when `schema` declares property `name`.
pub(crate) fn has_prop(schema: &str, name: &str) -> bool {
    table(schema).props.contains_key(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn float_formatted_ids_are_rejected_and_unknown_fields_dropped() {
        let obj = json!({"site_id": "95.0"});
        let err = coerce_object(
            "Faults",
            obj.as_object().unwrap(),
            "[0]",
            DateStyle::Rfc3339Utc,
        )
        .unwrap_err();
        assert_eq!(err.path, "[0].site_id");
        let obj = json!({"site_id": 95.0});
        assert!(coerce_object(
            "Faults",
            obj.as_object().unwrap(),
            "[0]",
            DateStyle::Rfc3339Utc
        )
        .is_err());
        let obj = json!({"site_id": "95", "bogus": 1, "summary": 5});
        let out = coerce_object(
            "Faults",
            obj.as_object().unwrap(),
            "[0]",
            DateStyle::Rfc3339Utc,
        )
        .unwrap();
        assert_eq!(
            out,
            *json!({"site_id": 95, "summary": "5"}).as_object().unwrap()
        );
    }

    #[test]
    fn doubles_are_emitted_as_floats_where_the_spec_says_number() {
        let obj = json!({"site_id": 7, "name": "x"});
        let out =
            coerce_object("Users", obj.as_object().unwrap(), "", DateStyle::Rfc3339Utc).unwrap();
        assert_eq!(serde_json::to_string(&out["site_id"]).unwrap(), "7.0");
    }

    #[test]
    fn dates_accept_naive_and_offset_forms() {
        assert_eq!(
            parse_datetime("2026-01-02T03:04:05").unwrap(),
            parse_datetime("2026-01-02T05:04:05+02:00").unwrap()
        );
    }
}
