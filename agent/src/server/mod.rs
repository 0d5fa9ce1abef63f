//! The agent itself: what runs as each sandbox's init and serves the protocol of `proto`.

mod exit;
mod python;

/// The `enclave-agent` binary's entry point: its exit code.
pub fn main() -> i32 {
    eprintln!("enclave-agent: not built yet");
    2
}
