//! `enclave shell`: driven through a pseudo-terminal as a person would (expectrl), and with
//! piped stdin as a script would. What happens in the sandbox is checked from Docker's side.

use std::path::Path;
use std::process::Command as StdCommand;
use std::time::Duration;

use expectrl::{Expect, Regex, Session};

use crate::common::{docker, poll_until, send_signal, stderr, stdout, TestEnv};

/// What `driver.py` says of itself on its command line; `[r]` keeps the probe from finding itself.
const DRIVER_MARK: &str = "Python session drive[r]";

type Pty = expectrl::session::OsSession;

/// `enclave shell ID extra…` on a pseudo-terminal, with the test's state dir (and its history
/// file in it).
fn shell(env: &TestEnv, id: &str, extra: &[&str]) -> Pty {
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("enclave"));
    cmd.env("ENCLAVE_STATE_DIR", env.state_dir.path())
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env_remove("ENCLAVE_SERVER")
        .env_remove("ENCLAVE_HISTORY_FILE")
        .args(["shell", id])
        .args(extra);
    let mut pty = Session::spawn(cmd).expect("start enclave shell on a pty");
    // Wide enough that no test line wraps (the editor redraws a wrapped line, prompt and all).
    pty.get_process_mut()
        .set_window_size(400, 50)
        .expect("size the pty");
    pty.set_expect_timeout(Some(Duration::from_secs(60)));
    pty
}

fn prompt(pty: &mut Pty) {
    pty.expect(">>> ").expect("the `>>> ` prompt");
}

/// Sends one line at the prompt and waits for the next prompt; what came between.
fn enter(pty: &mut Pty, line: &str) -> String {
    pty.send_line(line).expect("type a line");
    let found = pty.expect(">>> ").expect("the next prompt");
    String::from_utf8_lossy(found.before()).into_owned()
}

fn container_of(id: &str) -> String {
    let out = docker(&["ps", "-aq", "--filter", &format!("label=enclave.id={id}")]);
    let cid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!cid.is_empty(), "no container for sandbox {id}");
    cid
}

/// Session drivers running in the sandbox, counted from its `/proc`, not through enclave.
fn drivers_in(container: &str) -> usize {
    let probe = format!("grep -l -a '{DRIVER_MARK}' /proc/[0-9]*/cmdline 2>/dev/null | wc -l");
    let out = docker(&["exec", container, "sh", "-c", &probe]);
    assert!(out.status.success(), "probe: {}", stderr(&out));
    stdout(&out).trim().parse().expect("a count")
}

fn running(container: &str) -> bool {
    let out = docker(&["inspect", "-f", "{{.State.Running}}", container]);
    stdout(&out).trim() == "true"
}

fn wait_exit(pty: &mut Pty) -> String {
    format!("{:?}", pty.get_process().wait().expect("wait for enclave"))
}

#[test]
fn a_session_keeps_state_runs_blocks_and_leaves_the_sandbox_running() {
    let env = TestEnv::new();
    let id = env.create(&["--tool", "python_executor"]);
    let container = container_of(&id);
    let mut pty = shell(&env, &id, &[]);
    pty.expect(Regex(
        r"enclave python 3\.\d+ · sandbox \w+ · :help for commands, Ctrl-D to leave",
    ))
    .expect("the banner");
    prompt(&mut pty);
    enter(&mut pty, "import math");
    enter(&mut pty, "r = 3");
    pty.send_line("for i in range(3):").unwrap();
    pty.expect("... ")
        .expect("a continuation prompt after a block's header");
    // The continuation line comes indented already, as the session suggested.
    pty.send_line("print(i, math.pi * r * i)").unwrap();
    pty.expect("... ").unwrap();
    let out = enter(&mut pty, "");
    assert!(
        out.contains("0 0.0\r\n1 9.42477796076938\r\n2 18.84955592153876"),
        "{out:?}"
    );
    let out = enter(&mut pty, "r * 2");
    assert!(
        out.contains("\r\n6\r\n"),
        "the value as Python's REPL shows it: {out:?}"
    );
    let out = enter(&mut pty, "import os; os.getcwd()");
    assert!(out.contains("'/sandbox'"), "{out:?}");
    let out = enter(
        &mut pty,
        "!echo from-sh-$((40 + 2)) in $(pwd); echo to-stderr >&2",
    );
    assert!(out.contains("from-sh-42 in /sandbox"), "{out:?}");
    assert!(out.contains("to-stderr"), "{out:?}");
    let out = enter(&mut pty, "1/0");
    assert!(
        out.contains("ZeroDivisionError: division by zero"),
        "{out:?}"
    );
    assert!(
        !out.contains("driver"),
        "no driver frames in tracebacks: {out:?}"
    );
    assert_eq!(
        drivers_in(&container),
        1,
        "one session process while the shell runs"
    );

    pty.send("\x04").unwrap(); // Ctrl-D
    assert!(wait_exit_ok(&mut pty));
    assert!(running(&container), "the sandbox stays after the shell");
    poll_until("the session's process ends with the shell", 30, || {
        drivers_in(&container) == 0
    });
    let history = std::fs::read_to_string(env.state_dir.path().join("shell_history"))
        .expect("a history file in the state dir");
    assert!(history.contains("r * 2"), "{history}");
    assert!(history.contains("for i in range(3):"), "{history}");
}

