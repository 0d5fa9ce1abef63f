"""The client that tests/mcp/test_sigkill.py kills: starts `enclave mcp` over stdio with the SDK,
says `connected` on stdout, then makes a throwaway call that takes 30 s and waits for it.

Usage: sigkill_client.py ENCLAVE LABEL STATE_DIR IMAGE
"""

import sys

import anyio
from mcp import Client, StdioServerParameters

from conftest import mcp_args, server_env


async def main(enclave, label, state_dir):
    params = StdioServerParameters(command=enclave, args=mcp_args(label),
                                   env=server_env(state_dir))
    async with Client(params, mode="legacy") as client:
        print("connected", flush=True)
        result = await client.call_tool("shell_executor", {"command": "sleep 30"})
        print("call returned", result.is_error, flush=True)


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:4])
