//! `multi_code_executor`: builds and runs code in one of the languages of `languages.rs`, in a
//! fresh work directory under `/tmp` that is removed afterwards.
//!
//! The language is checked before anything touches the sandbox. The code and the extra `files`
//! reach the work directory in one archive upload; the build and run commands are fixed
//! strings run by `sh -c` in that directory.

use std::time::Instant;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::languages::{self, Language};
use super::options::ToolOptions;
use super::run::{self, Command, Finished, Texts, Timeout, COMMAND_TEXTS};
use super::{Tool, ToolContext, ToolInfo};
use crate::backend::NewEntry;
use crate::model::{random_hex, ExecEnd, SandboxType, ToolResult};

pub(super) struct MultiCodeExecutor;

static INFO: ToolInfo = ToolInfo {
    key: "multi_code_executor",
    description: DESCRIPTION,
    sandbox_types: &[SandboxType::Docker, SandboxType::Volcengine],
    parameters: parameters_schema,
};

const PREPARE_TEXTS: Texts<'static> = Texts {
    timed_out: "dotnet project initialization timed out after {t} seconds",
    failed: "dotnet project initialization failed",
};

const BUILD_TEXTS: Texts<'static> = Texts {
    timed_out: "Compilation timed out after {t} seconds",
    failed: "Compilation failed",
};

#[async_trait]
impl Tool for MultiCodeExecutor {
    fn info(&self) -> &'static ToolInfo {
        &INFO
    }

    async fn execute(
        &self,
        ctx: &ToolContext<'_>,
        name: &str,
        args: &Map<String, Value>,
        options: &ToolOptions,
    ) -> ToolResult {
        let language = args.get("language").and_then(Value::as_str).unwrap_or("");
        let code = args.get("code").and_then(Value::as_str).unwrap_or("");
        if language.trim().is_empty() || code.trim().is_empty() {
            return ToolResult::failure(name, "Invalid input");
        }
        let Some(lang) = languages::find(language) else {
            return ToolResult::failure(name, format!("Unsupported language: {language}"));
        };
        let entry = if lang.keys.contains(&"scala") {
            match languages::scala_object(code) {
                Some(object) => vec![object.to_string()],
                None => return ToolResult::failure(name, "Object name not found."),
            }
        } else {
            Vec::new()
        };
        let files = match extra_files(args.get("files")) {
            Ok(f) => f,
            Err(e) => return ToolResult::failure(name, format!("Execution failed: {e}")),
        };
        let job = Job {
            ctx,
            name,
            lang,
            code,
            entry,
            workdir: work_dir(),
            compile_timeout: run::timeout_arg(args, "compile_timeout", None),
            // ms-enclave: `run_timeout or 30`, so 0 and null mean 30 too.
            run_timeout: run::timeout_arg(args, "run_timeout", Some(30))
                .or_else(|| run::timeout_arg(&Map::new(), "run_timeout", Some(30))),
            max_output: options.max_output_size,
        };
        let started = Instant::now();
        let mut result = match job.upload(&files, job.lang.prepare.is_none()).await {
            Ok(()) => job.build_and_run().await,
            Err(e) => ToolResult::failure(
                name,
                format!(
                    "Execution failed: Failed to create workdir: {} ({})",
                    job.workdir,
                    run::one_line(&e)
                ),
            ),
        };
        let _ = run::helper(ctx, &["rm", "-rf", "--", &job.workdir]).await;
        if result.metadata.contains_key("duration_ms") {
            let total = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            result
                .metadata
                .insert("duration_ms".into(), Value::from(total));
        }
        result
    }
}

/// One call's plan.
struct Job<'a> {
    ctx: &'a ToolContext<'a>,
    name: &'a str,
    lang: &'static Language,
    code: &'a str,
    /// Positional arguments of the commands (scala's object name).
    entry: Vec<String>,
    workdir: String,
    compile_timeout: Option<Timeout>,
    run_timeout: Option<Timeout>,
    max_output: usize,
}

