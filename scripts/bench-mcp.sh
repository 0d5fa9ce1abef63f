#!/usr/bin/env bash
# MCP benchmark (README "Benchmarks" → "MCP"), in one run on this machine: `enclave mcp`'s start
# to its `initialize` answer over stdio, and a `shell_executor` call over MCP beside the same
# call through the `Manager` in process (benches/mcp.rs).
#
#   ./scripts/bench-mcp.sh          # BENCH_RUNS=100 for more samples
set -euo pipefail
cd "$(dirname "$0")/.."

image_lines=$(./scripts/ensure-docker.sh)
for line in $image_lines; do export "${line?}"; done
export ENCLAVE_BENCH_IMAGE=${ENCLAVE_BENCH_IMAGE:-$ENCLAVE_TEST_IMAGE}
trap 'docker ps -aq --filter label=enclave-bench=mcp | xargs -r docker rm -f >/dev/null' EXIT
cargo bench --locked --bench mcp
