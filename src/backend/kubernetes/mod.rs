//! Sandboxes as Kubernetes Pods: the manifests a create sends (which `enclave create --backend
//! kubernetes --dry-run` prints), the cluster (creating, finding and deleting Pods, waiting until
//! one runs), one Pod as a `Backend` (`PodSandbox`: commands and files over the exec
//! subresource), the agent over one exec stream, what a Pod's status means for its sandbox, and
//! how an exec's status frame ends a command.

pub(crate) mod agent;
mod api;
mod cluster;
mod exec;
mod exec_status;
mod files;
mod manifest;
mod pod;
mod status;

pub(crate) use cluster::{Cluster, PodRecord};
pub(crate) use manifest::{manifests, pod_name, PodPlan};
