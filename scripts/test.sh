#!/usr/bin/env bash
# The test command (README "Development"): make sure a Docker engine and the test image are
# there, then run every check CI runs. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# ensure-docker.sh prints ENCLAVE_TEST_IMAGE=<name> and ENCLAVE_TEST_NOTEBOOK_IMAGE=<name> once
# the engine and the images are ready.
image_lines=$(./scripts/ensure-docker.sh)
for line in $image_lines; do export "${line?}"; done
echo "test images: $ENCLAVE_TEST_IMAGE, $ENCLAVE_TEST_NOTEBOOK_IMAGE" >&2

# The agent must be built into enclave here: without it every test would pass on the exec
# path alone, and the agent would go untested.
export ENCLAVE_REQUIRE_AGENT=1

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# The agent's own tests: the protocol, the binary on this host through its socket, and (the
# ignored ones, which need Docker) as a container's init.
cargo test --locked -p enclave-agent --features server -- --include-ignored
# The Pod backend's own end-to-end unit tests (src/backend/kubernetes/pod.rs) need an API
# server: the fake's binary, for the whole run.
cargo build --locked --quiet -p enclave-fake-kube --bin fake-kube
fake_out=$(mktemp)
./target/debug/fake-kube > "$fake_out" &
fake_pid=$!
trap 'kill "$fake_pid" 2>/dev/null || true; rm -f "$fake_out"' EXIT
for _ in $(seq 100); do grep -q '^KUBECONFIG=' "$fake_out" && break; sleep 0.1; done
ENCLAVE_TEST_KUBECONFIG=$(sed -n 's/^KUBECONFIG=//p' "$fake_out")
[[ -n $ENCLAVE_TEST_KUBECONFIG ]] || { echo "the fake API server did not start" >&2; exit 1; }
export ENCLAVE_TEST_KUBECONFIG
# Every test with sandboxes reached through their agent (the default)...
cargo test --locked "$@"
# ...and the integration tests again on the `docker exec` path, which must behave the same. The
# escape tests make their sandboxes with the agent whatever ENCLAVE_AGENT says: once is enough.
ENCLAVE_AGENT=off cargo test --locked --test it "$@" -- --skip escapes::
# The fake Kubernetes API server the kubernetes backend is tested against, itself checked with
# kubectl (a second, independent client) and kube-rs.
if command -v kubectl >/dev/null; then
  echo "kubectl for the fake's tests: $(kubectl version --client 2>/dev/null | head -1)" >&2
else
  echo "WARNING: no kubectl on PATH: the fake API server's kubectl tests will say SKIPPED" >&2
fi
cargo test --locked -p enclave-fake-kube
if [[ -z ${KUBECONFIG:-} ]]; then
  echo "==> REAL-CLUSTER SUITE SKIPPED: KUBECONFIG is not set, so the kubernetes tests ran against the fake API server only" >&2
else
  echo "==> the kubernetes tests also ran against the real cluster of KUBECONFIG=$KUBECONFIG" >&2
fi
# ms-enclave's own Python client against `enclave server` (a venv from PyPI).
./scripts/test-python-client.sh
# The kubernetes backend's Pod manifests against the API's schemas, offline (1.33 and 1.37).
./scripts/validate-k8s-manifests.sh
# External MCP clients (the Python SDK, the Inspector, the conformance suite) against `enclave mcp`.
./scripts/test-mcp-clients.sh