/// Whether the terminal is in line (canonical) mode, as a shell leaves it for the next program.
fn canonical(pty: &Pty) -> bool {
    let master = pty.get_process().get_raw_handle().expect("the pty");
    let settings = nix::sys::termios::tcgetattr(&master).expect("the pty's settings");
    settings
        .local_flags
        .contains(nix::sys::termios::LocalFlags::ICANON)
}

fn wait_exit_ok(pty: &mut Pty) -> bool {
    wait_exit(pty).ends_with(", 0)")
}

/// A sandbox whose commands go through its agent (`on`) or `docker exec` (`off`).
fn create_reached(env: &TestEnv, agent: &str) -> String {
    let out = env
        .cmd()
        .env("ENCLAVE_AGENT", agent)
        .args(["create", "--image", &crate::common::test_image()])
        .args(env.label_args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn ctrl_c_interrupts_running_code_and_clears_the_line_keeping_the_session() {
    for agent in ["on", "off"] {
        ctrl_c_through(agent);
    }
}

fn ctrl_c_through(agent: &str) {
    let env = TestEnv::new();
    let id = create_reached(&env, agent);
    let mut pty = shell(&env, &id, &[]);
    prompt(&mut pty);
    enter(&mut pty, "r = 3");
    pty.send_line("print('spin' + 'ning'); exec('while True: pass')")
        .unwrap();
    pty.expect("spinning").expect("the loop started");
    pty.send("\x03").unwrap();
    let out = pty.expect(">>> ").expect("a prompt after the interrupt");
    assert!(
        String::from_utf8_lossy(out.before()).contains("KeyboardInterrupt"),
        "{:?}",
        String::from_utf8_lossy(out.before())
    );
    let out = enter(&mut pty, "r");
    assert!(out.contains("\r\n3\r\n"), "the variable survived: {out:?}");

    // Ctrl-C at the prompt drops what was typed.
    pty.send("undefined_name").unwrap();
    pty.send("\x03").unwrap();
    prompt(&mut pty);
    let out = enter(&mut pty, "r + 1");
    assert!(out.contains("\r\n4\r\n"), "{out:?}");
    assert!(!out.contains("NameError"), "{out:?}");

    // An interpreter that dies is started again, and the shell says its state is gone.
    let out = enter(&mut pty, "import os; os._exit(3)");
    assert!(
        out.contains("the python session died (exit status 3)"),
        "{out:?}"
    );
    let out = enter(&mut pty, "r if 'r' in dir() else 'fresh'");
    assert!(out.contains("'fresh'"), "{out:?}");
    pty.send_line(":quit").unwrap();
    assert!(wait_exit_ok(&mut pty));
}

#[test]
fn timeout_interrupts_only_the_input() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let mut pty = shell(&env, &id, &["--timeout", "1"]);
    prompt(&mut pty);
    enter(&mut pty, "x = 5");
    let out = enter(&mut pty, "import time; time.sleep(30); x = 6");
    assert!(out.contains("TimeoutError"), "{out:?}");
    let out = enter(&mut pty, "x");
    assert!(
        out.contains("\r\n5\r\n"),
        "variables kept, the input's work undone: {out:?}"
    );

    // Code that ignores the interrupt is killed with its interpreter, and a fresh one starts.
    let out = enter(
        &mut pty,
        "import signal; signal.signal(signal.SIGINT, lambda *a: None); time.sleep(30)",
    );
    assert!(out.contains("started a new python session"), "{out:?}");
    let out = enter(&mut pty, "x");
    assert!(out.contains("NameError"), "a fresh interpreter: {out:?}");
    let out = enter(&mut pty, ":timeout off");
    assert!(out.contains("timeout off"), "{out:?}");
    pty.send("\x04").unwrap();
    assert!(wait_exit_ok(&mut pty));
}

#[test]
fn files_round_trip_exactly_and_completion_and_reset_use_the_live_session() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let dir = tempfile::tempdir().unwrap();
    let original: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    let local = dir.path().join("blob.bin");
    std::fs::write(&local, &original).unwrap();
    let back = dir.path().join("back.bin");

    let mut pty = shell(&env, &id, &[]);
    prompt(&mut pty);
    let out = enter(&mut pty, &format!(":upload {} /tmp/", local.display()));
    assert!(out.contains("uploaded"), "{out:?}");
    let out = enter(&mut pty, "len(open('/tmp/blob.bin','rb').read())");
    assert!(out.contains("\r\n70000\r\n"), "{out:?}");
    enter(&mut pty, "open('/tmp/blob.bin','ab').write(b'\\x00\\xff')");
    let out = enter(
        &mut pty,
        &format!(":download /tmp/blob.bin {}", back.display()),
    );
    assert!(out.contains("downloaded"), "{out:?}");
    let mut expected = original;
    expected.extend_from_slice(&[0, 255]);
    assert_eq!(std::fs::read(&back).unwrap(), expected);
    let out = enter(&mut pty, ":download /nowhere/x");
    assert!(out.contains("error:"), "{out:?}");
    // Tab completes from the live session: `math.facto` becomes `math.factorial(`.
    enter(&mut pty, "import math, os; os.chdir('/tmp'); q = 1");
    pty.send("math.facto\t").unwrap();
    pty.expect("math.factorial(").expect("the completion");
    let out = enter(&mut pty, "5)");
    assert!(out.contains("\r\n120\r\n"), "{out:?}");

    // `:reset`: a fresh interpreter, back in the sandbox's working directory.
    enter(&mut pty, ":reset");
    let out = enter(&mut pty, "q");
    assert!(
        out.contains("NameError: name 'q' is not defined"),
        "{out:?}"
    );
    let out = enter(&mut pty, "import os; os.getcwd()");
    assert!(out.contains("'/sandbox'"), "{out:?}");

    let out = enter(&mut pty, ":tools");
    assert!(
        out.contains("python_executor") || out.contains("no tools"),
        "{out:?}"
    );
    pty.send_line(":quit").unwrap();
    assert!(wait_exit_ok(&mut pty));
    assert!(!Path::new("blob.bin").exists());
}

