//! The agent protocol: what the host and the agent say to each other over one byte stream.
//!
//! Framing is tokio-util's length-delimited codec (a 4-byte big-endian length, then the frame);
//! each frame is one MessagePack-encoded [`Frame`]. Frames carry a call id, so many calls share
//! one connection: the host numbers its calls (odd numbers are never needed; any non-zero id not
//! in use will do), and every frame about a call carries its id. Call 0 is the handshake.
//!
//! ## Handshake (call 0)
//! 1. host → `Hello { version, challenge }`
//! 2. agent → `Welcome { version, proof, challenge, agent }`, `proof` = [`auth::proof`] of the
//!    host's challenge with role [`auth::AGENT`]. An agent of another protocol version still
//!    answers, so the host can say why it falls back.
//! 3. host checks the proof (a socket replaced by one leading to another sandbox's agent fails
//!    here), then → `Prove { proof }` of the agent's challenge with role [`auth::HOST`].
//! 4. agent → `Ready`, or `Error { kind: Unauthorized }` and closes.
//!
//! ## Calls
//! A call starts with one of `Exec`, `Python`, `WriteFile`, `ReadFile`, `Stat`, `List`,
//! `Remove`, `MakeDirs`, `PutArchive`, `GetArchive`, `Status`. Requests that take a byte stream
//! (`Exec`/`Python` with `stdin: true`, `WriteFile`, `PutArchive`) are followed by `Data` frames
//! and one `End`. Answers:
//! - `Exec`/`Python`: `Started { pid }`, then `Output` frames, then `Ended`; or `Error`.
//! - `ReadFile`/`GetArchive`: `Data` frames, then `Done`; or `Error` (`NotFound`, `TooLarge`…).
//! - `Stat`: `Stat`; `List`: `Entries`; `Status`: `Status`; the others: `Done`; or `Error`.
//!
//! `Signal` (e.g. SIGINT to interrupt a session's running code) and `Cancel` (kill the call's
//! whole process tree; it then ends `Cancelled`) may be sent on a running call.
//!
//! ## Flow control
//! Each side may have at most [`WINDOW`] bytes of `Output`/`Data` payload of one call in flight:
//! the receiver returns `Credit(n)` for the bytes it has consumed. So a slow reader slows one
//! call, never the connection, and neither side buffers more than a window per call.
//!
//! ## Errors
//! A frame that does not decode, is longer than [`MAX_FRAME`], or breaks the rules above is
//! answered with `Error { kind: Protocol }` on call 0, and the connection is closed. Nothing
//! panics on bad input.

use bytes::{Bytes, BytesMut};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

/// The protocol version; both ends must speak the same.
pub const VERSION: u32 = 1;
/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;
/// The largest payload a sender puts in one `Output` or `Data` frame.
pub const CHUNK: usize = 128 * 1024;
/// Payload bytes of one call a sender may have unacknowledged.
pub const WINDOW: u32 = 2 << 20;

/// The environment variable that hands the agent its per-sandbox secret (hex). The agent removes
/// it from the environment of everything it starts.
pub const SECRET_ENV: &str = "ENCLAVE_AGENT_SECRET";
/// The environment variable naming the Unix socket the agent listens on.
pub const SOCKET_ENV: &str = "ENCLAVE_AGENT_SOCKET";
/// Set to `1`: the agent starts its Python fork server at once (the sandbox has
/// `python_executor`), so the first call finds it warm.
pub const WARM_PYTHON_ENV: &str = "ENCLAVE_AGENT_WARM_PYTHON";
/// Where the agent binary is mounted in a sandbox (a read-only volume).
pub const MOUNT_DIR: &str = "/.enclave";
/// The agent binary's path in a sandbox.
pub const BINARY_PATH: &str = "/.enclave/enclave-agent";
/// Where the host's per-sandbox socket directory is mounted in a sandbox.
pub const SOCKET_DIR: &str = "/.enclave-run";
/// The agent's socket in a sandbox, inside [`SOCKET_DIR`].
pub const SOCKET_PATH: &str = "/.enclave-run/agent.sock";

pub type CallId = u32;

/// One frame: a message about one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame<T> {
    pub call: CallId,
    pub body: T,
}

