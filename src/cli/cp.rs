//! `enclave cp`: files and directories between this machine and a sandbox, with `docker cp`'s
//! conventions (docs/cli.md#cp). Archives travel as tar through `Manager::put_archive` and
//! `Manager::get_archive`; this side packs and unpacks them.

use std::fs;
use std::io::{self, IsTerminal};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::io::SyncIoBridge;

use super::{parse_sandbox_id, Ctx};
use crate::error::Error;
use crate::manager::files::{probe, reader_of, split_sandbox_path, Kind};
use crate::model::ArchiveStream;
use crate::output::human_size;

#[derive(Debug, Args)]
pub(crate) struct CpArgs {
    /// What to copy: a local path, `ID:PATH` in a sandbox, or `-` (a tar stream on stdin)
    #[arg(value_name = "SRC")]
    pub(crate) source: String,
    /// Where to: `ID:PATH` in a sandbox, a local path, or `-` (the tar stream to stdout)
    #[arg(value_name = "DEST")]
    pub(crate) destination: String,
}

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Side {
    Local(String),
    /// `-`: a tar stream on stdin or stdout.
    Stdio,
    Sandbox {
        id: String,
        path: String,
    },
}

impl Side {
    /// `docker cp`'s reading: an absolute path, or one starting with `.`, is local; else the
    /// text before the first `:` names a sandbox; no `:` at all is local.
    fn parse(arg: &str) -> Result<Self> {
        if arg == "-" {
            return Ok(Side::Stdio);
        }
        if arg.starts_with('/') || arg.starts_with('.') {
            return Ok(Side::Local(arg.to_string()));
        }
        let Some((id, path)) = arg.split_once(':') else {
            return Ok(Side::Local(arg.to_string()));
        };
        let id = parse_sandbox_id(id).map_err(|e| Error::Usage(format!("`{arg}`: {e}")))?;
        if !path.starts_with('/') {
            bail!(Error::Usage(format!(
                "`{arg}`: the path in the sandbox must be absolute (`{id}:/{path}`?)"
            )));
        }
        Ok(Side::Sandbox {
            id,
            path: path.to_string(),
        })
    }
}

/// `cp --json`: what was copied where.
#[derive(Debug, Default, Serialize)]
struct Copied {
    source: String,
    destination: String,
    /// Files, directories and links written (0 for a tar stream passed through as it is).
    entries: u64,
    /// Bytes of file content (of the tar stream itself for `-`).
    bytes: u64,
}

pub(crate) async fn run(args: CpArgs, ctx: &Ctx) -> Result<u8> {
    let from = Side::parse(&args.source)?;
    let to = Side::parse(&args.destination)?;
    let mut copied = match (from, to) {
        (Side::Sandbox { .. }, Side::Sandbox { .. }) => bail!(Error::Usage(
            "both SRC and DEST are in sandboxes; copy to this machine first".into()
        )),
        (Side::Sandbox { id, path }, to) => copy_out(&id, &path, to, ctx).await?,
        (from, Side::Sandbox { id, path }) => copy_in(from, &id, &path, ctx).await?,
        _ => bail!(Error::Usage(
            "one of SRC and DEST must be in a sandbox, written ID:PATH".into()
        )),
    };
    copied.source = args.source;
    copied.destination = args.destination;
    if ctx.output.json {
        ctx.output.json(&copied).await?;
    } else {
        ctx.output.note(&format!(
            "copied {} to {} ({})",
            copied.source,
            copied.destination,
            human_size(copied.bytes)
        ));
    }
    Ok(0)
}

