# enclave's Python session driver: one live interpreter in a sandbox, driven over JSON lines.
#
# Started by the host as `python3 -u -c <this file>` with its stdin and stdout as the protocol
# (SessionRequest in, SessionEvent out; src/session/mod.rs). User code never sees them: fd 0 is
# /dev/null, fds 1 and 2 are pipes whose output is forwarded as `stream` events as it comes,
# and the protocol runs over private duplicates of the original descriptors.
#
# When the host goes away, stdin ends: the driver then kills its process group (itself and
# everything user code started) so nothing outlives the session.

import ast
import builtins
import codecs
import codeop
import fcntl
import json
import linecache
import os
import platform
import queue
import rlcompleter
import select
import signal
import sys
import threading
import traceback
import types

DRIVER_FILE = sys._getframe().f_code.co_filename
# The driver's own module, kept alive once user code gets a fresh `__main__`.
DRIVER_MODULE = sys.modules["__main__"]
CHUNK = 65536
# Reads per stream when syncing: bounds the wait when a background process never stops writing.
SYNC_READS = 256
# The lowest descriptor the protocol's duplicates may take.
PROTOCOL_FDS = 200


class Channel:
    """The protocol's output: whole JSON lines, one writer at a time."""

    def __init__(self, fd):
        self.fd = fd
        self.lock = threading.Lock()

    def send(self, event):
        text = json.dumps(event, ensure_ascii=False) + "\n"
        data = text.encode("utf-8", "replace")
        with self.lock:
            view = memoryview(data)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]