/// What the host sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Hello {
        version: u32,
        #[serde(with = "serde_bytes")]
        challenge: Vec<u8>,
    },
    Prove {
        #[serde(with = "serde_bytes")]
        proof: Vec<u8>,
    },
    Exec(ExecRequest),
    Python(PythonRequest),
    /// A chunk of stdin, or of a file or archive being written.
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The end of stdin, or of a file or archive being written.
    End,
    /// The host consumed this many payload bytes of the call's output.
    Credit(u32),
    /// Sends a signal to the call's process group (SIGINT interrupts a session's code).
    Signal(i32),
    /// Kills the call's whole process tree; it ends `Cancelled`.
    Cancel,
    WriteFile(WriteFile),
    /// A regular file's content; `TooLarge` when it is longer than `max`.
    ReadFile {
        path: String,
        max: Option<u64>,
    },
    /// `lstat`: a final symlink is reported as itself.
    Stat {
        path: String,
    },
    List {
        path: String,
    },
    /// Removes a file, a symlink, or (with `recursive`) a directory and its content.
    /// Nothing at `path` is `NotFound`.
    Remove {
        path: String,
        recursive: bool,
    },
    /// `mkdir -p`.
    MakeDirs {
        path: String,
    },
    /// Extracts the tar archive that follows as `Data` into `dir`, creating `dir` first.
    PutArchive {
        dir: String,
    },
    /// `path` (a file or a directory) as a tar archive whose single top entry is its base name.
    GetArchive {
        path: String,
    },
    /// The agent's own figures (pid, memory, the Python runner's state).
    Status,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Run this program with these arguments (found on `PATH` when it has no `/`).
    Argv(Vec<String>),
    /// Run this string with `/bin/sh -c`.
    Shell(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub command: Command,
    /// Added to (or replacing entries of) the sandbox's environment.
    pub env: Vec<(String, String)>,
    /// The working directory; the sandbox's own when `None`.
    pub cwd: Option<String>,
    /// `Data` frames and an `End` follow; otherwise stdin is `/dev/null`.
    pub stdin: bool,
    /// When the agent kills the call's process tree, whatever the host does meanwhile.
    pub timeout_ms: Option<u64>,
}

/// Runs Python code in a fresh interpreter state, as `python FILE` would: forked from a warm
/// interpreter when the image's Python allows it, else a new `python FILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PythonRequest {
    pub code: String,
    /// The interpreter; `python3`, else `python`, found on `PATH`, when `None`.
    pub interpreter: Option<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteFile {
    pub path: String,
    /// Permission bits for a new file; existing files keep theirs.
    pub mode: u32,
    /// Creates missing parent directories.
    pub make_parents: bool,
    /// Appends instead of replacing.
    pub append: bool,
}