#[test]
fn piped_stdin_runs_as_a_script_with_its_exit_code() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let out = env
        .cmd()
        .args(["shell", &id])
        .write_stdin("x = 2\nfor i in range(2):\n    print(i)\n\nprint(x * 21)\nx\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "0\n1\n42\n",
        "no prompts, no echo of the last value"
    );

    let out = env
        .cmd()
        .args(["shell", &id])
        .write_stdin("print('before')\nraise ValueError('bad input')\nprint('after')\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "before\n");
    let err = stderr(&out);
    assert!(err.contains("ValueError: bad input"), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains('\u{1b}'), "no colour off a terminal: {err:?}");
}

#[test]
fn a_killed_shell_leaves_no_session_process_behind() {
    for agent in ["on", "off"] {
        let env = TestEnv::new();
        let id = create_reached(&env, agent);
        let container = container_of(&id);
        let mut pty = shell(&env, &id, &[]);
        prompt(&mut pty);
        enter(
            &mut pty,
            "import subprocess; child = subprocess.Popen(['sleep', '1000'])",
        );
        assert_eq!(drivers_in(&container), 1, "agent {agent}");
        send_signal(pty.get_process().pid().as_raw() as u32, "KILL");
        let _ = wait_exit(&mut pty);
        poll_until(
            &format!("the session's process ends after SIGKILL (agent {agent})"),
            30,
            || drivers_in(&container) == 0,
        );
        let sleeps = docker(&[
            "exec",
            &container,
            "sh",
            "-c",
            "grep -l -a 'sleep.100[0]' /proc/[0-9]*/cmdline 2>/dev/null | wc -l",
        ]);
        assert_eq!(
            stdout(&sleeps).trim(),
            "0",
            "what the session started is gone too"
        );
        assert!(running(&container));
    }
}

