# enclave-agent's Python fork server (see python.rs). Started as `python FILE`, like the code it
# runs, so a forked child starts from the state a fresh `python FILE` has. This file must still
# parse on Python 2, so that an old interpreter can say it is unsupported.
_pristine = list(globals().items())  # first: the __main__ namespace `python FILE` starts with

import os
import sys

# Fd 0 is the control socket. Requests: a 4-byte big-endian length, then NUL-separated fields
# (script, cwd or empty, KEY=VALUE...), with the child's stdout and stderr as SCM_RIGHTS. Replies,
# one ASCII line each: "R pid" (ready), "U why" (unsupported), "F pid" (forked), "E why" (not
# forked), "S" (site-packages changed: restart me), "X pid status" (a child ended, waitpid status).


def _say(fd, line):
    data = (line + "\n").encode("ascii", "replace")
    while data:
        data = data[os.write(fd, data):]


def _cloexec(fd):
    if sys.version_info < (3, 4):  # later Pythons make new fds non-inheritable themselves
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)


def _unsupported(why):
    _say(0, "U " + why)
    os._exit(0)


if sys.version_info < (3, 3):
    _unsupported("Python %d.%d is older than 3.3" % tuple(sys.version_info[:2]))
try:
    os.unlink(__file__)
except OSError:
    pass

# Our own imports must not come from the script's directory (sys.path[0]); it is put back for
# the children, who see sys.path exactly as Python computed it.
_path0 = None
if not getattr(sys.flags, "safe_path", False) and sys.path:
    _path0 = sys.path.pop(0)
try:
    import _socket
    import select
    try:
        import _signal as _sig
    except ImportError:
        import signal as _sig
except ImportError as e:
    _unsupported("cannot import %s" % e)
if not (hasattr(_socket, "AF_UNIX") and hasattr(_socket.socket, "recvmsg")
        and hasattr(_socket, "SCM_RIGHTS") and hasattr(os, "fork")):
    _unsupported("no fork, AF_UNIX or socket.recvmsg")
try:
    # The child becomes a subreaper, so descendants that double-fork stay in its tree.
    import ctypes
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except Exception:
    _prctl = None
if _path0 is not None:
    sys.path.insert(0, _path0)

_ME = __file__  # our frames' file name, stripped from the children's tracebacks
_CMSG = getattr(_socket, "MSG_CMSG_CLOEXEC", 0)


def _site_dirs():
    site = sys.modules.get("site")
    dirs = []
    try:
        dirs.extend(site.getsitepackages())
    except Exception:
        pass
    try:
        dirs.append(site.getusersitepackages())
    except Exception:
        pass
    return [d for d in dirs if isinstance(d, str)]


def _stamp(dirs):
    # Site directories are read once at start-up (.pth files, whether the user site exists);
    # when one changes (pip install), a fresh `python FILE` would see something we cannot.
    out = []
    for d in dirs:
        try:
            out.append(os.stat(d).st_mtime_ns)
        except OSError:
            out.append(None)
    return out


# -u or PYTHONUNBUFFERED (not in sys.flags): the start-up stdout then has no buffer layer.
_BUFFERED = not isinstance(getattr(sys.__stdout__, "buffer", None),
                           sys.modules["io"].RawIOBase)
_SITE = _site_dirs()
_STAMP = _stamp(_SITE)


def _recv_exact(ctl, n):
    buf = bytearray()
    while len(buf) < n:
        more = ctl.recv(min(n - len(buf), 1 << 16))
        if not more:
            os._exit(0)
        buf.extend(more)
    return bytes(buf)


def _close_inherited():
    # Fds the agent's other threads let leak into us would keep calls' pipes open.
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = range(3, 1024)
    for fd in fds:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass


