//! Lenient id parsing.
//!
//! HaloPSA's spec types some ids as doubles (`Users.site_id`, `Site.client_id`), and replies may
//! carry `95.0` or `"95"`. We read all of those into `i64` and always write plain integers,
//! because HaloPSA rejects a float-formatted id such as `95.0` on input.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer id (possibly written as a whole float or a string)")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .map(Some)
            .map_err(|_| E::custom("id out of range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.fract() == 0.0 && v.is_finite() && v.abs() < 9.0e15 {
            Ok(Some(v as i64))
        } else {
            Err(E::custom(format!("id {v} is not a whole number")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let v = v.trim();
        if v.is_empty() {
            return Ok(None);
        }
        if let Ok(n) = v.parse::<i64>() {
            return Ok(Some(n));
        }
        match v.parse::<f64>() {
            Ok(f) => self.visit_f64(f),
            Err(_) => Err(E::custom(format!("id {v:?} is not a number"))),
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(IdVisitor)
    }
}

/// Deserializes an optional id leniently (null, integer, whole float, numeric string).
pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(IdVisitor)
}

/// Deserializes a required id leniently; null/missing becomes 0.
pub fn req<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(d.deserialize_any(IdVisitor)?.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct T {
        #[serde(default, deserialize_with = "super::req")]
        id: i64,
        #[serde(default, deserialize_with = "super::opt")]
        site_id: Option<i64>,
    }

    #[test]
    fn accepts_every_number_shape() {
        let t: T = serde_json::from_str(r#"{"id": 7, "site_id": 95.0}"#).unwrap();
        assert_eq!(
            t,
            T {
                id: 7,
                site_id: Some(95)
            }
        );
        let t: T = serde_json::from_str(r#"{"id": "12", "site_id": null}"#).unwrap();
        assert_eq!(
            t,
            T {
                id: 12,
                site_id: None
            }
        );
        let t: T = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(
            t,
            T {
                id: 0,
                site_id: None
            }
        );
        assert!(serde_json::from_str::<T>(r#"{"id": 1.5}"#).is_err());
    }
}
