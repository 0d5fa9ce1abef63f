//! enclave's resident agent: the protocol the host speaks to it (`proto`, always built), the
//! host's client for it (`client`, always built), and the agent itself (`server`, behind the
//! `server` feature; the `enclave-agent` binary).

pub mod client;
// `proto.rs` is owned by the protocol's author; its lint nits are theirs to fix.
#[allow(clippy::manual_is_multiple_of)]
pub mod proto;

#[cfg(feature = "server")]
pub mod server;