def _serve():
    _close_inherited()
    fd = os.dup(0)
    _cloexec(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    ctl = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
    # Python made sys.stdin on the socket: make it anew on /dev/null, as the children have it.
    sys.stdin = sys.__stdin__ = _stream(0, "<stdin>", "r")
    if hasattr(os, "pipe2"):
        wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    else:
        wake_r, wake_w = os.pipe()
        for p in (wake_r, wake_w):
            _cloexec(p)
            import fcntl
            fcntl.fcntl(p, fcntl.F_SETFL, fcntl.fcntl(p, fcntl.F_GETFL) | os.O_NONBLOCK)
    _sig.set_wakeup_fd(wake_w)
    _sig.signal(_sig.SIGCHLD, lambda n, f: None)  # a handler, so that the wakeup fd is written
    _sig.signal(_sig.SIGINT, _sig.SIG_IGN)
    own = (fd, wake_r, wake_w)

    def send(line):
        ctl.sendall((line + "\n").encode("ascii", "replace"))

    send("R %d" % os.getpid())
    while True:
        try:
            ready = select.select([fd, wake_r], [], [])[0]
        except InterruptedError:  # Python < 3.5 does not retry
            continue
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except OSError:
                pass
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                except InterruptedError:
                    continue
                if pid == 0:
                    break
                send("X %d %d" % (pid, status))
        if fd in ready:
            _request(ctl, send, own)


def _request(ctl, send, own):
    head, anc, _flags, _addr = ctl.recvmsg(4, _socket.CMSG_SPACE(16), _CMSG)
    fds = []
    for level, kind, data in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            for i in range(0, len(data) - len(data) % 4, 4):
                fds.append(int.from_bytes(data[i:i + 4], sys.byteorder))
    for f in fds:
        _cloexec(f)
    if not head:
        os._exit(0)
    if len(head) < 4:
        head += _recv_exact(ctl, 4 - len(head))
    body = _recv_exact(ctl, int.from_bytes(head, "big"))
    try:
        if len(fds) != 2:
            send("E expected 2 fds, got %d" % len(fds))
            return
        if _stamp(_SITE) != _STAMP:
            send("S")
            os._exit(0)
        fields = body.split(b"\0")
        try:
            go_r, go_w = os.pipe()
            _cloexec(go_r)
            _cloexec(go_w)
        except OSError as e:
            send("E pipe: %s" % e)
            return
        try:
            pid = os.fork()
        except OSError as e:
            os.close(go_r)
            os.close(go_w)
            send("E fork: %s" % e)
            return
        if pid == 0:
            try:
                os.close(go_w)
                _child(go_r, fds, fields, own)
            finally:
                os._exit(1)
        os.close(go_r)
        try:
            os.setpgid(pid, pid)  # also done by the child: whichever runs first
        except OSError:
            pass
        try:
            send("F %d" % pid)
        finally:
            # Only now may the child run the code: if we die before saying F, it never does,
            # and the agent can safely run the code another way.
            os.write(go_w, b"G")
            os.close(go_w)
    finally:
        for f in fds:
            os.close(f)


def _child(go_r, fds, fields, own):
    _sig.set_wakeup_fd(-1)
    _sig.signal(_sig.SIGCHLD, _sig.SIG_DFL)
    try:
        os.setpgid(0, 0)  # its own process group, which the agent signals and kills
    except OSError:
        pass
    if _prctl is not None:
        try:
            _prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except Exception:
            pass
    for f in own:
        os.close(f)
    while True:
        try:
            go = os.read(go_r, 1)
            break
        except InterruptedError:
            continue
    if go != b"G":
        os._exit(0)  # the server died before the agent learnt of us: never run the code
    os.close(go_r)
    try:
        script = os.fsdecode(fields[0])
        cwd = os.fsdecode(fields[1])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for f in fds:
            if f > 2:
                os.close(f)
        # Through os.environb, so the process's real environment (unsetenv, putenv) is the
        # call's too. Only the differences: the server's is most often the same.
        want = {}
        for kv in fields[2:]:
            k, _eq, v = kv.partition(b"=")
            want[k] = v
        env = os.environb
        for k in [k for k in env if k not in want]:
            del env[k]
        for k, v in want.items():
            if env.get(k) != v:
                env[k] = v
        if cwd:
            os.chdir(cwd)
        _stdio()
        sys.argv = [script]
        if hasattr(sys, "orig_argv"):
            sys.orig_argv = [sys.orig_argv[0], script]
        if sys.version_info < (3, 7) and "random" in sys.modules:
            sys.modules["random"].seed()  # later Pythons reseed after fork themselves
        main = type(sys)("__main__")
        for k, v in _pristine:
            if k == "__file__":
                v = script
            elif k == "__loader__" and v is not None:
                try:
                    v = type(v)("__main__", script)
                except Exception:
                    pass
            elif k == "__annotations__":
                v = {}
            elif k == "__doc__":
                v = None
            main.__dict__[k] = v
        sys.modules["__main__"] = main
    except BaseException as e:
        try:
            _say(2, "enclave-agent: cannot start the Python code: %s" % e)
        finally:
            os._exit(1)
    _run(main, script)


def _stream(fd, name, mode):
    # As Python's create_stdio makes sys.stdin/stdout/stderr.
    import io
    old = getattr(sys, "__%s__" % name[1:-1], None)
    buffering = 0 if (mode == "w" and not _BUFFERED) else -1
    buf = io.open(fd, mode + "b", buffering, closefd=False)
    raw = buf if buffering == 0 else buf.raw
    raw.name = name
    line = _BUFFERED and (raw.isatty() or (fd == 2 and sys.version_info >= (3, 9)))
    s = io.TextIOWrapper(buf, getattr(old, "encoding", None), getattr(old, "errors", None),
                         "\n", line, not _BUFFERED)
    s.mode = mode
    return s


def _stdio():
    # For the fds the call was given (stdin, /dev/null as ours, was made once by the server).
    sys.stdout = sys.__stdout__ = _stream(1, "<stdout>", "w")
    sys.stderr = sys.__stderr__ = _stream(2, "<stderr>", "w")


def _write_err(text):
    try:
        err = sys.stderr
        if err is not None:
            err.write(text)
            return
    except Exception:
        pass
    try:
        _say(2, text.rstrip("\n"))
    except Exception:
        pass


def _exit_code(e):
    # As the interpreter's handle_system_exit.
    code = getattr(e, "code", e)
    if code is None:
        return 0
    if isinstance(code, int):
        return code if -(1 << 63) <= code < (1 << 63) else -1
    _write_err(str(code))
    _write_err("\n")
    return 1


def _strip(e):
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _ME:
        tb = tb.tb_next
    try:
        e.__traceback__ = tb
    except Exception:
        pass
    return tb


def _print_exception(e):
    # As PyErr_Print: our own frames stripped, sys.last_*, sys.excepthook honoured.
    tb = _strip(e)
    t = type(e)
    sys.last_type, sys.last_value, sys.last_traceback = t, e, tb
    if sys.version_info >= (3, 12):
        sys.last_exc = e
    hook = getattr(sys, "excepthook", None)
    if hook is None:
        _write_err("sys.excepthook is missing\n")
        sys.__excepthook__(t, e, tb)
        return None
    try:
        hook(t, e, tb)
    except BaseException as e2:
        bad = e2
    else:
        return None
    if isinstance(bad, SystemExit):
        return _exit_code(bad)
    try:
        sys.stdout.flush()
    except Exception:
        pass
    _write_err("Error in sys.excepthook:\n")
    sys.__excepthook__(type(bad), bad, _strip(bad))
    _write_err("\nOriginal exception was:\n")
    sys.__excepthook__(t, e, tb)
    return None


def _run(main, script):
    code = 0
    sigint = False
    try:
        try:
            _sig.signal(_sig.SIGINT, _sig.default_int_handler)
            with open(script, "rb") as f:
                source = f.read()
            exec(compile(source, script, "exec", 0, True), main.__dict__)
        except BaseException as e:
            failed = e
        else:
            failed = None
        # Handled outside the except clause, as the interpreter does: the hook sees no
        # exception being handled, and one it raises has no __context__.
        if isinstance(failed, SystemExit):
            code = _exit_code(failed)
        elif failed is not None:
            sigint = isinstance(failed, KeyboardInterrupt)
            code = _print_exception(failed)
            if code is None:
                code = 1
        failed = None
        # As Py_FinalizeEx: wait for threads, run atexit handlers, flush.
        threading = sys.modules.get("threading")
        if threading is not None:
            try:
                threading._shutdown()
            except BaseException:
                pass
        try:
            import atexit
            atexit._run_exitfuncs()
        except BaseException:
            pass
        for name in ("stdout", "stderr"):
            f = getattr(sys, name, None)
            try:
                if f is not None and not getattr(f, "closed", False):
                    f.flush()
            except BaseException as e:
                code = 120
                if name == "stdout":
                    hook = getattr(sys, "unraisablehook", None)
                    try:
                        hook(sys.UnraisableHookArgs((type(e), e, e.__traceback__, None, f)))
                    except Exception:
                        pass
        if sigint:
            # As Python does: die of SIGINT, so that the parent sees how it ended.
            try:
                _sig.signal(_sig.SIGINT, _sig.SIG_DFL)
                os.kill(os.getpid(), _sig.SIGINT)
            except BaseException:
                pass
            code = 130
    finally:
        os._exit(code & 0xFF)


try:
    _serve()
finally:
    os._exit(0)
