//! file_operation on real Docker.

use super::*;

#[test]
fn file_operation_every_operation_on_injection_shaped_paths() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    let dir = "/sandbox/we ird \"q\" $(touch /tmp/pwned) 'x' `touch /tmp/pwned2`";
    let path = format!("{dir}/-f $(id) ;rm -rf *.txt");
    let op = |args: Value| call_json(&env, &id, "file_operation", &args);

    let (r, code) = op(json!({"operation": "create", "file_path": path}));
    assert_eq!(
        (r["output"].as_str(), code),
        (
            Some(format!("File written successfully: {path}").as_str()),
            0
        ),
        "{r}"
    );
    let (r, _) = op(json!({"operation": "read", "file_path": path}));
    assert_eq!(r["output"], "");

    let content = "line 1\n\"quoted\" $(id) `id` é→✓\n\0binary\u{1}";
    let (r, code) = op(json!({"operation": "write", "file_path": path, "content": content}));
    assert_eq!(code, 0, "{r}");
    let (r, _) = op(json!({"operation": "read", "file_path": path}));
    assert_eq!(r["output"], content);
    assert_eq!(r["metadata"]["size"], content.len());

    let (r, _) = op(json!({"operation": "list", "file_path": dir}));
    assert!(
        r["output"]
            .as_str()
            .unwrap()
            .contains("-f $(id) ;rm -rf *.txt"),
        "{r}"
    );
    let (r, _) = op(json!({"operation": "exists", "file_path": path}));
    assert_eq!(r["output"], "exists");
    let (r, code) = op(json!({"operation": "delete", "file_path": path}));
    assert_eq!(
        (r["output"].as_str(), code),
        (Some(format!("Successfully deleted: {path}").as_str()), 0)
    );
    let (r, _) = op(json!({"operation": "exists", "file_path": path}));
    assert_eq!(r["output"], "does not exist");
    let (r, _) = op(json!({"operation": "exists", "file_path": dir}));
    assert_eq!(r["output"], "exists", "delete removed only the file");

    assert_eq!(
        sh(&env, &id, "ls -A /tmp; ls /sandbox | wc -l"),
        "1\n",
        "nothing was injected, nothing else was created"
    );

    // Relative paths are relative to the working directory.
    op(json!({"operation": "write", "file_path": "rel.txt", "content": "relative"}));
    assert_eq!(sh(&env, &id, "cat /sandbox/rel.txt"), "relative");
}

#[test]
fn file_operation_errors_have_ms_enclave_texts() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    let op = |args: Value| call_json(&env, &id, "file_operation", &args);
    sh(&env, &id, "touch /sandbox/keep");

    let (r, code) = op(json!({"operation": "write", "file_path": "/sandbox/a.txt"}));
    assert_eq!(
        (r["error"].as_str(), code),
        (Some("Content is required for write operation"), 1)
    );
    let (r, _) = op(json!({"operation": "read", "file_path": "  "}));
    assert_eq!(r["error"], "No file path provided");
    let (r, _) = op(json!({"operation": "read", "file_path": "/sandbox/missing.txt"}));
    assert_eq!(r["status"], "error");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("No such file or directory"),
        "{r}"
    );
    let (r, _) = op(json!({"operation": "read", "file_path": "/sandbox"}));
    assert_eq!(r["error"], "Failed to read file: /sandbox: is a directory");
    let (r, _) = op(json!({"operation": "list", "file_path": "/nonexistent"}));
    assert!(r["error"].as_str().unwrap().contains("No such file"), "{r}");
    let (r, _) =
        op(json!({"operation": "write", "file_path": "/x", "content": "é", "encoding": "ebcdic"}));
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("Write failed: unknown encoding: ebcdic"),
        "{r}"
    );

    // Writing onto a directory fails and leaves the directory alone.
    let (r, _) = op(json!({"operation": "write", "file_path": "/sandbox", "content": "x"}));
    assert_eq!(r["status"], "error");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("Failed to copy file to target location"),
        "{r}"
    );
    assert_eq!(sh(&env, &id, "ls /sandbox"), "keep\n");

    // Missing parents are created, files in /proc are readable, symlinks are followed.
    let (r, _) = op(
        json!({"operation": "write", "file_path": "/sandbox/new/deep/f.txt", "content": "deep"}),
    );
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(sh(&env, &id, "cat /sandbox/new/deep/f.txt"), "deep");
    let (r, _) = op(json!({"operation": "read", "file_path": "/proc/self/status"}));
    assert!(r["output"].as_str().unwrap().contains("Pid:"), "{r}");
    sh(
        &env,
        &id,
        "echo target > /sandbox/t; ln -s /sandbox/t /sandbox/link; chmod 750 /sandbox/t",
    );
    let (r, _) = op(json!({"operation": "read", "file_path": "/sandbox/link"}));
    assert_eq!(r["output"], "target\n");
    op(json!({"operation": "write", "file_path": "/sandbox/link", "content": "through"}));
    assert_eq!(
        sh(
            &env,
            &id,
            "cat /sandbox/t; stat -c %a /sandbox/t; test -L /sandbox/link && echo link"
        ),
        "through750\nlink\n",
        "a write follows the symlink and keeps the file's mode"
    );
}

