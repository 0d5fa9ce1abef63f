//! What a tool call answers, shaped for a model: a readable text block first (some hosts read
//! nothing else), the structured result beside it, notebook images as images, files as links.
//! Text is capped near `TEXT_CAP` characters, head and tail kept. Failures are results with
//! `isError` and a sentence saying what to do next, never protocol errors.

use rmcp::model::{CallToolResult, ContentBlock, Resource};
use serde_json::{json, Map, Value};

use crate::error::Report;
use crate::model::{ExecutionStatus, ToolResult};

/// About 5,000 tokens: enough to read, small enough not to flood a model's context.
pub(crate) const TEXT_CAP: usize = 20_000;

/// One tool call's answer, before it becomes MCP content.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    pub(crate) text: String,
    pub(crate) structured: Map<String, Value>,
    /// `(base64 data, MIME type)`.
    pub(crate) images: Vec<(String, String)>,
    /// Files on this machine the result refers to: `(file:// URI, name, MIME type, size)`.
    pub(crate) links: Vec<Link>,
    pub(crate) is_error: bool,
}

#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) uri: String,
    pub(crate) name: String,
    pub(crate) mime_type: Option<String>,
    pub(crate) size: Option<u64>,
}

impl Reply {
    /// A successful answer: `text` for the model, `structured` for programs.
    pub(crate) fn ok(text: impl Into<String>, structured: Value) -> Self {
        Reply {
            text: text.into(),
            structured: into_object(structured),
            ..Reply::default()
        }
    }

    /// A failure the model can act on: what went wrong, then what to do next.
    pub(crate) fn failed(kind: &str, message: &str, next: &str) -> Self {
        let text = if next.is_empty() {
            message.to_string()
        } else {
            format!("{message}\n{next}")
        };
        Reply {
            structured: into_object(
                json!({ "error": { "kind": kind, "message": message, "next": next } }),
            ),
            text,
            is_error: true,
            ..Reply::default()
        }
    }

    /// Arguments that do not fit the tool's schema.
    pub(crate) fn invalid_arguments(tool: &str, message: &str) -> Self {
        Reply::failed(
            "invalid_arguments",
            &format!("Invalid arguments for {tool}: {message}."),
            "Fix the arguments to match the tool's input schema (see tools/list) and call again.",
        )
    }

    /// An error from the manager (a missing sandbox, an engine that is down), with its hint.
    pub(crate) fn from_error(err: &anyhow::Error, next: &str) -> Self {
        let report = Report::of(err);
        let mut message = report.message.clone();
        for cause in report.causes.iter().take(2) {
            message.push_str(": ");
            message.push_str(cause);
        }
        let next = match (&report.hint, next) {
            (Some(hint), "") => hint.clone(),
            (_, next) => next.to_string(),
        };
        Reply::failed(&report.kind, &message, &next)
    }

    /// A tool's result: its output (and error) as text, the whole result as structure, images
    /// from a notebook's rich outputs as images.
    pub(crate) fn from_tool_result(result: ToolResult, sandbox_id: Option<&str>) -> Self {
        let is_error = result.status != ExecutionStatus::Success;
        let mut text = output_text(&result.output);
        if let Some(error) = result.error.as_deref().filter(|e| !e.is_empty()) {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(error);
        }
        if text.is_empty() {
            text = "(no output)".into();
        }
        if let Some(next) = next_step(result.status) {
            text.push_str("\n\n");
            text.push_str(next);
        }
        let mut metadata = result.metadata;
        let images = take_images(&mut metadata);
        let mut structured = json!({
            "status": result.status,
            "tool_name": result.tool_name,
            "output": cap_value(result.output),
            "error": result.error.map(|e| cap(&e)),
            "execution_time": result.execution_time,
            "metadata": metadata,
        });
        if let Some(id) = sandbox_id {
            structured["sandbox_id"] = json!(id);
        }
        Reply {
            text,
            structured: into_object(structured),
            images,
            links: Vec::new(),
            is_error,
        }
    }

    pub(crate) fn into_result(self) -> CallToolResult {
        let mut content = vec![ContentBlock::text(cap(&self.text))];
        for (data, mime) in self.images {
            content.push(ContentBlock::image(data, mime));
        }
        for link in self.links {
            let mut resource = Resource::new(link.uri, link.name);
            resource.mime_type = link.mime_type;
            resource.size = link.size;
            content.push(ContentBlock::resource_link(resource));
        }
        let mut result = if self.is_error {
            CallToolResult::error(content)
        } else {
            CallToolResult::success(content)
        };
        result.structured_content = Some(Value::Object(self.structured));
        result
    }
}

