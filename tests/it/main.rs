//! Integration tests: the real `enclave` binary against a real Docker engine.
//!
//! `./scripts/test.sh` makes sure an engine answers and the test image exists. Tests that need
//! Docker fail loudly without it; they never pass by returning early.

mod agent;
mod cli;
mod common;
mod cp;
mod edges;
mod escapes;
mod kubernetes;
mod lifecycle;
mod mcp;
mod messages;
mod notebook;
mod remote;
mod server;
mod shell;
mod tools;
mod volcengine;
