//! The in-sandbox agent (`agent/`): the binary this build carries, and (next) the backend that
//! reaches sandboxes through it.

/// The static `enclave-agent` binary built with this `enclave` (build.rs); `None` when this
/// build has none (a host that could not build it).
#[allow(dead_code)] // used by the agent backend, next
pub(crate) fn binary() -> Option<&'static [u8]> {
    static AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/enclave-agent"));
    Some(AGENT).filter(|b| !b.is_empty())
}

/// A fingerprint of [`binary`], so each build's agent gets its own volume.
#[allow(dead_code)] // used by the agent backend, next
pub(crate) fn fingerprint() -> &'static str {
    include_str!(concat!(env!("OUT_DIR"), "/enclave-agent.hash"))
}
