//! Builds `enclave-agent` (the `agent/` crate) as a static binary for the target's Linux, so
//! `enclave` can carry it inside itself and put it into sandboxes (see `src/backend/agent/`).
//!
//! It is a separate cargo run because the agent needs other flags than this crate: static
//! linking (`+crt-static`, so it runs in any image, with any libc or none) and a size-minded
//! profile. Its target directory is shared by every profile of this crate (`target/agent`), so it
//! is built once, not once per `build`/`test`/`clippy`.
//!
//! When it cannot be built (a host that is not Linux, a missing target), `enclave` is built
//! without it and every sandbox uses the `docker exec` path; `ENCLAVE_REQUIRE_AGENT=1` makes that
//! an error instead (CI sets it).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=agent/src");
    println!("cargo:rerun-if-changed=agent/Cargo.toml");
    println!("cargo:rerun-if-env-changed=ENCLAVE_REQUIRE_AGENT");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out.join("enclave-agent");
    let binary = match build_agent(&out) {
        Ok(built) => fs::read(built).expect("reading the agent just built"),
        Err(why) if env::var("ENCLAVE_REQUIRE_AGENT").as_deref() == Ok("1") => {
            panic!("enclave-agent could not be built: {why}")
        }
        Err(why) => {
            println!("cargo:warning=building without enclave-agent (sandboxes will use docker exec): {why}");
            Vec::new()
        }
    };
    fs::write(
        out.join("enclave-agent.hash"),
        format!("{:016x}", fnv1a(&binary)),
    )
    .expect("writing the agent's hash");
    fs::write(dest, binary).expect("writing the agent");
}

fn build_agent(out: &Path) -> Result<PathBuf, String> {
    let target = env::var("TARGET").map_err(|e| e.to_string())?;
    if !target.contains("-linux-") {
        return Err(format!(
            "the agent runs in Linux containers; {target} is not Linux"
        ));
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let target_dir = shared_target_dir(out).join("agent");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--locked", "--bin", "enclave-agent"])
        .args([
            "--features",
            "server",
            "--profile",
            "agent",
            "--target",
            &target,
        ])
        .arg("--manifest-path")
        .arg(manifest_dir.join("agent/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for this crate are not the agent's; the agent's own are these.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        // Under `cargo clippy` the agent is built, not linted here (clippy lints it as a
        // workspace member on its own).
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of agent/ failed ({status})"));
    }
    Ok(target_dir.join(&target).join("agent").join("enclave-agent"))
}

/// `target/` of this build: OUT_DIR is `<target>/<profile>/build/<pkg>-<hash>/out`, or one level
/// deeper with `--target`. Falls back to OUT_DIR itself.
fn shared_target_dir(out: &Path) -> PathBuf {
    out.ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map_or_else(|| out.to_path_buf(), Path::to_path_buf)
}

/// A cheap fingerprint of the agent, naming the volume that holds it in an engine.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
