//! Sandboxes as Kubernetes Pods (issue 11). So far: the manifests a create sends, which
//! `enclave create --backend kubernetes --dry-run` prints; the API client, exec and the agent
//! over it come next.

mod manifest;

pub(crate) use manifest::{manifests, PodPlan};
