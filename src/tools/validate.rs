//! Checking tool arguments against the tool's JSON schema before anything runs.
//!
//! Covers the subset our schemas use: `type` (string, integer, number, boolean, array, object,
//! null), `anyOf`, `enum`, `items`, `properties`, `required` and `additionalProperties`
//! (`false` or a schema). Two leniencies keep ms-enclave clients working:
//!
//! - an `integer` accepts an integral float (`60.0`), as pydantic does;
//! - a timeout (a top-level parameter named `timeout` or ending in `_timeout`) accepts any
//!   non-negative number of seconds, fractions included: ms-enclave's own tests pass
//!   `"timeout": 0.3` to integer-declared timeouts and rely on it.
//!
//! An optional top-level parameter may be `null`, which means "not given" (for timeouts: no
//! limit); OpenAI models send `null` for optional parameters in strict mode.

use serde_json::{Map, Value};

/// `Err` names the offending parameter.
pub(crate) fn validate_args(parameters: &Value, args: &Map<String, Value>) -> Result<(), String> {
    let properties = parameters.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = parameters
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for name in &required {
        match args.get(*name) {
            None => return Err(format!("missing required parameter `{name}`")),
            Some(Value::Null) => return Err(format!("parameter `{name}` must not be null")),
            Some(_) => {}
        }
    }
    for (name, value) in args {
        let schema = match properties.and_then(|p| p.get(name)) {
            Some(schema) => schema,
            None => match parameters.get("additionalProperties") {
                Some(Value::Bool(false)) => return Err(unknown_parameter(name, properties)),
                Some(schema @ Value::Object(_)) => schema,
                _ => continue,
            },
        };
        if value.is_null() {
            continue;
        }
        if is_timeout(name) && is_integer_schema(schema) {
            check_timeout(name, value)?;
            continue;
        }
        check(schema, value, &format!("`{name}`"))?;
    }
    Ok(())
}

/// Whether `value` satisfies `schema` (same rules, no timeout leniency).
pub(crate) fn accepts(schema: &Value, value: &Value) -> bool {
    check(schema, value, "").is_ok()
}

fn is_timeout(name: &str) -> bool {
    name == "timeout" || name.ends_with("_timeout")
}

fn is_integer_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("integer")
}

fn check_timeout(name: &str, value: &Value) -> Result<(), String> {
    match value.as_f64() {
        Some(secs) if secs >= 0.0 && secs.is_finite() => Ok(()),
        Some(_) => Err(format!(
            "parameter `{name}` must be a non-negative number of seconds, got {}",
            show(value)
        )),
        None => Err(format!(
            "parameter `{name}` must be a number of seconds, got {}",
            show(value)
        )),
    }
}

fn unknown_parameter(name: &str, properties: Option<&Map<String, Value>>) -> String {
    let known: Vec<&str> = properties
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if known.is_empty() {
        format!("unknown parameter `{name}`: this tool takes no parameters")
    } else {
        format!(
            "unknown parameter `{name}`; expected one of: {}",
            known.join(", ")
        )
    }
}

/// `path` names the value in messages, e.g. `` `files`["a.txt"] ``.
fn check(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
        if !branches.iter().any(|b| check(b, value, path).is_ok()) {
            return Err(mismatch(path, schema, value));
        }
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::String(k) => vec![k.as_str()],
            Value::Array(ks) => ks.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !kinds.is_empty() && !kinds.iter().any(|k| has_type(k, value)) {
            return Err(mismatch(path, schema, value));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(format!(
                "parameter {path} must be one of {}, got {}",
                list.join(", "),
                show(value)
            ));
        }
    }
    match value {
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"))?;
                }
            }
        }
        Value::Object(fields) => check_object(schema, fields, path)?,
        _ => {}
    }
    Ok(())
}

fn check_object(schema: &Value, fields: &Map<String, Value>, path: &str) -> Result<(), String> {
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                return Err(format!("parameter {path} is missing the key {name:?}"));
            }
        }
    }
    for (key, value) in fields {
        let inner = format!("{path}[{}]", Value::String(key.clone()));
        match properties.and_then(|p| p.get(key)) {
            Some(s) => check(s, value, &inner)?,
            None => match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    return Err(format!("parameter {path} has an unknown key {key:?}"))
                }
                Some(s @ Value::Object(_)) => check(s, value, &inner)?,
                _ => {}
            },
        }
    }
    Ok(())
}

fn has_type(kind: &str, value: &Value) -> bool {
    match kind {
        "string" => value.is_string(),
        "integer" => is_integral(value),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => true,
    }
}

fn is_integral(value: &Value) -> bool {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => true,
        Value::Number(n) => n
            .as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0),
        _ => false,
    }
}

fn mismatch(path: &str, schema: &Value, value: &Value) -> String {
    format!(
        "parameter {path} must be {}, got {}",
        describe(schema),
        show(value)
    )
}