impl Job<'_> {
    /// Creates the work directory with the extra files and, unless a prepare step must run
    /// first, the code: one write.
    async fn upload(&self, files: &[(String, String)], with_code: bool) -> anyhow::Result<()> {
        let dir = self.workdir.trim_start_matches("/tmp/");
        let mut entries = vec![NewEntry::Dir {
            path: dir.to_string(),
            mode: 0o755,
        }];
        for (file, content) in files {
            entries.push(file_entry(&format!("{dir}/{file}"), content));
        }
        if with_code {
            entries.push(file_entry(
                &format!("{dir}/{}", self.lang.main_file),
                self.code,
            ));
        }
        self.ctx.backend.put("/tmp", entries).await
    }

    async fn upload_code(&self) -> anyhow::Result<()> {
        let entry = file_entry(self.lang.main_file, self.code);
        self.ctx.backend.put(&self.workdir, vec![entry]).await
    }

    async fn step(&self, command: &str, timeout: Option<&Timeout>) -> anyhow::Result<Finished> {
        // `cd` as ms-enclave did, rather than the exec's working directory (slower to set).
        let script = format!(
            "cd \"$ENCLAVE_WORKDIR\" || exit 125\n{}",
            self.lang.script(command)
        );
        let mut argv = vec!["sh".into(), "-c".into(), script, "sh".into()];
        argv.extend(self.entry.iter().cloned());
        let mut step = Command::new(argv, self.max_output);
        step.env = vec![format!("ENCLAVE_WORKDIR={}", self.workdir)];
        step.timeout = timeout.map(|t| t.duration);
        step.run(self.ctx, self.ctx.cancel.clone()).await
    }

    async fn build_and_run(&self) -> ToolResult {
        let name = self.name;
        let compile_timeout = self.compile_timeout.as_ref();
        if let Some(prepare) = self.lang.prepare {
            match self.step(prepare, compile_timeout).await {
                Ok(f) if f.end == ExecEnd::Exited(Some(0)) => {}
                Ok(f) => return run::to_result(name, f, compile_timeout, &PREPARE_TEXTS),
                Err(e) => return run::execution_failed(name, &e),
            }
            if let Err(e) = self.upload_code().await {
                return run::execution_failed(name, &e);
            }
        }
        let mut built = None;
        if let Some(build) = self.lang.build {
            match self.step(build, compile_timeout).await {
                Ok(f) if f.end == ExecEnd::Exited(Some(0)) => built = Some(f),
                // A build that timed out is a `timeout` (ms-enclave called it an `error`).
                Ok(f) => return run::to_result(name, f, compile_timeout, &BUILD_TEXTS),
                Err(e) => return run::execution_failed(name, &e),
            }
        }
        let run_timeout = self.run_timeout.as_ref();
        let ran = match self.step(self.lang.run, run_timeout).await {
            Ok(f) => f,
            Err(e) => return run::execution_failed(name, &e),
        };
        let build_output = built.as_ref().map_or("", |b| b.stdout.as_str()).to_string();
        let truncated = built.as_ref().is_some_and(|b| b.truncated);
        let mut result = run::to_result(name, ran, run_timeout, &COMMAND_TEXTS);
        if let Value::String(run_output) = &result.output {
            // ms-enclave: build stdout and run stdout joined by a newline, empty parts dropped.
            let parts: Vec<&str> = [build_output.as_str(), run_output.as_str()]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect();
            result.output = Value::String(parts.join("\n"));
        }
        if truncated {
            result
                .metadata
                .insert("truncated".into(), Value::Bool(true));
        }
        result
    }
}

fn file_entry(path: &str, content: &str) -> NewEntry {
    NewEntry::File {
        path: path.to_string(),
        content: content.as_bytes().to_vec(),
        mode: 0o644,
    }
}

/// `files` as (file name, content); directory parts are dropped, as ms-enclave does.
fn extra_files(files: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    let Some(Value::Object(files)) = files else {
        return Ok(Vec::new());
    };
    files
        .iter()
        .map(|(name, content)| {
            let base = name.rsplit('/').next().unwrap_or("");
            if base.is_empty() || base == "." || base == ".." {
                return Err(format!("invalid file name `{name}` in `files`"));
            }
            Ok((base.to_string(), content.as_str().unwrap_or("").to_string()))
        })
        .collect()
}

fn work_dir() -> String {
    format!("/tmp/mce_{}", random_hex())
}

const DESCRIPTION: &str = "Execute code in various languages (python, cpp, csharp, go, java, nodejs, ts, rust, php, bash, pytest, jest, go_test, lua, r, perl, d_ut, ruby, scala, julia, kotlin_script, verilog, lean, swift, racket) with runtime tuning";

fn parameters_schema() -> Value {
    json!({"type":"object","properties":{
        "language":{"type":"string","description":"Programming language (python, cpp, csharp, go, java, nodejs, ts, rust, php, bash, pytest, jest, go_test, lua, r, perl, d_ut, ruby, scala, julia, kotlin_script, verilog, lean, swift, racket)"},
        "code":{"type":"string","description":"Source code to execute"},
        "files":{"type":"object","additionalProperties":{"type":"string"},"description":"Optional additional files to write before execution (filename -> content)"},
        "compile_timeout":{"type":"integer","description":"Compile timeout in seconds (omit to disable compilation timeout)"},
        "run_timeout":{"type":"integer","description":"Run timeout in seconds","default":30}
    },"required":["language","code"],"additionalProperties":false})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_files_keep_only_the_base_name() {
        let files = json!({"sub/dir/helper.py": "x = 1", "data.txt": "d"});
        let got = extra_files(Some(&files)).unwrap();
        assert_eq!(
            got,
            [
                ("helper.py".to_string(), "x = 1".to_string()),
                ("data.txt".to_string(), "d".to_string())
            ]
        );
        for bad in ["dir/", "..", "a/.."] {
            let e = extra_files(Some(&json!({ bad: "x" }))).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert!(extra_files(None).unwrap().is_empty());
    }

    #[test]
    fn work_dirs_are_fresh() {
        let a = work_dir();
        assert!(a.starts_with("/tmp/mce_") && a.len() == "/tmp/mce_".len() + 32);
        assert_ne!(a, work_dir());
    }
}
