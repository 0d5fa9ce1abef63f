//! Killing a call's whole process tree, found through `/proc`, so that nothing it started can
//! escape: freeze every process of the tree (repeating until no new one appears, so nothing
//! can fork or react to a child's death), kill them all, then count what is left.
//!
//! Kills run on one thread started with the agent: under a fork bomb at the pids limit no new
//! thread or process could be created, and the kill must still happen.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::oneshot;

use crate::proto::KillStats;

/// Bounds on freezing the tree: scans, and time.
const FREEZE_ROUNDS: u32 = 200;
const FREEZE_TIME: Duration = Duration::from_secs(3);
/// How long to wait for the killed processes to be gone.
const KILL_TIME: Duration = Duration::from_secs(1);

/// What `/proc/PID/stat` says of a process that matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) pid: i32,
    pub(crate) ppid: i32,
    pub(crate) state: char,
}

impl ProcStat {
    fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses `/proc/PID/stat`. The command name in parentheses may hold spaces and parentheses
/// itself, so the fields are read after the last `)`.
pub(crate) fn parse_stat(pid: i32, stat: &str) -> Option<ProcStat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(ProcStat { pid, ppid, state })
}

/// Every process visible now.
fn scan() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(pid, &stat)
    })
    .collect()
}

/// The processes of `procs` below any of `tree` and not in it yet.
pub(crate) fn new_descendants(tree: &HashSet<i32>, procs: &[ProcStat]) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut found = Vec::new();
    let mut seen: HashSet<i32> = tree.clone();
    let mut queue: Vec<i32> = tree.iter().copied().collect();
    while let Some(parent) = queue.pop() {
        for &child in children.get(&parent).into_iter().flatten() {
            if seen.insert(child) {
                found.push(child);
                queue.push(child);
            }
        }
    }
    found
}

fn signal(pid: i32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid), sig);
}

/// Freezes, kills and counts the tree rooted at `root`.
pub(crate) fn kill_tree(root: i32) -> KillStats {
    let started = Instant::now();
    signal(root, Signal::SIGSTOP);
    let mut tree: HashSet<i32> = HashSet::from([root]);
    for _ in 0..FREEZE_ROUNDS {
        let new = new_descendants(&tree, &scan());
        if new.is_empty() || started.elapsed() > FREEZE_TIME {
            break;
        }
        for &pid in &new {
            signal(pid, Signal::SIGSTOP);
        }
        tree.extend(new);
    }
    // Anything forked since the last scan is below a frozen process; take it too.
    tree.extend(new_descendants(&tree, &scan()));
    for &pid in &tree {
        signal(pid, Signal::SIGKILL);
    }
    let killed = tree.len() as u32;
    let left = wait_gone(&tree);
    KillStats { killed, left }
}

/// Waits until none of `tree` is alive (zombies are dead); how many still are.
fn wait_gone(tree: &HashSet<i32>) -> u32 {
    let started = Instant::now();
    loop {
        let alive: Vec<i32> = scan()
            .into_iter()
            .filter(|p| tree.contains(&p.pid) && !p.is_dead())
            .map(|p| p.pid)
            .collect();
        if alive.is_empty() || started.elapsed() > KILL_TIME {
            return alive.len() as u32;
        }
        for &pid in &alive {
            signal(pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The thread that runs kills.
pub(crate) struct Killer {
    jobs: mpsc::Sender<(i32, oneshot::Sender<KillStats>)>,
}

impl Killer {
    pub(crate) fn start() -> std::io::Result<Killer> {
        let (jobs, queue) = mpsc::channel::<(i32, oneshot::Sender<KillStats>)>();
        std::thread::Builder::new()
            .name("killer".into())
            .spawn(move || {
                for (root, done) in queue {
                    let _ = done.send(kill_tree(root));
                }
            })?;
        Ok(Killer { jobs })
    }

    /// Kills the tree rooted at `root`.
    pub(crate) async fn kill(&self, root: i32) -> KillStats {
        let (done, stats) = oneshot::channel();
        if self.jobs.send((root, done)).is_err() {
            return KillStats { killed: 0, left: 1 };
        }
        stats.await.unwrap_or(KillStats { killed: 0, left: 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_reads_after_the_last_parenthesis() {
        let stat = "42 (a) b) (c) S 7 42 42 0 -1 4194560 0 0";
        assert_eq!(
            parse_stat(42, stat),
            Some(ProcStat {
                pid: 42,
                ppid: 7,
                state: 'S'
            })
        );
        assert_eq!(
            parse_stat(1, "1 (sh) Z 0 1"),
            Some(ProcStat {
                pid: 1,
                ppid: 0,
                state: 'Z'
            })
        );
        assert_eq!(parse_stat(1, "garbage"), None);
        assert_eq!(parse_stat(1, "1 (x) R notanumber"), None);
        assert_eq!(parse_stat(1, "1 (x)"), None);
    }

    #[test]
    fn descendants_are_found_in_any_order() {
        let procs = [
            ProcStat {
                pid: 5,
                ppid: 4,
                state: 'S',
            },
            ProcStat {
                pid: 4,
                ppid: 3,
                state: 'S',
            },
            ProcStat {
                pid: 3,
                ppid: 1,
                state: 'S',
            },
            ProcStat {
                pid: 9,
                ppid: 1,
                state: 'S',
            },
        ];
        let mut found = new_descendants(&HashSet::from([3]), &procs);
        found.sort();
        assert_eq!(found, [4, 5]);
        assert!(new_descendants(&HashSet::from([3, 4, 5]), &procs).is_empty());
    }

    #[test]
    fn own_stat_parses() {
        let me = std::process::id() as i32;
        let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let parsed = parse_stat(me, &stat).unwrap();
        assert_eq!(parsed.ppid, std::os::unix::process::parent_id() as i32);
    }
}
