//! Timestamps on the wire: RFC 3339 UTC with microseconds, which Python's `datetime` parses
//! (it rejects nanoseconds).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    DateTime::<Utc>::deserialize(d)
}

pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    #[test]
    fn microseconds_and_z() {
        let t = chrono::Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .unwrap();
        let json = serde_json::to_value(crate::model::ToolResult {
            timestamp: t,
            ..crate::model::ToolResult::success("x", "")
        })
        .unwrap();
        assert_eq!(json["timestamp"], "2023-11-14T22:13:20.123456Z");
    }
}
