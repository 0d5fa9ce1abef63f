//! `enclave run-tool`: call one of a sandbox's tools, print its output, exit with its status.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Map, Value};

use super::exec::parse_timeout;
use super::Ctx;
use crate::error::{exit_code, Error};
use crate::manager::Manager;
use crate::model::{ExecutionStatus, ToolResult};
use crate::tools;

#[derive(Debug, Args)]
pub struct RunToolArgs {
    /// Sandbox id (a unique prefix is enough)
    pub id: String,
    /// Tool name, as `enclave tools ID` lists it
    pub tool: String,
    /// One argument (repeatable); VALUE is read as JSON when it parses, else as a string
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    pub arg: Vec<String>,
    /// All arguments as a JSON object: inline, @FILE, or - for stdin (--arg overrides keys)
    #[arg(long = "args", value_name = "JSON|@FILE|-")]
    pub args: Option<String>,
    /// Give up after this many seconds: the call is cancelled and all it started killed (exit 124)
    #[arg(short, long, value_name = "SECS")]
    pub timeout: Option<f64>,
}

pub async fn run(args: RunToolArgs, ctx: &Ctx) -> Result<u8> {
    let invalid = |message: String| Error::InvalidToolArgs {
        tool: args.tool.clone(),
        message,
    };
    let deadline = parse_timeout(args.timeout)?;

    let mut call_args = match &args.args {
        Some(source) => read_args(source).map_err(invalid)?,
        None => Map::new(),
    };
    let pairs = args
        .arg
        .iter()
        .map(|a| split_pair(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;

    let manager = ctx.manager().await?;
    if !pairs.is_empty() {
        let schemas = manager.tools(&args.id).await?;
        let parameters = schemas
            .get(&args.tool)
            .map(|s| s["function"]["parameters"].clone());
        for (key, raw) in pairs {
            let schema = parameters.as_ref().map(|p| &p["properties"][key]);
            call_args.insert(key.to_string(), arg_value(raw, schema));
        }
    }

    let result = call(&manager, &args.id, &args.tool, call_args, deadline, ctx).await?;
    if result.status == ExecutionStatus::Cancelled {
        return Err(Error::Interrupted.into());
    }
    print_result(&result, ctx)?;
    Ok(exit_status(&result))
}

/// Runs the call, cancelling it when `deadline` passes; a call cut short that way is reported
/// as a `timeout`.
async fn call(
    manager: &dyn Manager,
    id: &str,
    tool: &str,
    args: Map<String, Value>,
    deadline: Option<Duration>,
    ctx: &Ctx,
) -> Result<ToolResult> {
    let cancel = ctx.cancel.child_token();
    let call = manager.execute_tool(id, tool, args, &cancel);
    tokio::pin!(call);
    let expired = async {
        match deadline {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let mut timed_out = false;
    let mut result = tokio::select! {
        r = &mut call => r?,
        () = expired => {
            timed_out = true;
            cancel.cancel();
            call.await?
        }
    };
    if timed_out && result.status == ExecutionStatus::Cancelled {
        result.status = ExecutionStatus::Timeout;
        if result.error.as_deref() == Some(tools::CANCELLED) {
            let secs = deadline.map_or(0.0, |d| d.as_secs_f64());
            result.error = Some(format!("Tool call timed out after {secs} seconds"));
        }
    }
    Ok(result)
}

/// `--args`: inline JSON, `@file`, or `-` for stdin; must be an object.
fn read_args(source: &str) -> Result<Map<String, Value>, String> {
    let (text, from) = if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("reading --args from stdin: {e}"))?;
        (text, "stdin".to_string())
    } else if let Some(path) = source.strip_prefix('@') {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading --args file `{path}`: {e}"))?;
        (text, format!("`{path}`"))
    } else {
        (source.to_string(), "--args".to_string())
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("{from} must be a JSON object of arguments")),
        // serde_json's message ends with "at line L column C".
        Err(e) => Err(format!("{from}: malformed JSON: {e}")),
    }
}

fn split_pair(pair: &str) -> Result<(&str, &str), String> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key, value)),
        _ => Err(format!("--arg `{pair}`: expected KEY=VALUE")),
    }
}

