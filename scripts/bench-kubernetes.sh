#!/usr/bin/env bash
# Kubernetes backend benchmark (README "Benchmarks" → "Kubernetes"), in one run: create → first
# exec, and one exec by plain exec against the agent over one exec stream (benches/kubernetes.rs).
# Against the fake API server (Pods as local Docker containers) unless KUBECONFIG names a real
# cluster; the output says which.
#
#   ./scripts/bench-kubernetes.sh          # BENCH_RUNS=100 for more samples
set -euo pipefail
cd "$(dirname "$0")/.."

image_lines=$(./scripts/ensure-docker.sh)
for line in $image_lines; do export "${line?}"; done
export ENCLAVE_BENCH_IMAGE=${ENCLAVE_BENCH_IMAGE:-$ENCLAVE_TEST_IMAGE}
cargo bench --locked --bench kubernetes
