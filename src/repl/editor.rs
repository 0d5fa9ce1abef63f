//! The line editor: rustyline on a thread of its own (it blocks), with history in a file and
//! Tab completion answered by the live session through the REPL's loop.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use nix::sys::termios::{self, SetArg, Termios};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter, MatchingBracketHighlighter};
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};
use tokio::sync::mpsc;

/// How long Tab waits for the session's answer before giving up on it.
const COMPLETION_WAIT: Duration = Duration::from_secs(3);
const HISTORY_SIZE: usize = 10_000;

/// What the editor thread reports.
pub(crate) enum Reply {
    Line(String),
    /// Ctrl-C at the prompt.
    Interrupted,
    /// Ctrl-D on an empty line.
    Eof,
    Failed(String),
    /// Tab: the completions of `line` at byte `pos`, to be sent back on `answer` as the byte
    /// offset they start at and the candidates.
    Complete {
        line: String,
        pos: usize,
        answer: std_mpsc::Sender<(usize, Vec<String>)>,
    },
}

enum Request {
    Read { prompt: String, initial: String },
    Remember(String),
}

pub(crate) struct LineEditor {
    requests: std_mpsc::Sender<Request>,
    replies: mpsc::UnboundedReceiver<Reply>,
    /// The terminal's settings before the editor ran: a shell stopped by a signal while the
    /// editor waits for a key (in raw mode) puts them back as it leaves.
    terminal: Option<Termios>,
}

impl Drop for LineEditor {
    fn drop(&mut self) {
        if let Some(settings) = &self.terminal {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, settings);
        }
    }
}

impl LineEditor {
    /// Starts the editor thread; `history` is loaded (when it exists) and appended to.
    pub(crate) fn start(history: Option<PathBuf>, color: bool) -> Result<Self> {
        let config = Config::builder()
            .max_history_size(HISTORY_SIZE)
            .context("configuring the line editor")?
            .auto_add_history(false)
            // Tab lists the candidates, as Python's REPL does.
            .completion_type(CompletionType::List)
            .tab_stop(4)
            .indent_size(4)
            .build();
        let terminal = termios::tcgetattr(std::io::stdin()).ok();
        let (requests, inbox) = std_mpsc::channel();
        let (outbox, replies) = mpsc::unbounded_channel();
        let mut editor: Editor<SessionHelper, FileHistory> =
            Editor::with_config(config).context("starting the line editor")?;
        editor.set_helper(Some(SessionHelper {
            replies: outbox.clone(),
            brackets: color.then(MatchingBracketHighlighter::new),
        }));
        if let Some(path) = &history {
            // A missing or unreadable history file only means no history yet.
            let _ = editor.load_history(path);
        }
        std::thread::Builder::new()
            .name("enclave-editor".into())
            .spawn(move || serve(editor, history, inbox, outbox))
            .context("starting the line editor")?;
        Ok(LineEditor {
            requests,
            replies,
            terminal,
        })
    }

    /// Asks for a line at `prompt`, pre-filled with `initial`; answers come through `next`.
    pub(crate) fn read(&self, prompt: &str, initial: &str) {
        let _ = self.requests.send(Request::Read {
            prompt: prompt.to_string(),
            initial: initial.to_string(),
        });
    }

    /// The editor's next report; `Eof` when its thread is gone.
    pub(crate) async fn next(&mut self) -> Reply {
        self.replies.recv().await.unwrap_or(Reply::Eof)
    }

    /// Adds an input to the history (and its file).
    pub(crate) fn remember(&self, input: &str) {
        let _ = self.requests.send(Request::Remember(input.to_string()));
    }
}

fn serve(
    mut editor: Editor<SessionHelper, FileHistory>,
    history: Option<PathBuf>,
    inbox: std_mpsc::Receiver<Request>,
    outbox: mpsc::UnboundedSender<Reply>,
) {
    while let Ok(request) = inbox.recv() {
        match request {
            Request::Read { prompt, initial } => {
                let reply = match editor.readline_with_initial(&prompt, (&initial, "")) {
                    Ok(line) => Reply::Line(line),
                    Err(ReadlineError::Interrupted) => Reply::Interrupted,
                    Err(ReadlineError::Eof) => Reply::Eof,
                    Err(e) => Reply::Failed(e.to_string()),
                };
                if outbox.send(reply).is_err() {
                    return;
                }
            }
            Request::Remember(input) => {
                if editor.add_history_entry(input).unwrap_or(false) {
                    if let Some(path) = &history {
                        if let Some(dir) = path.parent() {
                            let _ = std::fs::create_dir_all(dir);
                        }
                        let _ = editor.append_history(path);
                    }
                }
            }
        }
    }
}

struct SessionHelper {
    replies: mpsc::UnboundedSender<Reply>,
    /// Matching brackets shown in colour; `None` without colour.
    brackets: Option<MatchingBracketHighlighter>,
}

impl Completer for SessionHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        // Tab in leading whitespace indents, as in Python's REPL.
        if line[..pos].trim().is_empty() {
            return Ok((pos, vec!["    ".to_string()]));
        }
        let (answer, answered) = std_mpsc::channel();
        let asked = self.replies.send(Reply::Complete {
            line: line.to_string(),
            pos,
            answer,
        });
        if asked.is_err() {
            return Ok((pos, Vec::new()));
        }
        Ok(answered
            .recv_timeout(COMPLETION_WAIT)
            .unwrap_or((pos, Vec::new())))
    }
}

impl Hinter for SessionHelper {
    type Hint = String;
}

impl Highlighter for SessionHelper {
    fn highlight<'l>(&self, line: &'l str, pos: usize) -> Cow<'l, str> {
        match &self.brackets {
            Some(b) => b.highlight(line, pos),
            None => Cow::Borrowed(line),
        }
    }

    fn highlight_char(&self, line: &str, pos: usize, kind: CmdKind) -> bool {
        self.brackets
            .as_ref()
            .is_some_and(|b| b.highlight_char(line, pos, kind))
    }
}

impl Validator for SessionHelper {}

impl Helper for SessionHelper {}
