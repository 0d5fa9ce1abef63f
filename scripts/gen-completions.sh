#!/usr/bin/env bash
# Regenerates completions/ from the CLI definition; a test fails when they drift.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin=target/debug/enclave
$bin completions bash > completions/enclave.bash
$bin completions zsh > completions/_enclave
$bin completions fish > completions/enclave.fish
echo "completions/ regenerated" >&2
