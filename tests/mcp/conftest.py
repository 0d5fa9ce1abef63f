"""Shared fixtures for the external-client tests of `enclave mcp` (the official `mcp` Python SDK
from PyPI). Run by `scripts/test-mcp-clients.sh`, which sets:

- ENCLAVE_BIN: the enclave binary (target/debug/enclave)
- ENCLAVE_TEST_IMAGE: the image every sandbox uses (`enclave mcp --image`)
- ENCLAVE_TEST_LABEL: a random prefix; each server gets `--label enclave-test=<prefix>-<n>`

Every server runs with its own temporary ENCLAVE_STATE_DIR, and every test checks afterwards that
no container with its server's label is left (then removes whatever is).
"""

import contextlib
import itertools
import os
import re
import subprocess
import time
from pathlib import Path

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

ENCLAVE = os.environ.get("ENCLAVE_BIN", "target/debug/enclave")
IMAGE = os.environ["ENCLAVE_TEST_IMAGE"]
LABEL_PREFIX = os.environ["ENCLAVE_TEST_LABEL"]

# The two protocol versions `enclave mcp` serves. The Python SDK (mcp 2.x) speaks both: `legacy`
# mode is the initialize handshake (it offers 2025-11-25, its newest handshake version), and a
# modern version string adopts 2026-07-28's stateless per-request envelope without a probe.
VERSIONS = {"2025-11-25": "legacy", "2026-07-28": "2026-07-28"}

_counter = itertools.count()


def new_label():
    return f"{LABEL_PREFIX}-{next(_counter)}"


def containers(label):
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=enclave-test={label}"],
        check=True, capture_output=True, text=True,
    ).stdout
    return out.split()


def remove_containers(label):
    ids = containers(label)
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
    return ids


def wait_for(predicate, timeout, interval=0.2):
    """Polls `predicate` until it is truthy or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def server_env(state_dir):
    """What `enclave mcp` needs from our environment: the SDK's stdio client passes on only a
    few safe variables (HOME, PATH, ...), so Docker's and enclave's own are handed over here."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("ENCLAVE_", "DOCKER_"))}
    env["ENCLAVE_STATE_DIR"] = str(state_dir)
    env.pop("ENCLAVE_SERVER", None)  # local Docker, never a remote server a developer set
    return env


def mcp_args(label, *extra):
    return ["mcp", "--image", IMAGE, "--label", f"enclave-test={label}", *extra]


class Server:
    """One `enclave mcp` for a test: how to connect a client to it, and its label."""

    def __init__(self, transport, version, label, state_dir):
        self.transport = transport
        self.version = version
        self.label = label
        self.state_dir = state_dir
        self.url = None
        self.token = None
        self.proc = None
        self.log = None

    def client(self, token=None, mode=None, **kwargs):
        """A client speaking this server's version (or negotiating per `mode`); over HTTP it
        sends `token` (by default the server's first) as its bearer."""
        mode = mode or VERSIONS[self.version]
        if self.transport == "stdio":
            params = StdioServerParameters(
                command=ENCLAVE, args=mcp_args(self.label), env=server_env(self.state_dir))
            return Client(params, mode=mode, **kwargs)
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=httpx2.Timeout(30, read=300))
        return _HttpClient(self.url, http, mode, kwargs)


class _HttpClient:
    """A `Client` over streamable HTTP with our bearer token, closing its httpx client after."""

    def __init__(self, url, http, mode, kwargs):
        self._http = http
        self._client = Client(streamable_http_client(url, http_client=http), mode=mode, **kwargs)

    async def __aenter__(self):
        await self._http.__aenter__()
        return await self._client.__aenter__()

    async def __aexit__(self, *exc):
        try:
            await self._client.__aexit__(*exc)
        finally:
            await self._http.__aexit__(*exc)


@contextlib.contextmanager
def http_server(tmp, label, *extra, tokens=1):
    """Starts `enclave mcp --http --port 0` with `tokens` bearer tokens in a --token-file (none
    when 0) and reads the address it prints on stderr. Yields (process, url, tokens, log)."""
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    log_path = tmp / "mcp-http.log"
    args = [ENCLAVE, *mcp_args(label, "--http", "--port", "0", *extra)]
    toks = [os.urandom(24).hex() for _ in range(tokens)]
    if toks:
        (tmp / "tokens").write_text("".join(t + "\n" for t in toks))
        args += ["--token-file", str(tmp / "tokens")]
    env = {**os.environ, **server_env(state)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    try:
        url = None
        pattern = re.compile(r"listening on (http://\S+/mcp)")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            m = pattern.search(log_path.read_text())
            if m:
                url = m.group(1)
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        assert url, f"enclave mcp --http did not say where it listens:\n{log_path.read_text()}"
        yield proc, url, toks, log_path
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def _http_servers(tmp_path_factory):
    """One HTTP server per protocol version for the whole run (starting one per test would only
    cost time); each test still checks its label is empty when it ends."""
    stack = contextlib.ExitStack()
    servers = {}

    def get(version):
        if version not in servers:
            tmp = tmp_path_factory.mktemp(f"http-{version}")
            label = new_label()
            proc, url, toks, log = stack.enter_context(http_server(tmp, label))
            servers[version] = (proc, url, toks[0], log, label, tmp / "state")
        return servers[version]

    yield get
    stack.close()
    for (_, _, _, _, label, _) in servers.values():
        remove_containers(label)


@pytest.fixture(params=["stdio", "http"])
def transport(request):
    return request.param


@pytest.fixture(params=list(VERSIONS))
def version(request):
    return request.param


@pytest.fixture
def server(transport, version, tmp_path, _http_servers):
    if transport == "stdio":
        s = Server("stdio", version, new_label(), tmp_path / "state")
        s.state_dir.mkdir()
    else:
        proc, url, tok, log, label, state = _http_servers(version)
        assert proc.poll() is None, f"enclave mcp --http exited:\n{log.read_text()}"
        s = Server("http", version, label, state)
        s.url, s.token, s.proc, s.log = url, tok, proc, log
    yield s
    # The stdio server is gone once its client closed stdin, and it must have removed what it
    # made; the HTTP server lives on, but nothing a test made may outlive the test.
    clean = wait_for(lambda: not containers(s.label), 10)
    removed = remove_containers(s.label)
    assert clean, f"containers left behind with label enclave-test={s.label}: {removed}"


def text_of(result):
    """The first content block, which the contract says is always text."""
    assert result.content, f"a result with no content: {result}"
    first = result.content[0]
    assert first.type == "text", f"the first content block is {first.type}, not text: {result}"
    return first.text


def structured(result):
    assert result.structured_content is not None, f"no structuredContent beside the text: {result}"
    return result.structured_content


def repo_root():
    return Path(__file__).resolve().parents[2]
