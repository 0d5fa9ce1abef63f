//! enclave: a fast, secure sandbox runtime for AI agents and CI.

pub mod backend;
pub mod cli;
pub mod error;
pub mod manager;
pub mod model;
pub mod output;
pub mod state;
pub mod tools;

pub use cli::main;
