//! The Python session: `driver.py` in the sandbox, started through the backend's exec with open
//! stdin, speaking `SessionRequest` / `SessionEvent` as JSON lines.
//!
//! The driver lives as long as its exec: closing its stdin (a dropped session, a host that died)
//! makes it kill its process group; cancelling the exec kills its process tree. Timeouts are
//! kept here: at the deadline the input is interrupted, and a driver that does not stop within
//! a grace period is killed and started again (`Done { Restarted }`, state lost).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    Completeness, DoneStatus, Interrupter, Session, SessionEvent, SessionInfo, SessionOptions,
    SessionRequest,
};
use crate::backend::Backend;
use crate::model::{ExecEnd, ExecOutcome, ExecSpec, OutputSink, Stream};

const DRIVER: &str = include_str!("driver.py");
/// The longest protocol line kept (an image in a display event is one line); longer ones are
/// dropped with a notice, so a flood cannot exhaust memory.
const MAX_LINE: usize = 32 << 20;
/// How long an input may ignore the interrupt sent at its timeout before the driver is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);
/// How long a start, a reset or a completion may take before the driver is taken as hung.
const ANSWER_WAIT: Duration = Duration::from_secs(30);
/// How long `close` waits for the exec to report the driver's end.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Bytes of the driver's own stderr kept, to explain a start that failed.
const STDERR_KEPT: usize = 4096;
/// The driver's argument: what it is called in the sandbox's process list.
pub(crate) const DRIVER_MARKER: &str = "enclave-session";

/// The status of a program that could not be found.
const NOT_FOUND: i64 = 127;

/// Starts the driver in the sandbox `sandbox_id` reached through `backend`, and waits for its
/// `Ready`.
pub(crate) async fn open(
    backend: Box<dyn Backend>,
    sandbox_id: &str,
    options: SessionOptions,
) -> Result<Box<dyn Session>> {
    let backend: Arc<dyn Backend> = Arc::from(backend);
    let interpreters = match options.interpreter {
        Some(interpreter) => vec![interpreter],
        None => vec!["python3".to_string(), "python".to_string()],
    };
    let (driver, mut info) = start_any(&backend, &interpreters).await?;
    info.sandbox = sandbox_id.to_string();
    Ok(Box::new(PythonSession {
        info,
        backend,
        interpreter: driver.interpreter.clone(),
        driver,
        pending: Vec::new(),
    }))
}

/// The first of `interpreters` the sandbox has.
async fn start_any(
    backend: &Arc<dyn Backend>,
    interpreters: &[String],
) -> Result<(Driver, SessionInfo)> {
    for (i, interpreter) in interpreters.iter().enumerate() {
        match Driver::start(backend, interpreter).await? {
            Started::Ready(driver, info) => return Ok((driver, info)),
            Started::NotFound if i + 1 < interpreters.len() => {}
            Started::NotFound => bail!(
                "the sandbox has no Python interpreter (tried {})",
                interpreters.join(", ")
            ),
            Started::Failed(why) => {
                bail!("the python session did not start with `{interpreter}`: {why}")
            }
        }
    }
    bail!("no Python interpreter to try")
}

pub(crate) struct PythonSession {
    info: SessionInfo,
    backend: Arc<dyn Backend>,
    interpreter: String,
    driver: Driver,
    /// Output that came between inputs (a background process), shown with the next input.
    pending: Vec<SessionEvent>,
}

/// What an `execute` is waiting for besides the driver's events.
struct Watch {
    deadline: Option<Instant>,
    timed_out: bool,
    /// When we sent the first interrupt of this input.
    interrupted_at: Option<Instant>,
}

