//! Lenient number parsing that matches pydantic's: integral floats (`30.0`) and numeric strings
//! (`"30"`) are accepted for integer fields; `30.5` is refused.

use serde::{de::Error as _, Deserialize, Deserializer};
use serde_json::Value;

fn int_from_value<E: serde::de::Error>(value: &Value) -> Result<i64, E> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                _ => Err(E::custom(format!("expected an integer, got {n}"))),
            }
        }
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| E::custom(format!("expected an integer, got \"{s}\""))),
        other => Err(E::custom(format!("expected an integer, got {other}"))),
    }
}

pub(super) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    int_from_value(&Value::deserialize(d)?)
}

/// An optional integer: absent or `null` is `None`.
pub(super) fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        value => int_from_value(&value).map(Some),
    }
}

pub(super) fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| D::Error::custom("expected a number")),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| D::Error::custom(format!("expected a number, got \"{s}\""))),
        other => Err(D::Error::custom(format!("expected a number, got {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "int")]
        n: i64,
    }

    fn parse(json: &str) -> Result<i64, String> {
        serde_json::from_str::<T>(json)
            .map(|t| t.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_ints_integral_floats_and_numeric_strings() {
        assert_eq!(parse(r#"{"n":30}"#), Ok(30));
        assert_eq!(parse(r#"{"n":30.0}"#), Ok(30));
        assert_eq!(parse(r#"{"n":"30"}"#), Ok(30));
    }

    #[test]
    fn refuses_fractions_and_other_types() {
        assert!(parse(r#"{"n":30.5}"#)
            .unwrap_err()
            .contains("expected an integer"));
        assert!(parse(r#"{"n":true}"#).is_err());
        assert!(parse(r#"{"n":"x"}"#).is_err());
    }
}
