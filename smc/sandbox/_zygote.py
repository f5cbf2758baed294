"""The sandbox's worker process (run as ``python -I -S -B _zygote.py``; never imported).

It starts once, moves itself into new user + network namespaces when the kernel allows
(no interface but a down loopback: no network for it or its children), then serves
requests on its stdin/stdout (4-byte length + JSON).  Each request forks a fresh child
that confines itself before the untrusted code runs:

* its own session, stdio redirected to files of a private run directory, every other
  file descriptor closed, cwd = an empty scratch directory (removed afterwards);
* rlimits: RLIMIT_AS (memory), RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NPROC = 0, no core file;
* Landlock (Linux >= 5.13, when available): writes (create, remove, truncate, rename,
  link) only beneath the scratch directory, no execve anywhere, no TCP bind/connect,
  signals and abstract Unix sockets scoped to itself;
* an audit hook (``sys.addaudithook``, cannot be removed) that stops, un-catchably (the
  child reports ``forbidden`` and exits), process creation (fork, exec, spawn, system,
  Popen, posix_spawn), sockets, ctypes and the import of ctypes / _posixsubprocess /
  cffi, kill, rlimit changes, links, chmod/chown, and any write-mode open or file-system
  change outside the scratch directory.

The worker keeps its protocol pipes on high descriptors that the children close, and it
imports no module that could create a process (no subprocess, no socket).
"""

import ctypes
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long
_SYS_LANDLOCK_CREATE, _SYS_LANDLOCK_ADD, _SYS_LANDLOCK_RESTRICT = 444, 445, 446
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
_FORBIDDEN_EXIT = 86

_BLOCKED_EVENTS = frozenset({
    "os.fork", "os.forkpty", "os.system", "os.kill", "os.killpg", "signal.pthread_kill",
    "os.symlink", "os.link", "os.chmod", "os.chown", "os.chflags", "os.lchflags", "os.chroot",
    "os.setxattr", "os.removexattr", "os.mknod", "os.mkfifo", "os.startfile", "pty.spawn",
    "resource.setrlimit", "resource.prlimit", "sqlite3.connect", "os.add_dll_directory",
})
_BLOCKED_PREFIXES = ("os.exec", "os.spawn", "os.posix_spawn", "subprocess.", "socket.",
                     "ctypes.", "_ctypes", "winreg.", "shutil.chown")
# modules that reach around the hook (raw memory, fork_exec without an audit event)
_BLOCKED_IMPORTS = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "cffi", "_cffi_backend"})
# events whose path arguments are written (the index of each path among the arguments)
_WRITE_EVENTS = {
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1),
    "os.truncate": (0,), "os.utime": (0,), "shutil.rmtree": (0,), "shutil.move": (0, 1),
    "shutil.copyfile": (1,), "shutil.copymode": (1,), "shutil.copystat": (1,),
    "shutil.copytree": (1,), "shutil.make_archive": (0,), "shutil.unpack_archive": (1,),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


# ---- protocol ---------------------------------------------------------------------------
def _read_exact(fd, n):
    chunks = []
    while n:
        b = os.read(fd, n)
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def _recv(fd):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack(">I", head)[0])
    return None if body is None else json.loads(body.decode("utf-8"))


def _send(fd, obj):
    body = json.dumps(obj).encode("utf-8")
    data = struct.pack(">I", len(body)) + body
    while data:
        data = data[os.write(fd, data):]


# ---- confinement ------------------------------------------------------------------------
def _unshare_network():
    """New user + network namespaces for this worker (so for every child): 'userns+netns',
    'netns' (root without user namespaces) or '' when the kernel refuses both."""
    for flags, label in ((_CLONE_NEWUSER | _CLONE_NEWNET, "userns+netns"),
                         (_CLONE_NEWNET, "netns")):
        if _LIBC.unshare(flags) == 0:
            return label
    return ""


