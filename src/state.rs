//! The local state file: which sandboxes this user created and where they live.
//!
//! Docker labels already say which containers are ours; the file adds what labels cannot hold
//! (sandboxes on a server, later) and survives the engine being down. Writers take an exclusive
//! lock on a side file and replace the state atomically, so any number of concurrent `enclave`
//! processes leave a valid file with every entry.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::model::{DockerSandboxConfig, SandboxType};

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "state.lock";
const SCHEMA_VERSION: u32 = 1;

/// Where a sandbox lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// The Docker engine this process talks to (`DOCKER_HOST` or the default socket).
    Docker,
    /// An `enclave server` (or ms-enclave server) at this URL.
    Server { url: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub location: Location,
    pub container_id: Option<String>,
    #[serde(rename = "type")]
    pub sandbox_type: SandboxType,
    pub image: String,
    pub tools: Vec<String>,
    pub config: DockerSandboxConfig,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StateData {
    pub version: u32,
    pub sandboxes: IndexMap<String, SandboxRecord>,
}

/// Handle on the state directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// `ENCLAVE_STATE_DIR`, or the platform's local data directory.
    pub fn from_env() -> Result<Self> {
        let dir = match std::env::var_os("ENCLAVE_STATE_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => directories::ProjectDirs::from("dev", "enclave", "enclave")
                .ok_or_else(|| anyhow!("cannot find a home directory; set ENCLAVE_STATE_DIR"))?
                .data_local_dir()
                .to_path_buf(),
        };
        Ok(StateStore { dir })
    }

    pub fn at(dir: impl Into<PathBuf>) -> Self {
        StateStore { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// A consistent snapshot; no lock needed since writers replace the file atomically.
    pub fn load(&self) -> Result<StateData> {
        read_state(&self.path())
    }

    /// Applies `change` under the lock and writes the result atomically.
    pub fn update<R>(&self, change: impl FnOnce(&mut StateData) -> R) -> Result<R> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating the state directory {}", self.dir.display()))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK_FILE))
            .context("opening the state lock file")?;
        lock.lock().context("locking the state file")?;
        let mut state = self.load()?;
        let result = change(&mut state);
        state.version = SCHEMA_VERSION;
        write_atomically(&self.path(), &state)?;
        // The lock is released when `lock` is dropped, after the rename.
        drop(lock);
        Ok(result)
    }
}

fn read_state(path: &Path) -> Result<StateData> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StateData::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let state: StateData = serde_json::from_str(&text).with_context(|| {
        format!(
            "the state file {} is corrupt; move it aside and `enclave ls` will rebuild \
             local sandboxes from Docker labels",
            path.display()
        )
    })?;
    if state.version > SCHEMA_VERSION {
        anyhow::bail!(
            "the state file {} was written by a newer enclave (schema {}); upgrade enclave",
            path.display(),
            state.version
        );
    }
    Ok(state)
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
        }
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
                    store
                        .update(|st| {
                            st.sandboxes
                                .insert(format!("id{i}"), record(&format!("id{i}")))
                        })
                        .unwrap();
                });
            }
        });
        assert_eq!(store.load().unwrap().sandboxes.len(), 16);
    }

    #[test]
    fn corrupt_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
        let err = StateStore::at(dir.path()).load().unwrap_err();
        assert!(format!("{err:#}").contains("corrupt"), "{err:#}");
    }
}
