"""The server benchmark's measurements (run by scripts/bench-server.sh, which starts both servers)."""

import asyncio
import os
import statistics
import subprocess
import time

import aiohttp

IMAGE = os.environ["ENCLAVE_TEST_IMAGE"]
CALLS = int(os.environ["BENCH_CALLS"])
CONFIG = {
    "image": IMAGE,
    # `docker import` images have no command; ms-enclave needs one that keeps running.
    "command": ["sleep", "infinity"],
    "tools_config": {"shell_executor": {}},
    "labels": {"enclave-bench": "1"},
}
CALL = {"tool_name": "shell_executor", "parameters": {"command": "echo hi"}}
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid, key="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tree_pids(pid):
    """The server and its children (uvicorn runs in one process; enclave has none)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [pid] + [int(p) for p in out.split()]


async def wait_ready(session, url):
    for _ in range(300):
        try:
            async with session.get(f"{url}/health") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"{url} never became healthy")


async def create(session, url):
    async with session.post(f"{url}/sandbox/create", params={"sandbox_type": "docker"}, json=CONFIG) as r:
        body = await r.json()
        assert r.status == 200, body
        return body["sandbox_id"]


async def call(session, url, sid):
    start = time.perf_counter()
    async with session.post(f"{url}/sandbox/tool/execute", json={"sandbox_id": sid, **CALL}) as r:
        body = await r.json()
    assert r.status == 200 and body["status"] == "success", body
    return (time.perf_counter() - start) * 1000


async def load(session, url, sid, clients, pid):
    per_client = max(CALLS // clients, 5)
    latencies = []
    peak = 0.0

    async def client():
        for _ in range(per_client):
            latencies.append(await call(session, url, sid))

    async def sample_rss():
        nonlocal peak
        while True:
            peak = max(peak, sum(rss_mib(p) for p in tree_pids(pid)))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample_rss())
    cpu0 = sum(cpu_seconds(p) for p in tree_pids(pid))
    start = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(clients)])
    wall = time.perf_counter() - start
    cpu = sum(cpu_seconds(p) for p in tree_pids(pid)) - cpu0
    sampler.cancel()
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p95": latencies[int(len(latencies) * 0.95) - 1],
        "rate": len(latencies) / wall,
        "cpu_ms": cpu * 1000 / len(latencies),
        "peak": peak,
    }


async def docker_exec_floor(clients):
    """Raw engine exec (create, start, inspect) over the socket: what any server pays per call."""
    ctr = subprocess.run(["docker", "run", "-d", "--label", "enclave-bench=1", IMAGE, "sleep", "infinity"],
                         check=True, capture_output=True, text=True).stdout.strip()
    conn = aiohttp.UnixConnector(path="/var/run/docker.sock")
    try:
        async with aiohttp.ClientSession(connector=conn) as s:
            per_client = max(CALLS // clients, 5)

            async def one():
                async with s.post(f"http://d/containers/{ctr}/exec",
                                  json={"Cmd": ["sh", "-c", "echo hi"], "AttachStdout": True,
                                        "AttachStderr": True}) as r:
                    eid = (await r.json())["Id"]
                async with s.post(f"http://d/exec/{eid}/start", json={"Detach": False, "Tty": False}) as r:
                    await r.read()
                async with s.get(f"http://d/exec/{eid}/json") as r:
                    assert (await r.json())["ExitCode"] == 0

            async def client():
                for _ in range(per_client):
                    await one()

            start = time.perf_counter()
            await asyncio.gather(*[client() for _ in range(clients)])
            return per_client * clients / (time.perf_counter() - start)
    finally:
        subprocess.run(["docker", "rm", "-f", ctr], capture_output=True)


def docker_rm_ms():
    samples = []
    for _ in range(5):
        ctr = subprocess.run(["docker", "run", "-d", "--init", "--label", "enclave-bench=1", IMAGE,
                              "sleep", "infinity"], check=True, capture_output=True, text=True).stdout.strip()
        start = time.perf_counter()
        subprocess.run(["docker", "rm", "-f", ctr], check=True, capture_output=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


class Target:
    """One server under test, with a sandbox to call."""

    def __init__(self, name, url, pid, session):
        self.name, self.url, self.pid, self.s = name, url, pid, session
        self.sid = None


async def first_call_ms(t):
    """Create a sandbox, run one call in it: what a caller waits for before its first result."""
    start = time.perf_counter()
    sid = await create(t.s, t.url)
    await call(t.s, t.url, sid)
    took = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    async with t.s.delete(f"{t.url}/sandbox/{sid}") as r:
        assert r.status == 200, await r.text()
    return took, (time.perf_counter() - start) * 1000


def merge(runs):
    """Medians over rounds of `load` results; the peak RSS is the highest seen."""
    keys = ("p50", "p95", "rate", "cpu_ms")
    merged = {k: statistics.median(r[k] for r in runs) for k in keys}
    merged["peak"] = max(r["peak"] for r in runs)
    return merged


async def measure_all(targets, rounds):
    """Every measurement alternates between the servers (and, for 16 clients, the raw exec
    floor), round after round, so a drift in the engine's speed hits all alike; medians."""
    for t in targets:
        await wait_ready(t.s, t.url)
    await asyncio.sleep(1)
    idle = {t.name: sum(rss_mib(p) for p in tree_pids(t.pid)) for t in targets}
    firsts = {t.name: [] for t in targets}
    deletes = {t.name: [] for t in targets}
    for _ in range(rounds + 2):
        for t in targets:
            first, deleted = await first_call_ms(t)
            firsts[t.name].append(first)
            deletes[t.name].append(deleted)
    for t in targets:
        t.sid = await create(t.s, t.url)
        for _ in range(5):
            await call(t.s, t.url, t.sid)
    levels = {t.name: {} for t in targets}
    floors = []
    for c in (1, 4, 16):
        runs = {t.name: [] for t in targets}
        for _ in range(rounds):
            if c == 16:
                floors.append(await docker_exec_floor(16))
            for t in targets:
                runs[t.name].append(await load(t.s, t.url, t.sid, c, t.pid))
        for t in targets:
            levels[t.name][c] = merge(runs[t.name])
    for t in targets:
        async with t.s.delete(f"{t.url}/sandbox/{t.sid}") as r:
            assert r.status == 200
    return [{"name": t.name, "idle": idle[t.name], "first_call": statistics.median(firsts[t.name]),
             "levels": levels[t.name], "delete": statistics.median(deletes[t.name])}
            for t in targets], statistics.median(floors)