/// A local path or stdin into a sandbox.
async fn copy_in(from: Side, id: &str, dest: &str, ctx: &Ctx) -> Result<Copied> {
    // The local side is checked before anything is asked of the sandbox.
    let source = match &from {
        Side::Local(path) => Some(LocalSource::inspect(path)?),
        _ => {
            if std::io::stdin().is_terminal() {
                bail!(Error::Usage(
                    "`-` reads a tar archive from stdin, which is a terminal".into()
                ));
            }
            None
        }
    };
    let manager = ctx.manager_for(id).await?;
    let sandbox = ctx.until_signal(manager.find(id)).await?;
    let Some(source) = source else {
        // A tar stream goes into DEST as it is, `docker cp -`'s way.
        let mut tar = Vec::new();
        tokio::io::stdin()
            .read_to_end(&mut tar)
            .await
            .context("reading the tar archive from stdin")?;
        let bytes = tar.len() as u64;
        manager
            .put_archive(&sandbox, dest, Bytes::from(tar))
            .await?;
        return Ok(Copied {
            bytes,
            ..Copied::default()
        });
    };
    let dest_kind = probe(manager.as_ref(), &sandbox, dest).await?;
    let placement = place_in(&source, dest, dest_kind).map_err(anyhow::Error::msg)?;
    if dest_kind.is_none()
        && probe(manager.as_ref(), &sandbox, &placement.dir).await? != Some(Kind::Dir)
    {
        bail!(Error::PathNotFound {
            sandbox: sandbox.id.clone(),
            path: placement.dir,
        });
    }
    let (tar, copied) = tokio::task::spawn_blocking(move || source.pack(placement.name.as_deref()))
        .await
        .context("packing the files")??;
    manager
        .put_archive(&sandbox, &placement.dir, Bytes::from(tar))
        .await?;
    Ok(copied)
}

/// A local file or directory to copy, checked.
struct LocalSource {
    path: PathBuf,
    kind: Kind,
    /// Its name in the sandbox when it keeps one.
    name: Option<String>,
    /// `DIR/.`: the directory's contents rather than the directory.
    contents: bool,
}

impl LocalSource {
    fn inspect(text: &str) -> Result<Self> {
        let path = PathBuf::from(text);
        let meta = fs::symlink_metadata(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => anyhow::anyhow!("`{text}` does not exist on this machine"),
            _ => anyhow::Error::new(e).context(format!("cannot read `{text}`")),
        })?;
        let kind = if meta.is_dir() {
            Kind::Dir
        } else {
            Kind::Other
        };
        let contents = kind == Kind::Dir
            && (text == "." || text.ends_with("/.") || text == "/" || text.ends_with("/./"));
        let name = match path.file_name() {
            Some(name) => Some(name.to_string_lossy().into_owned()),
            // `..`, `/`: the name it really has, if any.
            None => fs::canonicalize(&path)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())),
        };
        Ok(LocalSource {
            path,
            kind,
            name,
            contents,
        })
    }

    /// A tar of the source, named `name` (its contents at the top when `None`); links are kept
    /// as links.
    fn pack(&self, name: Option<&str>) -> Result<(Vec<u8>, Copied)> {
        let mut builder = tar::Builder::new(Vec::new());
        builder.follow_symlinks(false);
        let what = || format!("packing `{}`", self.path.display());
        match (self.kind, name) {
            (Kind::Dir, Some(name)) => builder
                .append_dir_all(name, &self.path)
                .with_context(what)?,
            (Kind::Dir, None) => builder.append_dir_all(".", &self.path).with_context(what)?,
            (Kind::Other, name) => {
                let name = name.or(self.name.as_deref()).unwrap_or("file");
                builder
                    .append_path_with_name(&self.path, name)
                    .with_context(what)?;
            }
        }
        let tar = builder.into_inner().with_context(what)?;
        let copied = count(&tar)?;
        Ok((tar, copied))
    }
}

/// Where a local source goes in the sandbox: the directory the archive is extracted into, and
/// the name at its top (`None`: the source's contents).
#[derive(Debug, PartialEq, Eq)]
struct Placement {
    dir: String,
    name: Option<String>,
}

