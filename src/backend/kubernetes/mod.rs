//! Sandboxes as Kubernetes Pods (issue 11). The manifests a create sends (which
//! `enclave create --backend kubernetes --dry-run` prints), what a Pod's status means for its
//! sandbox, how an exec's status frame ends a command, and one Pod as a `Backend`
//! (`PodSandbox`: commands and files over the exec subresource). Creating Pods and the agent
//! over one exec stream come next.

// The Pod backend (`pod`, `exec`, `files`) is wired into the manager next; until then only
// its tests use it.
#[allow(dead_code)]
mod exec;
#[allow(dead_code)]
mod exec_status;
#[allow(dead_code)]
mod files;
mod manifest;
#[allow(dead_code)]
mod pod;
#[allow(dead_code)]
mod status;

pub(crate) use manifest::{manifests, PodPlan};
#[allow(unused_imports)]
pub(crate) use pod::PodSandbox;