def report(results, floor16, rm_ms):
    e, m = results
    print(f"calls per client level and round: {CALLS}; rounds: {os.environ.get('BENCH_ROUNDS', '3')} "
          f"(medians; the servers alternate); image: {IMAGE}\n")
    print(f"{'':<34} {'enclave':>12} {'ms-enclave':>12} {'ratio':>8}")

    def line(label, a, b, fmt="{:.1f}"):
        ratio = b / a if a else float("nan")
        print(f"{label:<34} {fmt.format(a):>12} {fmt.format(b):>12} {ratio:>7.2f}x")

    for c in (1, 4, 16):
        el, ml = e["levels"][c], m["levels"][c]
        line(f"tool call p50 ms, {c} client(s)", el["p50"], ml["p50"])
        line(f"tool call p95 ms, {c} client(s)", el["p95"], ml["p95"])
        print(f"{f'calls/s, {c} client(s)':<34} {el['rate']:>12.1f} {ml['rate']:>12.1f} "
              f"{el['rate'] / ml['rate']:>7.2f}x")
    for c in (1, 4, 16):
        line(f"server CPU ms per call, {c}", e["levels"][c]["cpu_ms"], m["levels"][c]["cpu_ms"], "{:.2f}")
    line("RSS MiB idle", e["idle"], m["idle"])
    line("RSS MiB peak under load", max(l["peak"] for l in e["levels"].values()),
         max(l["peak"] for l in m["levels"].values()))
    line("create to first call ms", e["first_call"], m["first_call"], "{:.0f}")
    line("delete ms", e["delete"], m["delete"], "{:.0f}")
    enclave16 = e["levels"][16]["rate"]
    print(f"\n16 clients: raw Docker exec floor {floor16:.1f} calls/s (median of the same rounds); "
          f"enclave {enclave16:.1f} calls/s = {enclave16 / floor16:.2f}x of the floor")
    print(f"raw `docker rm -f`: {rm_ms:.0f} ms; enclave delete: {e['delete'] / rm_ms:.2f}x of it")


async def main():
    timeout = aiohttp.ClientTimeout(total=600)
    sessions = [aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64))
                for _ in range(2)]
    targets = [
        Target("enclave", os.environ["ENCLAVE_URL"], int(os.environ["ENCLAVE_PID"]), sessions[0]),
        Target("ms-enclave", os.environ["MS_URL"], int(os.environ["MS_PID"]), sessions[1]),
    ]
    try:
        results, floor16 = await measure_all(targets, int(os.environ.get("BENCH_ROUNDS", "3")))
    finally:
        for s in sessions:
            await s.close()
    report(results, floor16, docker_rm_ms())


asyncio.run(main())