/// "a string", "a string or an array of strings", …
fn describe(schema: &Value) -> String {
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
        let parts: Vec<String> = branches.iter().map(describe).collect();
        return parts.join(" or ");
    }
    let kind = match schema.get("type") {
        Some(Value::String(k)) => k.as_str(),
        Some(Value::Array(ks)) => {
            let parts: Vec<String> = ks
                .iter()
                .filter_map(Value::as_str)
                .map(|k| describe(&serde_json::json!({ "type": k })))
                .collect();
            return parts.join(" or ");
        }
        _ => return "a valid value".into(),
    };
    match kind {
        "string" => "a string".into(),
        "integer" => "an integer".into(),
        "number" => "a number".into(),
        "boolean" => "true or false".into(),
        "null" => "null".into(),
        "object" => match schema.get("additionalProperties") {
            Some(inner @ Value::Object(_)) => {
                format!("an object whose values are {}", plural(&describe(inner)))
            }
            _ => "an object".into(),
        },
        "array" => match schema.get("items") {
            Some(inner) => format!("an array of {}", plural(&describe(inner))),
            None => "an array".into(),
        },
        other => format!("of type {other}"),
    }
}

fn plural(singular: &str) -> String {
    let bare = singular
        .strip_prefix("an ")
        .or_else(|| singular.strip_prefix("a "))
        .unwrap_or(singular);
    format!("{bare}s")
}

/// A value as it appears in a message, shortened.
fn show(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".into(),
        Value::Bool(b) => return b.to_string(),
        Value::Number(n) => return n.to_string(),
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let mut text = value.to_string();
    if text.chars().count() > 40 {
        text = text.chars().take(37).collect::<String>() + "...";
    }
    format!("{kind} {text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shell() -> Value {
        json!({"type":"object","properties":{"command":{"anyOf":[{"type":"string","description":"Shell command to execute"},{"type":"array","description":"List of shell command arguments to execute","items":{"type":"string"}}]},"timeout":{"type":"integer","description":"Execution timeout in seconds","default":30}},"required":["command"],"additionalProperties":false})
    }

    fn files() -> Value {
        json!({"type":"object","properties":{
            "operation":{"type":"string","enum":["create","read"]},
            "files":{"type":"object","additionalProperties":{"type":"string"}},
            "count":{"type":"integer"},
            "ratio":{"type":"number"},
            "flag":{"type":"boolean"}
        },"required":["operation"],"additionalProperties":false})
    }

    fn validate(schema: &Value, args: Value) -> Result<(), String> {
        validate_args(schema, args.as_object().unwrap())
    }

    #[test]
    fn good_arguments_pass() {
        validate(&shell(), json!({"command":"ls"})).unwrap();
        validate(&shell(), json!({"command":["ls","-l"],"timeout":5})).unwrap();
        validate(&shell(), json!({"command":"ls","timeout":60.0})).unwrap();
        validate(&shell(), json!({"command":"ls","timeout":0.3})).unwrap();
        validate(&shell(), json!({"command":"ls","timeout":null})).unwrap();
        validate(
            &files(),
            json!({"operation":"read","files":{"a":"x"},"count":2.0,"ratio":0.5,"flag":true}),
        )
        .unwrap();
    }

    #[test]
    fn each_error_names_the_parameter() {
        let cases = [
            (json!({}), "missing required parameter `command`"),
            (json!({"command":null}), "parameter `command` must not be null"),
            (
                json!({"command":"ls","bogus":1}),
                "unknown parameter `bogus`; expected one of: command, timeout",
            ),
            (
                json!({"command":5}),
                "parameter `command` must be a string or an array of strings, got 5",
            ),
            (
                json!({"command":["ls",3]}),
                "parameter `command` must be a string or an array of strings, got an array [\"ls\",3]",
            ),
            (
                json!({"command":"ls","timeout":"5"}),
                "parameter `timeout` must be a number of seconds, got a string \"5\"",
            ),
            (
                json!({"command":"ls","timeout":-1}),
                "parameter `timeout` must be a non-negative number of seconds, got -1",
            ),
        ];
        for (args, message) in cases {
            assert_eq!(
                validate(&shell(), args.clone()).unwrap_err(),
                message,
                "{args}"
            );
        }
    }

    #[test]
    fn enums_nested_objects_and_numbers() {
        let cases = [
            (
                json!({"operation":"move"}),
                "parameter `operation` must be one of \"create\", \"read\", got a string \"move\"",
            ),
            (
                json!({"operation":"read","files":{"a.txt":1}}),
                "parameter `files`[\"a.txt\"] must be a string, got 1",
            ),
            (
                json!({"operation":"read","files":[]}),
                "parameter `files` must be an object whose values are strings, got an array []",
            ),
            (
                json!({"operation":"read","count":1.5}),
                "parameter `count` must be an integer, got 1.5",
            ),
            (
                json!({"operation":"read","ratio":"x"}),
                "parameter `ratio` must be a number, got a string \"x\"",
            ),
            (
                json!({"operation":"read","flag":1}),
                "parameter `flag` must be true or false, got 1",
            ),
        ];
        for (args, message) in cases {
            assert_eq!(
                validate(&files(), args.clone()).unwrap_err(),
                message,
                "{args}"
            );
        }
    }

    #[test]
    fn long_values_are_shortened() {
        let long = "x".repeat(100);
        let e = validate(&files(), json!({"operation": long})).unwrap_err();
        assert!(e.ends_with("xxx..."), "{e}");
        assert!(e.len() < 150, "{e}");
    }

    #[test]
    fn accepts_checks_one_value() {
        let s = json!({"type":"string"});
        assert!(accepts(&s, &json!("x")));
        assert!(!accepts(&s, &json!(1)));
    }
}