/// What the agent sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Welcome {
        version: u32,
        #[serde(with = "serde_bytes")]
        proof: Vec<u8>,
        #[serde(with = "serde_bytes")]
        challenge: Vec<u8>,
        /// The agent's build (`enclave-agent 0.1.0`).
        agent: String,
    },
    Ready,
    /// The call's process started (for `Python`: the forked or new interpreter).
    Started {
        pid: u32,
    },
    Output {
        stream: OutputStream,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A chunk of a file or an archive being read.
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The agent consumed this many payload bytes of the call's stdin or upload.
    Credit(u32),
    Ended(Ending),
    Stat(Option<StatInfo>),
    Entries(Vec<Entry>),
    Done,
    Status(AgentStatus),
    Error(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// How a call's process ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ending {
    pub how: How,
    /// The exit status, when it exited by itself.
    pub code: Option<i32>,
    /// The signal that ended it, when one did (ours included).
    pub signal: Option<i32>,
    /// When the agent killed the tree: what it found and what was left.
    pub kill: Option<KillStats>,
    /// For `Python`: how the code was run.
    pub runner: Option<PythonRunner>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum How {
    /// It ended by itself.
    Exited,
    /// Its timeout passed and the agent killed its tree.
    TimedOut,
    /// The host cancelled it and the agent killed its tree.
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillStats {
    /// Processes of the tree found and killed.
    pub killed: u32,
    /// Processes of the tree still alive after the kill.
    pub left: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PythonRunner {
    /// Forked from a warm interpreter.
    Forked,
    /// A new interpreter process (`python FILE`).
    Fresh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatInfo {
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Where a symlink leads, as written; empty otherwise.
    pub link_target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub stat: StatInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub agent: String,
    pub pid: u32,
    /// The agent's resident memory, in bytes.
    pub rss_bytes: u64,
    /// Calls running now.
    pub calls: u32,
    /// Warm Python interpreters held for `Python` calls, by interpreter.
    pub python: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    NotFound,
    NotADirectory,
    IsADirectory,
    PermissionDenied,
    /// A file larger than the `max` asked for.
    TooLarge,
    /// The command's program does not exist (a shell would exit 127).
    CommandNotFound,
    /// The command's program cannot be executed (a shell would exit 126).
    NotExecutable,
    /// The working directory does not exist.
    NoWorkdir,
    InvalidInput,
    Unauthorized,
    /// A frame that does not decode or breaks the protocol's rules.
    Protocol,
    Io,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Why a frame could not be read.
#[derive(Debug)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed frame: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// The length-delimited codec both ends use, refusing frames over [`MAX_FRAME`].
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// One frame's bytes (without the length prefix, which the codec adds).
pub fn encode<T: Serialize>(frame: &Frame<T>) -> Bytes {
    // Encoding our own types into a Vec cannot fail: every field is a plain value.
    Bytes::from(rmp_serde::to_vec(frame).expect("protocol types always encode"))
}

/// A frame from its bytes.
pub fn decode<T: DeserializeOwned>(bytes: &BytesMut) -> Result<Frame<T>, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))
}

/// The proofs of the handshake: HMAC-SHA256 of a role and the other side's challenge, keyed
/// with the sandbox's secret. The roles differ, so one side's proof is never valid for the other.
pub mod auth {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    pub const AGENT: &[u8] = b"enclave-agent";
    pub const HOST: &[u8] = b"enclave-host";
    /// Bytes in a challenge.
    pub const CHALLENGE_LEN: usize = 32;

    fn mac(secret: &[u8], role: &[u8], challenge: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(role);
        mac.update(&[0]);
        mac.update(challenge);
        mac
    }

    pub fn proof(secret: &[u8], role: &[u8], challenge: &[u8]) -> Vec<u8> {
        mac(secret, role, challenge)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Checks a proof in constant time.
    pub fn verify(secret: &[u8], role: &[u8], challenge: &[u8], proof: &[u8]) -> bool {
        mac(secret, role, challenge).verify_slice(proof).is_ok()
    }

    /// A secret or challenge from its hex form.
    pub fn from_hex(hex: &str) -> Option<Vec<u8>> {
        if !hex.len().is_multiple_of(2) {
            return None;
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect()
    }

    pub fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frame = Frame {
            call: 7,
            body: Request::Exec(ExecRequest {
                command: Command::Shell("echo hi".into()),
                env: vec![("A".into(), "1".into())],
                cwd: Some("/tmp".into()),
                stdin: true,
                timeout_ms: Some(2000),
            }),
        };
        let bytes = BytesMut::from(&encode(&frame)[..]);
        assert_eq!(decode::<Request>(&bytes).unwrap(), frame);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\xff\xff",
            b"\x92\x01",
            b"\x92\x01\x81\xa4Exec\xc0",
        ] {
            assert!(decode::<Request>(&BytesMut::from(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn proofs_bind_secret_role_and_challenge() {
        let p = auth::proof(b"s1", auth::AGENT, b"c");
        assert!(auth::verify(b"s1", auth::AGENT, b"c", &p));
        assert!(!auth::verify(b"s2", auth::AGENT, b"c", &p));
        assert!(!auth::verify(b"s1", auth::HOST, b"c", &p));
        assert!(!auth::verify(b"s1", auth::AGENT, b"d", &p));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(
            auth::from_hex(&auth::to_hex(&[0, 1, 254, 255])).unwrap(),
            [0, 1, 254, 255]
        );
        assert_eq!(auth::from_hex("abc"), None);
        assert_eq!(auth::from_hex("zz"), None);
    }
}
