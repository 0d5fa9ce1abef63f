//! The CLI's surface: help text snapshots and completion scripts that match the definition.

use crate::common::{stderr, stdout};

fn enclave() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("enclave").unwrap();
    cmd.env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("ENCLAVE_SERVER")
        .env_remove("ENCLAVE_API_KEY");
    cmd
}

fn help(args: &[&str]) -> String {
    let out = enclave().args(args).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn help_text_snapshots() {
    insta::assert_snapshot!("help", help(&[]));
    for command in [
        "create",
        "ls",
        "inspect",
        "exec",
        "run",
        "run-tool",
        "tools",
        "rm",
        "server",
        "stop",
        "cp",
        "shell",
        "completions",
    ] {
        insta::assert_snapshot!(format!("help_{command}"), help(&[command]));
    }
}

#[test]
fn completions_match_the_checked_in_scripts() {
    let root = env!("CARGO_MANIFEST_DIR");
    for (shell, file) in [
        ("bash", "enclave.bash"),
        ("zsh", "_enclave"),
        ("fish", "enclave.fish"),
    ] {
        let out = enclave().args(["completions", shell]).output().unwrap();
        assert!(out.status.success());
        let checked_in = std::fs::read_to_string(format!("{root}/completions/{file}")).unwrap();
        assert!(
            stdout(&out) == checked_in,
            "completions/{file} is out of date: run ./scripts/gen-completions.sh"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["exec"],
        &["create", "--cpus", "many"],
        &["rm"],
    ] {
        let out = enclave().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("error:"), "{}", stderr(&out));
    }
}

#[test]
fn version_prints() {
    let out = enclave().arg("--version").output().unwrap();
    assert_eq!(
        stdout(&out),
        format!("enclave {}\n", env!("CARGO_PKG_VERSION"))
    );
}