impl PythonSession {
    /// Kills the driver and starts a fresh one; `why` and `Done { Restarted }` go to `events`.
    async fn restart(
        &mut self,
        why: &str,
        events: &mut (dyn FnMut(SessionEvent) + Send),
    ) -> Result<DoneStatus> {
        self.replace_driver().await?;
        events(SessionEvent::Notice {
            text: format!("{why}; started a new python session (its variables are gone)"),
        });
        let status = DoneStatus::Restarted;
        events(SessionEvent::Done { status });
        Ok(status)
    }

    async fn replace_driver(&mut self) -> Result<()> {
        self.driver.kill().await;
        self.pending.clear();
        let interpreter = [self.interpreter.clone()];
        let (driver, _) = start_any(&self.backend, &interpreter).await?;
        self.driver = driver;
        Ok(())
    }

    /// Sends `request`, starting a fresh driver first if the old one is gone; the notice
    /// saying so goes to `events`.
    async fn send_reviving(
        &mut self,
        request: &SessionRequest,
        events: &mut (dyn FnMut(SessionEvent) + Send),
    ) -> Result<()> {
        if !self.driver.has_ended() && self.driver.send(request).await.is_ok() {
            return Ok(());
        }
        let why = self.driver.why_ended().await;
        self.replace_driver().await?;
        events(SessionEvent::Notice {
            text: format!(
                "the python session had ended ({why}); started a new one (its variables are gone)"
            ),
        });
        self.driver.send(request).await
    }

    /// Waits for the answer `pick` accepts; other events are kept for the next input. `None`
    /// when the driver ended or took too long.
    async fn answer<T>(
        &mut self,
        pick: impl Fn(SessionEvent) -> Result<T, Box<SessionEvent>>,
    ) -> Option<T> {
        let until = Instant::now() + ANSWER_WAIT;
        loop {
            let event = tokio::time::timeout_at(until, self.driver.events.recv())
                .await
                .ok()??;
            match pick(event) {
                Ok(answer) => return Some(answer),
                Err(other) => self.keep_between_inputs(*other),
            }
        }
    }

    fn keep_between_inputs(&mut self, event: SessionEvent) {
        if matches!(
            event,
            SessionEvent::Stream { .. }
                | SessionEvent::Display { .. }
                | SessionEvent::Notice { .. }
        ) && self.pending.len() < 1024
        {
            self.pending.push(event);
        }
    }
}

#[async_trait]
impl Session for PythonSession {
    fn info(&self) -> &SessionInfo {
        &self.info
    }

    async fn execute(
        &mut self,
        code: &str,
        timeout: Option<Duration>,
        interrupt: &Interrupter,
        events: &mut (dyn FnMut(SessionEvent) + Send),
    ) -> Result<DoneStatus> {
        for event in self.pending.drain(..) {
            events(event);
        }
        let request = SessionRequest::Execute {
            code: code.to_string(),
            timeout_ms: None,
        };
        self.send_reviving(&request, events).await?;
        let mut watch = Watch {
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            timed_out: false,
            interrupted_at: None,
        };
        loop {
            let grace_end = watch
                .interrupted_at
                .filter(|_| watch.timed_out)
                .map(|at| at + INTERRUPT_GRACE);
            tokio::select! {
                event = self.driver.events.recv() => match event {
                    Some(SessionEvent::Done { status }) => {
                        let status = match status {
                            DoneStatus::Interrupted if watch.timed_out => DoneStatus::Timeout,
                            other => other,
                        };
                        events(SessionEvent::Done { status });
                        return Ok(status);
                    }
                    Some(
                        event @ (SessionEvent::Stream { .. }
                        | SessionEvent::Display { .. }
                        | SessionEvent::Error { .. }
                        | SessionEvent::Notice { .. }),
                    ) => events(event),
                    Some(_) => {}
                    None => {
                        let why = self.driver.why_ended().await;
                        return self.restart(&format!("the python session died ({why})"), events).await;
                    }
                },
                () = sleep_until(watch.deadline), if !watch.timed_out => {
                    watch.timed_out = true;
                    watch.interrupted_at = Some(Instant::now());
                    let _ = self.driver.send(&SessionRequest::Interrupt).await;
                }
                () = sleep_until(grace_end) => {
                    let secs = timeout.unwrap_or_default().as_secs_f64();
                    let why = format!("the input ran past its {secs}s timeout and did not stop when interrupted");
                    return self.restart(&why, events).await;
                }
                () = interrupt.fired() => {
                    let stubborn = watch
                        .interrupted_at
                        .is_some_and(|at| at.elapsed() >= INTERRUPT_GRACE);
                    if stubborn {
                        return self.restart("the input did not stop when interrupted", events).await;
                    }
                    watch.interrupted_at.get_or_insert_with(Instant::now);
                    let _ = self.driver.send(&SessionRequest::Interrupt).await;
                }
            }
        }
    }

