"""`notebook_executor` side by side: ms-enclave 0.0.8's own notebook sandbox (its
`LocalSandboxManager`, on the same engine and the same image) and `enclave server` through
ms-enclave's `HttpSandboxManager`. Every snippet must give the same status, output and error
text, so an ms-enclave client sees exactly what it expects.

Run by `scripts/test-python-client.sh`, which also sets ENCLAVE_TEST_NOTEBOOK_IMAGE.
"""

import asyncio
import os
import socket

from ms_enclave.sandbox.manager import HttpSandboxManager, LocalSandboxManager
from ms_enclave.sandbox.model import DockerNotebookConfig, SandboxType

URL = os.environ["ENCLAVE_URL"]
KEY = os.environ["ENCLAVE_API_KEY"]
LABEL = os.environ["ENCLAVE_TEST_LABEL"]
IMAGE = os.environ["ENCLAVE_TEST_NOTEBOOK_IMAGE"]

# (code, timeout or None): run in this order in one kernel each, so execution counts (which
# tracebacks show) agree.
SNIPPETS = [
    ("a = 1\nb = 2\nc = a + b\nprint(c)", None),
    ("globals().get('x', 'ABSENT')", None),
    ("x = 5\nx * 2", None),
    ("import sys\nprint('out')\nprint('err', file=sys.stderr)", None),
    ("print('before')\nraise ValueError('boom')", None),
    ("undefined_name", None),
    ("", None),
    ("import time\ntime.sleep(5)\nmarker = 1", 1),
    ("globals().get('marker', 'ABSENT')", None),
    ("x", None),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_all(manager, config):
    sid = await manager.create_sandbox(SandboxType.DOCKER_NOTEBOOK, config)
    try:
        results = []
        for code, timeout in SNIPPETS:
            params = {"code": code}
            if timeout is not None:
                params["timeout"] = timeout
            r = await manager.execute_tool(sid, "notebook_executor", params)
            results.append((str(r.status.value if hasattr(r.status, "value") else r.status),
                            r.output, r.error))
        return results
    finally:
        await manager.delete_sandbox(sid)


def test_notebook_executor_texts_match_ms_enclave():
    async def reference():
        async with LocalSandboxManager() as m:
            config = DockerNotebookConfig(image=IMAGE, tools_config=["notebook_executor"],
                                          port=free_port())
            return await run_all(m, config)

    async def enclave():
        async with HttpSandboxManager(base_url=URL, api_key=KEY) as m:
            config = {"image": IMAGE, "tools_config": ["notebook_executor"],
                      "labels": {"enclave-test": LABEL}}
            return await run_all(m, config)

    expected = asyncio.run(reference())
    got = asyncio.run(enclave())
    assert expected[0] == ("success", "3\n", None), expected[0]
    for (code, _), want, have in zip(SNIPPETS, expected, got):
        assert have == want, f"{code!r}:\n ms-enclave: {want!r}\n    enclave: {have!r}"