/// `docker cp`'s rules for a copy into a sandbox, given what is at `dest` there.
fn place_in(
    source: &LocalSource,
    dest: &str,
    dest_kind: Option<Kind>,
) -> Result<Placement, String> {
    let (parent, dest_name) = split_sandbox_path(dest);
    match (source.kind, dest_kind) {
        // Into an existing directory, under the source's own name (or its contents).
        (Kind::Dir, Some(Kind::Dir)) if source.contents => Ok(Placement {
            dir: dest.to_string(),
            name: None,
        }),
        (_, Some(Kind::Dir)) => Ok(Placement {
            dir: dest.to_string(),
            name: source.name.clone(),
        }),
        (Kind::Dir, Some(Kind::Other)) => Err(format!(
            "cannot copy a directory onto `{dest}`, which is not a directory in the sandbox"
        )),
        (Kind::Other, None) if dest.ends_with('/') => Err(format!(
            "`{dest}` does not exist in the sandbox; a destination ending in `/` must be an existing directory"
        )),
        // A file replaces a file; a new path becomes the source under that name.
        (_, _) => Ok(Placement {
            dir: parent,
            name: Some(dest_name),
        }),
    }
}

/// A sandbox path to a local path, or to stdout as a tar stream.
async fn copy_out(id: &str, src: &str, to: Side, ctx: &Ctx) -> Result<Copied> {
    let (path, contents) = match src.strip_suffix("/.") {
        Some("") => ("/", true),
        Some(dir) => (dir, true),
        None => (src, false),
    };
    let dest = match to {
        Side::Local(dest) => dest,
        _ if ctx.output.json => bail!(Error::Usage(
            "`--json` cannot be used with `-` as DEST: stdout carries the tar stream".into()
        )),
        _ => {
            let manager = ctx.manager_for(id).await?;
            let sandbox = ctx.until_signal(manager.find(id)).await?;
            let archive = manager.get_archive(&sandbox, path).await?;
            return stream_to_stdout(archive).await;
        }
    };
    let dest_kind = local_kind(&dest)?;
    let manager = ctx.manager_for(id).await?;
    let sandbox = ctx.until_signal(manager.find(id)).await?;
    let archive = manager.get_archive(&sandbox, path).await?;
    let reader = SyncIoBridge::new(reader_of(archive));
    let target = Target {
        dest: PathBuf::from(&dest),
        trailing_slash: dest.ends_with('/'),
        kind: dest_kind,
        contents,
    };
    tokio::task::spawn_blocking(move || target.extract(reader))
        .await
        .context("unpacking the files")?
        .with_context(|| format!("copying {id}:{src} to `{dest}`"))
}

async fn stream_to_stdout(mut archive: ArchiveStream) -> Result<Copied> {
    let mut stdout = tokio::io::stdout();
    let mut bytes = 0;
    while let Some(chunk) = archive.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        stdout.write_all(&chunk).await?;
    }
    stdout.flush().await?;
    Ok(Copied {
        bytes,
        ..Copied::default()
    })
}

fn local_kind(path: &str) -> Result<Option<Kind>> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(Some(Kind::Dir)),
        Ok(_) => Ok(Some(Kind::Other)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read `{path}`")),
    }
}

/// Where a sandbox's archive goes on this machine.
struct Target {
    dest: PathBuf,
    trailing_slash: bool,
    kind: Option<Kind>,
    contents: bool,
}

/// What becomes of the archive's top entry.
#[derive(Debug, PartialEq, Eq)]
enum Top {
    /// Keep its name, under the root.
    Keep,
    /// It is the root itself: its entries go directly there.
    Strip,
    /// Rename it.
    Rename(std::ffi::OsString),
}

/// Where the archive's entries go: under `root`, with the top entry treated as `top`.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    root: PathBuf,
    top: Top,
    /// The root must be made (a directory copied to a new path).
    create_root: bool,
}

