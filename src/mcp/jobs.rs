//! Background jobs: `job_start`, `job_read`, `job_kill`. A job is `/bin/sh -c COMMAND` in a
//! sandbox the tenant keeps, run by a task of its own so it outlives the call that started it.
//! Its output waits, bounded, for `job_read`; the job belongs to the tenant that started it.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use indexmap::IndexMap;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::args::Args;
use super::reply::Reply;
use super::{Core, Tenant};
use crate::model::{
    new_sandbox_id, ExecEnd, ExecOutcome, ExecSpec, ExitCause, OutputSink, Sandbox, Stream,
};

/// Unread output a job keeps: past it, the oldest bytes are dropped (and job_read says so).
const KEEP_BYTES: usize = 1024 * 1024;

/// Output one `job_read` returns at most; the rest waits for the next read. Under the reply's
/// text cap, so nothing is cut out of the middle.
const READ_CHUNK: usize = 16_000;

/// How often a running job marks its sandbox as used. The shortest idle expiry is a minute and
/// the manager records a use at most every 30 s, so this keeps the record under 45 s old.
const TOUCH_EVERY: Duration = Duration::from_secs(15);

/// How long `job_kill` and shutdown wait for a killed job's process tree to be gone.
const KILL_WAIT: Duration = Duration::from_secs(15);

/// Ended jobs remembered (for a last `job_read`) before the oldest are forgotten.
const KEEP_ENDED: usize = 100;

/// The jobs of every tenant, in start order.
#[derive(Default)]
pub(crate) struct Jobs {
    inner: Mutex<IndexMap<String, Arc<Job>>>,
}

struct Job {
    id: String,
    tenant: Tenant,
    sandbox_id: String,
    started: Instant,
    /// Cancelling kills the job's process tree.
    kill: CancellationToken,
    /// Cancelled once the job has ended and `state.end` is set.
    ended: CancellationToken,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Output not read yet, stdout and stderr interleaved as they came.
    unread: VecDeque<u8>,
    /// Bytes dropped from the front of `unread` since the last read.
    dropped: u64,
    end: Option<End>,
}

/// How a job ended.
#[derive(Debug, Clone)]
enum End {
    Exited {
        code: Option<i64>,
        oom: bool,
        after: Duration,
    },
    /// Killed by job_kill or shutdown.
    Killed { after: Duration },
    /// It could not run, or its sandbox went away under it.
    Failed { message: String },
}

impl End {
    fn status(&self) -> &'static str {
        match self {
            End::Exited { .. } => "exited",
            End::Killed { .. } => "killed",
            End::Failed { .. } => "failed",
        }
    }

    fn exit_code(&self) -> Option<i64> {
        match self {
            End::Exited { code, .. } => *code,
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            End::Exited { code, oom, after } => {
                let code = code.map_or("an unknown code".to_string(), |c| format!("code {c}"));
                let oom = if *oom {
                    " (a process was killed for using more memory than the sandbox allows)"
                } else {
                    ""
                };
                format!("exited with {code} after {} s{oom}", after.as_secs())
            }
            End::Killed { after } => format!("was killed after {} s", after.as_secs()),
            End::Failed { message } => format!("failed: {message}"),
        }
    }
}

impl Job {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, data: &[u8]) {
        let mut state = self.state();
        state.unread.extend(data);
        let mut over = state.unread.len().saturating_sub(KEEP_BYTES);
        if over > 0 {
            // Never start on half a character.
            over += state
                .unread
                .iter()
                .skip(over)
                .take(3)
                .take_while(|b| is_continuation(**b))
                .count();
            over = over.min(state.unread.len());
            state.unread.drain(..over);
            state.dropped += over as u64;
        }
    }

    fn finish(&self, result: anyhow::Result<ExecOutcome>) {
        let after = self.started.elapsed();
        let end = match result {
            Ok(outcome) => match outcome.end {
                ExecEnd::Exited(code) => End::Exited {
                    code,
                    oom: outcome.cause == Some(ExitCause::OutOfMemory),
                    after,
                },
                ExecEnd::Cancelled | ExecEnd::TimedOut | ExecEnd::OutputClosed => {
                    End::Killed { after }
                }
            },
            Err(e) if super::sandboxes::is_not_found(&e) => End::Failed {
                message: format!(
                    "sandbox {} was removed (or expired) while the job ran",
                    self.sandbox_id
                ),
            },
            Err(e) => End::Failed {
                message: format!("{e:#}"),
            },
        };
        self.state().end = Some(end);
        self.ended.cancel();
    }

    /// The next piece of unread output (at most `READ_CHUNK` bytes, whole characters), with
    /// what to say about it.
    fn read(&self) -> Read {
        let mut state = self.state();
        let end = state.end.clone();
        let take = state.unread.len().min(READ_CHUNK);
        let mut bytes: Vec<u8> = state.unread.drain(..take).collect();
        // A character cut by the chunk (or still being written) waits for the next read.
        if !state.unread.is_empty() || end.is_none() {
            let whole = complete_prefix(&bytes);
            for b in bytes.drain(whole..).rev() {
                state.unread.push_front(b);
            }
        }
        let dropped = std::mem::take(&mut state.dropped);
        Read {
            output: String::from_utf8_lossy(&bytes).into_owned(),
            dropped,
            more: !state.unread.is_empty(),
            end,
        }
    }
}

