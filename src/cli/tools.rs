//! `enclave tools`: the tools of a sandbox, or every tool this build knows, and their schemas.

use anyhow::{bail, Result};
use clap::Args;
use indexmap::IndexMap;
use serde_json::Value;

use super::{parse_sandbox_id, Ctx};
use crate::error::Error;
use crate::tools;

#[derive(Debug, Args)]
pub(crate) struct ToolsArgs {
    /// Sandbox id (a unique prefix is enough); without it, every tool enclave knows
    #[arg(value_parser = parse_sandbox_id)]
    pub(crate) id: Option<String>,
    /// Print one tool's OpenAI function schema (needs no sandbox or Docker without ID)
    #[arg(long, value_name = "NAME")]
    pub(crate) schema: Option<String>,
}

/// One row of the table.
#[derive(Debug)]
struct ToolRow {
    name: String,
    /// Parameter names, optional ones in brackets.
    parameters: String,
    description: String,
}

pub(crate) async fn run(args: ToolsArgs, ctx: &Ctx) -> Result<u8> {
    let schemas: IndexMap<String, Value> = match &args.id {
        Some(id) => {
            let manager = ctx.manager_for(id).await?;
            let sandbox = manager.find(id).await?;
            let info = manager.info(&sandbox).await?;
            let schemas = info.available_tools;
            if let Some(name) = &args.schema {
                let Some(schema) = schemas.get(name) else {
                    return Err(Error::ToolUnavailable {
                        sandbox: info.id,
                        tool: name.clone(),
                        available: schemas.keys().cloned().collect(),
                    }
                    .into());
                };
                ctx.output.json(schema).await?;
                return Ok(0);
            }
            schemas
        }
        None => {
            if let Some(name) = &args.schema {
                let Some(tool) = tools::find(name) else {
                    bail!(tools::unknown_tool_message(name));
                };
                ctx.output.json(&tools::default_schema(tool)).await?;
                return Ok(0);
            }
            tools::registry()
                .iter()
                .map(|t| (t.key().to_string(), tools::default_schema(*t)))
                .collect()
        }
    };
    let out = &ctx.output;
    if out.json {
        let list: Vec<&Value> = schemas.values().collect();
        out.json(&list).await?;
    } else if out.quiet {
        let names: Vec<&str> = schemas.keys().map(String::as_str).collect();
        if !names.is_empty() {
            out.line(&names.join("\n")).await?;
        }
    } else {
        let rows = schemas
            .iter()
            .map(|(name, schema)| {
                let row = row(name, schema);
                vec![row.name, row.parameters, row.description]
            })
            .collect();
        out.table(&["name", "parameters", "description"], rows)
            .await?;
    }
    Ok(0)
}

fn row(name: &str, schema: &Value) -> ToolRow {
    let function = &schema["function"];
    let parameters = &function["parameters"];
    let required: Vec<&str> = parameters["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let names: Vec<String> = parameters["properties"]
        .as_object()
        .map(|p| {
            p.keys()
                .map(|k| {
                    if required.contains(&k.as_str()) {
                        k.clone()
                    } else {
                        format!("[{k}]")
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    ToolRow {
        name: name.to_string(),
        parameters: names.join(" "),
        description: shorten(function["description"].as_str().unwrap_or(""), 60),
    }
}

fn shorten(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= max {
        return line.to_string();
    }
    let cut: String = line.chars().take(max - 1).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_mark_optional_parameters() {
        let schema = tools::default_schema(tools::find("shell_executor").unwrap());
        let r = row("shell_executor", &schema);
        assert_eq!(r.parameters, "command [timeout]");
        assert_eq!(
            r.description,
            "Execute shell commands in an isolated environment"
        );
    }

    #[test]
    fn long_descriptions_are_shortened() {
        let s = shorten(&"word ".repeat(30), 20);
        assert!(s.ends_with('…') && s.chars().count() <= 20, "{s}");
    }
}