impl Target {
    /// `docker cp`'s rules for a copy out of a sandbox, once the source's kind is known.
    fn plan(&self, source: Kind) -> Result<Plan, String> {
        let shown = self.dest.display();
        match (source, self.kind) {
            (Kind::Dir, Some(Kind::Dir)) if self.contents => Ok(Plan {
                root: self.dest.clone(),
                top: Top::Strip,
                create_root: false,
            }),
            (_, Some(Kind::Dir)) => Ok(Plan {
                root: self.dest.clone(),
                top: Top::Keep,
                create_root: false,
            }),
            (Kind::Dir, Some(Kind::Other)) => Err(format!(
                "cannot copy a directory onto `{shown}`, which is not a directory"
            )),
            (Kind::Other, None) if self.trailing_slash => Err(format!(
                "`{shown}` does not exist; a destination ending in `/` must be an existing directory"
            )),
            (kind, _) => {
                let parent = match self.dest.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                if !parent.is_dir() {
                    return Err(format!(
                        "`{}` does not exist on this machine",
                        parent.display()
                    ));
                }
                let Some(name) = self.dest.file_name() else {
                    return Err(format!("`{shown}` names no file"));
                };
                Ok(if kind == Kind::Dir {
                    Plan {
                        root: self.dest.clone(),
                        top: Top::Strip,
                        create_root: true,
                    }
                } else {
                    Plan {
                        root: parent,
                        top: Top::Rename(name.to_os_string()),
                        create_root: false,
                    }
                })
            }
        }
    }

    /// Unpacks the archive by the plan its first entry decides. Only files, directories and
    /// links are written, never outside the root and never through a link.
    fn extract(self, reader: impl io::Read) -> Result<Copied> {
        let mut archive = tar::Archive::new(reader);
        let mut plan: Option<(Plan, std::ffi::OsString)> = None;
        let mut copied = Copied::default();
        for entry in archive.entries().context("reading the archive")? {
            let mut entry = entry.context("reading the archive")?;
            let path = entry.path().context("an entry's name")?.into_owned();
            let Some(top) = first_component(&path) else {
                continue;
            };
            if plan.is_none() {
                let kind = if entry.header().entry_type().is_dir() {
                    Kind::Dir
                } else {
                    Kind::Other
                };
                let p = self.plan(kind).map_err(anyhow::Error::msg)?;
                if p.create_root {
                    fs::create_dir(&p.root)
                        .with_context(|| format!("creating `{}`", p.root.display()))?;
                }
                plan = Some((p, top.clone()));
            }
            let Some((plan, first_top)) = &plan else {
                continue;
            };
            if top != *first_top {
                bail!(
                    "the archive holds more than one top entry (`{}`)",
                    path.display()
                );
            }
            let Some(relative) = plan.map(&path)? else {
                continue;
            };
            let dest = plan.root.join(&relative);
            no_links_between(&plan.root, &relative)?;
            write_entry(&mut entry, &dest, plan)?;
            copied.entries += 1;
            if entry.header().entry_type().is_file() {
                copied.bytes += entry.size();
            }
        }
        if plan.is_none() {
            bail!("the sandbox sent an empty archive");
        }
        Ok(copied)
    }
}

impl Plan {
    /// The path under the root an archive path goes to; `None` for the stripped top itself.
    fn map(&self, path: &Path) -> Result<Option<PathBuf>> {
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_os_string()),
                Component::CurDir => {}
                _ => bail!(
                    "the archive has an entry outside its directory: `{}`",
                    path.display()
                ),
            }
        }
        let Some((_, rest)) = parts.split_first() else {
            return Ok(None);
        };
        let mut mapped = PathBuf::new();
        match &self.top {
            Top::Keep => mapped.push(&parts[0]),
            Top::Rename(name) => mapped.push(name),
            Top::Strip if rest.is_empty() => return Ok(None),
            Top::Strip => {}
        }
        mapped.extend(rest);
        Ok(Some(mapped))
    }
}

fn first_component(path: &Path) -> Option<std::ffi::OsString> {
    path.components().find_map(|c| match c {
        Component::Normal(part) => Some(part.to_os_string()),
        _ => None,
    })
}

/// Refuses to write through a link that an earlier entry (or anyone) put below the root.
fn no_links_between(root: &Path, relative: &Path) -> Result<()> {
    let mut at = root.to_path_buf();
    let parents = relative
        .parent()
        .map(Path::components)
        .into_iter()
        .flatten();
    for part in parents {
        at.push(part);
        if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            bail!(
                "refusing to follow the link `{}`: what an archive holds stays inside the destination",
                at.display()
            );
        }
    }
    Ok(())
}