struct Read {
    output: String,
    dropped: u64,
    more: bool,
    end: Option<End>,
}

/// A job's output, as the exec delivers it.
struct JobSink(Arc<Job>);

#[async_trait]
impl OutputSink for JobSink {
    async fn write(&mut self, _stream: Stream, data: &[u8]) -> io::Result<()> {
        self.0.push(data);
        Ok(())
    }
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, IndexMap<String, Arc<Job>>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, job: Arc<Job>) {
        let mut jobs = self.lock();
        let ended: Vec<String> = jobs
            .values()
            .filter(|j| j.ended.is_cancelled())
            .map(|j| j.id.clone())
            .collect();
        for id in ended.iter().take(ended.len().saturating_sub(KEEP_ENDED)) {
            jobs.shift_remove(id);
        }
        jobs.insert(job.id.clone(), job);
    }

    /// A fresh id no job has.
    fn new_id(&self) -> String {
        let jobs = self.lock();
        loop {
            let id = new_sandbox_id();
            if !jobs.contains_key(&id) {
                return id;
            }
        }
    }

    /// The tenant's job `id`; another tenant's is as missing as one that never was.
    fn get(&self, tenant: &Tenant, id: &str) -> Option<Arc<Job>> {
        self.lock()
            .get(id)
            .filter(|job| job.tenant == *tenant)
            .cloned()
    }

    /// Kills every job and waits (a while) for their processes to be gone.
    pub(super) async fn kill_all(&self) {
        let jobs: Vec<Arc<Job>> = self.lock().values().cloned().collect();
        for job in &jobs {
            job.kill.cancel();
        }
        let all_ended = futures_util::future::join_all(jobs.iter().map(|j| j.ended.cancelled()));
        let _ = tokio::time::timeout(KILL_WAIT, all_ended).await;
    }
}

