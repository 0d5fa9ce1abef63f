//! `enclave create`: make a sandbox and print its id.

use std::time::Instant;

use anyhow::Result;
use clap::Args;

use super::sandbox_args::SandboxArgs;
use super::volcengine_args::VolcengineArgs;
use super::{BackendChoice, Ctx};
use chrono::Utc;

use crate::backend::kubernetes::{manifests, PodPlan};
use crate::error::Error;
use crate::manager::CreateRequest;
use crate::model::{new_sandbox_id, DockerSandboxConfig, SandboxType};
use crate::output::{PullProgress, Spinner};
use crate::state::StateStore;

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Sandbox type: docker; docker_notebook (a Jupyter kernel for notebook_executor; default image
    /// enclave-notebook:1, built when missing); or volcengine (a SandboxFusion service's run_code
    /// API) [default: docker]
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_sandbox_type)]
    pub(crate) sandbox_type: Option<SandboxType>,
    /// With --backend kubernetes: print the manifests a create would send (a JSON List), and
    /// create nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) sandbox: SandboxArgs,
    #[command(flatten)]
    pub(crate) volcengine: VolcengineArgs,
}

pub(crate) async fn run(args: CreateArgs, ctx: &Ctx) -> Result<u8> {
    if args.dry_run {
        return print_kubernetes_manifests(&args, ctx).await;
    }
    let sandbox_type = args.sandbox_type.unwrap_or(SandboxType::Docker);
    let (config, volcengine) = if sandbox_type == SandboxType::Volcengine {
        let volcengine = args.volcengine.to_config(&args.sandbox)?;
        (DockerSandboxConfig::default(), Some(volcengine))
    } else {
        args.volcengine.check_unused(sandbox_type)?;
        (args.sandbox.to_config()?, None)
    };
    for warning in config.warnings() {
        ctx.output.warn(&warning);
    }
    let manager = ctx.manager().await?;
    let started = Instant::now();
    let what = match (&volcengine, sandbox_type) {
        (Some(v), _) => format!("creating a sandbox on {}", v.host()),
        (None, SandboxType::DockerNotebook) => "creating a notebook sandbox".to_string(),
        (None, _) => format!("creating a sandbox from {}", config.image),
    };
    let request = CreateRequest {
        sandbox_type,
        config,
        volcengine,
        extra_labels: Vec::new(),
    };
    let progress = PullProgress::new(&ctx.output);
    let info = {
        let _spinner = Spinner::new(&ctx.output, &what);
        manager.create(request, &progress, &ctx.cancel).await
    };
    // A cancel is a signal's doing, whatever step it cut short.
    let info = info.map_err(|e| {
        if ctx.cancel.is_cancelled() {
            e.context(ctx.interrupted())
        } else {
            e
        }
    })?;
    ctx.output.note(&format!(
        "created {} in {:.1}s",
        info.id,
        started.elapsed().as_secs_f64()
    ));
    if ctx.output.json {
        ctx.output.json(&info).await?;
    } else {
        ctx.output.line(&info.id).await?;
    }
    Ok(0)
}

/// `--backend kubernetes --dry-run`: the Pod (and NetworkPolicy) a create would send, as one
/// JSON `List` that `kubectl apply -f -` takes.
async fn print_kubernetes_manifests(args: &CreateArgs, ctx: &Ctx) -> Result<u8> {
    if ctx.backend != BackendChoice::Kubernetes {
        return Err(Error::Usage(
            "--dry-run prints the Kubernetes manifests of a sandbox: add --backend kubernetes"
                .into(),
        )
        .into());
    }
    let sandbox_type = args.sandbox_type.unwrap_or(SandboxType::Docker);
    if sandbox_type != SandboxType::Docker {
        return Err(Error::Usage(format!(
            "--type {}: the kubernetes backend makes `docker`-type sandboxes only, so far",
            sandbox_type.as_str()
        ))
        .into());
    }
    args.volcengine.check_unused(sandbox_type)?;
    let config = args.sandbox.to_config()?;
    let labels: Vec<(String, String)> = config
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let id = new_sandbox_id();
    let owner = StateStore::from_env()?.owner();
    let tools = config.tool_names();
    let plan = PodPlan {
        id: &id,
        // Offline: the context's namespace is not looked up.
        namespace: ctx.namespace.as_deref().unwrap_or("default"),
        sandbox_type,
        config: &config,
        tools: &tools,
        created: Utc::now(),
        owner: &owner,
        extra_labels: &labels,
        ttl: None,
        agent_image: ctx.agent_image.as_deref(),
    };
    let items = manifests(&plan).map_err(Error::InvalidConfig)?;
    let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items });
    ctx.output
        .line(&serde_json::to_string_pretty(&list)?)
        .await?;
    Ok(0)
}

/// `--type`'s value: a sandbox type `create` can make.
pub(crate) fn parse_sandbox_type(text: &str) -> Result<SandboxType, String> {
    match SandboxType::parse(text) {
        Some(t) => Ok(t),
        None => Err(format!(
            "`{text}` is not a sandbox type `create` makes; expected docker, docker_notebook or volcengine"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_create_makes() {
        assert_eq!(
            parse_sandbox_type("volcengine"),
            Ok(SandboxType::Volcengine)
        );
        assert_eq!(parse_sandbox_type("docker"), Ok(SandboxType::Docker));
        assert_eq!(
            parse_sandbox_type("docker_notebook"),
            Ok(SandboxType::DockerNotebook)
        );
        assert!(parse_sandbox_type("dummy")
            .unwrap_err()
            .contains("expected docker, docker_notebook or volcengine"));
    }
}