/// The file a hard link entry names, under the root: reached without a link, as every other
/// entry is. Without this check an archive holding `a -> /etc` and then a hard link to
/// `a/shadow` would link a file of this machine into DEST.
fn link_target(plan: &Plan, name: &Path) -> Result<PathBuf> {
    let Some(relative) = plan.map(name)? else {
        bail!("a hard link to the archive's top");
    };
    no_links_between(&plan.root, &relative)?;
    let target = plan.root.join(&relative);
    let meta = fs::symlink_metadata(&target).with_context(|| {
        format!(
            "a hard link to `{}`, which the archive did not hold before it",
            name.display()
        )
    })?;
    if !(meta.is_file() || meta.is_symlink()) {
        bail!("a hard link to `{}`, which is not a file", name.display());
    }
    Ok(target)
}

fn write_entry<R: io::Read>(entry: &mut tar::Entry<R>, dest: &Path, plan: &Plan) -> Result<()> {
    use tar::EntryType;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating `{}`", parent.display()))?;
    }
    let kind = entry.header().entry_type();
    match kind {
        EntryType::Directory if dest.is_dir() => return Ok(()),
        EntryType::Directory | EntryType::Regular | EntryType::Continuous | EntryType::Symlink => {}
        EntryType::Link => {
            // A hard link names another entry of the archive: linked where that one went.
            let target = entry
                .link_name()
                .context("a hard link's target")?
                .context("a hard link without a target")?
                .into_owned();
            let target = link_target(plan, &target).with_context(|| {
                format!("linking `{}` to `{}`", dest.display(), target.display())
            })?;
            let _ = fs::remove_file(dest);
            // `hard_link` does not follow `target` itself when it is a symlink: the new entry
            // is then a copy of that symlink, one the archive could have sent as it is.
            fs::hard_link(&target, dest)
                .with_context(|| format!("linking `{}`", dest.display()))?;
            return Ok(());
        }
        // Devices, fifos: not what a copy of files means, and not ours to make.
        _ => bail!(
            "`{}` is neither a file, a directory nor a link ({kind:?})",
            dest.display()
        ),
    }
    entry.set_preserve_permissions(true);
    entry.set_preserve_mtime(true);
    entry
        .unpack(dest)
        .with_context(|| format!("writing `{}`", dest.display()))?;
    Ok(())
}