#[test]
fn file_operation_round_trips_10_mb_of_binary_exactly() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("blob.bin");
    let mut bytes = vec![0u8; 10_000_000];
    rand::rng().fill_bytes(&mut bytes);
    std::fs::write(&original, &bytes).unwrap();

    // The host's own base64 and sha256sum are the oracle, not our code.
    let b64 = host(&["base64", "-w0", original.to_str().unwrap()]);
    let args_file = work.path().join("write.json");
    let args = json!({"operation": "write", "file_path": "/sandbox/blob.bin", "content": String::from_utf8(b64).unwrap(), "encoding": "base64"});
    std::fs::write(&args_file, args.to_string()).unwrap();
    let out = env
        .cmd()
        .args(["run-tool", &id, "file_operation", "--args"])
        .arg(format!("@{}", args_file.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let host_sum = String::from_utf8(host(&["sha256sum", original.to_str().unwrap()])).unwrap();
    let host_sum = host_sum.split_whitespace().next().unwrap();
    let sandbox_sum = sh(
        &env,
        &id,
        "stat -c %s /sandbox/blob.bin; sha256sum < /sandbox/blob.bin",
    );
    assert_eq!(sandbox_sum, format!("10000000\n{host_sum}  -\n"));

    let (r, code) = call_json(
        &env,
        &id,
        "file_operation",
        &json!({"operation": "read", "file_path": "/sandbox/blob.bin", "encoding": "base64"}),
    );
    assert_eq!(code, 0, "{}", r["error"]);
    assert_eq!(r["metadata"]["size"], 10_000_000);
    let read_back = work.path().join("read.b64");
    std::fs::write(&read_back, r["output"].as_str().unwrap()).unwrap();
    let decoded = host(&["base64", "-d", read_back.to_str().unwrap()]);
    assert!(
        decoded == bytes,
        "the bytes read back differ from the bytes written"
    );

    // Read as text, invalid UTF-8 is replaced and says so.
    let (r, _) = call_json(
        &env,
        &id,
        "file_operation",
        &json!({"operation": "read", "file_path": "/sandbox/blob.bin"}),
    );
    assert_eq!(r["metadata"]["lossy"], true);
}

fn host(argv: &[&str]) -> Vec<u8> {
    let out = StdCommand::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn file_operation_honours_size_and_path_options() {
    let env = TestEnv::new();
    let id = sandbox(
        &env,
        json!({
            "file_operation": {"max_file_size": 100, "allowed_paths": ["/sandbox/ok"], "blocked_paths": ["/sandbox/ok/secret"]},
            "shell_executor": {}
        }),
    );
    let op = |args: Value| call_json(&env, &id, "file_operation", &args);
    let (r, _) =
        op(json!({"operation": "write", "file_path": "/sandbox/ok/a", "content": "x".repeat(100)}));
    assert_eq!(r["status"], "success", "{r}");
    let (r, _) =
        op(json!({"operation": "write", "file_path": "/sandbox/ok/b", "content": "x".repeat(101)}));
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("max_file_size (100 bytes)"),
        "{r}"
    );
    sh(&env, &id, "head -c 200 /dev/zero > /sandbox/ok/big; mkdir -p /sandbox/ok/secret; echo s > /sandbox/ok/secret/k; ln -s /etc /sandbox/ok/etc");
    let (r, _) = op(json!({"operation": "read", "file_path": "/sandbox/ok/big"}));
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("max_file_size (100 bytes)"),
        "{r}"
    );

    for path in [
        "/sandbox/other.txt",
        "/sandbox/ok/../other.txt",
        "/sandbox/oknot",
        "/sandbox/ok/secret/k",
        "/sandbox/ok/etc/hostname",
        "../etc/passwd",
    ] {
        for operation in ["read", "write", "create", "delete", "list", "exists"] {
            let (r, code) = op(json!({"operation": operation, "file_path": path, "content": "x"}));
            assert_eq!(code, 1, "{operation} {path}: {r}");
            assert!(
                r["error"].as_str().unwrap().starts_with("Access denied"),
                "{operation} {path}: {r}"
            );
        }
    }
    assert_eq!(
        sh(&env, &id, "cat /sandbox/ok/secret/k; ls /sandbox"),
        "s\nok\n"
    );

    let bad = env.state_dir.path().join("bad.json");
    std::fs::write(
        &bad,
        json!({"tools_config": {"file_operation": {"max_file_size": "big"}}}).to_string(),
    )
    .unwrap();
    let out = env
        .cmd()
        .args([
            "create",
            "--image",
            &crate::common::test_image(),
            "--config",
            bad.to_str().unwrap(),
        ])
        .args(env.label_args())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`max_file_size`"), "{}", stderr(&out));
    assert_eq!(
        env.containers().len(),
        1,
        "the refused config created nothing"
    );
}
