//! `enclave server`: ms-enclave's HTTP API and enclave's own, over the same `Manager` the CLI
//! uses. `service/` keeps the server's sandboxes (tenants, policy, pool, reaper, re-adoption);
//! `http/` speaks HTTP.

pub(crate) mod http;
pub(crate) mod service;
