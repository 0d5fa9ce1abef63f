"""ms-enclave's own Python client (`HttpSandboxManager`, ms-enclave 0.0.8 from PyPI) driving
`enclave server`, unchanged: the wire compatibility the server promises.

Run by `scripts/test-python-client.sh`, which starts the server and sets:
ENCLAVE_URL, ENCLAVE_API_KEY, ENCLAVE_TEST_IMAGE, ENCLAVE_TEST_LABEL.
"""

import asyncio
import io
import os
import tarfile
import time

import pytest
from ms_enclave.sandbox.manager import HttpSandboxManager
from ms_enclave.sandbox.model import (
    DockerSandboxConfig,
    SandboxManagerConfig,
    SandboxStatus,
    SandboxType,
)

URL = os.environ["ENCLAVE_URL"]
KEY = os.environ["ENCLAVE_API_KEY"]
IMAGE = os.environ["ENCLAVE_TEST_IMAGE"]
LABEL = os.environ["ENCLAVE_TEST_LABEL"]


def manager(**kwargs):
    return HttpSandboxManager(base_url=URL, api_key=KEY, **kwargs)


def dict_config(tools):
    """A dict config, as many callers send: enclave's extra `labels` mark what tests made."""
    return {"image": IMAGE, "tools_config": tools, "labels": {"enclave-test": LABEL}}


def run(coro):
    return asyncio.run(coro)


def test_create_from_a_model_with_a_tool_list_and_every_tool():
    async def body():
        async with manager() as m:
            config = DockerSandboxConfig(
                image=IMAGE,
                tools_config=["python_executor", "shell_executor", "file_operation", "multi_code_executor"],
            )
            sid = await m.create_sandbox(SandboxType.DOCKER, config)
            info = await m.get_sandbox_info(sid)
            assert info.id == sid
            assert info.status == SandboxStatus.RUNNING
            assert info.type == SandboxType.DOCKER
            assert set(info.available_tools) == {
                "python_executor", "shell_executor", "file_operation", "multi_code_executor"}
            assert info.config["image"] == IMAGE

            r = await m.execute_tool(sid, "python_executor", {"code": "print(40 + 2)"})
            assert r.status == "success", r
            assert r.output.strip() == "42"
            assert r.tool_name == "python_executor"

            r = await m.execute_tool(sid, "shell_executor", {"command": "echo hello-shell"})
            assert r.status == "success", r
            assert "hello-shell" in r.output

            r = await m.execute_tool(sid, "shell_executor", {"command": "exit 3"})
            assert r.status == "error"

            path = "/tmp/compat.txt"
            r = await m.execute_tool(sid, "file_operation",
                                     {"operation": "write", "file_path": path, "content": "abc"})
            assert r.status == "success", r
            r = await m.execute_tool(sid, "file_operation", {"operation": "read", "file_path": path})
            assert r.output == "abc"
            r = await m.execute_tool(sid, "file_operation", {"operation": "exists", "file_path": path})
            assert "exists" in r.output and "not" not in r.output
            r = await m.execute_tool(sid, "file_operation", {"operation": "list", "file_path": "/tmp"})
            assert "compat.txt" in r.output
            r = await m.execute_tool(sid, "file_operation", {"operation": "delete", "file_path": path})
            assert r.status == "success"
            r = await m.execute_tool(sid, "file_operation", {"operation": "exists", "file_path": path})
            assert "does not exist" in r.output

            r = await m.execute_tool(sid, "multi_code_executor",
                                     {"language": "python", "code": "print(6 * 7)"})
            assert r.status == "success", r
            assert "42" in str(r.output)

            r = await m.execute_tool(sid, "shell_executor", {"command": "sleep 5", "timeout": 1})
            assert r.status == "timeout"

            with pytest.raises(ValueError):
                await m.execute_tool(sid, "no_such_tool", {})
            tools = await m.get_sandbox_tools(sid)
            assert tools["python_executor"]["type"] == "function"
            assert tools["python_executor"]["function"]["name"] == "python_executor"

    run(body())


