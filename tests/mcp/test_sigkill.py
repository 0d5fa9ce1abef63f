"""A client killed with SIGKILL in the middle of a throwaway call leaves no sandbox behind:
`enclave mcp` sees its stdin close (and its parent die), kills the call and removes the sandbox.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import ENCLAVE, containers, new_label, remove_containers, wait_for

HERE = Path(__file__).resolve().parent


def children(pid):
    """The pids of `pid`'s children (every thread's), from /proc."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            pass
    return out


def alive(pid):
    """Running, and not a zombie waiting for a parent (init) to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_client_killed_with_sigkill_leaves_no_throwaway_sandbox(tmp_path):
    label = new_label()
    state = tmp_path / "state"
    state.mkdir()
    log = open(tmp_path / "client.log", "w")
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    parent = subprocess.Popen(
        [sys.executable, str(HERE / "sigkill_client.py"), ENCLAVE, label, str(state)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    servers = []
    try:
        assert parent.stdout.readline().strip() == "connected", (tmp_path / "client.log").read_text()
        # The call has started once its sandbox exists.
        assert wait_for(lambda: containers(label), 20), (tmp_path / "client.log").read_text()
        servers = [p for p in children(parent.pid)
                   if os.path.realpath(f"/proc/{p}/exe") == os.path.realpath(ENCLAVE)]
        assert servers, f"no enclave process under the client {parent.pid}"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()

        gone = wait_for(lambda: not containers(label), 20)
        exited = wait_for(lambda: not any(alive(p) for p in servers), 20)
        left = remove_containers(label)
        assert gone, (f"the throwaway sandbox outlived its SIGKILLed client by 20 s: {left}\n"
                      + (tmp_path / "client.log").read_text())
        assert exited, f"enclave mcp {servers} still runs 20 s after its client was SIGKILLed"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for p in servers:
            if alive(p):
                os.kill(p, signal.SIGKILL)
        remove_containers(label)
        log.close()
