//! Sandboxes as Kubernetes Pods (issue 11). So far the pure parts: the manifests a create sends
//! (which `enclave create --backend kubernetes --dry-run` prints), what a Pod's status means for
//! its sandbox, and how an exec's status frame ends a command. The API client, exec over its
//! WebSocket and the agent over one exec stream come next, and use `status` and `exec_status`.

// Used by the API client that is not written yet; tested here on their own.
#[cfg_attr(not(test), allow(dead_code))]
mod exec_status;
mod manifest;
#[cfg_attr(not(test), allow(dead_code))]
mod status;

pub(crate) use manifest::{manifests, PodPlan};