    async fn is_complete(&mut self, code: &str) -> Result<(Completeness, String)> {
        let request = SessionRequest::IsComplete {
            code: code.to_string(),
        };
        // A driver that is gone is started again by the next `execute`, which says so; until
        // then the input is taken as it is.
        if self.driver.has_ended() || self.driver.send(&request).await.is_err() {
            return Ok((Completeness::Unknown, String::new()));
        }
        let answer = self
            .answer(|event| match event {
                SessionEvent::IsComplete { status, indent } => Ok((status, indent)),
                other => Err(Box::new(other)),
            })
            .await;
        Ok(answer.unwrap_or((Completeness::Unknown, String::new())))
    }

    async fn complete(&mut self, code: &str, cursor: usize) -> Result<(Vec<String>, usize, usize)> {
        let request = SessionRequest::Complete {
            code: code.to_string(),
            cursor,
        };
        if self.driver.has_ended() || self.driver.send(&request).await.is_err() {
            return Ok((Vec::new(), cursor, cursor));
        }
        let answer = self
            .answer(|event| match event {
                SessionEvent::Completions {
                    matches,
                    cursor_start,
                    cursor_end,
                } => Ok((matches, cursor_start, cursor_end)),
                other => Err(Box::new(other)),
            })
            .await;
        Ok(answer.unwrap_or((Vec::new(), cursor, cursor)))
    }

    async fn reset(&mut self) -> Result<()> {
        self.pending.clear();
        if !self.driver.has_ended() && self.driver.send(&SessionRequest::Reset).await.is_ok() {
            let ready = self
                .answer(|event| match event {
                    SessionEvent::Ready { .. } => Ok(()),
                    other => Err(Box::new(other)),
                })
                .await;
            if ready.is_some() {
                self.pending.clear();
                return Ok(());
            }
        }
        self.replace_driver().await
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        self.driver.kill().await;
        Ok(())
    }
}

