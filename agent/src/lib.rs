//! enclave's resident agent: the protocol the host speaks to it (`proto`, always built), the
//! host's client for it (`client`, always built), and the agent itself (`server`, behind the
//! `server` feature; the `enclave-agent` binary).

pub mod client;
pub mod proto;

#[cfg(feature = "server")]
pub mod server;
