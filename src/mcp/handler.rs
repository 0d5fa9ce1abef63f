//! The MCP server proper: `initialize`, `tools/list` and `tools/call` for one connection.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use super::{calls, catalog, Core, Tenant};

const INSTRUCTIONS: &str = "enclave runs code in isolated sandboxes (containers). Call an \
executor (python_executor, shell_executor, ...) without sandbox_id for a one-off run in a \
throwaway sandbox; for work across several calls, sandbox_create first and pass its sandbox_id: \
files, processes and Python variables are kept. Use job_start for commands that run longer than \
one call may. Remove sandboxes with sandbox_remove when done.";

/// One connection's handler. `tenant` is fixed for stdio; over HTTP it comes with each request
/// (the bearer token's holder), set by the HTTP layer.
#[derive(Clone)]
pub(crate) struct Handler {
    core: Arc<Core>,
    tenant: Option<Tenant>,
}

impl Handler {
    pub(crate) fn new(core: Arc<Core>, tenant: Option<Tenant>) -> Self {
        Handler { core, tenant }
    }

    fn tenant_of(&self, context: &RequestContext<RoleServer>) -> Tenant {
        if let Some(tenant) = &self.tenant {
            return tenant.clone();
        }
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Tenant>())
            .cloned()
            .unwrap_or_else(|| Tenant::new("anonymous"))
    }

    fn tools(&self) -> Vec<Tool> {
        let timeout = self.core.options.call_timeout.as_secs();
        self.core
            .tools
            .iter()
            .map(|name| {
                let entry = catalog::entry(name, timeout);
                let annotations = ToolAnnotations::new()
                    .read_only(entry.read_only)
                    .destructive(matches!(entry.name, "sandbox_remove" | "job_kill"));
                Tool::new(entry.name, entry.description, entry.input_schema).annotate(annotations)
            })
            .collect()
    }
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("enclave", env!("CARGO_PKG_VERSION"))
                    .with_title("enclave sandboxes"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(name) = self.core.tools.iter().copied().find(|t| *t == request.name) else {
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool `{}`; this server offers {}",
                    request.name,
                    self.core.tools.join(", ")
                ),
                None,
            ));
        };
        let tenant = self.tenant_of(&context);
        let args = request.arguments.unwrap_or_default();
        let reply = calls::call(&self.core, &tenant, name, args, &context).await;
        Ok(reply.into_result().into())
    }
}
