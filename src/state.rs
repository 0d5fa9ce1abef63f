//! The local state file: which sandboxes this user created and where they live.
//!
//! Labels on the sandboxes already say which are ours; the file adds what labels cannot hold
//! (sandboxes on a server, later) and survives the engine being down. Writers take an exclusive
//! lock on a side file, waiting a bounded time for it, and replace the state atomically, so any
//! number of concurrent `enclave` processes leave a valid file with every entry. A file that
//! cannot be read (a crash, a bad edit) is set aside and rebuilt from the labels.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::model::{DockerSandboxConfig, Location, SandboxType, VolcengineSandboxConfig};

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "state.lock";
const SCHEMA_VERSION: u32 = 1;
/// How long a writer waits for another process's lock unless `ENCLAVE_LOCK_WAIT` says otherwise.
const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);
/// The longest pause between two tries for the lock.
const LOCK_RETRY_MAX: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    pub(crate) id: String,
    pub(crate) location: Location,
    pub(crate) container_id: Option<String>,
    #[serde(rename = "type")]
    pub(crate) sandbox_type: SandboxType,
    pub(crate) image: String,
    pub(crate) tools: Vec<String>,
    pub(crate) config: DockerSandboxConfig,
    pub(crate) created_at: DateTime<Utc>,
    /// The creator's extra labels, as on the container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) labels: BTreeMap<String, String>,
    /// Where its agent listens on this host, when it has one there: a later command reaches it
    /// without asking the engine first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) agent_socket: Option<AgentSocket>,
    /// A `volcengine` sandbox's config, secrets included (the file is the user's own): it has
    /// no container, so this is all there is of it. Absent for every other type, and in files
    /// written before volcengine sandboxes existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) volcengine: Option<VolcengineSandboxConfig>,
    /// When it was last used, for a sandbox with an idle expiry (`manager/local/expiry.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_used: Option<DateTime<Utc>>,
}

/// A sandbox's agent socket on this host, and the secret its agent must prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AgentSocket {
    pub(crate) path: String,
    pub(crate) secret: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct StateData {
    pub(crate) version: u32,
    pub(crate) sandboxes: IndexMap<String, SandboxRecord>,
}

impl StateData {
    /// Where the sandbox an id (or a prefix of one) names lives, as far as the records say:
    /// `None` when no record matches (the engine's labels may still know it). A prefix that
    /// matches records in more than one place is ambiguous; within one place, that place's
    /// manager resolves it.
    pub(crate) fn location_of(&self, id_or_prefix: &str) -> Result<Option<Location>, Error> {
        if let Some(record) = self.sandboxes.get(id_or_prefix) {
            return Ok(Some(record.location.clone()));
        }
        let matches: Vec<&SandboxRecord> = self
            .sandboxes
            .values()
            .filter(|r| r.id.starts_with(id_or_prefix))
            .collect();
        let Some(first) = matches.first() else {
            return Ok(None);
        };
        if matches.iter().all(|r| r.location == first.location) {
            return Ok(Some(first.location.clone()));
        }
        Err(Error::Ambiguous {
            prefix: id_or_prefix.to_string(),
            candidates: matches.iter().map(|r| r.id.clone()).collect(),
        })
    }
}

/// The state file exists but cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("the state file {path} is unreadable: {reason}")]
pub(crate) struct Corrupt {
    pub(crate) path: PathBuf,
    pub(crate) reason: String,
}

/// What recovering from an unreadable state file did.
#[derive(Debug)]
pub(crate) struct Recovery {
    /// Where the unreadable file was moved.
    pub(crate) backup: PathBuf,
    /// Sandboxes recorded again from their labels.
    pub(crate) rebuilt: usize,
}

/// Handle on the state directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    lock_wait: Duration,
}

