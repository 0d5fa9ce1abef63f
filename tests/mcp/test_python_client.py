"""The official MCP Python SDK (`mcp` from PyPI) driving `enclave mcp`, over stdio and over
streamable HTTP (with a bearer token), under both protocol versions the server serves: 2025-11-25
(the initialize handshake) and 2026-07-28 (the stateless per-request envelope).

Every test runs once per transport and version (the `server` fixture in conftest.py), and ends by
checking that no container with its server's label is left.
"""

import json

import httpx2
import pytest

from conftest import (Server, containers, http_server, new_label, remove_containers, structured,
                      text_of, wait_for)

TOOLS = {
    "sandbox_create", "sandbox_list", "sandbox_remove",
    "python_executor", "shell_executor", "file_operation", "multi_code_executor",
    "notebook_executor",
    "job_start", "job_read", "job_kill",
    "upload_file", "download_file",
}
# Tools that run in a sandbox: each takes an optional `sandbox_id` (a throwaway sandbox without).
IN_SANDBOX = {
    "python_executor", "shell_executor", "file_operation", "multi_code_executor",
    "notebook_executor", "job_start", "upload_file", "download_file",
}


async def list_all_tools(client):
    tools, cursor = [], None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            return tools


def nullable_unions(schema, path="$"):
    """Where a schema allows null through a union (`type: [..., "null"]`, or a `{"type": "null"}`
    branch of anyOf/oneOf): some model APIs reject those, so tool schemas must not have them."""
    found = []
    if isinstance(schema, dict):
        t = schema.get("type")
        if isinstance(t, list):
            found.append(f"{path}.type = {t}")
        for key in ("anyOf", "oneOf"):
            for i, branch in enumerate(schema.get(key, [])):
                if isinstance(branch, dict) and branch.get("type") == "null":
                    found.append(f"{path}.{key}[{i}] is null")
        for key, value in schema.items():
            if isinstance(value, (dict, list)):
                found += nullable_unions(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            found += nullable_unions(value, f"{path}[{i}]")
    return found


async def call(client, name, arguments):
    """Calls a tool; the contract says a tool never answers with a protocol error, so any
    exception the SDK raises here fails the test."""
    return await client.call_tool(name, arguments)


@pytest.mark.anyio
async def test_lists_the_tools(server):
    async with server.client() as client:
        assert client.protocol_version == server.version
        tools = await list_all_tools(client)
    names = [t.name for t in tools]
    assert len(names) == len(set(names)), f"a tool listed twice: {names}"
    assert set(names) == TOOLS
    for tool in tools:
        assert tool.description, f"{tool.name} has no description"
        schema = tool.input_schema
        assert schema.get("type") == "object", f"{tool.name}: {schema}"
        assert not nullable_unions(schema), f"{tool.name}: {nullable_unions(schema)}"
        if tool.name in IN_SANDBOX:
            props = schema.get("properties", {})
            assert props.get("sandbox_id", {}).get("type") == "string", f"{tool.name}: {schema}"
            assert "sandbox_id" not in schema.get("required", []), f"{tool.name}: {schema}"


@pytest.mark.parametrize("version", ["2026-07-28"])
@pytest.mark.anyio
async def test_a_client_that_negotiates_gets_the_newest_version(server):
    """The SDK's default `auto` mode probes `server/discover` and falls back to `initialize`:
    enclave answers the probe, so the client ends up on 2026-07-28."""
    async with server.client(mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        result = await call(client, "sandbox_list", {})
        assert not result.is_error, text_of(result)


@pytest.mark.anyio
async def test_state_is_kept_across_calls_in_a_created_sandbox(server):
    async with server.client() as client:
        result = await call(client, "sandbox_create", {})
        assert not result.is_error, text_of(result)
        sandbox_id = structured(result)["sandbox_id"]
        assert isinstance(sandbox_id, str) and sandbox_id
        assert sandbox_id in text_of(result)
        assert len(containers(server.label)) == 1

        result = await call(client, "python_executor", {"code": "x = 41", "sandbox_id": sandbox_id})
        assert not result.is_error, text_of(result)
        result = await call(client, "python_executor",
                            {"code": "print(x + 1)", "sandbox_id": sandbox_id})
        assert not result.is_error, text_of(result)
        assert "42" in text_of(result)

        result = await call(client, "sandbox_list", {})
        assert not result.is_error, text_of(result)
        assert sandbox_id in text_of(result)
        assert sandbox_id in json.dumps(structured(result))

        result = await call(client, "sandbox_remove", {"sandbox_id": sandbox_id})
        assert not result.is_error, text_of(result)
        assert wait_for(lambda: not containers(server.label), 10), containers(server.label)

        # The sandbox is gone: using it is an isError result that says what to do next.
        result = await call(client, "python_executor", {"code": "print(x)", "sandbox_id": sandbox_id})
        assert result.is_error, text_of(result)
        assert text_of(result).strip()
        result = await call(client, "sandbox_remove", {"sandbox_id": sandbox_id})
        assert result.is_error, text_of(result)


@pytest.mark.anyio
async def test_a_call_without_sandbox_id_leaves_no_container(server):
    async with server.client() as client:
        result = await call(client, "shell_executor", {"command": "echo throwaway-$((6 * 7))"})
        assert not result.is_error, text_of(result)
        assert "throwaway-42" in text_of(result)
        # Removed after the call: checked while the client is still connected (the stdio
        # server has not seen EOF yet), so the server cannot be cleaning up on exit instead.
        assert wait_for(lambda: not containers(server.label), 5), containers(server.label)

        result = await call(client, "python_executor", {"code": "print(6 * 7)"})
        assert not result.is_error, text_of(result)
        assert "42" in text_of(result)
        assert wait_for(lambda: not containers(server.label), 5), containers(server.label)


@pytest.mark.anyio
async def test_a_failing_command_is_an_error_result(server):
    async with server.client() as client:
        result = await call(client, "shell_executor",
                            {"command": "echo to-stderr >&2; exit 3"})
        assert result.is_error, text_of(result)
        assert text_of(result).strip()

        result = await call(client, "python_executor", {"code": "raise ValueError('boom-42')"})
        assert result.is_error, text_of(result)
        assert "boom-42" in text_of(result)

        result = await call(client, "shell_executor",
                            {"command": "true", "sandbox_id": "no-such-sandbox"})
        assert result.is_error, text_of(result)
        assert text_of(result).strip()


@pytest.mark.parametrize(("tool", "arguments"), [
    ("python_executor", {}),                             # `code` is required
    ("python_executor", {"code": 42}),                   # `code` is a string
    ("shell_executor", {"command": "true", "timeout": "soon"}),
    ("sandbox_remove", {}),                              # `sandbox_id` is required
    ("sandbox_create", {"memory": 512, "network": "yes"}),
])
@pytest.mark.anyio
async def test_schema_invalid_arguments_are_error_results(server, tool, arguments):
    async with server.client() as client:
        result = await call(client, tool, arguments)
        assert result.is_error, text_of(result)
        assert text_of(result).strip()
        # ...and the session is still usable afterwards.
        result = await call(client, "sandbox_list", {})
        assert not result.is_error, text_of(result)
    assert not containers(server.label)


@pytest.mark.parametrize("transport", ["http"])
@pytest.mark.parametrize("version", ["2025-11-25"])
def test_http_wants_the_bearer_token(server):
    """Without the token (or with a wrong one) the HTTP endpoint answers 401, before any MCP."""
    body = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "enclave-test", "version": "0"}},
    }
    headers = {"Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    with httpx2.Client(timeout=30) as http:
        r = http.post(server.url, json=body, headers=headers)
        assert r.status_code == 401, (r.status_code, r.text)
        r = http.post(server.url, json=body,
                      headers={**headers, "Authorization": "Bearer not-the-token"})
        assert r.status_code == 401, (r.status_code, r.text)
        r = http.post(server.url, json=body,
                      headers={**headers, "Authorization": f"Bearer {server.token}"})
        assert r.status_code == 200, (r.status_code, r.text)


@pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])
@pytest.mark.anyio
async def test_http_sandboxes_belong_to_the_token_that_made_them(tmp_path, version):
    """Two tokens: what one token's holder made, the other's cannot see, use or remove; and a
    sandbox id is no bearer token."""
    label = new_label()
    try:
        with http_server(tmp_path, label, tokens=2) as (proc, url, (mine, theirs), log):
            server = Server("http", version, label, tmp_path / "state")
            server.url, server.token, server.proc, server.log = url, mine, proc, log
            async with server.client() as client:
                result = await call(client, "sandbox_create", {})
                assert not result.is_error, text_of(result)
                sandbox_id = structured(result)["sandbox_id"]

            async with server.client(token=theirs) as other:
                result = await call(other, "sandbox_list", {})
                assert not result.is_error, text_of(result)
                assert sandbox_id not in text_of(result)
                assert sandbox_id not in json.dumps(structured(result))
                result = await call(other, "shell_executor",
                                    {"command": "true", "sandbox_id": sandbox_id})
                assert result.is_error, text_of(result)
                result = await call(other, "sandbox_remove", {"sandbox_id": sandbox_id})
                assert result.is_error, text_of(result)
            assert len(containers(label)) == 1

            with httpx2.Client(timeout=30) as http:
                r = http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                              headers={"Authorization": f"Bearer {sandbox_id}",
                                       "Accept": "application/json, text/event-stream"})
                assert r.status_code == 401, (r.status_code, r.text)

            async with server.client() as client:
                result = await call(client, "sandbox_remove", {"sandbox_id": sandbox_id})
                assert not result.is_error, text_of(result)
            assert wait_for(lambda: not containers(label), 10), containers(label)
    finally:
        remove_containers(label)