/// JSON when it parses, else the string. When the parameter's schema is known and takes the
/// string but not the parsed value (`content=123` for a string parameter), the string wins.
fn arg_value(raw: &str, schema: Option<&Value>) -> Value {
    let text = Value::String(raw.to_string());
    let Ok(parsed) = serde_json::from_str::<Value>(raw) else {
        return text;
    };
    match schema {
        Some(s) if !s.is_null() && !tools::accepts(s, &parsed) && tools::accepts(s, &text) => text,
        _ => parsed,
    }
}

/// `output` to stdout and `error` (or a success's stderr) to stderr; with `--json`, the
/// `ToolResult` itself.
fn print_result(result: &ToolResult, ctx: &Ctx) -> Result<()> {
    if ctx.output.json {
        ctx.output.json(result)?;
        return Ok(());
    }
    let output = match &result.output {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => serde_json::to_string_pretty(other)?,
    };
    write_text(&mut std::io::stdout().lock(), &output).context("writing the output")?;
    let stderr = result
        .error
        .as_deref()
        .or_else(|| result.metadata.get("stderr").and_then(Value::as_str));
    if let Some(text) = stderr {
        let _ = write_text(&mut std::io::stderr().lock(), text);
    }
    Ok(())
}

/// Text as it is, ending with a newline when it is not empty.
fn write_text(out: &mut dyn Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    if !text.is_empty() && !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// 0 on success, 124 on timeout, the command's exit code on error where there is one, else 1.
fn exit_status(result: &ToolResult) -> u8 {
    match result.status {
        ExecutionStatus::Success => exit_code::SUCCESS,
        ExecutionStatus::Timeout => exit_code::TIMEOUT,
        ExecutionStatus::Cancelled => exit_code::INTERRUPTED,
        ExecutionStatus::Error => match result.metadata.get("exit_code").and_then(Value::as_i64) {
            Some(code) if (1..=255).contains(&code) => code as u8,
            _ => exit_code::FAILURE,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arg_values() {
        assert_eq!(arg_value("5", None), json!(5));
        assert_eq!(arg_value("print(1)", None), json!("print(1)"));
        assert_eq!(arg_value("[\"ls\",\"-l\"]", None), json!(["ls", "-l"]));
        assert_eq!(arg_value("", None), json!(""));
        let string = json!({"type": "string"});
        assert_eq!(arg_value("123", Some(&string)), json!("123"));
        assert_eq!(arg_value("true", Some(&string)), json!("true"));
        let integer = json!({"type": "integer"});
        assert_eq!(arg_value("x", Some(&integer)), json!("x"));
        assert_eq!(arg_value("0.5", Some(&integer)), json!(0.5));
    }

    #[test]
    fn pairs() {
        assert_eq!(split_pair("code=a=b").unwrap(), ("code", "a=b"));
        assert_eq!(split_pair("content=").unwrap(), ("content", ""));
        assert!(split_pair("=x").is_err());
        assert!(split_pair("code").is_err());
    }

    #[test]
    fn inline_args_must_be_an_object() {
        assert_eq!(read_args(r#"{"code":"1"}"#).unwrap()["code"], "1");
        assert!(read_args("[1]").unwrap_err().contains("JSON object"));
        assert!(read_args("{").unwrap_err().contains("malformed JSON"));
        assert!(read_args("@/nonexistent/x.json")
            .unwrap_err()
            .contains("/nonexistent/x.json"));
    }

    #[test]
    fn exit_codes() {
        let mut r = ToolResult::success("t", "");
        assert_eq!(exit_status(&r), 0);
        r.status = ExecutionStatus::Timeout;
        assert_eq!(exit_status(&r), 124);
        r.status = ExecutionStatus::Error;
        assert_eq!(exit_status(&r), 1);
        r.metadata.insert("exit_code".into(), json!(3));
        assert_eq!(exit_status(&r), 3);
        r.metadata.insert("exit_code".into(), json!(256));
        assert_eq!(exit_status(&r), 1);
        r.metadata.insert("exit_code".into(), Value::Null);
        assert_eq!(exit_status(&r), 1);
    }
}
