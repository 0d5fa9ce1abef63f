//! Streamable HTTP: `enclave mcp --http`.

use std::sync::Arc;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::Core;

#[derive(Debug, Clone)]
pub(crate) struct HttpOptions {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) token_file: Option<std::path::PathBuf>,
    /// Browser origins allowed besides none (`--allow-origin`).
    pub(crate) allowed_origins: Vec<String>,
}

pub(super) async fn serve(
    _core: Arc<Core>,
    _options: HttpOptions,
    _cancel: CancellationToken,
) -> Result<()> {
    anyhow::bail!("--http is not available yet")
}
