//! `enclave cp`: files and directories in and out of a sandbox, byte for byte, with `docker cp`'s
//! placement rules, tar streams on `-`, and errors that say which side was wrong.

use std::fs;
use std::path::Path;

use crate::common::{stderr, stdout, TestEnv};

/// Every byte value, then invalid UTF-8 on purpose.
fn binary_content() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255).collect();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x00, 0xc3, 0x28, b'\n']);
    bytes.repeat(40)
}

/// `src/` with a text file, a binary file in a subdirectory, and an empty directory.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(root.join("a.txt"), "hello\n").unwrap();
    fs::write(root.join("sub/blob.bin"), binary_content()).unwrap();
}

fn assert_same_tree(expected: &Path, actual: &Path) {
    assert!(actual.is_dir(), "{} is not a directory", actual.display());
    let names = |p: &Path| {
        let mut n: Vec<_> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(expected), names(actual), "in {}", actual.display());
    for name in names(expected) {
        let (e, a) = (expected.join(&name), actual.join(&name));
        if e.is_dir() {
            assert_same_tree(&e, &a);
        } else {
            assert_eq!(
                fs::read(&e).unwrap(),
                fs::read(&a).unwrap(),
                "{}",
                a.display()
            );
        }
    }
}

fn cp(env: &TestEnv, from: &str, to: &str) -> std::process::Output {
    env.cmd().args(["cp", from, to]).output().unwrap()
}

fn cp_ok(env: &TestEnv, from: &str, to: &str) {
    let out = cp(env, from, to);
    assert!(out.status.success(), "cp {from} {to}: {}", stderr(&out));
}

