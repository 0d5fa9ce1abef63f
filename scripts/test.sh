#!/usr/bin/env bash
# The test command (README "Development"): make sure a Docker engine and the test image are
# there, then run every check CI runs. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# ensure-docker.sh prints ENCLAVE_TEST_IMAGE=<name> once the engine and the image are ready.
image_line=$(./scripts/ensure-docker.sh)
export "${image_line?}"
echo "test image: $ENCLAVE_TEST_IMAGE" >&2

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Integration tests start many containers; two at a time suits a 2-core machine.
cargo test --locked "$@"
# ms-enclave's own Python client against `enclave server` (a venv from PyPI).
./scripts/test-python-client.sh
