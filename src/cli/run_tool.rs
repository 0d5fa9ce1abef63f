//! `enclave run-tool`: call one of a sandbox's tools, print its output, exit with its status.

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use super::exec::parse_timeout;
use super::input::read_source;
use super::{parse_sandbox_id, Ctx};
use crate::error::{exit_code, Error};
use crate::manager::ToolCall;
use crate::model::{ExecutionStatus, ToolResult};
use crate::tools;

#[derive(Debug, Args)]
pub(crate) struct RunToolArgs {
    /// Sandbox id (a unique prefix is enough)
    #[arg(value_parser = parse_sandbox_id)]
    pub(crate) id: String,
    /// Tool name, as `enclave tools ID` lists it
    pub(crate) tool: String,
    /// One argument (repeatable); VALUE is a string unless the parameter takes something else
    /// and VALUE is that in JSON (`timeout=5`, `command=["ls","-l"]`)
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    pub(crate) arg: Vec<String>,
    /// All arguments as a JSON object: inline, @FILE, or - for stdin (--arg overrides keys)
    #[arg(long = "args", value_name = "JSON|@FILE|-")]
    pub(crate) args: Option<String>,
    /// Give up after this many seconds: the call is cancelled and all it started killed (exit 124)
    #[arg(short, long, value_name = "SECS")]
    pub(crate) timeout: Option<f64>,
}

pub(crate) async fn run(args: RunToolArgs, ctx: &Ctx) -> Result<u8> {
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

    let manager = ctx.manager_for(&args.id).await?;
    let sandbox = ctx.until_signal(manager.find(&args.id)).await?;
    if !pairs.is_empty() {
        let schemas = ctx
            .until_signal(manager.info(&sandbox))
            .await?
            .available_tools;
        let parameters = schemas
            .get(&args.tool)
            .map(|s| s["function"]["parameters"].clone());
        for (key, raw) in pairs {
            let schema = parameters.as_ref().map(|p| &p["properties"][key]);
            call_args.insert(key.to_string(), arg_value(raw, schema));
        }
    }

    let call = ToolCall {
        tool: args.tool.clone(),
        args: call_args,
        deadline,
        cancel: ctx.cancel.clone(),
    };
    let result = manager.execute_tool(&sandbox, call).await?;
    print_result(&result, ctx).await?;
    Ok(match result.status {
        ExecutionStatus::Cancelled => ctx.interrupted().exit_code(),
        _ => exit_status(&result),
    })
}

/// `--args`: inline JSON, `@file`, or `-` for stdin; must be an object.
fn read_args(source: &str) -> Result<Map<String, Value>, String> {
    let (text, from) = read_source(source, true, "--args")?;
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

/// The text as given, unless the parameter takes something other than a string and the text is
/// such a value in JSON (`timeout=5`, `command=["ls"]`). Text that happens to be a JSON string
/// literal (`content="quoted"`) stays the text, quotes and all.
fn arg_value(raw: &str, schema: Option<&Value>) -> Value {
    let text = Value::String(raw.to_string());
    let Some(schema) = schema.filter(|s| !s.is_null()) else {
        return text;
    };
    match serde_json::from_str::<Value>(raw) {
        Ok(parsed) if !parsed.is_string() && tools::accepts(schema, &parsed) => parsed,
        _ => text,
    }
}

/// `output` to stdout and `error` (or a success's stderr) to stderr; with `--json`, the
/// `ToolResult` itself. A cancelled call prints its result too: a script still gets its
/// document.
async fn print_result(result: &ToolResult, ctx: &Ctx) -> Result<()> {
    if ctx.output.json {
        ctx.output.json(result).await?;
        return Ok(());
    }
    if result.status == ExecutionStatus::Cancelled {
        return Ok(());
    }
    let output = match &result.output {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => serde_json::to_string_pretty(other)?,
    };
    write_text(&mut tokio::io::stdout(), &output)
        .await
        .context("writing the output")?;
    let stderr = result
        .error
        .as_deref()
        .or_else(|| result.metadata.get("stderr").and_then(Value::as_str));
    if let Some(text) = stderr {
        let _ = write_text(&mut tokio::io::stderr(), text).await;
    }
    Ok(())
}

/// Text as it is, ending with a newline when it is not empty.
async fn write_text(
    out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    text: &str,
) -> std::io::Result<()> {
    out.write_all(text.as_bytes()).await?;
    if !text.is_empty() && !text.ends_with('\n') {
        out.write_all(b"\n").await?;
    }
    out.flush().await
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
    fn arg_values_are_json_only_where_the_schema_wants_a_non_string() {
        let string = json!({"type": "string"});
        assert_eq!(arg_value("123", Some(&string)), json!("123"));
        assert_eq!(arg_value("true", Some(&string)), json!("true"));
        assert_eq!(
            arg_value(r#""quoted""#, Some(&string)),
            json!(r#""quoted""#)
        );
        assert_eq!(arg_value("print(1)", Some(&string)), json!("print(1)"));
        let integer = json!({"type": "integer"});
        assert_eq!(arg_value("5", Some(&integer)), json!(5));
        assert_eq!(arg_value("x", Some(&integer)), json!("x"));
        let command =
            json!({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]});
        assert_eq!(
            arg_value(r#"["ls","-l"]"#, Some(&command)),
            json!(["ls", "-l"])
        );
        assert_eq!(arg_value(r#""ls""#, Some(&command)), json!(r#""ls""#));
        assert_eq!(arg_value("", Some(&command)), json!(""));
        // An unknown parameter: the text as given (validation then names it).
        assert_eq!(arg_value("5", None), json!("5"));
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