class Forwarder(threading.Thread):
    """Forwards what lands in the stdout and stderr pipes as `stream` events, as it comes."""

    def __init__(self, channel, streams):
        super().__init__(name="enclave-forwarder", daemon=True)
        self.channel = channel
        self.streams = streams  # {read fd: stream name}
        self.decoders = {
            fd: codecs.getincrementaldecoder("utf-8")(errors="replace") for fd in streams
        }
        self.ctl_r, self.ctl_w = os.pipe()
        self.synced = threading.Event()
        for fd in streams:
            os.set_blocking(fd, False)

    def run(self):
        watched = list(self.streams) + [self.ctl_r]
        while True:
            ready, _, _ = select.select(watched, [], [])
            for fd in ready:
                if fd in self.streams:
                    self.pump(fd, 1)
            if self.ctl_r in ready:
                os.read(self.ctl_r, 1)
                for fd in self.streams:
                    self.pump(fd, SYNC_READS)
                self.synced.set()

    def pump(self, fd, reads):
        for _ in range(reads):
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                return
            if not data:
                return
            text = self.decoders[fd].decode(data)
            if text:
                self.channel.send({"event": "stream", "name": self.streams[fd], "text": text})

    def sync(self):
        """Returns once everything written to the pipes so far has been sent."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        self.synced.clear()
        os.write(self.ctl_w, b"s")
        self.synced.wait()


class Driver:
    def __init__(self, channel, forwarder):
        self.channel = channel
        self.forwarder = forwarder
        self.home = os.getcwd()
        self.running = False
        self.inputs = 0
        self.namespace = None
        self.fresh_namespace()

    def fresh_namespace(self):
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main
        self.namespace = main.__dict__

    def send(self, event):
        self.channel.send(event)

    def ready(self):
        info = {"kind": "python", "language": "python " + platform.python_version(), "sandbox": ""}
        self.send({"event": "ready", "info": info})

    # Requests, on the main thread.

    def serve(self, request):
        op = request.get("op")
        if op == "execute":
            self.execute(str(request.get("code", "")))
        elif op == "is_complete":
            status, indent = is_complete(str(request.get("code", "")))
            self.send({"event": "is_complete", "status": status, "indent": indent})
        elif op == "complete":
            matches, start, end = self.complete(str(request.get("code", "")), request.get("cursor"))
            self.send(
                {"event": "completions", "matches": matches, "cursor_start": start, "cursor_end": end}
            )
        elif op == "reset":
            self.fresh_namespace()
            try:
                os.chdir(self.home)
            except OSError:
                pass
            self.ready()
        else:
            self.send({"event": "notice", "text": "the python session cannot serve `%s`" % op})

    def execute(self, code):
        self.inputs += 1
        filename = "<python-input-%d>" % self.inputs
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        try:
            units = compile_units(code, filename)
        except (SyntaxError, ValueError, OverflowError) as exc:
            self.done_with_error(exc, traceback.format_exception_only(type(exc), exc))
            return
        status = "ok"
        self.running = True
        try:
            for unit in units:
                exec(unit, self.namespace)
            self.running = False
        except KeyboardInterrupt:
            self.running = False
            status = "interrupted"
        except SystemExit as exc:
            self.running = False
            if exc.code not in (None, 0):
                self.done_with_error(exc, user_traceback(exc))
                return
        except BaseException as exc:
            self.running = False
            self.done_with_error(exc, user_traceback(exc))
            return
        finally:
            self.running = False
        self.done(status)

    def done_with_error(self, exc, lines):
        self.forwarder.sync()
        text = "".join(lines).rstrip("\n")
        self.send(
            {
                "event": "error",
                "ename": type(exc).__name__,
                "evalue": str(exc),
                "traceback": text.split("\n"),
            }
        )
        self.done("error")

    def done(self, status):
        self.forwarder.sync()
        self.send({"event": "done", "status": status})

    def displayhook(self, value):
        """What the REPL shows for a bare expression, as an `execute_result`."""
        if value is None:
            return
        builtins._ = None
        text = repr(value)
        self.forwarder.sync()
        self.send({"event": "display", "data": {"text/plain": text}, "metadata": {}, "result": True})
        builtins._ = value

    def complete(self, code, cursor):
        if not isinstance(cursor, int) or cursor < 0:
            cursor = len(code.encode("utf-8"))
        before = code.encode("utf-8")[:cursor].decode("utf-8", "ignore")
        start = len(before)
        while start > 0 and (before[start - 1].isalnum() or before[start - 1] in "._"):
            start -= 1
        token = before[start:]
        if not token:
            return [], cursor, cursor
        completer = rlcompleter.Completer(self.namespace)
        matches = []
        for state in range(1000):
            try:
                match = completer.complete(token, state)
            except Exception:
                break
            if match is None:
                break
            if match not in matches:
                matches.append(match)
        return matches, len(before[:start].encode("utf-8")), cursor

    def on_interrupt(self, signum, frame):
        # SIGINT between inputs (an interrupt that came as one ended) is ignored.
        if self.running:
            raise KeyboardInterrupt


def compile_units(code, filename):
    """The input as code objects: a pasted script runs as a module would, with the value of its
    last expression statement shown (IPython's `last_expr`); one statement runs as the REPL's
    'single' mode runs it."""
    tree = ast.parse(code, filename, "exec")
    if not tree.body:
        return []
    *body, last = tree.body
    units = []
    if body:
        units.append(compile(ast.Module(body=body, type_ignores=[]), filename, "exec"))
    units.append(compile(ast.Interactive(body=[last]), filename, "single"))
    return units


def user_traceback(exc):
    """The traceback as Python prints it, without the driver's frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == DRIVER_FILE:
        tb = tb.tb_next
    return traceback.format_exception(type(exc), exc, tb)


def is_complete(code):
    try:
        compiled = codeop.compile_command(code, "<input>", "single")
    except (SyntaxError, ValueError, OverflowError):
        return "invalid", ""
    if compiled is None:
        return "incomplete", indent_after(code)
    return "complete", ""


def indent_after(code):
    lines = [line for line in code.split("\n") if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    indent = last[: len(last) - len(last.lstrip())]
    if last.rstrip().endswith(":"):
        indent += "    "
    return indent


def hang_up():
    """The host is gone: end everything this session started, and the driver with it."""
    try:
        if os.getpgid(0) == os.getpid():
            os.killpg(0, signal.SIGKILL)
    finally:
        os._exit(0)


def read_requests(proto_in, driver, requests):
    with os.fdopen(proto_in, "rb") as lines:
        for line in lines:
            try:
                request = json.loads(line)
            except ValueError:
                continue
            if not isinstance(request, dict):
                continue
            if request.get("op") == "interrupt":
                if driver.running:
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            else:
                requests.put(request)
    hang_up()


def high_dup(fd):
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, PROTOCOL_FDS)
    except OSError:  # a descriptor limit under PROTOCOL_FDS
        return os.dup(fd)


def main():
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    # The protocol's descriptors sit high, out of the way of descriptors user code opens and
    # closes by number; they are close-on-exec, so no child inherits them.
    proto_in, proto_out = high_dup(0), high_dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)

    channel = Channel(proto_out)
    forwarder = Forwarder(channel, {out_r: "stdout", err_r: "stderr"})
    forwarder.start()
    driver = Driver(channel, forwarder)
    signal.signal(signal.SIGINT, driver.on_interrupt)
    sys.displayhook = driver.displayhook
    sys.argv = [""]

    requests = queue.Queue()
    reader = threading.Thread(
        target=read_requests, args=(proto_in, driver, requests), name="enclave-reader", daemon=True
    )
    reader.start()
    driver.ready()
    while True:
        request = requests.get()
        try:
            driver.serve(request)
        except KeyboardInterrupt:
            pass


main()
