//! `enclave-agent install DEST`: copies this binary to `DEST` (mode 0755), whole or not at all.
//! An agent image's init container runs it to put the agent into a volume the sandbox mounts,
//! so the image itself needs nothing but the binary (no shell, no `cp`).

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const EXIT_USAGE: i32 = 2;
const EXIT_FAILURE: i32 = 1;

pub(crate) fn run(args: &[OsString]) -> i32 {
    let [dest] = args else {
        eprintln!("usage: enclave-agent install DEST");
        return EXIT_USAGE;
    };
    match install(Path::new(dest)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!(
                "enclave-agent: installing to {}: {e}",
                Path::new(dest).display()
            );
            EXIT_FAILURE
        }
    }
}

/// Written beside `dest` and renamed over it: a reader never sees half a binary.
fn install(dest: &Path) -> std::io::Result<()> {
    let source = std::env::current_exe()?;
    let partial = partial_path(dest);
    std::fs::copy(&source, &partial)?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&partial, dest)
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_an_executable_copy_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("enclave-agent");
        assert_eq!(run(&[dest.clone().into_os_string()]), 0);
        let copied = std::fs::read(&dest).unwrap();
        let source = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(copied, source);
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(!partial_path(&dest).exists());
    }

    #[test]
    fn a_missing_directory_or_argument_fails_and_says_so() {
        assert_eq!(run(&[]), EXIT_USAGE);
        let dest = OsString::from("/no/such/dir/enclave-agent");
        assert_eq!(run(&[dest]), EXIT_FAILURE);
    }
}
