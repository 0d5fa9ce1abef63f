#!/usr/bin/env bash
# Agent benchmark (README "Benchmarks" → "The agent"): sandboxes reached through their
# in-sandbox agent against the `docker exec` path (ENCLAVE_AGENT=off) and raw `docker exec`, in
# one run on this machine:
#   - `enclave exec ID true` as a whole process, beside `docker exec CTR true`;
#   - create → first command done;
#   - through `enclave server`: one client's p50 of shell_executor `echo hi`, and 16 concurrent
#     clients on 16 sandboxes (calls per second);
#   - in process (benches/agent.rs): tool calls, 1 KB file write + read, a 10 MB read beside a
#     local `cat`, the agent's RSS and binary size.
# Samples alternate between the paths, so a drift in the engine's speed hits them alike.
#
#   ./scripts/bench-agent.sh          # BENCH_RUNS=30 per whole-process case, BENCH_CALLS=400
set -euo pipefail
cd "$(dirname "$0")/.."

# ensure-docker.sh prints NAME=image lines (the test image, the notebook test image).
image_lines=$(./scripts/ensure-docker.sh)
for line in $image_lines; do export "${line?}"; done
cargo build --release --locked --quiet
export ENCLAVE_BIN=$PWD/target/release/enclave
work=$(mktemp -d)
export ENCLAVE_STATE_DIR=$work/state BENCH_WORK=$work
export BENCH_RUNS=${BENCH_RUNS:-30} BENCH_CALLS=${BENCH_CALLS:-400}
cleanup() {
  pkill -TERM -f "$work/server-" 2>/dev/null || true
  docker ps -aq --filter "label=enclave-bench=agent" | xargs -r docker rm -f >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

python3 - <<'PY'
import json, os, statistics, subprocess, threading, time, urllib.request

enclave, image = os.environ["ENCLAVE_BIN"], os.environ["ENCLAVE_TEST_IMAGE"]
runs, calls, work = int(os.environ["BENCH_RUNS"]), int(os.environ["BENCH_CALLS"]), os.environ["BENCH_WORK"]
LABEL = ["--label", "enclave-bench=agent"]

def env(agent):
    e = dict(os.environ)
    e.pop("ENCLAVE_AGENT", None)
    if agent == "off":
        e["ENCLAVE_AGENT"] = "off"
    return e

def run(argv, agent="on", **kw):
    return subprocess.run(argv, check=True, env=env(agent), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, **kw).stdout

def create(agent, tools=()):
    args = [enclave, "create", "-q", "--image", image, *LABEL]
    for t in tools:
        args += ["--tool", t]
    return run(args, agent).strip()

def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * q))]

def row(name, samples, unit="ms"):
    print(f"{name:<46} {statistics.median(samples):>9.2f} {pct(samples, .95):>9.2f}  {unit}")
    return statistics.median(samples)

def alternate(cases, n):
    """Runs each case's function n times, interleaved; returns samples (ms) per case."""
    out = {name: [] for name, _ in cases}
    for i in range(n + 2):
        for name, fn in cases:
            t = time.perf_counter()
            fn()
            if i >= 2:
                out[name].append((time.perf_counter() - t) * 1000)
    return out

print(f"image: {image}; {runs} runs per whole-process case\n")
print(f"{'case':<46} {'p50':>9} {'p95':>9}")
on, off = create("on"), create("off")
try:
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    s = alternate([
        ("enclave exec ID true — agent", lambda: subprocess.run([enclave, "exec", on, "--", "true"], env=env("on"), **quiet)),
        ("enclave exec ID true — exec path", lambda: subprocess.run([enclave, "exec", off, "--", "true"], env=env("on"), **quiet)),
        ("docker exec CTR true", lambda: subprocess.run(["docker", "exec", f"enclave-{on}", "true"], **quiet)),
    ], runs)
    for k, v in s.items():
        row(k, v)
finally:
    subprocess.run([enclave, "rm", on, off], stdout=subprocess.DEVNULL)

def first_command(agent):
    def go():
        sid = create(agent)
        subprocess.run([enclave, "exec", sid, "--", "true"], env=env(agent), **quiet)
        subprocess.run([enclave, "rm", sid], stdout=subprocess.DEVNULL)
    return go
s = alternate([("create -> first command done — agent", first_command("on")),
               ("create -> first command done — exec path", first_command("off"))], max(5, runs // 4))
a, b = (row(k, v) for k, v in s.items())
print(f"{'':<46} agent / exec path = {a / b:.2f}x (target <= 1.05x)")

def start_server(agent):
    log = open(f"{work}/server-{agent}.log", "w+")
    proc = subprocess.Popen([enclave, "server", "--port", "0", "--state-dir", f"{work}/server-{agent}",
                             "--max-sandboxes", "64", "--cleanup-on-exit"],
                            env=env(agent), stderr=log, stdout=subprocess.DEVNULL)
    for _ in range(400):
        log.seek(0)
        text = log.read()
        if "listening on http://" in text:
            url = text.split("listening on ")[1].split()[0].strip('"')
            return proc, url
        time.sleep(0.05)
    raise SystemExit(f"server did not start: {text}")

def post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())

def server_create(url):
    cfg = {"image": image, "tools_config": {"shell_executor": {}}, "labels": {"enclave-bench": "agent"}}
    return post(url, "/sandbox/create?sandbox_type=docker", cfg)["sandbox_id"]

def echo(url, sid):
    r = post(url, "/sandbox/tool/execute", {"sandbox_id": sid, "tool_name": "shell_executor",
                                           "parameters": {"command": "echo hi"}})
    assert r["status"] == "success", r

print()
servers = {agent: start_server(agent) for agent in ("on", "off")}
try:
    boxes = {agent: [server_create(url) for _ in range(16)] for agent, (_, url) in servers.items()}
    one = alternate([(f"server: shell_executor `echo hi`, 1 client — {'agent' if a == 'on' else 'exec path'}",
                      (lambda u, b: lambda: echo(u, b[0]))(servers[a][1], boxes[a])) for a in ("on", "off")],
                    runs * 3)
    for k, v in one.items():
        row(k, v)

    def throughput(url, sids):
        per = calls // len(sids)
        def client(sid):
            for _ in range(per):
                echo(url, sid)
        threads = [threading.Thread(target=client, args=(sid,)) for sid in sids]
        t = time.perf_counter()
        for th in threads: th.start()
        for th in threads: th.join()
        return per * len(sids) / (time.perf_counter() - t)
    rates = {"on": [], "off": []}
    for _ in range(3):
        for a in ("on", "off"):
            rates[a].append(throughput(servers[a][1], boxes[a]))
    for a in ("on", "off"):
        name = f"server: 16 clients, 16 sandboxes — {'agent' if a == 'on' else 'exec path'}"
        print(f"{name:<46} {statistics.median(rates[a]):>9.1f} {'':>9}  calls/s (target >= 200 with the agent)")
finally:
    for proc, _ in servers.values():
        proc.terminate()
    for proc, _ in servers.values():
        proc.wait(timeout=60)
PY

echo
BENCH_RUNS=${BENCH_RUNS} cargo bench --locked --quiet --bench agent
