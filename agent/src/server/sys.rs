//! The few things std cannot say: what a child does between fork and exec.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the command's process a child subreaper once started (the flag survives `execve`):
/// whatever its descendants do — `setsid`, double forks, clearing their environment — an
/// orphan is re-parented to it, so the call's whole tree stays below its root while it lives.
pub(crate) fn keep_descendants_below(cmd: &mut Command) {
    // SAFETY: the hook runs in the forked child before exec and calls only `prctl`, which is
    // async-signal-safe, touches no memory of ours and takes no locks.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Puts the image's command in its own process group and, when stdin is a terminal, makes
/// that group the terminal's foreground (as tini does): Ctrl-C then reaches the command and
/// not the agent, which forwards only the signals sent to it.
pub(crate) fn take_terminal(cmd: &mut Command) {
    // SAFETY: runs in the forked child before exec and calls only `signal`, `setpgid`,
    // `tcsetpgrp` and `getpid`, all async-signal-safe; no memory of ours is touched.
    unsafe {
        cmd.pre_exec(|| {
            // A background group calling tcsetpgrp would get SIGTTOU; ignore it for the call.
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::setpgid(0, 0);
            // No terminal (ENOTTY) or none attached (ENXIO) is fine: then there is nothing to take.
            libc::tcsetpgrp(0, libc::getpid());
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            Ok(())
        });
    }
}

/// Makes the agent a subreaper itself when it is not PID 1 (tests on the host), so orphans
/// of its calls come back to it to be reaped rather than to the host's init.
pub(crate) fn become_subreaper() {
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

/// Makes the agent non-dumpable: its `/proc/PID/environ` and memory, which hold the sandbox's
/// secret, then need `CAP_SYS_PTRACE` to read, which sandboxes do not have. (What it starts is
/// dumpable again after `execve`, as usual.)
pub(crate) fn hide_secret_from_proc() {
    let _ = nix::sys::prctl::set_dumpable(false);
}

/// Keeps the agent's memory near what it uses: one malloc arena. The blocking file threads
/// would each get their own and keep it, so a 10 MB read left the agent a few MiB larger for
/// good, in every sandbox.
pub(crate) fn keep_memory_small() {
    // SAFETY: `mallopt` only sets allocator parameters; it is called at start, before the
    // runtime's threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
