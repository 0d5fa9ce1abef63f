//! `:upload` and `:download`: files and directories between this machine and the sandbox, as
//! tar archives through the manager (`put_archive` / `get_archive`), bytes exactly as they are.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::TryStreamExt;

use crate::manager::Manager;
use crate::model::Sandbox;

/// A path in the sandbox: absolute as given, else under its working directory.
pub(crate) fn in_sandbox(working_dir: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", working_dir.trim_end_matches('/'))
    }
}

/// Where an upload lands: the directory to extract into and the name it gets there. `dest`
/// ending in `/` (or no `dest`: the working directory) is a directory that keeps the local name.
pub(crate) fn upload_target(
    working_dir: &str,
    local_name: &str,
    dest: Option<&str>,
) -> (String, String) {
    match dest {
        None => (working_dir.to_string(), local_name.to_string()),
        Some(dest) if dest.ends_with('/') => {
            let dir = in_sandbox(working_dir, dest);
            let dir = dir.trim_end_matches('/');
            let dir = if dir.is_empty() { "/" } else { dir };
            (dir.to_string(), local_name.to_string())
        }
        Some(dest) => {
            let full = in_sandbox(working_dir, dest);
            let (dir, name) = full.rsplit_once('/').unwrap_or(("", &full));
            let dir = if dir.is_empty() { "/" } else { dir };
            (dir.to_string(), name.to_string())
        }
    }
}

/// Copies `local` into the sandbox; says where it went and how many bytes of content.
pub(crate) async fn upload(
    manager: &dyn Manager,
    sandbox: &Sandbox,
    local: &str,
    dest: Option<&str>,
) -> Result<(String, u64)> {
    let path = Path::new(local);
    let meta = fs::metadata(path).with_context(|| format!("`{local}`"))?;
    let Some(local_name) = path.file_name().and_then(|n| n.to_str()) else {
        bail!("`{local}` has no file name to give it in the sandbox");
    };
    let (dir, name) = upload_target(&sandbox.config.working_dir, local_name, dest);
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(true);
    let bytes = if meta.is_dir() {
        builder
            .append_dir_all(&name, path)
            .with_context(|| format!("reading `{local}`"))?;
        0
    } else {
        let mut file = fs::File::open(path).with_context(|| format!("reading `{local}`"))?;
        builder
            .append_file(&name, &mut file)
            .with_context(|| format!("reading `{local}`"))?;
        meta.len()
    };
    let tar = builder.into_inner().context("packing the upload")?;
    manager.put_archive(sandbox, &dir, Bytes::from(tar)).await?;
    let shown = format!("{}/{name}", dir.trim_end_matches('/'));
    Ok((shown, bytes))
}

/// Copies `path` out of the sandbox to `local` (default: its name in the current directory;
/// into `local` when that is a directory). Says where it went.
pub(crate) async fn download(
    manager: &dyn Manager,
    sandbox: &Sandbox,
    path: &str,
    local: Option<&str>,
) -> Result<PathBuf> {
    let remote = in_sandbox(&sandbox.config.working_dir, path);
    let stream = manager.get_archive(sandbox, &remote).await?;
    let chunks: Vec<Bytes> = stream.try_collect().await?;
    let tar = chunks.concat();
    let name = remote
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("download")
        .to_string();
    let target = match local {
        None => PathBuf::from(&name),
        Some(l) if Path::new(l).is_dir() => Path::new(l).join(&name),
        Some(l) => PathBuf::from(l),
    };
    let staging_parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = tempfile::Builder::new()
        .prefix(".enclave-download-")
        .tempdir_in(staging_parent)
        .with_context(|| format!("writing into `{}`", staging_parent.display()))?;
    tar::Archive::new(tar.as_slice())
        .unpack(staging.path())
        .context("unpacking the download")?;
    let unpacked = fs::read_dir(staging.path())?
        .next()
        .context("the sandbox sent an empty archive")??
        .path();
    if target.is_dir() {
        bail!(
            "`{}` is already a directory here; name another LOCAL",
            target.display()
        );
    }
    fs::rename(&unpacked, &target).with_context(|| format!("writing `{}`", target.display()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_land_where_dest_says() {
        let cases = [
            (None, ("/sandbox", "a.bin")),
            (Some("/tmp/"), ("/tmp", "a.bin")),
            (Some("data/"), ("/sandbox/data", "a.bin")),
            (Some("/tmp/b.bin"), ("/tmp", "b.bin")),
            (Some("c.bin"), ("/sandbox", "c.bin")),
            (Some("/top"), ("/", "top")),
            (Some("/"), ("/", "a.bin")),
        ];
        for (dest, (dir, name)) in cases {
            assert_eq!(
                upload_target("/sandbox", "a.bin", dest),
                (dir.to_string(), name.to_string()),
                "{dest:?}"
            );
        }
    }
}
