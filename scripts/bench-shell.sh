#!/usr/bin/env bash
# Shell benchmark (README "Benchmarks" → "The shell"), in one run on this machine:
#   - `enclave shell ID` as a whole process on a pseudo-terminal, from the command to its first
#     `>>> ` prompt (agent and `docker exec` path), and piped `print(1)` start to exit;
#   - the same first prompt on a notebook sandbox (its kernel), when the notebook image is here;
#   - in process (benches/session.rs): `1+1` round trips in the python session through
#     `Manager::open_session`, beside a one-shot `python_executor` `print(1)`;
#   - in process (benches/notebook.rs): `1+1` in a notebook sandbox's kernel, as a
#     `notebook_executor` call and as a session input.
#
#   ./scripts/bench-shell.sh          # BENCH_RUNS=30 whole-process runs per case
set -euo pipefail
cd "$(dirname "$0")/.."

image_lines=$(./scripts/ensure-docker.sh)
for line in $image_lines; do export "${line?}"; done
cargo build --release --locked --quiet
export ENCLAVE_BIN=$PWD/target/release/enclave
work=$(mktemp -d)
export ENCLAVE_STATE_DIR=$work/state ENCLAVE_HISTORY_FILE=$work/history
export BENCH_RUNS=${BENCH_RUNS:-30}
cleanup() {
  docker ps -aq --filter "label=enclave-bench=shell" | xargs -r docker rm -f >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

python3 - <<'PY'
import os, pty, select, statistics, subprocess, time

enclave, image, runs = os.environ["ENCLAVE_BIN"], os.environ["ENCLAVE_TEST_IMAGE"], int(os.environ["BENCH_RUNS"])
notebook_image = os.environ.get("ENCLAVE_TEST_NOTEBOOK_IMAGE")

def create(agent):
    env = dict(os.environ)
    env.pop("ENCLAVE_AGENT", None)
    if agent == "off":
        env["ENCLAVE_AGENT"] = "off"
    out = subprocess.run([enclave, "create", "-q", "--image", image, "--label", "enclave-bench=shell",
                          "--tool", "python_executor"], env=env, check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip()

def create_notebook():
    out = subprocess.run([enclave, "create", "-q", "--type", "docker_notebook", "--image", notebook_image,
                          "--label", "enclave-bench=shell", "--tool", "notebook_executor"],
                         check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip()

def first_prompt(sid):
    """ms from starting `enclave shell` on a pty to its first prompt; then Ctrl-D and wait."""
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(enclave, [enclave, "shell", sid])
    seen = b""
    while b">>> " not in seen:
        ready, _, _ = select.select([fd], [], [], 30)
        if not ready:
            raise SystemExit(f"no prompt: {seen!r}")
        seen += os.read(fd, 4096)
    took = (time.perf_counter() - start) * 1000
    os.write(fd, b"\x04")
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except OSError:
            break
    os.waitpid(pid, 0)
    os.close(fd)
    return took

def piped(sid):
    start = time.perf_counter()
    subprocess.run([enclave, "shell", sid], input=b"print(1)\n", check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000

def row(name, samples):
    s = sorted(samples)
    print(f"{name:<58} {statistics.median(s):>9.2f} {s[min(len(s) - 1, int(len(s) * .95))]:>9.2f}")

on, off = create("on"), create("off")
cases = [("`enclave shell ID` to first prompt — agent", lambda: first_prompt(on)),
         ("`enclave shell ID` to first prompt — docker exec path", lambda: first_prompt(off)),
         ("`echo 'print(1)' | enclave shell ID`, whole process — agent", lambda: piped(on))]
if notebook_image:
    nb = create_notebook()
    cases.append(("`enclave shell ID` to first prompt — notebook kernel", lambda: first_prompt(nb)))
samples = {name: [] for name, _ in cases}
for i in range(runs + 2):
    for name, fn in cases:
        t = fn()
        if i >= 2:
            samples[name].append(t)
print(f"image: {image}; {runs} whole-process runs per case\n")
print(f"{'case':<58} {'p50 ms':>9} {'p95 ms':>9}")
for name, s in samples.items():
    row(name, s)
print()
PY

BENCH_RUNS=${BENCH_RUNS_SESSION:-200} cargo bench --locked --quiet --bench session
if [[ -n ${ENCLAVE_TEST_NOTEBOOK_IMAGE:-} ]]; then
  ENCLAVE_BENCH_NOTEBOOK_IMAGE=$ENCLAVE_TEST_NOTEBOOK_IMAGE BENCH_RUNS=${BENCH_RUNS_NOTEBOOK:-50} \
    cargo bench --locked --quiet --bench notebook
fi