#[test]
fn a_terminated_shell_ends_its_session_and_says_why() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let container = container_of(&id);
    let mut pty = shell(&env, &id, &[]);
    prompt(&mut pty);
    assert_eq!(drivers_in(&container), 1);
    assert!(
        !canonical(&pty),
        "the editor holds the terminal in raw mode at the prompt"
    );
    send_signal(pty.get_process().pid().as_raw() as u32, "TERM");
    let status = wait_exit(&mut pty);
    assert!(status.ends_with(", 143)"), "128 + SIGTERM: {status}");
    assert!(canonical(&pty), "the terminal's settings are put back");
    assert_eq!(drivers_in(&container), 0, "closed before the shell exited");
    assert!(running(&container));
}

#[test]
fn output_is_streamed_while_the_input_runs() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let container = container_of(&id);
    let mut pty = shell(&env, &id, &[]);
    prompt(&mut pty);
    // The input cannot end before the test, having seen its first output, lets it: what C code
    // and a subprocess write to fds 1 and 2 must come through while it runs.
    pty.send_line(
        "import os; os.write(1, b'from-' + b'fd1\\n'); os.system('echo from-$((6*7)) >&2; \
         while [ ! -e /tmp/go ]; do sleep 0.05; done; echo after-go')",
    )
    .unwrap();
    pty.expect("from-fd1")
        .expect("fd 1 output before the input ends");
    pty.expect("from-42")
        .expect("a subprocess's stderr before the input ends");
    let out = docker(&["exec", &container, "touch", "/tmp/go"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = pty.expect(">>> ").expect("the input ends once released");
    assert!(
        String::from_utf8_lossy(out.before()).contains("after-go"),
        "{:?}",
        String::from_utf8_lossy(out.before())
    );
    pty.send("\x04").unwrap();
    assert!(wait_exit_ok(&mut pty));
}

#[test]
fn on_a_notebook_sandbox_the_shell_is_its_kernel_and_saves_images() {
    let env = TestEnv::new();
    let id = crate::notebook::notebook(&env);
    let images = tempfile::tempdir().unwrap();
    let dir = images.path().to_str().unwrap().to_string();
    let mut pty = shell(&env, &id, &["--image-dir", &dir]);
    pty.expect(Regex(r"enclave python 3\.\d+ kernel · sandbox \w+"))
        .expect("the banner names the kernel");
    prompt(&mut pty);
    // The kernel holds the variables notebook_executor calls see.
    enter(&mut pty, "shared = 'from-the-shell'");
    let call = env
        .cmd()
        .args([
            "run-tool",
            &id,
            "notebook_executor",
            "--arg",
            "code=print(shared)",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&call).trim(), "from-the-shell", "{}", stderr(&call));

    pty.send_line("for i in range(2):").unwrap();
    pty.expect("... ")
        .expect("the kernel says a block's header is incomplete");
    pty.send_line("print('row', i)").unwrap();
    pty.expect("... ").unwrap();
    let out = enter(&mut pty, "");
    assert!(out.contains("row 0\r\nrow 1"), "{out:?}");

    let out = enter(
        &mut pty,
        "import matplotlib.pyplot as plt; plt.plot([1, 2, 3]); plt.show()",
    );
    let line = out
        .lines()
        .find(|l| l.contains("[image/png"))
        .unwrap_or_else(|| panic!("no saved image in {out:?}"));
    let path = line
        .split(" saved to ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(path.starts_with(&dir), "{path} is not in --image-dir {dir}");
    let png = std::fs::read(path).expect("the saved image");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");

    // Ctrl-C reaches the kernel; its state stays.
    pty.send_line("import time; time.sleep(60)").unwrap();
    std::thread::sleep(Duration::from_millis(700));
    pty.send("\x03").unwrap();
    let out = pty.expect(">>> ").expect("a prompt after the interrupt");
    assert!(
        String::from_utf8_lossy(out.before()).contains("KeyboardInterrupt"),
        "{:?}",
        String::from_utf8_lossy(out.before())
    );
    let out = enter(&mut pty, "shared");
    assert!(out.contains("'from-the-shell'"), "{out:?}");
    pty.send("\x04").unwrap(); // Ctrl-D
    assert!(wait_exit_ok(&mut pty));
}