/// One running `driver.py` and the exec that runs it.
struct Driver {
    interpreter: String,
    /// The driver's stdin; dropping it ends the driver.
    input: Option<DuplexStream>,
    events: mpsc::Receiver<SessionEvent>,
    cancel: CancellationToken,
    exec: Option<JoinHandle<Result<ExecOutcome>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

enum Started {
    Ready(Driver, SessionInfo),
    NotFound,
    Failed(String),
}

impl Driver {
    async fn start(backend: &Arc<dyn Backend>, interpreter: &str) -> Result<Started> {
        let (input, stdin) = tokio::io::duplex(64 * 1024);
        let (sender, events) = mpsc::channel(64);
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let mut spec = ExecSpec::new(vec![
            interpreter.to_string(),
            "-u".into(),
            "-c".into(),
            DRIVER.into(),
            // `sys.argv[1]`: names the process in `ps`, and lets tests find it.
            DRIVER_MARKER.into(),
        ]);
        spec.stdin = Some(Box::new(stdin));
        spec.cancel = cancel.clone();
        let mut sink = EventSink {
            line: Vec::new(),
            overflowed: false,
            events: sender,
            stderr: stderr.clone(),
        };
        let backend = backend.clone();
        let exec = tokio::spawn(async move {
            let outcome = backend.exec(spec, &mut sink).await;
            sink.finish().await;
            outcome
        });
        let mut driver = Driver {
            interpreter: interpreter.to_string(),
            input: Some(input),
            events,
            cancel,
            exec: Some(exec),
            stderr,
        };
        let first = tokio::time::timeout(ANSWER_WAIT, driver.events.recv()).await;
        match first {
            Ok(Some(SessionEvent::Ready { info })) => Ok(Started::Ready(driver, info)),
            Ok(Some(event)) => {
                driver.kill().await;
                Ok(Started::Failed(format!(
                    "it said {event:?} before it was ready"
                )))
            }
            Ok(None) => {
                // Its output ended: the exec is over, and says how.
                let outcome = driver.outcome().await;
                if let Some(Ok(o)) = &outcome {
                    if o.end == ExecEnd::Exited(Some(NOT_FOUND)) {
                        return Ok(Started::NotFound);
                    }
                }
                Ok(Started::Failed(driver.describe_end(outcome)))
            }
            Err(_) => {
                driver.kill().await;
                Ok(Started::Failed(format!(
                    "it was not ready after {}s",
                    ANSWER_WAIT.as_secs()
                )))
            }
        }
    }

    async fn send(&mut self, request: &SessionRequest) -> Result<()> {
        let input = self
            .input
            .as_mut()
            .context("the python session is closed")?;
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        input.write_all(&line).await?;
        input.flush().await?;
        Ok(())
    }

    fn has_ended(&self) -> bool {
        self.exec.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the exec to end and takes its outcome (once).
    async fn outcome(&mut self) -> Option<Result<ExecOutcome>> {
        let exec = self.exec.take()?;
        match tokio::time::timeout(CLOSE_WAIT, exec).await {
            Ok(Ok(outcome)) => Some(outcome),
            Ok(Err(join)) => Some(Err(join.into())),
            Err(_) => None,
        }
    }

    /// Why the driver is gone, in words, once its exec ended.
    async fn why_ended(&mut self) -> String {
        let outcome = self.outcome().await;
        self.describe_end(outcome)
    }

    fn describe_end(&self, outcome: Option<Result<ExecOutcome>>) -> String {
        let mut why = match outcome {
            Some(Ok(o)) => match o.end {
                ExecEnd::Exited(Some(code)) if code > 128 => {
                    format!("killed by signal {}", code - 128)
                }
                ExecEnd::Exited(Some(code)) => format!("exit status {code}"),
                ExecEnd::Exited(None) => "it ended".to_string(),
                ExecEnd::TimedOut | ExecEnd::Cancelled | ExecEnd::OutputClosed => {
                    "it was stopped".to_string()
                }
            },
            Some(Err(e)) => format!("{e:#}"),
            None => "it stopped answering".to_string(),
        };
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        let stderr = stderr.trim();
        if !stderr.is_empty() {
            why.push_str(": ");
            why.push_str(stderr);
        }
        why
    }

    /// Ends the driver: its stdin closes (it kills its process group) and its exec is
    /// cancelled (the process tree is killed); waits a bounded time for the exec to end.
    async fn kill(&mut self) {
        self.input = None;
        self.cancel.cancel();
        let _ = self.outcome().await;
    }
}

impl Drop for Driver {
    /// Without a chance to wait: the exec, still polled by the runtime, kills the driver.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Turns the driver's stdout into events, line by line.
struct EventSink {
    line: Vec<u8>,
    /// The current line passed `MAX_LINE`: the rest of it is dropped.
    overflowed: bool,
    events: mpsc::Sender<SessionEvent>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl EventSink {
    async fn deliver(&mut self, event: SessionEvent) -> io::Result<()> {
        self.events
            .send(event)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the session was closed"))
    }

    async fn end_line(&mut self) -> io::Result<()> {
        let line = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.overflowed) {
            let text = format!(
                "a message from the python session over {} MiB was dropped",
                MAX_LINE >> 20
            );
            return self.deliver(SessionEvent::Notice { text }).await;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        match serde_json::from_slice::<SessionEvent>(&line) {
            Ok(event) => self.deliver(event).await,
            Err(e) => {
                let text = format!(
                    "the python session sent a message enclave does not understand ({e}): {}",
                    String::from_utf8_lossy(&line[..line.len().min(200)])
                );
                self.deliver(SessionEvent::Notice { text }).await
            }
        }
    }

    /// The driver's output ended: a last line without its newline still counts.
    async fn finish(&mut self) {
        if !self.line.is_empty() || self.overflowed {
            let _ = self.end_line().await;
        }
    }
}

#[async_trait]
impl OutputSink for EventSink {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        if stream == Stream::Stderr {
            if let Ok(mut kept) = self.stderr.lock() {
                kept.extend_from_slice(data);
                let excess = kept.len().saturating_sub(STDERR_KEPT);
                kept.drain(..excess);
            }
            return Ok(());
        }
        let mut rest = data;
        while !rest.is_empty() {
            let (part, ended) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], Some(at + 1)),
                None => (rest, None),
            };
            if self.overflowed || self.line.len() + part.len() > MAX_LINE {
                self.overflowed = true;
                self.line.clear();
            } else {
                self.line.extend_from_slice(part);
            }
            match ended {
                Some(at) => {
                    self.end_line().await?;
                    rest = &rest[at..];
                }
                None => break,
            }
        }
        Ok(())
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink() -> (EventSink, mpsc::Receiver<SessionEvent>) {
        let (events, receiver) = mpsc::channel(16);
        let sink = EventSink {
            line: Vec::new(),
            overflowed: false,
            events,
            stderr: Arc::new(Mutex::new(Vec::new())),
        };
        (sink, receiver)
    }