fn sh(env: &TestEnv, id: &str, script: &str) -> String {
    let out = env.cmd().args(["exec", id, script]).output().unwrap();
    assert!(out.status.success(), "{script}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn files_and_directories_round_trip_byte_identical() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    make_tree(&src);

    // A directory into an existing directory lands under its own name.
    cp_ok(&env, src.to_str().unwrap(), &format!("{id}:/tmp"));
    let listing = sh(&env, &id, "cd /tmp/src && find . | sort");
    assert_eq!(listing, ".\n./a.txt\n./empty\n./sub\n./sub/blob.bin\n");
    let size = sh(&env, &id, "stat -c %s /tmp/src/sub/blob.bin");
    assert_eq!(size.trim(), binary_content().len().to_string());

    // Back out to a new path: the directory becomes it.
    let back = local.path().join("back");
    cp_ok(&env, &format!("{id}:/tmp/src"), back.to_str().unwrap());
    assert_same_tree(&src, &back);

    // A single binary file, to a new name and back.
    let blob = src.join("sub/blob.bin");
    cp_ok(&env, blob.to_str().unwrap(), &format!("{id}:/tmp/copy.bin"));
    let out_file = local.path().join("copy.bin");
    cp_ok(
        &env,
        &format!("{id}:/tmp/copy.bin"),
        out_file.to_str().unwrap(),
    );
    assert_eq!(fs::read(&out_file).unwrap(), binary_content());

    // A file over an existing file replaces it.
    fs::write(&out_file, "old").unwrap();
    cp_ok(
        &env,
        &format!("{id}:/tmp/src/a.txt"),
        out_file.to_str().unwrap(),
    );
    assert_eq!(fs::read_to_string(&out_file).unwrap(), "hello\n");
}

#[test]
fn placement_follows_docker_cp() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    make_tree(&src);
    let src_arg = src.to_str().unwrap();

    // A directory to a path that does not exist: it becomes that path.
    cp_ok(&env, src_arg, &format!("{id}:/tmp/fresh"));
    assert_eq!(sh(&env, &id, "ls /tmp/fresh"), "a.txt\nempty\nsub\n");
    // `src/.` into an existing directory: the contents, not the directory.
    sh(&env, &id, "mkdir /tmp/into");
    cp_ok(&env, &format!("{src_arg}/."), &format!("{id}:/tmp/into"));
    assert_eq!(sh(&env, &id, "ls /tmp/into"), "a.txt\nempty\nsub\n");
    // A file into an existing directory keeps its name.
    cp_ok(
        &env,
        &format!("{src_arg}/a.txt"),
        &format!("{id}:/tmp/into/sub/"),
    );
    assert_eq!(sh(&env, &id, "cat /tmp/into/sub/a.txt"), "hello\n");
    // Out of the sandbox into an existing directory: under its own name.
    let dest = tempfile::tempdir().unwrap();
    cp_ok(
        &env,
        &format!("{id}:/tmp/fresh"),
        dest.path().to_str().unwrap(),
    );
    assert_same_tree(&src, &dest.path().join("fresh"));

    // A directory onto a file is refused, both ways, and nothing is written.
    let out = cp(&env, src_arg, &format!("{id}:/tmp/into/a.txt"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
    assert_eq!(sh(&env, &id, "cat /tmp/into/a.txt"), "hello\n");
    let file = local.path().join("plain");
    fs::write(&file, "x").unwrap();
    let out = cp(&env, &format!("{id}:/tmp/fresh"), file.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&file).unwrap(), "x");
    // A missing parent directory is an error, as in docker cp.
    let out = cp(
        &env,
        &format!("{src_arg}/a.txt"),
        &format!("{id}:/tmp/no/such/file"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`/tmp/no/such` does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tar_streams_go_in_and_out_on_dash() {
    let env = TestEnv::new();
    let id = env.create(&[]);

    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(binary_content().len() as u64);
    header.set_mode(0o640);
    builder
        .append_data(&mut header, "dir/blob.bin", &binary_content()[..])
        .unwrap();
    let tar = builder.into_inner().unwrap();

    let out = env
        .cmd()
        .args(["cp", "-", &format!("{id}:/tmp/unpacked")])
        .write_stdin(tar)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        sh(&env, &id, "stat -c %a /tmp/unpacked/dir/blob.bin"),
        "640\n"
    );

    let out = env
        .cmd()
        .args(["cp", &format!("{id}:/tmp/unpacked/dir"), "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        files.push((path, content));
    }
    assert_eq!(
        files[0].0.trim_end_matches('/'),
        "dir",
        "docker cp's layout"
    );
    let blob = files
        .iter()
        .find(|(p, _)| p == "dir/blob.bin")
        .expect("the file");
    assert_eq!(blob.1, binary_content());
}

#[test]
fn errors_say_which_side_was_wrong() {
    let env = TestEnv::new();
    let id = env.create(&[]);

    // Nothing in the sandbox at that path: exit 1, the path and the sandbox named.
    let out = env
        .cmd()
        .args(["cp", "--json", &format!("{id}:/no/such/path"), "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "path_not_found");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/path"),
        "{doc}"
    );

    // A local source that does not exist: exit 1, before anything else.
    let out = cp(&env, "/no/such/local", &format!("{id}:/tmp"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`/no/such/local` does not exist on this machine"),
        "{}",
        stderr(&out)
    );

    // An unknown sandbox: the usual not found.
    let out = cp(&env, "/etc/hostname", "zzzzzzzz:/tmp");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("sandbox `zzzzzzzz` not found"),
        "{}",
        stderr(&out)
    );

    // Usage errors: exit 2, with what to write instead.
    for (from, to, says) in [
        ("a", "b", "ID:PATH"),
        ("-", "-", "ID:PATH"),
        (
            &format!("{id}:/a") as &str,
            &format!("{id}:/b") as &str,
            "both",
        ),
        (
            "/etc/hostname",
            &format!("{id}:tmp") as &str,
            "must be absolute",
        ),
        ("/etc/hostname", ":/tmp", "must not be empty"),
    ] {
        let out = cp(&env, from, to);
        assert_eq!(
            out.status.code(),
            Some(2),
            "cp {from} {to}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(says),
            "cp {from} {to}: {}",
            stderr(&out)
        );
    }
    let out = env
        .cmd()
        .args(["cp", "--json", &format!("{id}:/etc/hostname"), "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn json_says_what_was_copied() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("f.txt");
    fs::write(&file, "12345").unwrap();
    let to = format!("{id}:/tmp/f.txt");
    let out = env
        .cmd()
        .args(["cp", "--json", file.to_str().unwrap(), &to])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["destination"], to.as_str());
    assert_eq!(doc["entries"], 1);
    assert_eq!(doc["bytes"], 5);
}

/// An archive of these entries, in this order: `(path, what)` where `what` is `dir`, `file:TEXT`,
/// `symlink:TARGET` or `hardlink:TARGET`.
fn archive(entries: &[(&str, String)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, what) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        let (kind, arg) = what.split_once(':').unwrap_or((what, ""));
        let data = if kind == "file" { arg.as_bytes() } else { b"" };
        header.set_size(data.len() as u64);
        header.set_entry_type(match kind {
            "dir" => tar::EntryType::Directory,
            "file" => tar::EntryType::Regular,
            "symlink" => tar::EntryType::Symlink,
            "hardlink" => tar::EntryType::Link,
            other => panic!("no entry kind `{other}`"),
        });
        if matches!(kind, "symlink" | "hardlink") {
            header.set_link_name(arg).unwrap();
        }
        builder.append_data(&mut header, path, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A server that answers as an enclave server does for one running sandbox, `evil0001`, whose
/// archive is `tar` whatever path is asked; its URL. It plays a compromised server: the only
/// way such an archive reaches `enclave cp`, since Docker neither lets a sandbox plant a hard
/// link through a symlink nor ever names one through a symlink in the archives it makes.
fn hostile_server(tar: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let info = serde_json::json!({
        "id": "evil0001", "status": "running", "type": "docker",
        "config": {"image": "evil"}, "metadata": {}, "available_tools": {},
        "created_at": "2024-01-01T00:00:00.000000Z", "updated_at": "2024-01-01T00:00:00.000000Z",
    })
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let (kind, body) = if request_line.contains("/archive") {
                ("application/x-tar", tar.clone())
            } else {
                ("application/json", info.clone().into_bytes())
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    url
}

#[test]
fn an_archive_never_reaches_outside_the_destination() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::new();
    // A directory of this machine the archive aims at, with a file in it.
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    fs::write(&secret, "of this machine\n").unwrap();
    let aim = || format!("symlink:{}", outside.path().display());
    let cases = [
        // A symlink out, then a hard link through it: would link `secret` into DEST.
        (
            vec![
                ("dir", "dir".to_string()),
                ("dir/a", aim()),
                ("dir/b", "hardlink:dir/a/secret".to_string()),
            ],
            "refusing to follow the link",
        ),
        // A symlink out, then a file through it: would write into `outside`.
        (
            vec![
                ("dir", "dir".to_string()),
                ("dir/a", aim()),
                ("dir/a/planted", "file:x".to_string()),
            ],
            "refusing to follow the link",
        ),
        // A hard link that climbs out by `..`.
        (
            vec![
                ("dir", "dir".to_string()),
                (
                    "dir/b",
                    format!("hardlink:dir/../../..{}", secret.display()),
                ),
            ],
            "outside its directory",
        ),
    ];
    for (entries, says) in cases {
        let url = hostile_server(archive(&entries));
        let local = tempfile::tempdir().unwrap();
        let dest = local.path().join("out");
        let out = env
            .cmd()
            .args(["--server", &url, "cp", "evil0001:/dir"])
            .arg(&dest)
            .output()
            .unwrap();
        let shown = format!("{entries:?}: {}", stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{shown}");
        assert!(stderr(&out).contains(says), "{shown}");
        assert!(stderr(&out).contains("evil0001:/dir"), "{shown}");
        // Nothing of this machine was linked, written or added to.
        assert_eq!(fs::metadata(&secret).unwrap().nlink(), 1, "{shown}");
        assert_eq!(fs::read_to_string(&secret).unwrap(), "of this machine\n");
        let names: Vec<_> = fs::read_dir(outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret"], "{shown}");
        assert!(!dest.join("b").exists(), "{shown}");
    }
}