impl StateStore {
    /// `ENCLAVE_STATE_DIR`, or the platform's local data directory; `ENCLAVE_LOCK_WAIT` (seconds)
    /// bounds the wait for another process's lock.
    pub fn from_env() -> Result<Self> {
        let dir = match std::env::var_os("ENCLAVE_STATE_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => directories::ProjectDirs::from("dev", "enclave", "enclave")
                .ok_or_else(|| anyhow!("cannot find a home directory; set ENCLAVE_STATE_DIR"))?
                .data_local_dir()
                .to_path_buf(),
        };
        let lock_wait = match std::env::var("ENCLAVE_LOCK_WAIT") {
            Ok(secs) => parse_lock_wait(&secs)?,
            Err(_) => DEFAULT_LOCK_WAIT,
        };
        Ok(StateStore { dir, lock_wait })
    }

    pub fn at(dir: impl Into<PathBuf>) -> Self {
        StateStore {
            dir: dir.into(),
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }

    /// The state directory (sandboxes' agent sockets live under it too).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// A stable name for this state file on this machine, carried by the sandboxes it records
    /// (a label), so they can be told apart from other users' and found again if the file is
    /// lost.
    pub(crate) fn owner(&self) -> String {
        let dir = fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| fs::read_to_string("/etc/hostname"))
            .unwrap_or_default();
        format!(
            "{:016x}",
            fnv1a(format!("{}\0{}", host.trim(), dir.display()).as_bytes())
        )
    }

    /// A consistent snapshot; no lock needed since writers replace the file atomically. An
    /// unreadable file is a `Corrupt` error.
    pub(crate) fn load(&self) -> Result<StateData> {
        read_state(&self.path())
    }

    /// Applies `change` under the lock and writes the result atomically. Waits for another
    /// process's lock without blocking the runtime, up to the lock wait.
    pub(crate) async fn update<R>(&self, change: impl FnOnce(&mut StateData) -> R) -> Result<R> {
        let lock = self.lock().await?;
        let mut state = self.load()?;
        let result = change(&mut state);
        state.version = SCHEMA_VERSION;
        write_atomically(&self.path(), &state)?;
        // The lock is released when `lock` is dropped, after the rename.
        drop(lock);
        Ok(result)
    }

    /// Fails, with the reason, when the state file could not be updated now; checked before
    /// doing what cannot be undone, so nothing happens that the file would not record.
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.create_dir()?;
        open_lock_file(&self.dir)?;
        tempfile::NamedTempFile::new_in(&self.dir).with_context(|| {
            format!("the state directory {} is not writable", self.dir.display())
        })?;
        Ok(())
    }

    /// Replaces an unreadable state file with `rebuild`'s records, keeping the unreadable one
    /// beside it. `None` when the file is readable after all (another process recovered it).
    pub(crate) async fn recover(
        &self,
        rebuild: impl FnOnce() -> Vec<SandboxRecord>,
    ) -> Result<Option<Recovery>> {
        let lock = self.lock().await?;
        let path = self.path();
        match self.load() {
            Ok(_) => return Ok(None),
            Err(e) if e.downcast_ref::<Corrupt>().is_none() => return Err(e),
            Err(_) => {}
        }
        let backup = self.dir.join(format!(
            "{STATE_FILE}.unreadable-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.6fZ")
        ));
        fs::rename(&path, &backup).with_context(|| format!("moving {} aside", path.display()))?;
        let records = rebuild();
        let state = StateData {
            version: SCHEMA_VERSION,
            sandboxes: records.into_iter().map(|r| (r.id.clone(), r)).collect(),
        };
        write_atomically(&path, &state)?;
        drop(lock);
        Ok(Some(Recovery {
            backup,
            rebuilt: state.sandboxes.len(),
        }))
    }

    fn create_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating the state directory {}", self.dir.display()))
    }

    /// The exclusive lock, tried until it is free or the lock wait is over.
    async fn lock(&self) -> Result<File> {
        self.create_dir()?;
        let lock = open_lock_file(&self.dir)?;
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match lock.try_lock() {
                Ok(()) => return Ok(lock),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => {
                    return Err(e).context("locking the state file");
                }
            }
            if started.elapsed() >= self.lock_wait {
                return Err(Error::StateLocked {
                    path: self.dir.join(LOCK_FILE).display().to_string(),
                    waited_secs: self.lock_wait.as_secs(),
                }
                .into());
            }
            // flock has no way to be told when it is free; a short, growing pause keeps the
            // wait cheap and the runtime free for Ctrl-C and timeouts.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LOCK_RETRY_MAX);
        }
    }
}