def _landlock_abi():
    abi = _LIBC.syscall(_SYS_LANDLOCK_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return int(abi) if abi > 0 else 0


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _landlock(abi, scratch):
    """Confine writes to ``scratch``, forbid execve, TCP and outside signals (Landlock)."""
    if abi <= 0:
        return False
    execute, write_file, remove_dir, remove_file = 1, 1 << 1, 1 << 4, 1 << 5
    make = sum(1 << b for b in range(6, 13))          # char, dir, reg, sock, fifo, block, sym
    writes = write_file | remove_dir | remove_file | make
    if abi >= 2:
        writes |= 1 << 13                              # REFER (rename / link across dirs)
    if abi >= 3:
        writes |= 1 << 14                              # TRUNCATE
    attr = _RulesetAttr(execute | writes, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    size = ctypes.sizeof(ctypes.c_uint64) * (3 if abi >= 6 else 2 if abi >= 4 else 1)
    ruleset = _LIBC.syscall(_SYS_LANDLOCK_CREATE, ctypes.byref(attr), ctypes.c_size_t(size),
                            ctypes.c_uint32(0))
    if ruleset < 0:
        return False
    try:
        dir_fd = os.open(scratch, os.O_PATH | os.O_DIRECTORY)
        rule = _PathBeneath(writes, dir_fd)
        ok = _LIBC.syscall(_SYS_LANDLOCK_ADD, ctypes.c_int(ruleset), ctypes.c_int(1),
                           ctypes.byref(rule), ctypes.c_uint32(0)) == 0
        os.close(dir_fd)
        if not ok or _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False
        return _LIBC.syscall(_SYS_LANDLOCK_RESTRICT, ctypes.c_int(ruleset),
                             ctypes.c_uint32(0)) == 0
    finally:
        os.close(ruleset)


def _install_hook(scratch, result_fd):
    """The audit hook: a forbidden event writes the ``forbidden`` result and exits."""
    realpath, join, getcwd, fsdecode = os.path.realpath, os.path.join, os.getcwd, os.fsdecode
    write, exit_ = os.write, os._exit
    prefix = scratch + os.sep
    busy = []

    def inside(path):
        if isinstance(path, int):
            return True                                # an already-open descriptor
        try:
            full = realpath(join(getcwd(), fsdecode(path)))
        except Exception:
            return False
        return full == scratch or full.startswith(prefix)

    def deny(event, detail):
        msg = f"forbidden: {event}{detail}"
        try:
            write(result_fd, json.dumps({"status": "forbidden", "exception": msg}).encode())
            write(2, (msg + "\n").encode())
        finally:
            exit_(_FORBIDDEN_EXIT)

    def hook(event, args):
        if busy:
            return
        busy.append(1)
        try:
            if event in _BLOCKED_EVENTS or event.startswith(_BLOCKED_PREFIXES):
                deny(event, "")
            elif event == "import":
                if args[0] and args[0].partition(".")[0] in _BLOCKED_IMPORTS:
                    deny(event, f" {args[0]}")
            elif event == "open":
                path, mode, flags = args
                writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & _WRITE_FLAGS)
                if writing and not inside(path):
                    deny(event, f" {path!r} for writing outside the scratch directory")
            elif event in _WRITE_EVENTS:
                if len(args) > 2 and event.startswith("os.") and args[-1] not in (None, -1):
                    deny(event, " with dir_fd")
                for i in _WRITE_EVENTS[event]:
                    if i < len(args) and args[i] is not None and not inside(args[i]):
                        deny(event, f" {args[i]!r} outside the scratch directory")
        finally:
            busy.pop()

    sys.addaudithook(hook)


# ---- one request ----------------------------------------------------------------------
def _child(req, scratch, fds, result_fd, landlock_abi):
    """Confine this forked process, run the code, report through ``result_fd``; never
    returns."""
    try:
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, result_fd)
        os.closerange(result_fd + 1, 1 << 16)
        os.chdir(scratch)
        mem = int(req["memory_mb"]) * 1024 * 1024
        cpu = int(req["timeout"]) + 1
        for limit, value in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_CPU, cpu),
                             (resource.RLIMIT_FSIZE, int(req["max_file_mb"]) << 20),
                             (resource.RLIMIT_NPROC, 0), (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(limit, (value, value))
        landlocked = _landlock(landlock_abi, scratch)
        os.environ.clear()
        os.environ.update({"HOME": scratch, "TMPDIR": scratch, "LC_ALL": "C.UTF-8"})
        tempfile.tempdir = scratch
        for name in [m for m in sys.modules if m.partition(".")[0] in ("ctypes", "_ctypes")]:
            del sys.modules[name]
        memory_result = json.dumps({"status": "memory", "exception": "MemoryError",
                                    "landlock": landlocked}).encode()
        _install_hook(scratch, result_fd)
    except BaseException as exc:  # confinement failed: never run the code
        os.write(result_fd, json.dumps({"status": "error", "exception":
                                        f"sandbox setup failed: {exc!r}"}).encode())
        os._exit(70)
    module = type(sys)("__main__")
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module
    status, exception = "ok", None
    try:
        exec(compile(req["code"], "<sandbox>", "exec", dont_inherit=True), module.__dict__)
    except MemoryError:
        os.write(result_fd, memory_result)
        os._exit(1)
    except SystemExit as exc:
        status, exception = "error", f"SystemExit: {exc.code!r}"
    except BaseException as exc:
        status = "error"
        exception = f"{type(exc).__name__}: {exc}"
        try:
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        except BaseException:
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os.write(result_fd, json.dumps({"status": status, "exception": exception,
                                    "landlock": landlocked}).encode())
    os._exit(0)


def _wait(pid, timeout):
    """(wait status, timed out): waits at most ``timeout`` seconds, then SIGKILLs."""
    deadline = time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    timed_out = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            break
        if pidfd is not None:
            select.select([pidfd], [], [], left)
        else:
            time.sleep(min(left, 0.002))
    if pidfd is not None:
        os.close(pidfd)
    try:
        os.killpg(pid, signal.SIGKILL)               # anything it left in its session
    except OSError:
        pass
    return status, timed_out


def _tail(path, limit):
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    text = data[:limit].decode("utf-8", "replace")
    return text + ("\n[output truncated]" if len(data) > limit else "")


def _handle(req, landlock_abi):
    run_dir = tempfile.mkdtemp(prefix="smc-sandbox-")
    try:
        scratch = os.path.join(run_dir, "scratch")
        os.mkdir(scratch, 0o700)
        paths = {k: os.path.join(run_dir, k) for k in ("stdin", "stdout", "stderr", "result")}
        with open(paths["stdin"], "wb") as f:
            f.write((req.get("stdin") or "").encode("utf-8"))
        fds = [os.open(paths["stdin"], os.O_RDONLY)]
        fds += [os.open(paths[k], os.O_WRONLY | os.O_CREAT, 0o600) for k in ("stdout", "stderr")]
        result_fd = os.open(paths["result"], os.O_WRONLY | os.O_CREAT, 0o600)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(req, os.path.realpath(scratch), fds, result_fd, landlock_abi)
        for fd in (*fds, result_fd):
            os.close(fd)
        status, timed_out = _wait(pid, float(req["timeout"]))
        seconds = time.monotonic() - started
        with open(paths["result"], "rb") as f:
            raw = f.read(1 << 16)
        try:
            reported = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            reported = None
        if not isinstance(reported, dict) or reported.get("status") not in (
                "ok", "error", "memory", "forbidden"):
            reported = None
        if timed_out:
            out = {"status": "timeout", "exception": f"wall-clock timeout {req['timeout']} s"}
        elif os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
            out = {"status": "timeout", "exception": "CPU-time limit exceeded"}
        elif reported is not None:
            out = reported
        elif os.WIFSIGNALED(status):
            sig = signal.Signals(os.WTERMSIG(status)).name
            out = {"status": "killed", "exception": f"killed by {sig}"}
        else:
            out = {"status": "error",
                   "exception": f"exited with code {os.WEXITSTATUS(status)} before finishing"}
        limit = int(req["max_output"])
        out["stdout"] = _tail(paths["stdout"], limit)
        out["stderr"] = _tail(paths["stderr"], limit)
        out["seconds"] = seconds
        return out
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def main():
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    network = _unshare_network()
    abi = _landlock_abi()
    _send(proto_out, {"ready": True, "namespaces": network, "landlock_abi": abi,
                      "pid": os.getpid()})
    while True:
        req = _recv(proto_in)
        if req is None:
            return
        try:
            _send(proto_out, _handle(req, abi))
        except Exception as exc:  # report, keep serving
            _send(proto_out, {"status": "error", "exception": f"sandbox worker: {exc!r}",
                              "stdout": "", "stderr": traceback.format_exc(), "seconds": 0.0})


if __name__ == "__main__":
    main()
