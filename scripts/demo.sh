#!/usr/bin/env bash
# The main job (README "Quick start"): build enclave and show a sandbox's life on this machine:
# create -> exec -> run-time state -> rm.
set -euo pipefail
cd "$(dirname "$0")/.."

# ensure-docker.sh prints NAME=image lines (the test image, the notebook test image).
image_lines=$(./scripts/ensure-docker.sh)
for line in $image_lines; do export "${line?}"; done
cargo build --release --locked --quiet
enclave=target/release/enclave
export ENCLAVE_STATE_DIR=${ENCLAVE_STATE_DIR:-$(mktemp -d)}

set -x
id=$($enclave create --image "$ENCLAVE_TEST_IMAGE" --memory 512m)
$enclave exec "$id" 'echo hello from $(hostname); python3 --version'
$enclave exec "$id" -- python3 -c 'print(6 * 7)'
$enclave ls
status=0; $enclave exec --timeout 1 "$id" 'sleep 30' || status=$?
[ "$status" = 124 ]
$enclave rm "$id"
$enclave run --image "$ENCLAVE_TEST_IMAGE" -- python3 -c 'print("ephemeral")'