impl Core {
    /// `job_start`.
    pub(super) async fn start_job(&self, tenant: &Tenant, args: Args) -> Reply {
        let (command, sandbox_id, workdir) = match start_args(args) {
            Ok(parsed) => parsed,
            Err(message) => return Reply::invalid_arguments("job_start", &message),
        };
        let sandbox = match self
            .kept_sandbox(tenant, sandbox_id.as_deref(), "job_start")
            .await
        {
            Ok(sandbox) => sandbox,
            Err(reply) => return reply,
        };
        let workdir = workdir.map(|dir| in_sandbox(&sandbox, &dir));
        let job = Arc::new(Job {
            id: self.jobs.new_id(),
            tenant: tenant.clone(),
            sandbox_id: sandbox.id.clone(),
            started: Instant::now(),
            kill: self.stop.child_token(),
            ended: CancellationToken::new(),
            state: Mutex::new(State::default()),
        });
        self.jobs.add(job.clone());
        let mut spec = ExecSpec::new(vec!["/bin/sh".into(), "-c".into(), command.clone()]);
        spec.workdir = workdir.clone();
        spec.cancel = job.kill.clone();
        let manager = self.manager.clone();
        let running = job.clone();
        // The exec records the start as a use; the ticks keep a long job's sandbox in use.
        tokio::spawn(async move {
            let mut sink = JobSink(running.clone());
            let exec = manager.exec(&sandbox, spec, &mut sink);
            tokio::pin!(exec);
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + TOUCH_EVERY, TOUCH_EVERY);
            let result = loop {
                tokio::select! {
                    result = &mut exec => break result,
                    _ = ticks.tick() => {
                        let _ = manager.touch(&sandbox).await;
                    }
                }
            };
            // Idle time counts from the job's end.
            let _ = manager.touch(&sandbox).await;
            running.finish(result);
        });
        let text = format!(
            "Started job {id} in sandbox {sandbox_id}. Read its output with job_read \
             (\"job_id\": \"{id}\"; pass wait_seconds to wait for it to finish), stop it with \
             job_kill.",
            id = job.id,
            sandbox_id = job.sandbox_id,
        );
        Reply::ok(
            text,
            json!({
                "job_id": job.id,
                "sandbox_id": job.sandbox_id,
                "command": command,
                "workdir": workdir,
                "running": true,
            }),
        )
    }

    /// `job_read`.
    pub(super) async fn read_job(
        &self,
        tenant: &Tenant,
        args: Args,
        cancel: &CancellationToken,
    ) -> Reply {
        let (id, wait) = match read_args(args) {
            Ok(parsed) => parsed,
            Err(message) => return Reply::invalid_arguments("job_read", &message),
        };
        let Some(job) = self.jobs.get(tenant, &id) else {
            return no_such_job(&id);
        };
        let longest = self.longest_wait();
        let asked = Duration::try_from_secs_f64(wait.unwrap_or(0.0)).unwrap_or(longest);
        let wait = asked.min(longest);
        if !wait.is_zero() {
            tokio::select! {
                () = job.ended.cancelled() => {}
                () = cancel.cancelled() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        if cancel.is_cancelled() {
            // Nothing was read: the output waits for the next job_read.
            return Reply::failed(
                "cancelled",
                "The job_read call was cancelled; the job itself goes on.",
                "Call job_read again to read its output, or job_kill to stop it.",
            );
        }
        let mut reply = job_reply(&job, job.read());
        if asked > longest && !job.ended.is_cancelled() {
            reply.text.push_str(&format!(
                "\n(Waited {} s, the most one call may wait.)",
                longest.as_secs_f64()
            ));
        }
        reply
    }

    /// `job_kill`.
    pub(super) async fn kill_job(&self, tenant: &Tenant, args: Args) -> Reply {
        let id = match kill_args(args) {
            Ok(id) => id,
            Err(message) => return Reply::invalid_arguments("job_kill", &message),
        };
        let Some(job) = self.jobs.get(tenant, &id) else {
            return no_such_job(&id);
        };
        job.kill.cancel();
        if tokio::time::timeout(KILL_WAIT, job.ended.cancelled())
            .await
            .is_err()
        {
            return Reply::failed(
                "kill_unconfirmed",
                &format!(
                    "Job {id} was told to stop, but its end was not confirmed within {} s.",
                    KILL_WAIT.as_secs()
                ),
                "Call job_read to see whether it has ended; if it has not, remove its sandbox \
                 with sandbox_remove.",
            );
        }
        job_reply(&job, job.read())
    }

    /// How long one job_read may wait: under the call timeout, so the answer beats it.
    fn longest_wait(&self) -> Duration {
        let timeout = self.options.call_timeout;
        timeout
            .saturating_sub(Duration::from_secs(5))
            .max(timeout / 2)
    }
}

/// `command`, `sandbox_id`, `workdir`.
fn start_args(mut args: Args) -> Result<(String, Option<String>, Option<String>), String> {
    let command = args.required_string("command")?;
    let sandbox_id = args.optional_string("sandbox_id")?;
    let workdir = args.optional_string("workdir")?;
    args.finish()?;
    Ok((command, sandbox_id, workdir))
}

/// `job_id`, `wait_seconds`.
fn read_args(mut args: Args) -> Result<(String, Option<f64>), String> {
    let id = args.required_string("job_id")?;
    let wait = args.optional_f64("wait_seconds")?;
    args.finish()?;
    Ok((id, wait))
}

fn kill_args(mut args: Args) -> Result<String, String> {
    let id = args.required_string("job_id")?;
    args.finish()?;
    Ok(id)
}

/// `path` in the sandbox: absolute, or relative to its working directory.
pub(super) fn in_sandbox(sandbox: &Sandbox, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_string();
    }
    let base = match &sandbox.volcengine {
        Some(v) => v.working_dir.as_str(),
        None => sandbox.config.working_dir.as_str(),
    };
    join_sandbox(base, path)
}

fn join_sandbox(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_string();
    }
    let path = path.strip_prefix("./").unwrap_or(path);
    match path {
        "" | "." => base.to_string(),
        _ => format!("{}/{path}", base.trim_end_matches('/')),
    }
}

