#!/usr/bin/env bash
# Speed benchmark (README "Benchmarks"): enclave against the docker CLI on this machine, in one
# run, as whole processes. Prints the median and spread of N runs each (default 20).
#
#   ./scripts/bench.sh            # CLI comparisons, then the in-process tool latencies
#   BENCH_RUNS=50 ./scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# ensure-docker.sh prints NAME=image lines (the test image, the notebook test image).
image_lines=$(./scripts/ensure-docker.sh)
for line in $image_lines; do export "${line?}"; done
cargo build --release --locked --quiet
export ENCLAVE_BIN=$PWD/target/release/enclave
export ENCLAVE_STATE_DIR=$(mktemp -d)
export BENCH_RUNS=${BENCH_RUNS:-20}
trap 'rm -rf "$ENCLAVE_STATE_DIR"' EXIT

python3 - <<'PY'
import os, statistics, subprocess, time

enclave, image, runs = os.environ["ENCLAVE_BIN"], os.environ["ENCLAVE_TEST_IMAGE"], int(os.environ["BENCH_RUNS"])

def timed(argv):
    samples = []
    for _ in range(runs + 2):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append((time.perf_counter() - start) * 1000)
    return sorted(samples[2:])  # the first two warm caches

def row(name, samples):
    p90 = samples[int(len(samples) * 0.9) - 1]
    print(f"{name:<34} {statistics.median(samples):>9.1f} {samples[0]:>9.1f} {p90:>9.1f}")
    return statistics.median(samples)

sandbox = subprocess.run([enclave, "create", "-q", "--image", image], check=True,
                         capture_output=True, text=True).stdout.strip()
try:
    print(f"runs per command: {runs}; image: {image}\n")
    print(f"{'command':<34} {'median ms':>9} {'min':>9} {'p90':>9}")
    e = row("enclave exec ID true", timed([enclave, "exec", sandbox, "--", "true"]))
    d = row("docker exec CTR true", timed(["docker", "exec", f"enclave-{sandbox}", "true"]))
    er = row("enclave run IMAGE true", timed([enclave, "run", "--image", image, "--", "true"]))
    dr = row("docker run --rm IMAGE true", timed(["docker", "run", "--rm", image, "true"]))
    print(f"\nexec: enclave/docker = {e / d:.2f}x   run: enclave/docker = {er / dr:.2f}x   (target: <= 1.0x)")
finally:
    subprocess.run([enclave, "rm", sandbox], stdout=subprocess.DEVNULL)
PY

if [ -f benches/tools.rs ]; then
  echo
  cargo bench --locked --quiet --bench tools
fi
