//! Running a command through the agent, reported exactly as the Docker path reports it: exit
//! codes (128 + the signal for a signal death), 127/126 for a program that is missing or cannot
//! run, timeouts and cancels with what the kill achieved, and an outside `SIGKILL` explained.

use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::Utc;
use enclave_agent::client::{Call, CallReader, CallWriter, ClientError};
use enclave_agent::proto::{Ending, FailureKind, How, KillStats, OutputStream, Reply};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use super::{AgentHost, BACKSTOP};
use crate::error::Error;
use crate::model::{ExecEnd, ExecOutcome, ExecSpec, ExitCause, KillReport, OutputSink, Stream};

/// After we cancelled a call, how long we wait for the agent's report before giving up on it.
const DRAIN_AFTER_CANCEL: Duration = Duration::from_secs(3);
/// Bytes of stdin read per `Data` frame.
const STDIN_CHUNK: usize = 64 * 1024;
/// The status of a process killed with `SIGKILL`.
const SIGKILL_STATUS: i64 = 137;

/// `KEY=VALUE` entries as pairs (entries were checked by the caller).
pub(super) fn env_pairs(env: &[String]) -> Vec<(String, String)> {
    env.iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect()
}

pub(super) fn millis(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

/// Streams a started `Exec` call into `sink` until it ends, and says how.
pub(super) async fn follow(
    call: Call,
    spec: ExecSpec,
    sink: &mut dyn OutputSink,
    docker: &dyn AgentHost,
) -> Result<ExecOutcome> {
    match follow_call(call, spec, sink, docker).await? {
        Followed::Ended(outcome) => Ok(outcome),
        Followed::Refused { failure, workdir } => start_failure(failure, workdir, sink).await,
    }
}

/// Like [`follow`] for a `Python` call; `None` when the agent found no usable interpreter, so
/// the caller's own runner reports that in its words.
pub(super) async fn follow_python(
    call: Call,
    spec: ExecSpec,
    sink: &mut dyn OutputSink,
    docker: &dyn AgentHost,
) -> Result<Option<ExecOutcome>> {
    match follow_call(call, spec, sink, docker).await? {
        Followed::Ended(outcome) => Ok(Some(outcome)),
        Followed::Refused { failure, .. }
            if matches!(
                failure.kind,
                FailureKind::CommandNotFound | FailureKind::NotExecutable
            ) =>
        {
            Ok(None)
        }
        Followed::Refused { failure, workdir } => {
            start_failure(failure, workdir, sink).await.map(Some)
        }
    }
}

enum Followed {
    Ended(ExecOutcome),
    /// The agent could not start the command.
    Refused {
        failure: enclave_agent::proto::Failure,
        workdir: Option<String>,
    },
}

/// Why we cancelled a call ourselves.
#[derive(Debug, Clone, Copy)]
struct Stopping {
    end: ExecEnd,
    since: tokio::time::Instant,
}

async fn follow_call(
    call: Call,
    spec: ExecSpec,
    sink: &mut dyn OutputSink,
    docker: &dyn AgentHost,
) -> Result<Followed> {
    let started = Instant::now();
    let started_at = Utc::now();
    let (writer, mut reader) = call.split();
    let stdin = spec.stdin.map(|s| pump_stdin(writer.clone(), s));
    let backstop = spec
        .timeout
        .and_then(|t| tokio::time::Instant::now().checked_add(t + BACKSTOP));
    let mut stopping: Option<Stopping> = None;
    let ended = loop {
        let drain_deadline = stopping.map(|s| s.since + DRAIN_AFTER_CANCEL);
        let discard = stopping.is_some_and(|s| s.end == ExecEnd::OutputClosed);
        let step = tokio::select! {
            biased;
            () = spec.cancel.cancelled(), if stopping.is_none() => Step::Stop(ExecEnd::Cancelled),
            () = sleep_until(backstop), if stopping.is_none() => Step::Stop(ExecEnd::TimedOut),
            () = sleep_until(drain_deadline) => Step::GiveUp,
            step = next_step(&mut reader, sink, discard) => step,
        };
        match step {
            Step::Continue => {}
            Step::Stop(end) => {
                stopping = Some(Stopping {
                    end,
                    since: tokio::time::Instant::now(),
                });
                let _ = writer.cancel().await;
            }
            Step::SinkClosed => {
                if stopping.is_none() {
                    stopping = Some(Stopping {
                        end: ExecEnd::OutputClosed,
                        since: tokio::time::Instant::now(),
                    });
                    let _ = writer.cancel().await;
                }
            }
            Step::Ended(ending) => break Ok(ending),
            Step::Failed(failure) => break Err(failure),
            Step::Lost(e) => {
                stop_stdin(stdin);
                return lost(e, stopping, started, started_at, docker).await;
            }
            Step::GiveUp => {
                stop_stdin(stdin);
                let mut outcome = ExecOutcome::new(
                    stopping.map_or(ExecEnd::Exited(None), |s| s.end),
                    started.elapsed(),
                );
                outcome.kill = Some(KillReport::Unverified);
                return Ok(Followed::Ended(outcome));
            }
        }
    };
    stop_stdin(stdin);
    match ended {
        Ok(ending) => {
            let mut outcome = outcome_of(&ending, stopping.map(|s| s.end), started.elapsed());
            if outcome.end == ExecEnd::Exited(Some(SIGKILL_STATUS)) {
                outcome.cause = docker.why_killed(started_at).await;
            }
            Ok(Followed::Ended(outcome))
        }
        Err(failure) => Ok(Followed::Refused {
            failure,
            workdir: spec.workdir,
        }),
    }
}

enum Step {
    Continue,
    Stop(ExecEnd),
    SinkClosed,
    Ended(Ending),
    Failed(enclave_agent::proto::Failure),
    Lost(ClientError),
    GiveUp,
}

/// Reads one reply and hands its output to the sink (or drops it, once the sink is gone).
async fn next_step(reader: &mut CallReader, sink: &mut dyn OutputSink, discard: bool) -> Step {
    match reader.next().await {
        Ok(Reply::Output { stream, data }) => {
            if discard {
                return Step::Continue;
            }
            let stream = match stream {
                OutputStream::Stdout => Stream::Stdout,
                OutputStream::Stderr => Stream::Stderr,
            };
            match sink.write(stream, &data).await {
                Ok(()) => Step::Continue,
                Err(_) => Step::SinkClosed,
            }
        }
        Ok(Reply::Ended(ending)) => Step::Ended(ending),
        Ok(_) => Step::Continue,
        Err(ClientError::Failed(failure)) => Step::Failed(failure),
        Err(e) => Step::Lost(e),
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How a call the agent reported as ended ended, in the Docker path's words.
fn outcome_of(ending: &Ending, stopped_by_us: Option<ExecEnd>, duration: Duration) -> ExecOutcome {
    let report = kill_report(ending.kill);
    let (end, kill) = match (ending.how, stopped_by_us) {
        (How::TimedOut, _) => (ExecEnd::TimedOut, Some(report)),
        (How::Cancelled, stopped) => (stopped.unwrap_or(ExecEnd::Cancelled), Some(report)),
        // It ended by itself as we stopped it: nothing was left to kill.
        (How::Exited, Some(stopped)) => (
            stopped,
            Some(
                ending
                    .kill
                    .map_or(KillReport::Verified { killed: 0 }, |_| report),
            ),
        ),
        (How::Exited, None) => (ExecEnd::Exited(exit_status(ending)), None),
    };
    let mut outcome = ExecOutcome::new(end, duration);
    outcome.kill = kill;
    outcome
}

/// The status a shell would report: the exit code, or 128 + the signal.
fn exit_status(ending: &Ending) -> Option<i64> {
    ending
        .code
        .map(i64::from)
        .or_else(|| ending.signal.map(|s| 128 + i64::from(s)))
}

fn kill_report(stats: Option<KillStats>) -> KillReport {
    match stats {
        Some(KillStats { killed, left: 0 }) => KillReport::Verified { killed },
        Some(KillStats { killed, left }) => KillReport::Survivors { killed, left },
        None => KillReport::Unverified,
    }
}

/// The connection died under the call: the sandbox went away, or the agent did.
async fn lost(
    err: ClientError,
    stopping: Option<Stopping>,
    started: Instant,
    started_at: chrono::DateTime<Utc>,
    docker: &dyn AgentHost,
) -> Result<Followed> {
    match docker.why_killed(started_at).await {
        Some(ExitCause::SandboxGone) => {
            let mut outcome = ExecOutcome::new(
                stopping.map_or(ExecEnd::Exited(None), |s| s.end),
                started.elapsed(),
            );
            outcome.cause = Some(ExitCause::SandboxGone);
            Ok(Followed::Ended(outcome))
        }
        _ => {
            Err(anyhow::Error::new(err).context("the sandbox's agent went away during the command"))
        }
    }
}

/// A command the agent could not start, as the Docker path reports one: the reason on stderr
/// and a shell's status (127 not found, 126 not executable), or `NoWorkdir`.
async fn start_failure(
    failure: enclave_agent::proto::Failure,
    workdir: Option<String>,
    sink: &mut dyn OutputSink,
) -> Result<ExecOutcome> {
    let code = match failure.kind {
        FailureKind::CommandNotFound => 127,
        FailureKind::NotExecutable => 126,
        FailureKind::NoWorkdir => {
            return Err(Error::NoWorkdir(workdir.unwrap_or_else(|| "?".into())).into())
        }
        _ => return Err(anyhow::Error::new(failure).context("the agent could not run the command")),
    };
    let mut message = failure.message;
    if !message.ends_with('\n') {
        message.push('\n');
    }
    // The reason goes where errors go; a reader that went away changes nothing now.
    let _ = sink.write(Stream::Stderr, message.as_bytes()).await;
    Ok(ExecOutcome::new(
        ExecEnd::Exited(Some(code)),
        Duration::ZERO,
    ))
}

/// Forwards stdin to the call as it is read, then its end.
fn pump_stdin(writer: CallWriter, mut stdin: Box<dyn AsyncRead + Send + Unpin>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0; STDIN_CHUNK];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if writer.send(buf[..n].to_vec()).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = writer.end().await;
    })
}

