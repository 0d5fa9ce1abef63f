//! A tool call's arguments, taken one by one with the errors a model can act on. Whatever is
//! left at `finish` was not in the schema.

use serde_json::{Map, Value};

pub(crate) struct Args(Map<String, Value>);

impl Args {
    pub(crate) fn new(map: Map<String, Value>) -> Self {
        Args(map)
    }

    /// What has not been taken yet (an executor's own arguments, checked by the tool).
    pub(crate) fn into_rest(self) -> Map<String, Value> {
        self.0
    }

    pub(crate) fn required_string(&mut self, key: &str) -> Result<String, String> {
        self.optional_string(key)?
            .ok_or_else(|| format!("`{key}` is required"))
    }

    pub(crate) fn optional_string(&mut self, key: &str) -> Result<Option<String>, String> {
        match self.0.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("`{key}` must be a string, not {}", kind(&other))),
        }
    }

    pub(crate) fn optional_bool(&mut self, key: &str) -> Result<Option<bool>, String> {
        match self.0.remove(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(format!(
                "`{key}` must be true or false, not {}",
                kind(&other)
            )),
        }
    }

    pub(crate) fn optional_u64(&mut self, key: &str) -> Result<Option<u64>, String> {
        match self.0.remove(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("`{key}` must be a whole number of at least 0, not {n}")),
            Some(other) => Err(format!("`{key}` must be a number, not {}", kind(&other))),
        }
    }

    pub(crate) fn optional_f64(&mut self, key: &str) -> Result<Option<f64>, String> {
        match self.0.remove(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
                _ => Err(format!("`{key}` must be a number of at least 0, not {n}")),
            },
            Some(other) => Err(format!("`{key}` must be a number, not {}", kind(&other))),
        }
    }

    pub(crate) fn optional_string_list(
        &mut self,
        key: &str,
    ) -> Result<Option<Vec<String>>, String> {
        match self.0.remove(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    other => Err(format!("`{key}` must hold strings, not {}", kind(&other))),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(other) => Err(format!(
                "`{key}` must be a list of strings, not {}",
                kind(&other)
            )),
        }
    }

    /// Fails on the first argument nobody took.
    pub(crate) fn finish(self) -> Result<(), String> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(key) => Err(format!("unknown argument `{key}`")),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(value: Value) -> Args {
        Args::new(value.as_object().unwrap().clone())
    }

    #[test]
    fn wrong_types_and_leftovers_are_named() {
        let mut a = args(json!({"id": 3, "extra": true}));
        assert_eq!(
            a.required_string("id").unwrap_err(),
            "`id` must be a string, not a number"
        );
        assert_eq!(a.finish().unwrap_err(), "unknown argument `extra`");
        let mut a = args(json!({}));
        assert_eq!(a.required_string("id").unwrap_err(), "`id` is required");
        let mut a = args(json!({"n": -1, "t": [1]}));
        assert!(a.optional_u64("n").unwrap_err().contains("at least 0"));
        assert!(a.optional_string_list("t").unwrap_err().contains("strings"));
    }

    #[test]
    fn taken_values_come_back() {
        let mut a = args(json!({"s": "x", "b": false, "n": 2, "f": 0.5, "l": ["a"]}));
        assert_eq!(a.optional_string("s").unwrap().as_deref(), Some("x"));
        assert_eq!(a.optional_bool("b").unwrap(), Some(false));
        assert_eq!(a.optional_u64("n").unwrap(), Some(2));
        assert_eq!(a.optional_f64("f").unwrap(), Some(0.5));
        assert_eq!(
            a.optional_string_list("l").unwrap(),
            Some(vec!["a".to_string()])
        );
        assert!(a.finish().is_ok());
    }
}
