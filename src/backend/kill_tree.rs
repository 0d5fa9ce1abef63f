//! Killing a command and everything it started, inside a sandbox, and saying how far that
//! could be checked; shared by every backend that runs commands through an exec (Docker's
//! exec API, a Pod's exec subresource).
//!
//! Every exec carries a random token in its environment. Children inherit it, whatever process
//! group or session they move to (`setsid`, daemons); a child that cleared its environment is
//! still found through its parent while the parent lives. A short `sh` script run in the
//! sandbox by a second exec freezes all of them, kills them, and counts what is left. It needs
//! `sh` and `grep` in the image, and a free process slot; without them the kill is reported as
//! unverified.

use std::future::Future;
use std::time::Duration;

use crate::model::KillReport;

/// How long what is left of a killed command's output is still read once the kill has ended.
pub(crate) const DRAIN_AFTER_KILL: Duration = Duration::from_secs(3);
/// How much of a killed command's remaining output is kept for the caller.
pub(crate) const REST_CAP: usize = 1024 * 1024;

/// The environment variable that marks a command's processes.
pub(crate) const TOKEN_VAR: &str = "ENCLAVE_EXEC_TOKEN";

/// Bound on the kill script itself, so a wedged engine cannot hang us.
pub(crate) const KILL_BUDGET: Duration = Duration::from_secs(10);

/// `$1`: the token. Freezes every process carrying it and every descendant of one (repeating
/// until no new one appears, so nothing can fork or react to a child's death), kills them all,
/// and prints `killed N left M`. Killing without freezing first lets a shell whose child was
/// killed run its next command.
const KILL_TREE_SCRIPT: &str = r#"tok="ENCLAVE_EXEC_TOKEN=$1"
command -v grep >/dev/null 2>&1 || exit 3
scan() {
  s=" "
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    grep -qF "$tok" "$d/environ" 2>/dev/null && s="$s$p "
  done
  [ "$s" = " " ] && return
  while :; do
    added=
    for d in /proc/[0-9]*; do
      p=${d#/proc/}
      case "$s" in *" $p "*) continue ;; esac
      { read -r st < "$d/stat"; } 2>/dev/null || continue
      st=${st##*) }
      pp=${st#* }
      pp=${pp%% *}
      case "$s" in *" $pp "*) s="$s$p "; added=1 ;; esac
    done
    [ -n "$added" ] || break
  done
  echo $s
}
prev=
cur=
n=0
while [ $n -lt 50 ]; do
  cur=$(scan)
  [ -z "$cur" ] && break
  kill -STOP $cur 2>/dev/null
  [ "$cur" = "$prev" ] && break
  prev=$cur
  n=$((n+1))
done
set -- $cur
killed=$#
n=0
while [ -n "$cur" ] && [ $n -lt 20 ]; do
  kill -KILL $cur 2>/dev/null
  cur=$(scan)
  n=$((n+1))
done
set -- $cur
echo "killed $killed left $#""#;

/// The argv of the kill script for the command marked with `token`.
pub(crate) fn kill_tree_argv(token: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        KILL_TREE_SCRIPT.into(),
        "sh".into(),
        token.into(),
    ]
}

/// What the kill script printed, as a report.
pub(crate) fn parse_report(text: &str) -> KillReport {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["killed", killed, "left", left] => match (killed.parse(), left.parse()) {
            (Ok(killed), Ok(0)) => KillReport::Verified { killed },
            (Ok(killed), Ok(left)) => KillReport::Survivors { killed, left },
            _ => KillReport::Unverified,
        },
        _ => KillReport::Unverified,
    }
}

/// A command's output as a backend reads it.
pub(crate) trait Output {
    type Chunk;
    /// The next chunk; `None` once the output ended (or failed).
    fn next_chunk(&mut self) -> impl Future<Output = Option<Self::Chunk>> + Send + '_;
    fn size(chunk: &Self::Chunk) -> usize;
}

/// Runs `kill` while reading what is left of the command's `output`: a command blocked on a full pipe dies only once read, and an engine finishes a killed
/// command (and the kill run beside it) only then. Keeps up to `REST_CAP` bytes (as `size`
/// counts them); stops reading once the output ends, or `DRAIN_AFTER_KILL` after the kill when it
/// does not.
pub(crate) async fn kill_and_collect<O: Output>(
    output: &mut O,
    kill: impl Future<Output = KillReport>,
) -> (KillReport, Vec<O::Chunk>) {
    tokio::pin!(kill);
    let mut rest = Vec::new();
    let mut kept = 0;
    let mut report = None;
    let mut ended = false;
    let give_up = tokio::time::sleep(Duration::MAX);
    tokio::pin!(give_up);
    loop {
        tokio::select! {
            r = &mut kill, if report.is_none() => {
                report = Some(r);
                if ended {
                    break;
                }
                give_up.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_KILL);
            }
            item = output.next_chunk(), if !ended => match item {
                Some(chunk) => {
                    if kept < REST_CAP {
                        kept += O::size(&chunk);
                        rest.push(chunk);
                    }
                }
                None => {
                    ended = true;
                    if report.is_some() {
                        break;
                    }
                }
            },
            () = &mut give_up, if report.is_some() => break,
        }
    }
    (report.unwrap_or(KillReport::Unverified), rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports() {
        assert_eq!(
            parse_report("killed 3 left 0\n"),
            KillReport::Verified { killed: 3 }
        );
        assert_eq!(
            parse_report("killed 40 left 12\n"),
            KillReport::Survivors {
                killed: 40,
                left: 12
            }
        );
        assert_eq!(parse_report(""), KillReport::Unverified);
        assert_eq!(parse_report("sh: fork failed"), KillReport::Unverified);
    }
}
