#!/usr/bin/env bash
# Server benchmark (README "Benchmarks"): `enclave server` against ms-enclave 0.0.8's own server
# (`ms-enclave server`, from a venv made from PyPI) and against the raw Docker exec floor, in one
# run on this machine. Both servers get the same image and the same calls:
#   - p50/p95 of POST /sandbox/tool/execute (shell_executor `echo hi`) at 1, 4 and 16
#     concurrent clients on one sandbox, and the calls per second;
#   - the server's CPU per call and its RSS idle and at peak under that load;
#   - create-to-first-call, and delete (beside a raw `docker rm -f`).
# Each measurement alternates between the two servers (and the raw exec floor at 16 clients) for
# BENCH_ROUNDS rounds, and the medians are reported, so a drift in the engine hits all alike.
#
#   ./scripts/bench-server.sh        # BENCH_CALLS=150 calls per level and round, BENCH_ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."

# ensure-docker.sh prints NAME=image lines (the test image, the notebook test image).
image_lines=$(./scripts/ensure-docker.sh)
for line in $image_lines; do export "${line?}"; done
venv=target/pyvenv
if [[ ! -x $venv/bin/ms-enclave ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'ms-enclave[docker]==0.0.8' 'pytest>=8'
fi
cargo build --release --locked --quiet
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  docker ps -aq --filter "label=enclave-bench=1" | xargs -r docker rm -f >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

ENCLAVE_STATE_DIR=$work/state target/release/enclave server --port 0 --state-dir "$work/server" \
  --cleanup-on-exit 2> "$work/enclave.log" &
pids+=($!)
enclave_pid=$!
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG_LEVEL=WARNING "$venv/bin/ms-enclave" server --host 127.0.0.1 --port "$port" --log-level warning \
  > "$work/ms.log" 2>&1 &
pids+=($!)
ms_pid=$!
for _ in $(seq 200); do
  grep -q 'listening on' "$work/enclave.log" 2>/dev/null && break
  sleep 0.05
done
enclave_url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/enclave.log" | head -1)

ENCLAVE_URL=$enclave_url ENCLAVE_PID=$enclave_pid MS_URL=http://127.0.0.1:$port MS_PID=$ms_pid \
  BENCH_CALLS=${BENCH_CALLS:-150} BENCH_ROUNDS=${BENCH_ROUNDS:-3} "$venv/bin/python" benches/server.py
