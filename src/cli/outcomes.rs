//! What a command acting on several sandboxes (`rm`, `stop`) did to each, and its exit code:
//! one failure does not stop the others, and `--json` lists every id's outcome in one shape.

use anyhow::Result;
use serde::Serialize;

use super::Ctx;
use crate::error::{self, exit_code, Report};

/// What a command did to one sandbox that went well.
pub(crate) trait Done: Serialize {
    /// The sandbox's full id, the line printed for it.
    fn id(&self) -> &str;

    /// A note for stderr besides the line, if this outcome needs one.
    fn note(&self) -> Option<String> {
        None
    }
}

/// One id's outcome in `--json`: what was done, or why not.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Outcome<T> {
    Done(T),
    Failed {
        id: String,
        result: &'static str,
        error: Report,
    },
}

/// The outcomes so far, and the exit code they make.
pub(crate) struct Outcomes<T> {
    list: Vec<Outcome<T>>,
    code: u8,
}

impl<T: Done> Outcomes<T> {
    pub(crate) fn new() -> Self {
        Outcomes {
            list: Vec::new(),
            code: exit_code::SUCCESS,
        }
    }

    /// Says what happened to `id` (a line, a note, an error) and keeps it for `--json`.
    pub(crate) async fn add(&mut self, id: String, done: Result<T>, ctx: &Ctx) -> Result<()> {
        match done {
            Ok(done) => {
                if !ctx.output.json {
                    ctx.output.line(done.id()).await?;
                    if let Some(note) = done.note() {
                        ctx.output.note(&note);
                    }
                }
                self.list.push(Outcome::Done(done));
            }
            Err(e) => {
                ctx.output.error_text(&e);
                self.code = error::exit_code_of(&e);
                self.list.push(Outcome::Failed {
                    id,
                    result: "error",
                    error: Report::of(&e),
                });
            }
        }
        Ok(())
    }

    /// Prints the `--json` document, when asked for; the exit code.
    pub(crate) async fn finish(self, ctx: &Ctx) -> Result<u8> {
        if ctx.output.json {
            ctx.output.json(&self.list).await?;
        }
        Ok(self.code)
    }
}