fn stop_stdin(stdin: Option<JoinHandle<()>>) {
    if let Some(task) = stdin {
        task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ending(how: How, code: Option<i32>, signal: Option<i32>, kill: Option<KillStats>) -> Ending {
        Ending {
            how,
            code,
            signal,
            kill,
            runner: None,
        }
    }

    #[test]
    fn endings_read_as_the_docker_path_reports_them() {
        let d = Duration::ZERO;
        let o = outcome_of(&ending(How::Exited, Some(3), None, None), None, d);
        assert_eq!((o.end, o.kill), (ExecEnd::Exited(Some(3)), None));
        let o = outcome_of(&ending(How::Exited, None, Some(9), None), None, d);
        assert_eq!(o.end, ExecEnd::Exited(Some(137)));
        let stats = Some(KillStats { killed: 3, left: 0 });
        let o = outcome_of(&ending(How::TimedOut, None, Some(9), stats), None, d);
        assert_eq!(
            (o.end, o.kill),
            (ExecEnd::TimedOut, Some(KillReport::Verified { killed: 3 }))
        );
        let stats = Some(KillStats { killed: 3, left: 2 });
        let o = outcome_of(
            &ending(How::Cancelled, None, Some(9), stats),
            Some(ExecEnd::OutputClosed),
            d,
        );
        assert_eq!(
            (o.end, o.kill),
            (
                ExecEnd::OutputClosed,
                Some(KillReport::Survivors { killed: 3, left: 2 })
            )
        );
        // Our backstop cancelled a call whose timeout the agent missed: still a timeout.
        let o = outcome_of(
            &ending(How::Cancelled, None, Some(9), None),
            Some(ExecEnd::TimedOut),
            d,
        );
        assert_eq!(
            (o.end, o.kill),
            (ExecEnd::TimedOut, Some(KillReport::Unverified))
        );
    }

    #[test]
    fn env_entries_become_pairs() {
        assert_eq!(
            env_pairs(&["A=1".into(), "B=x=y".into()]),
            [("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
    }
}