def test_dict_config_with_tool_dict_list_get_and_filters():
    async def body():
        async with manager() as m:
            sid = await m.create_sandbox(SandboxType.DOCKER,
                                         dict_config({"shell_executor": {}}))
            listed = await m.list_sandboxes()
            assert sid in [s.id for s in listed]
            running = await m.list_sandboxes(SandboxStatus.RUNNING)
            assert sid in [s.id for s in running]
            stopped = await m.list_sandboxes(SandboxStatus.STOPPED)
            assert sid not in [s.id for s in stopped]
            assert await m.get_sandbox_info("nosuchid") is None
            with pytest.raises(ValueError):
                await m.execute_tool("nosuchid", "shell_executor", {"command": "true"})

    run(body())


def test_put_dir_put_archive_stop_and_delete(tmp_path):
    async def body():
        async with manager() as m:
            sid = await m.create_sandbox(SandboxType.DOCKER, dict_config(["shell_executor"]))
            (tmp_path / "demo").mkdir()
            (tmp_path / "demo" / "SKILL.md").write_text("skill body\n")
            assert await m.put_dir(sid, tmp_path, "/tmp/eval-skills") is True
            r = await m.execute_tool(sid, "shell_executor",
                                     {"command": "cat /tmp/eval-skills/demo/SKILL.md"})
            assert r.output.strip() == "skill body"

            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                data = b"\x00\xffbinary"
                entry = tarfile.TarInfo("bin.dat")
                entry.size = len(data)
                tar.addfile(entry, io.BytesIO(data))
            assert await m.put_archive(sid, "/tmp/arch", buf.getvalue()) is True
            r = await m.execute_tool(sid, "shell_executor", {"command": "od -An -tx1 /tmp/arch/bin.dat"})
            assert "00 ff 62" in r.output

            assert await m.stop_sandbox(sid) is True
            info = await m.get_sandbox_info(sid)
            assert info.status == SandboxStatus.STOPPED
            with pytest.raises(ValueError):
                await m.execute_tool(sid, "shell_executor", {"command": "true"})
            with pytest.raises(ValueError):
                await m.put_archive(sid, "/tmp/arch", buf.getvalue())

            started = time.monotonic()
            assert await m.delete_sandbox(sid) is True
            assert time.monotonic() - started < 5
            assert await m.get_sandbox_info(sid) is None
            assert await m.delete_sandbox(sid) is False
            assert await m.stop_sandbox(sid) is False

    run(body())


def test_pool_initialize_execute_concurrently_and_time_out():
    async def body():
        async with manager() as m:
            ids = await m.initialize_pool(2, SandboxType.DOCKER, dict_config(["shell_executor"]))
            assert len(ids) == 2
            r = await m.execute_tool_in_pool("shell_executor", {"command": "echo pooled"})
            assert r.status == "success" and "pooled" in r.output

            results = await asyncio.gather(*[
                m.execute_tool_in_pool("shell_executor", {"command": "sleep 0.3; echo ok"})
                for _ in range(5)
            ])
            assert [r.status for r in results] == ["success"] * 5

            busy = [asyncio.create_task(m.execute_tool_in_pool(
                "shell_executor", {"command": "sleep 3"})) for _ in range(2)]
            await asyncio.sleep(0.5)
            with pytest.raises(TimeoutError):
                await m.execute_tool_in_pool("shell_executor", {"command": "true"}, timeout=0.5)
            for r in await asyncio.gather(*busy):
                assert r.status == "success"

    run(body())


def test_health_stats_and_a_wrong_key():
    async def body():
        async with manager() as m:
            health = await m.health_check()
            assert health["healthy"] is True
            assert "version" in health and "uptime" in health
            stats = await m.get_stats()
            assert stats["manager_type"] == "http"
            assert "total_sandboxes" in stats
        async with HttpSandboxManager(base_url=URL, api_key="wrong-key") as bad:
            with pytest.raises(RuntimeError, match="401"):
                await bad.create_sandbox(SandboxType.DOCKER, dict_config([]))
            assert (await bad.health_check())["healthy"] is False

    run(body())


def test_manager_config_object_and_pool_from_server_defaults():
    async def body():
        config = SandboxManagerConfig(base_url=URL, api_key=KEY, timeout=120)
        async with HttpSandboxManager(config=config) as m:
            sid = await m.create_sandbox(SandboxType.DOCKER, dict_config(["python_executor"]))
            r = await m.execute_tool(sid, "python_executor",
                                     {"code": "import sys; print(sys.version_info[0])"})
            assert r.output.strip() == "3"
            assert await m.delete_sandbox(sid)

    run(body())
