//! The tools `enclave mcp` offers: their names, descriptions and input schemas. The executors
//! keep the schemas `enclave tools` prints, with an optional `sandbox_id` added; the others are
//! written here. Every schema stays portable across model APIs: plain types, no nullable unions.

use serde_json::{json, Map, Value};

use crate::tools;

/// The executors that run through a sandbox's tools, in the order they are listed.
pub(crate) const EXECUTORS: &[&str] = &[
    "python_executor",
    "shell_executor",
    "file_operation",
    "multi_code_executor",
    "notebook_executor",
];

/// Every tool, in the order `tools/list` gives them.
pub(crate) const ALL: &[&str] = &[
    "sandbox_create",
    "sandbox_list",
    "sandbox_remove",
    "python_executor",
    "shell_executor",
    "file_operation",
    "multi_code_executor",
    "notebook_executor",
    "job_start",
    "job_read",
    "job_kill",
    "upload_file",
    "download_file",
];

/// One tool as `tools/list` shows it.
pub(crate) struct Entry {
    pub(crate) name: &'static str,
    pub(crate) description: String,
    pub(crate) input_schema: Map<String, Value>,
    /// Calls that change nothing (for the `readOnlyHint` annotation).
    pub(crate) read_only: bool,
}

/// The tools named by `--tools` (all when `None`), or the first name that is not a tool.
pub(crate) fn select(names: Option<&[String]>) -> Result<Vec<&'static str>, String> {
    let Some(names) = names else {
        return Ok(ALL.to_vec());
    };
    let mut chosen = Vec::new();
    for name in names {
        let Some(known) = ALL.iter().find(|t| **t == name.as_str()) else {
            return Err(format!(
                "`{name}` is not an enclave mcp tool; choose from {}",
                ALL.join(", ")
            ));
        };
        if !chosen.contains(known) {
            chosen.push(*known);
        }
    }
    Ok(chosen)
}

/// The entry of one of `ALL`.
pub(crate) fn entry(name: &'static str, call_timeout_secs: u64) -> Entry {
    let (description, schema, read_only) = match name {
        "sandbox_create" => (
            "Create a sandbox (an isolated container) that keeps its files, processes and \
             Python state between calls. Returns `sandbox_id`: pass it to the other tools. \
             Remove it with sandbox_remove when done; it is removed anyway after it has been \
             idle for a while."
                .to_string(),
            sandbox_create_schema(),
            false,
        ),
        "sandbox_list" => (
            "List the sandboxes this session created, with their ids, images, tools and status."
                .to_string(),
            object(json!({}), &[]),
            true,
        ),
        "sandbox_remove" => (
            "Remove a sandbox made with sandbox_create: its processes are killed and its files \
             are gone."
                .to_string(),
            object(
                json!({ "sandbox_id": sandbox_id_property(true) }),
                &["sandbox_id"],
            ),
            false,
        ),
        "job_start" => (
            format!(
                "Start a shell command in the background in a sandbox and return at once with \
                 `job_id`; use it for anything that may run longer than {call_timeout_secs} \
                 seconds (servers, builds, long tests). Read its output with job_read, stop it \
                 with job_kill."
            ),
            job_start_schema(),
            false,
        ),
        "job_read" => (
            "Read a background job's output produced since the last job_read, and whether it \
             is still running or its exit code. Waits up to `wait_seconds` for it to finish \
             first."
                .to_string(),
            object(
                json!({
                    "job_id": { "type": "string", "description": "The id job_start returned" },
                    "wait_seconds": {
                        "type": "number",
                        "description": "Wait up to this long for the job to finish before reading (default 0)",
                        "minimum": 0
                    }
                }),
                &["job_id"],
            ),
            true,
        ),
        "job_kill" => (
            "Kill a background job and every process it started; returns its last output."
                .to_string(),
            object(
                json!({ "job_id": { "type": "string", "description": "The id job_start returned" } }),
                &["job_id"],
            ),
            false,
        ),
        "upload_file" => (
            "Copy a file from this machine into a sandbox. Only files under the directories the \
             user allowed (enclave mcp --allow-dir) can be read."
                .to_string(),
            transfer_schema(
                "Path of the file on this machine, inside an allowed directory",
                "Where to put it in the sandbox (absolute, or relative to the working directory)",
            ),
            false,
        ),
        "download_file" => (
            "Copy a file from a sandbox to this machine, into a directory the user allowed \
             (enclave mcp --allow-dir). Returns a link to the copied file."
                .to_string(),
            transfer_schema(
                "Where to write the file on this machine, inside an allowed directory",
                "Path of the file in the sandbox (absolute, or relative to the working directory)",
            ),
            false,
        ),
        executor => executor_entry(executor),
    };
    Entry {
        name,
        description,
        input_schema: schema,
        read_only,
    }
}