/// Entries and file bytes of a tar we made.
fn count(tar: &[u8]) -> Result<Copied> {
    let mut copied = Copied::default();
    for entry in tar::Archive::new(tar).entries()? {
        let entry = entry?;
        copied.entries += 1;
        if entry.header().entry_type().is_file() {
            copied.bytes += entry.size();
        }
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(id: &str, path: &str) -> Side {
        Side::Sandbox {
            id: id.into(),
            path: path.into(),
        }
    }

    #[test]
    fn sides_are_read_as_docker_cp_reads_them() {
        assert_eq!(Side::parse("-").unwrap(), Side::Stdio);
        assert_eq!(
            Side::parse("k3x9:/tmp/a").unwrap(),
            sandbox("k3x9", "/tmp/a")
        );
        assert_eq!(Side::parse("k3x9:/").unwrap(), sandbox("k3x9", "/"));
        for local in ["file.txt", "./k3x9:/x", "/abs/k3x9:/x", "dir/sub", "../up"] {
            assert_eq!(
                Side::parse(local).unwrap(),
                Side::Local(local.into()),
                "{local}"
            );
        }
        for bad in ["k3x9:relative", "k3x9:", ":/x", " :/x"] {
            let err = Side::parse(bad).unwrap_err();
            assert!(
                matches!(crate::error::find(&err), Some(Error::Usage(_))),
                "{bad}: {err:#}"
            );
        }
    }

    fn source(kind: Kind, name: &str, contents: bool) -> LocalSource {
        LocalSource {
            path: PathBuf::from(name),
            kind,
            name: Some(name.into()),
            contents,
        }
    }

    fn placed(dir: &str, name: Option<&str>) -> Placement {
        Placement {
            dir: dir.into(),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn copies_in_follow_docker_cp() {
        let file = source(Kind::Other, "a.txt", false);
        let dir = source(Kind::Dir, "src", false);
        let contents = source(Kind::Dir, "src", true);
        // Into an existing directory: under the source's name.
        assert_eq!(
            place_in(&file, "/d", Some(Kind::Dir)),
            Ok(placed("/d", Some("a.txt")))
        );
        assert_eq!(
            place_in(&dir, "/d/", Some(Kind::Dir)),
            Ok(placed("/d/", Some("src")))
        );
        // `src/.`: its contents.
        assert_eq!(
            place_in(&contents, "/d", Some(Kind::Dir)),
            Ok(placed("/d", None))
        );
        // A new path, or a file to replace: the source under that name.
        assert_eq!(
            place_in(&file, "/d/b.txt", None),
            Ok(placed("/d", Some("b.txt")))
        );
        assert_eq!(
            place_in(&file, "/b.txt", Some(Kind::Other)),
            Ok(placed("/", Some("b.txt")))
        );
        assert_eq!(
            place_in(&dir, "/d/new", None),
            Ok(placed("/d", Some("new")))
        );
        assert_eq!(
            place_in(&contents, "/d/new/", None),
            Ok(placed("/d", Some("new")))
        );
        // Refused.
        assert!(place_in(&dir, "/d/file", Some(Kind::Other)).is_err());
        assert!(place_in(&file, "/d/missing/", None).is_err());
    }

    #[test]
    fn sandbox_paths_split() {
        assert_eq!(split_sandbox_path("/a/b/c"), ("/a/b".into(), "c".into()));
        assert_eq!(split_sandbox_path("/a/"), ("/".into(), "a".into()));
        assert_eq!(split_sandbox_path("/a"), ("/".into(), "a".into()));
    }

    #[test]
    fn copies_out_follow_docker_cp() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        fs::write(root.join("f"), "x").unwrap();
        let target = |dest: PathBuf, contents: bool| Target {
            kind: local_kind(dest.to_str().unwrap()).unwrap(),
            trailing_slash: dest.to_str().unwrap().ends_with('/'),
            dest,
            contents,
        };
        // Into an existing directory under its own name, or its contents.
        let plan = target(root.clone(), false).plan(Kind::Dir).unwrap();
        assert_eq!((plan.root, plan.top), (root.clone(), Top::Keep));
        let plan = target(root.clone(), true).plan(Kind::Dir).unwrap();
        assert_eq!(plan.top, Top::Strip);
        // A new directory: made, with the contents.
        let plan = target(root.join("new"), false).plan(Kind::Dir).unwrap();
        assert_eq!((plan.top, plan.create_root), (Top::Strip, true));
        // A file to a new path or over a file: renamed.
        let plan = target(root.join("f"), false).plan(Kind::Other).unwrap();
        assert_eq!(
            (plan.root, plan.top),
            (root.clone(), Top::Rename("f".into()))
        );
        // Refused: a directory onto a file, a missing `dir/`, a missing parent.
        assert!(target(root.join("f"), false).plan(Kind::Dir).is_err());
        assert!(target(root.join("nope/"), false).plan(Kind::Other).is_err());
        assert!(target(root.join("nope/x"), false)
            .plan(Kind::Other)
            .is_err());
    }

    #[test]
    fn archive_paths_never_leave_the_root() {
        let plan = Plan {
            root: PathBuf::from("/r"),
            top: Top::Rename("new".into()),
            create_root: false,
        };
        assert_eq!(
            plan.map(Path::new("src/a/b")).unwrap(),
            Some(PathBuf::from("new/a/b"))
        );
        assert!(plan.map(Path::new("src/../../etc")).is_err());
        assert!(plan.map(Path::new("/etc/passwd")).is_err());
        let strip = Plan {
            top: Top::Strip,
            ..plan
        };
        assert_eq!(strip.map(Path::new("src/")).unwrap(), None);
        assert_eq!(
            strip.map(Path::new("./src/a")).unwrap(),
            Some(PathBuf::from("a"))
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(2048), "2.0 kB");
        assert_eq!(human_size(3_500_000), "3.5 MB");
    }
}
