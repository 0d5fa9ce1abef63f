//! upload_file and download_file: a round trip of bytes, and every way out of the allowed
//! directories refused.

use std::fs;
use std::path::Path;

use rmcp::model::CallToolResult;
use serde_json::{json, Value};

use super::{call, connect, create, field, is_error, text, Version};
use crate::common::TestEnv;

fn error_kind(result: &CallToolResult) -> Value {
    field(result, "error")["kind"].clone()
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[tokio::test]
async fn a_binary_file_goes_up_and_comes_back_byte_for_byte() {
    let env = TestEnv::new();
    let allowed = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(allowed.path()).unwrap();
    let client = connect(&env, &["--allow-dir", arg(&root)], Version::Handshake).await;
    let id = create(&client, json!({})).await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    fs::write(root.join("in.bin"), &data).unwrap();
    // Relative paths: the host's from the allowed directory, the sandbox's from its working
    // directory (missing directories are made).
    let up = call(
        &client,
        "upload_file",
        json!({"host_path": "in.bin", "sandbox_path": "data/in.bin", "sandbox_id": id}),
    )
    .await;
    assert!(!is_error(&up), "{}", text(&up));
    assert_eq!(field(&up, "bytes"), json!(data.len()));
    let check = call(
        &client,
        "shell_executor",
        json!({"command": "cd data && wc -c < in.bin", "sandbox_id": id}),
    )
    .await;
    assert_eq!(text(&check).trim(), data.len().to_string());
    let down = call(
        &client,
        "download_file",
        json!({"sandbox_path": "data/in.bin", "host_path": arg(&root.join("out/copy.bin")), "sandbox_id": id}),
    )
    .await;
    assert!(!is_error(&down), "{}", text(&down));
    let written = root.join("out/copy.bin");
    assert_eq!(fs::read(&written).unwrap(), data, "the bytes differ");
    assert!(text(&down).contains(arg(&written)), "{}", text(&down));
    let link = down
        .content
        .iter()
        .find_map(|c| c.as_resource_link())
        .expect("a resource link");
    assert_eq!(link.uri, format!("file://{}", arg(&written)));
    assert_eq!(link.name, "copy.bin");
    assert_eq!(link.size, Some(data.len() as u64));
    // A download over an existing file replaces it; the MIME type follows the extension.
    fs::write(root.join("plot.png"), b"old").unwrap();
    let png = call(
        &client,
        "download_file",
        json!({"sandbox_path": "/sandbox/data/in.bin", "host_path": "plot.png", "sandbox_id": id}),
    )
    .await;
    assert!(!is_error(&png), "{}", text(&png));
    assert_eq!(fs::read(root.join("plot.png")).unwrap(), data);
    let link = png
        .content
        .iter()
        .find_map(|c| c.as_resource_link())
        .unwrap();
    assert_eq!(link.mime_type.as_deref(), Some("image/png"));
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn nothing_outside_the_allowed_directories_is_read_or_written() {
    let env = TestEnv::new();
    let allowed = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(allowed.path()).unwrap().join("allowed");
    fs::create_dir(&root).unwrap();
    let outside = fs::canonicalize(allowed.path()).unwrap().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("door")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("secret-link")).unwrap();
    let client = connect(&env, &["--allow-dir", arg(&root)], Version::Handshake).await;
    let id = create(&client, json!({})).await;
    let up = |host: String| {
        let client = &client;
        let id = id.clone();
        async move {
            call(
                client,
                "upload_file",
                json!({"host_path": host, "sandbox_path": "/tmp/got", "sandbox_id": id}),
            )
            .await
        }
    };
    for host in [
        arg(&outside.join("secret.txt")).to_string(),
        "../outside/secret.txt".to_string(),
        arg(&root.join("../outside/secret.txt")).to_string(),
        "door/secret.txt".to_string(),
        "secret-link".to_string(),
    ] {
        let refused = up(host.clone()).await;
        assert!(is_error(&refused), "{host}: {}", text(&refused));
        assert_eq!(
            error_kind(&refused),
            json!("outside_allowed_dirs"),
            "{host}"
        );
        assert!(text(&refused).contains("--allow-dir"), "{}", text(&refused));
    }
    let missing = call(
        &client,
        "shell_executor",
        json!({"command": "test -e /tmp/got && echo there || echo absent", "sandbox_id": id}),
    )
    .await;
    assert_eq!(
        text(&missing).trim(),
        "absent",
        "a refused upload copied something"
    );
    let down = |host: String| {
        let client = &client;
        let id = id.clone();
        async move {
            call(
                client,
                "download_file",
                json!({"sandbox_path": "/etc/hostname", "host_path": host, "sandbox_id": id}),
            )
            .await
        }
    };
    for (host, kind) in [
        (
            arg(&outside.join("new.txt")).to_string(),
            "outside_allowed_dirs",
        ),
        ("../outside/new.txt".to_string(), "outside_allowed_dirs"),
        ("door/new.txt".to_string(), "outside_allowed_dirs"),
        ("door/sub/new.txt".to_string(), "outside_allowed_dirs"),
        ("secret-link".to_string(), "symlink"),
    ] {
        let refused = down(host.clone()).await;
        assert!(is_error(&refused), "{host}: {}", text(&refused));
        assert_eq!(
            error_kind(&refused),
            json!(kind),
            "{host}: {}",
            text(&refused)
        );
    }
    let names: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["secret.txt"], "something was written outside");
    assert_eq!(
        fs::read_to_string(outside.join("secret.txt")).unwrap(),
        "secret"
    );
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn directories_missing_files_and_no_allowed_dir_are_clear_errors() {
    let env = TestEnv::new();
    let allowed = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(allowed.path()).unwrap();
    fs::create_dir(root.join("existing")).unwrap();
    let client = connect(&env, &["--allow-dir", arg(&root)], Version::Handshake).await;
    let id = create(&client, json!({})).await;
    let dir = call(
        &client,
        "download_file",
        json!({"sandbox_path": "/etc", "host_path": "made/etc.txt", "sandbox_id": id}),
    )
    .await;
    assert!(is_error(&dir), "{}", text(&dir));
    assert_eq!(error_kind(&dir), json!("is_a_directory"));
    assert!(text(&dir).contains("/etc is a directory"), "{}", text(&dir));
    let missing = call(
        &client,
        "download_file",
        json!({"sandbox_path": "/no/such/file", "host_path": "x.txt", "sandbox_id": id}),
    )
    .await;
    assert!(is_error(&missing), "{}", text(&missing));
    assert_eq!(error_kind(&missing), json!("not_found"));
    assert!(
        text(&missing).contains("no file at /no/such/file"),
        "{}",
        text(&missing)
    );
    let over_dir = call(
        &client,
        "download_file",
        json!({"sandbox_path": "/etc/hostname", "host_path": "existing", "sandbox_id": id}),
    )
    .await;
    assert_eq!(
        error_kind(&over_dir),
        json!("is_a_directory"),
        "{}",
        text(&over_dir)
    );
    let names: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["existing"],
        "a failed download left something behind"
    );
    fs::write(root.join("f.txt"), "f").unwrap();
    let no_sandbox = call(
        &client,
        "upload_file",
        json!({"host_path": "f.txt", "sandbox_path": "/tmp/x"}),
    )
    .await;
    assert!(is_error(&no_sandbox), "{}", text(&no_sandbox));
    assert!(
        text(&no_sandbox).contains("sandbox_create"),
        "{}",
        text(&no_sandbox)
    );
    client.cancel().await.expect("close");

    let client = connect(&env, &[], Version::Handshake).await;
    for tool in ["upload_file", "download_file"] {
        let refused = call(
            &client,
            tool,
            json!({"host_path": "/tmp/x", "sandbox_path": "/tmp/x", "sandbox_id": "whatever"}),
        )
        .await;
        assert!(is_error(&refused), "{tool}: {}", text(&refused));
        assert_eq!(error_kind(&refused), json!("no_allowed_dirs"));
        assert!(text(&refused).contains("--allow-dir"), "{}", text(&refused));
    }
    client.cancel().await.expect("close");
}