/// An executor's own schema with `sandbox_id` added, and a description that says where it runs.
fn executor_entry(name: &str) -> (String, Map<String, Value>, bool) {
    let tool = tools::find(name).unwrap_or_else(|| panic!("`{name}` is in EXECUTORS"));
    let mut schema = match tool.parameters() {
        Value::Object(map) => map,
        other => panic!("the schema of `{name}` is not an object: {other}"),
    };
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        properties.insert("sandbox_id".into(), sandbox_id_property(false));
    }
    let where_ = if name == "notebook_executor" {
        " Runs in a notebook sandbox (sandbox_create with type `docker_notebook`), whose \
         kernel keeps variables between calls; without `sandbox_id` it runs in a throwaway \
         notebook sandbox."
    } else {
        " Pass `sandbox_id` (from sandbox_create) to keep state between calls; without it the \
         call runs in a throwaway sandbox that is removed afterwards."
    };
    (
        format!("{}.{where_}", tool.description().trim_end_matches('.')),
        schema,
        false,
    )
}

fn sandbox_id_property(required: bool) -> Value {
    let description = if required {
        "The id sandbox_create returned"
    } else {
        "The id sandbox_create returned; leave it out to use a throwaway sandbox"
    };
    json!({ "type": "string", "description": description })
}

fn sandbox_create_schema() -> Map<String, Value> {
    object(
        json!({
            "image": {
                "type": "string",
                "description": "Container image (default: the server's, usually Python)"
            },
            "type": {
                "type": "string",
                "enum": ["docker", "docker_notebook"],
                "description": "`docker_notebook` runs a Jupyter kernel for notebook_executor (default `docker`)"
            },
            "tools": {
                "type": "array",
                "items": { "type": "string", "enum": EXECUTORS },
                "description": "Executors to enable (default: all that suit the type)"
            },
            "memory": {
                "type": "string",
                "description": "Memory limit such as `512m` or `2g` (default `1g`)"
            },
            "network": {
                "type": "boolean",
                "description": "Let the sandbox reach the network, e.g. to install packages (default: the server's setting, usually off)"
            },
            "idle_minutes": {
                "type": "integer",
                "minimum": 1,
                "description": "Remove the sandbox after this many minutes without a call (default: the server's, usually 30)"
            }
        }),
        &[],
    )
}

fn job_start_schema() -> Map<String, Value> {
    object(
        json!({
            "command": { "type": "string", "description": "The shell command (run by /bin/sh -c)" },
            "sandbox_id": sandbox_id_property(true),
            "workdir": { "type": "string", "description": "Directory to run it in (default: the sandbox's working directory)" }
        }),
        &["command"],
    )
}

fn transfer_schema(host: &str, sandbox: &str) -> Map<String, Value> {
    object(
        json!({
            "host_path": { "type": "string", "description": host },
            "sandbox_path": { "type": "string", "description": sandbox },
            "sandbox_id": {
                "type": "string",
                "description": "The id sandbox_create returned (default: the server's --sandbox)"
            }
        }),
        &["host_path", "sandbox_path"],
    )
}

fn object(properties: Value, required: &[&str]) -> Map<String, Value> {
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), properties);
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    schema.insert("additionalProperties".into(), json!(false));
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Some model APIs refuse nullable unions (`"type": [..., "null"]`, a `{"type": "null"}`
    /// branch, `nullable`): none may appear. `schema` is a schema, never a `properties` map.
    fn assert_portable(name: &str, schema: &Value) {
        let Value::Object(map) = schema else {
            return;
        };
        if let Some(t) = map.get("type") {
            assert!(t.is_string(), "{name}: a type that is not one string: {t}");
            assert_ne!(t, "null", "{name}: a null type");
        }
        assert!(!map.contains_key("nullable"), "{name}: uses `nullable`");
        if let Some(Value::Object(properties)) = map.get("properties") {
            properties.values().for_each(|p| assert_portable(name, p));
        }
        if let Some(items) = map.get("items") {
            assert_portable(name, items);
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(Value::Array(branches)) = map.get(key) {
                branches.iter().for_each(|b| assert_portable(name, b));
            }
        }
    }

    #[test]
    fn every_schema_is_a_closed_object_of_plain_types() {
        for name in ALL {
            let e = entry(name, 45);
            assert_eq!(e.input_schema["type"], "object", "{name}");
            assert_eq!(e.input_schema["additionalProperties"], false, "{name}");
            assert!(e.input_schema["properties"].is_object(), "{name}");
            assert!(!e.description.is_empty());
            assert_portable(name, &Value::Object(e.input_schema));
        }
    }

    #[test]
    fn executors_keep_their_schema_and_gain_an_optional_sandbox_id() {
        for name in EXECUTORS {
            let own = tools::find(name).unwrap().parameters();
            let e = entry(name, 45);
            let props = e.input_schema["properties"].as_object().unwrap();
            assert_eq!(props["sandbox_id"]["type"], "string");
            for (key, value) in own["properties"].as_object().unwrap() {
                assert_eq!(&props[key], value, "{name}.{key}");
            }
            assert_eq!(e.input_schema.get("required"), own.get("required"));
        }
    }

    #[test]
    fn selection_keeps_order_of_the_flag_and_refuses_unknown_names() {
        let chosen = select(Some(&["shell_executor".into(), "sandbox_list".into()])).unwrap();
        assert_eq!(chosen, ["shell_executor", "sandbox_list"]);
        assert_eq!(select(None).unwrap().len(), ALL.len());
        let err = select(Some(&["rm_rf".into()])).unwrap_err();
        assert!(
            err.contains("`rm_rf` is not") && err.contains("sandbox_create"),
            "{err}"
        );
    }
}