fn job_reply(job: &Job, read: Read) -> Reply {
    let mut text = String::new();
    if read.dropped > 0 {
        text.push_str(&format!(
            "[... {} earlier bytes of output were dropped: a job keeps at most {} KiB of \
             output not yet read; read more often, or write long output to a file ...]\n",
            read.dropped,
            KEEP_BYTES / 1024
        ));
    }
    if read.output.is_empty() {
        text.push_str("(no new output)");
    } else {
        text.push_str(&read.output);
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let id = &job.id;
    let status = match &read.end {
        None => format!(
            "\nJob {id} is still running ({} s so far). Call job_read again for more output \
             (wait_seconds waits for it to finish), or job_kill to stop it.",
            job.started.elapsed().as_secs()
        ),
        Some(end) => format!("\nJob {id} {}.", end.describe()),
    };
    text.push_str(&status);
    if read.more {
        text.push_str(" More output is waiting: call job_read again.");
    }
    let mut structured = json!({
        "job_id": id,
        "sandbox_id": job.sandbox_id,
        "running": read.end.is_none(),
        "status": read.end.as_ref().map_or("running", End::status),
        "output": read.output,
        "more_output": read.more,
        "dropped_bytes": read.dropped,
        "elapsed_seconds": job.started.elapsed().as_secs(),
    });
    if let Some(code) = read.end.as_ref().and_then(End::exit_code) {
        structured["exit_code"] = json!(code);
    }
    let failed = matches!(read.end, Some(End::Failed { .. }));
    if let Some(End::Failed { message }) = &read.end {
        structured["error"] = Value::String(message.clone());
        text.push_str(
            "\nCheck the sandbox with sandbox_list (create a new one if it is gone) and the \
             workdir, then start the job again.",
        );
    }
    let mut reply = Reply::ok(text, structured);
    reply.is_error = failed;
    reply
}

fn no_such_job(id: &str) -> Reply {
    Reply::failed(
        "not_found",
        &format!("No job {id} among the jobs of this session."),
        "Use the job_id that job_start returned, or start the command again with job_start.",
    )
}

fn is_continuation(b: u8) -> bool {
    b & 0b1100_0000 == 0b1000_0000
}

/// The length of `bytes` without an incomplete UTF-8 character at its end.
fn complete_prefix(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => bytes.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            id: "j".into(),
            tenant: Tenant::stdio(),
            sandbox_id: "s".into(),
            started: Instant::now(),
            kill: CancellationToken::new(),
            ended: CancellationToken::new(),
            state: Mutex::new(State::default()),
        }
    }

    #[test]
    fn reads_return_what_is_new_in_chunks_of_whole_characters() {
        let job = job();
        job.push(b"one\n");
        assert_eq!(job.read().output, "one\n");
        assert_eq!(job.read().output, "");
        // A character split across writes is returned whole, once it is complete.
        job.push(&"é".as_bytes()[..1]);
        assert_eq!(job.read().output, "");
        job.push(&"é".as_bytes()[1..]);
        assert_eq!(job.read().output, "é");
        let long = "ü".repeat(READ_CHUNK);
        job.push(long.as_bytes());
        let first = job.read();
        assert!(first.more && first.output.len() <= READ_CHUNK);
        let mut all = first.output;
        loop {
            let next = job.read();
            all.push_str(&next.output);
            if !next.more {
                break;
            }
        }
        assert_eq!(all, long);
    }

    #[test]
    fn unread_output_keeps_the_latest_bytes_and_counts_the_rest() {
        let job = job();
        job.push(&vec![b'a'; KEEP_BYTES]);
        job.push(b"tail");
        let read = job.read();
        assert_eq!(read.dropped, 4);
        assert!(read.more);
        let state = job.state();
        assert_eq!(state.unread.len(), KEEP_BYTES - READ_CHUNK);
        assert_eq!(state.dropped, 0);
    }

    #[test]
    fn the_end_and_its_exit_code_are_reported() {
        let job = job();
        job.push(b"bye");
        job.finish(Ok(ExecOutcome::new(
            ExecEnd::Exited(Some(3)),
            Duration::ZERO,
        )));
        assert!(job.ended.is_cancelled());
        let reply = job_reply(&job, job.read());
        assert!(!reply.is_error);
        assert_eq!(reply.structured["exit_code"], 3);
        assert_eq!(reply.structured["running"], false);
        assert!(reply.text.starts_with("bye\n"), "{}", reply.text);
        assert!(reply.text.contains("exited with code 3"), "{}", reply.text);
    }

    #[test]
    fn a_job_is_found_only_by_the_tenant_that_started_it() {
        let jobs = Jobs::default();
        jobs.add(Arc::new(job()));
        assert!(jobs.get(&Tenant::stdio(), "j").is_some());
        assert!(jobs.get(&Tenant::new("other"), "j").is_none());
        assert!(jobs.get(&Tenant::stdio(), "k").is_none());
    }

    #[test]
    fn relative_sandbox_paths_start_at_the_working_directory() {
        assert_eq!(join_sandbox("/sandbox", "/tmp/x"), "/tmp/x");
        assert_eq!(join_sandbox("/sandbox", "out/a.txt"), "/sandbox/out/a.txt");
        assert_eq!(join_sandbox("/sandbox/", "./a"), "/sandbox/a");
        assert_eq!(join_sandbox("/sandbox", "."), "/sandbox");
    }
}
