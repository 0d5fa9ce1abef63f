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


async def measure(name, url, pid):
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as s:
        await wait_ready(s, url)
        await asyncio.sleep(1)
        idle = sum(rss_mib(p) for p in tree_pids(pid))
        start = time.perf_counter()
        sid = await create(s, url)
        await call(s, url, sid)
        first_call = (time.perf_counter() - start) * 1000
        for _ in range(5):
            await call(s, url, sid)
        levels = {c: await load(s, url, sid, c, pid) for c in (1, 4, 16)}
        deletes = []
        for _ in range(3):
            victim = await create(s, url)
            start = time.perf_counter()
            async with s.delete(f"{url}/sandbox/{victim}") as r:
                assert r.status == 200, await r.text()
            deletes.append((time.perf_counter() - start) * 1000)
        async with s.delete(f"{url}/sandbox/{sid}") as r:
            assert r.status == 200
        return {"name": name, "idle": idle, "first_call": first_call, "levels": levels,
                "delete": statistics.median(deletes)}


def report(results, floor16, enclave16, rm_ms):
    e, m = results
    print(f"calls per client level: {CALLS}; image: {IMAGE}\n")
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
    print(f"\n16 clients, alternating 3 rounds each (medians): raw Docker exec floor {floor16:.1f} "
          f"calls/s, enclave {enclave16:.1f} calls/s = {enclave16 / floor16:.2f}x of the floor")
    print(f"raw `docker rm -f`: {rm_ms:.0f} ms; enclave delete: {e['delete'] / rm_ms:.2f}x of it")


async def floor_beside_enclave(url, pid, rounds=3):
    """16-client rates of the raw exec floor and of enclave, alternating, so drift in the engine's
    speed hits both alike; the medians."""
    floors, rates = [], []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:
        sid = await create(s, url)
        for _ in range(rounds):
            floors.append(await docker_exec_floor(16))
            rates.append((await load(s, url, sid, 16, pid))["rate"])
        async with s.delete(f"{url}/sandbox/{sid}") as r:
            assert r.status == 200
    return statistics.median(floors), statistics.median(rates)


async def main():
    enclave_url, enclave_pid = os.environ["ENCLAVE_URL"], int(os.environ["ENCLAVE_PID"])
    results = [
        await measure("enclave", enclave_url, enclave_pid),
        await measure("ms-enclave", os.environ["MS_URL"], int(os.environ["MS_PID"])),
    ]
    floor16, enclave16 = await floor_beside_enclave(enclave_url, enclave_pid)
    report(results, floor16, enclave16, docker_rm_ms())


asyncio.run(main())