    #[tokio::test]
    async fn lines_split_across_writes_become_events() {
        let (mut sink, mut events) = sink();
        sink.write(Stream::Stdout, b"{\"event\":\"done\",")
            .await
            .unwrap();
        sink.write(
            Stream::Stdout,
            b"\"status\":\"ok\"}\n{\"event\":\"notice\",\"text\":\"x\"}\n",
        )
        .await
        .unwrap();
        assert_eq!(
            events.recv().await,
            Some(SessionEvent::Done {
                status: DoneStatus::Ok
            })
        );
        assert_eq!(
            events.recv().await,
            Some(SessionEvent::Notice { text: "x".into() })
        );
    }

    #[tokio::test]
    async fn an_oversized_line_is_dropped_with_a_notice() {
        let (mut sink, mut events) = sink();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..(MAX_LINE >> 20) + 1 {
            sink.write(Stream::Stdout, &chunk).await.unwrap();
        }
        assert!(sink.line.is_empty(), "the flood is not kept");
        sink.write(
            Stream::Stdout,
            b"\n{\"event\":\"done\",\"status\":\"ok\"}\n",
        )
        .await
        .unwrap();
        let Some(SessionEvent::Notice { text }) = events.recv().await else {
            panic!("expected a notice");
        };
        assert!(text.contains("dropped"), "{text}");
        assert_eq!(
            events.recv().await,
            Some(SessionEvent::Done {
                status: DoneStatus::Ok
            })
        );
    }

    #[tokio::test]
    async fn stderr_is_kept_bounded_not_parsed() {
        let (mut sink, mut events) = sink();
        sink.write(Stream::Stderr, &vec![b'e'; STDERR_KEPT * 3])
            .await
            .unwrap();
        assert_eq!(sink.stderr.lock().unwrap().len(), STDERR_KEPT);
        drop(sink);
        assert_eq!(events.recv().await, None);
    }
}
