//! A session held by an `enclave server`, over its WebSocket session endpoint.
