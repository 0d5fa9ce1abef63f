//! enclave: a fast, secure sandbox runtime for AI agents and CI.
//!
//! The binary is the product; the library exposes the `Manager` seam (and what it speaks) for
//! benchmarks and embedding.

pub mod backend;
mod cli;
pub mod error;
pub mod manager;
mod mcp;
pub mod model;
mod notebook;
mod output;
mod repl;
mod server;
pub mod session;
pub mod state;
mod tools;
mod volcengine;

pub use cli::main;
