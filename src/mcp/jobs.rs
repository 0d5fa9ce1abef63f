//! Background jobs: `job_start`, `job_read`, `job_kill`.

use tokio_util::sync::CancellationToken;

use super::args::Args;
use super::reply::Reply;
use super::{Core, Tenant};

#[derive(Default)]
pub(crate) struct Jobs {}

impl Jobs {
    pub(super) async fn kill_all(&self) {}
}

impl Core {
    pub(super) async fn start_job(&self, _tenant: &Tenant, _args: Args) -> Reply {
        Reply::failed("unavailable", "job_start is not available yet.", "")
    }

    pub(super) async fn read_job(
        &self,
        _tenant: &Tenant,
        _args: Args,
        _cancel: &CancellationToken,
    ) -> Reply {
        Reply::failed("unavailable", "job_read is not available yet.", "")
    }

    pub(super) async fn kill_job(&self, _tenant: &Tenant, _args: Args) -> Reply {
        Reply::failed("unavailable", "job_kill is not available yet.", "")
    }
}