/// What a model should do after a call that did not succeed.
fn next_step(status: ExecutionStatus) -> Option<&'static str> {
    match status {
        ExecutionStatus::Success => None,
        ExecutionStatus::Error => {
            Some("The call failed (see above). Fix the cause and call again.")
        }
        ExecutionStatus::Timeout => Some(
            "The call ran out of time and what it started was killed. Give it a larger \
             `timeout` if the tool takes one, or run long work with job_start and poll it \
             with job_read.",
        ),
        ExecutionStatus::Cancelled => Some(
            "The call was cancelled and what it started was killed. Call again if it is \
             still needed.",
        ),
    }
}

fn output_text(output: &Value) -> String {
    match output {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

fn into_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert("result".into(), other);
            map
        }
    }
}

/// Image MIME types hosts show as pictures.
const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Moves the images out of a notebook's `metadata.outputs`, leaving a note of where they went,
/// so they travel once, as image content.
fn take_images(metadata: &mut Map<String, Value>) -> Vec<(String, String)> {
    let mut images = Vec::new();
    let Some(Value::Array(outputs)) = metadata.get_mut("outputs") else {
        return images;
    };
    for output in outputs {
        let Some(Value::Object(data)) = output.get_mut("data") else {
            continue;
        };
        for mime in IMAGE_TYPES {
            if let Some(Value::String(b64)) = data.get(*mime) {
                images.push((b64.replace(['\n', '\r'], ""), (*mime).to_string()));
                data.insert(
                    (*mime).to_string(),
                    json!(format!("(image content block {})", images.len())),
                );
            }
        }
    }
    images
}

/// `text` within `TEXT_CAP` characters: the head and the tail, with a marker between them that
/// says how much was left out and how to see it.
pub(crate) fn cap(text: &str) -> String {
    let total = text.chars().count();
    if total <= TEXT_CAP {
        return text.to_string();
    }
    let head_chars = TEXT_CAP / 2;
    let tail_chars = TEXT_CAP - head_chars - 300;
    let head_end = text
        .char_indices()
        .nth(head_chars)
        .map_or(text.len(), |(i, _)| i);
    let tail_start = text
        .char_indices()
        .nth(total - tail_chars)
        .map_or(text.len(), |(i, _)| i);
    let omitted = total - head_chars - tail_chars;
    format!(
        "{}\n[... {omitted} characters omitted: results are capped at {TEXT_CAP} characters. \
         Write long output to a file in the sandbox and read the part you need ...]\n{}",
        &text[..head_end],
        &text[tail_start..]
    )
}

fn cap_value(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(cap(&s)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_keeps_head_and_tail_within_the_cap() {
        assert_eq!(cap("hello"), "hello");
        let long: String = (0..50_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let capped = cap(&long);
        assert!(capped.chars().count() <= TEXT_CAP, "{}", capped.len());
        assert!(capped.starts_with(&long[..1000]));
        assert!(capped.ends_with(&long[long.len() - 1000..]));
        assert!(capped.contains("characters omitted"));
    }

    #[test]
    fn the_cut_never_splits_a_character() {
        let long = "é".repeat(30_000);
        let capped = cap(&long);
        assert!(capped.starts_with("éé") && capped.ends_with("éé"));
    }

    #[test]
    fn a_timeout_is_an_error_that_says_what_to_do() {
        let mut r = ToolResult::new("shell_executor", ExecutionStatus::Timeout, "partial\n");
        r.error = Some("Tool call timed out after 2 seconds".into());
        let reply = Reply::from_tool_result(r, Some("abc"));
        assert!(reply.is_error);
        assert!(
            reply.text.starts_with("partial\nTool call timed out"),
            "{}",
            reply.text
        );
        assert!(reply.text.contains("job_start"));
        assert_eq!(reply.structured["status"], "timeout");
        assert_eq!(reply.structured["sandbox_id"], "abc");
    }

    #[test]
    fn notebook_images_become_image_content_once() {
        let mut r = ToolResult::success("notebook_executor", "<Figure>");
        r.metadata.insert(
            "outputs".into(),
            json!([{ "type": "display_data", "data": { "image/png": "iVBOR\nw0=", "text/plain": "<Figure>" } }]),
        );
        let reply = Reply::from_tool_result(r, None);
        assert_eq!(
            reply.images,
            [("iVBORw0=".to_string(), "image/png".to_string())]
        );
        let kept = &reply.structured["metadata"]["outputs"][0]["data"];
        assert_eq!(kept["image/png"], "(image content block 1)");
        assert_eq!(kept["text/plain"], "<Figure>");
        let result = reply.into_result();
        assert_eq!(result.content.len(), 2);
        assert_eq!(result.is_error, Some(false));
    }
}