fn open_lock_file(dir: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .with_context(|| {
            format!(
                "opening the state lock file {}",
                dir.join(LOCK_FILE).display()
            )
        })
}

fn parse_lock_wait(text: &str) -> Result<Duration> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= crate::model::MAX_TIMEOUT_SECS)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            Error::Usage(format!(
                "ENCLAVE_LOCK_WAIT must be a number of seconds, got `{text}`"
            ))
            .into()
        })
}

/// 64-bit FNV-1a: a stable hash (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn read_state(path: &Path) -> Result<StateData> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StateData::default()),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(corrupt(path, "it is not UTF-8 text".into()))
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if text.trim().is_empty() {
        return Err(corrupt(path, "it is empty".into()));
    }
    let state: StateData = serde_json::from_str(&text).map_err(|e| corrupt(path, e.to_string()))?;
    if state.version > SCHEMA_VERSION {
        anyhow::bail!(
            "the state file {} was written by a newer enclave (schema {}); upgrade enclave",
            path.display(),
            state.version
        );
    }
    Ok(state)
}

fn corrupt(path: &Path, reason: String) -> anyhow::Error {
    Corrupt {
        path: path.to_path_buf(),
        reason,
    }
    .into()
}

fn write_atomically(path: &Path, state: &StateData) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).context("creating a temporary state file")?;
    // The config may hold secrets (env vars): readable by the owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))
            .context("restricting the state file's permissions")?;
    }
    serde_json::to_writer_pretty(&mut tmp, state).context("serialising the state")?;
    tmp.write_all(b"\n")?;
    tmp.as_file()
        .sync_all()
        .context("flushing the state file")?;
    tmp.persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> SandboxRecord {
        SandboxRecord {
            id: id.into(),
            location: Location::Docker,
            container_id: Some(format!("c-{id}")),
            sandbox_type: SandboxType::Docker,
            image: "img".into(),
            tools: vec![],
            config: DockerSandboxConfig::default(),
            created_at: Utc::now(),
            labels: BTreeMap::new(),
            agent_socket: None,
            volcengine: None,
            last_used: None,
        }
    }

    fn on_server(id: &str, url: &str) -> SandboxRecord {
        SandboxRecord {
            location: Location::Server { url: url.into() },
            ..record(id)
        }
    }

    #[test]
    fn ids_are_routed_to_where_their_records_live() {
        let mut state = StateData::default();
        for r in [
            record("aaaa1111"),
            record("aaaa2222"),
            on_server("bbbb1111", "http://s1"),
            on_server("bbbb2222", "http://s1"),
            on_server("cccc1111", "http://s2"),
            record("dddd1111"),
            on_server("dddd2222", "http://s1"),
        ] {
            state.sandboxes.insert(r.id.clone(), r);
        }
        let s1 = Location::Server {
            url: "http://s1".into(),
        };
        assert_eq!(
            state.location_of("aaaa1111").unwrap(),
            Some(Location::Docker)
        );
        // A prefix of records in one place goes there, which resolves (or refuses) it.
        assert_eq!(state.location_of("aaaa").unwrap(), Some(Location::Docker));
        assert_eq!(state.location_of("bbbb").unwrap(), Some(s1.clone()));
        assert_eq!(state.location_of("bbbb2").unwrap(), Some(s1));
        assert_eq!(
            state.location_of("cccc").unwrap(),
            Some(Location::Server {
                url: "http://s2".into()
            })
        );
        // Nothing recorded: the local engine's labels may know it.
        assert_eq!(state.location_of("zzzz").unwrap(), None);
        // Records in two places: ambiguous, with both candidates.
        let Err(Error::Ambiguous { candidates, .. }) = state.location_of("dddd") else {
            panic!("dddd should be ambiguous")
        };
        assert_eq!(candidates, ["dddd1111", "dddd2222"]);
        assert!(state.location_of("").is_err());
    }

    #[test]
    fn files_from_before_volcengine_still_load_and_volcengine_records_round_trip() {
        let old = r#"{"version":1,"sandboxes":{"k3x9m2pa":{"id":"k3x9m2pa",
            "location":{"kind":"docker"},"container_id":"c1","type":"docker","image":"img",
            "tools":["python_executor"],"config":{"image":"img"},
            "created_at":"2026-01-01T00:00:00Z"}}}"#;
        let state: StateData = serde_json::from_str(old).unwrap();
        let old_record = &state.sandboxes["k3x9m2pa"];
        assert!(old_record.volcengine.is_none());
        assert_eq!(old_record.config.image, "img");
        assert!(!serde_json::to_string(old_record)
            .unwrap()
            .contains("volcengine"));

        let config = VolcengineSandboxConfig {
            base_url: Some("http://fusion:8080".into()),
            api_key: Some("sk-1".into()),
            ..VolcengineSandboxConfig::default()
        };
        let record = SandboxRecord {
            sandbox_type: SandboxType::Volcengine,
            container_id: None,
            volcengine: Some(config.clone()),
            ..record("vvvv1111")
        };
        let text = serde_json::to_string(&record).unwrap();
        let back: SandboxRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.sandbox_type, SandboxType::Volcengine);
        assert_eq!(back.volcengine, Some(config));
    }

    #[test]
    fn missing_file_is_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        assert!(StateStore::at(dir.path())
            .load()
            .unwrap()
            .sandboxes
            .is_empty());
    }

    #[test]
    fn concurrent_updates_keep_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::at(dir.path());
        std::thread::scope(|s| {
            for i in 0..16 {
                let store = store.clone();
                s.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .unwrap();
                    runtime
                        .block_on(store.update(|st| {
                            st.sandboxes
                                .insert(format!("id{i}"), record(&format!("id{i}")))
                        }))
                        .unwrap();
                });
            }
        });
        assert_eq!(store.load().unwrap().sandboxes.len(), 16);
    }

    #[test]
    fn corrupt_and_empty_files_are_typed_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["{not json", "", "  \n"] {
            fs::write(dir.path().join(STATE_FILE), text).unwrap();
            let err = StateStore::at(dir.path()).load().unwrap_err();
            let corrupt = err.downcast_ref::<Corrupt>().expect("a Corrupt error");
            assert!(corrupt.path.ends_with(STATE_FILE), "{err:#}");
        }
    }

    #[tokio::test]
    async fn recovery_keeps_a_backup_and_writes_the_rebuilt_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::at(dir.path());
        fs::write(store.path(), "").unwrap();
        let recovery = store
            .recover(|| vec![record("a"), record("b")])
            .await
            .unwrap()
            .expect("recovered");
        assert_eq!(recovery.rebuilt, 2);
        assert_eq!(fs::read_to_string(&recovery.backup).unwrap(), "");
        assert_eq!(store.load().unwrap().sandboxes.len(), 2);
        // A second recovery finds a readable file and does nothing.
        assert!(store.recover(Vec::new).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_held_lock_is_waited_for_a_bounded_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::at(dir.path());
        store.lock_wait = Duration::from_millis(200);
        let held = store.lock().await.unwrap();
        let err = store.update(|_| ()).await.unwrap_err();
        assert!(
            matches!(crate::error::find(&err), Some(Error::StateLocked { .. })),
            "{err:#}"
        );
        drop(held);
        store.update(|_| ()).await.unwrap();
    }

    #[test]
    fn owners_are_stable_per_directory() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        assert_eq!(
            StateStore::at(a.path()).owner(),
            StateStore::at(a.path()).owner()
        );
        assert_ne!(
            StateStore::at(a.path()).owner(),
            StateStore::at(b.path()).owner()
        );
        assert_eq!(StateStore::at(a.path()).owner().len(), 16);
    }

    #[test]
    fn lock_waits_parse() {
        assert_eq!(parse_lock_wait("2.5").unwrap(), Duration::from_millis(2500));
        assert!(parse_lock_wait("-1").is_err());
        assert!(parse_lock_wait("soon").is_err());
    }
}
