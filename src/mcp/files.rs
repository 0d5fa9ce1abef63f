//! `upload_file` and `download_file`: between a sandbox and the host directories `--allow-dir`
//! names, and nowhere else on the host.

use tokio_util::sync::CancellationToken;

use super::args::Args;
use super::reply::Reply;
use super::{Core, Tenant};

impl Core {
    pub(super) async fn upload_file(
        &self,
        _tenant: &Tenant,
        _args: Args,
        _cancel: &CancellationToken,
    ) -> Reply {
        Reply::failed("unavailable", "upload_file is not available yet.", "")
    }

    pub(super) async fn download_file(
        &self,
        _tenant: &Tenant,
        _args: Args,
        _cancel: &CancellationToken,
    ) -> Reply {
        Reply::failed("unavailable", "download_file is not available yet.", "")
    }
}
