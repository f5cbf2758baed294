"""Run untrusted Python code in a separate, confined process: ``smc.sandbox.run(code)``.

Generated code never runs in the library's process.  A worker process (``python -I -S``,
empty environment, its own session; see ``_zygote.py`` for every layer of confinement)
is started once and forks a fresh child per request, so one request costs a fork
(a few ms) instead of an interpreter start (~30 ms).  The child gets a wall-clock
timeout (SIGKILL), an RLIMIT_CPU, an RLIMIT_AS memory cap, an empty scratch working
directory (removed afterwards), no network (network namespace where the kernel allows,
Landlock TCP rules, and an audit hook on every socket operation), no process creation and
no writes outside the scratch directory (Landlock where available, and the audit hook).

    res = smc.sandbox.run("print(sum(range(10)))", timeout=2.0, memory_mb=256)
    res.ok, res.status, res.stdout          # True, 'ok', '45\\n'

``status`` is one of ``ok`` (ran to its end), ``error`` (an exception, including
SystemExit, or an exit before the end), ``timeout`` (wall clock or CPU time), ``memory``
(MemoryError under the cap), ``killed`` (a signal: segfault, abort) or ``forbidden`` (the
code tried something the sandbox refuses; it was stopped at that point).

The sandbox protects the host from the code; it does not protect a result from code that
sets out to forge one (the code runs in the process that reports its status).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

STATUSES = ("ok", "error", "timeout", "memory", "killed", "forbidden")
_WORKER = Path(__file__).with_name("_zygote.py")
_GRACE = 5.0      # seconds the worker may take beyond the request's own timeout


@dataclass(frozen=True)
class SandboxResult:
    """The outcome of one run: ``ok`` iff ``status == "ok"``; ``exception`` is
    ``"Type: message"`` (or the cause of a timeout / kill / refusal), None when ok."""

    status: str
    stdout: str = ""
    stderr: str = ""
    exception: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class SandboxError(RuntimeError):
    """The sandbox worker itself could not be started or answered nonsense."""


def _check(code, timeout, memory_mb, stdin, max_output) -> None:
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, got {type(code).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
            or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < 32:
        raise ValueError(f"memory_mb must be an integer >= 32, got {memory_mb!r}")
    if stdin is not None and not isinstance(stdin, str):
        raise TypeError(f"stdin must be a str or None, got {type(stdin).__name__}")
    if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 0:
        raise ValueError(f"max_output must be an integer >= 0, got {max_output!r}")


class Sandbox:
    """A worker process serving runs one at a time (thread-safe; restarted when it dies,
    after a fork of the library process, or after it stops answering)."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._owner = -1
        self.info: dict = {}

    # -- worker lifecycle ---------------------------------------------------------------
    def _start(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [self.python, "-I", "-S", "-B", str(_WORKER)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={}, cwd="/",
            close_fds=True, start_new_session=True)
        self._proc, self._owner = proc, os.getpid()
        hello = self._read(proc, 30.0)
        if not isinstance(hello, dict) or not hello.get("ready"):
            self._stop()
            raise SandboxError(f"the sandbox worker did not start ({self.python} -I -S)")
        self.info = hello
        return proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and self._owner == os.getpid():
            proc.kill()
            proc.wait()
            for f in (proc.stdin, proc.stdout):
                if f is not None:
                    f.close()

    def close(self) -> None:
        """Stop the worker (a later run starts a new one)."""
        with self._lock:
            self._stop()

    def _worker(self) -> subprocess.Popen:
        if self._proc is not None and self._owner != os.getpid():
            self._proc = None                 # inherited through a fork: not ours to use
        if self._proc is None or self._proc.poll() is not None:
            self._stop()
            return self._start()
        return self._proc

    @staticmethod
    def _read(proc: subprocess.Popen, timeout: float):
        fd = proc.stdout.fileno()
        buf = b""
        need = 4
        length = None
        deadline = time.monotonic() + timeout
        while len(buf) < need:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, need - len(buf))
            if not chunk:
                return None
            buf += chunk
            if length is None and len(buf) == 4:
                length = struct.unpack(">I", buf)[0]
                need = 4 + length
        return json.loads(buf[4:].decode("utf-8"))

    # -- one run ------------------------------------------------------------------------
    def run(self, code: str, *, timeout: float = 5.0, memory_mb: int = 512,
            stdin: str | None = None, max_output: int = 65536,
            max_file_mb: int = 16) -> SandboxResult:
        """Run ``code`` as a module ``__main__`` in a fresh confined child (module doc)."""
        _check(code, timeout, memory_mb, stdin, max_output)
        req = {"code": code, "timeout": float(timeout), "memory_mb": int(memory_mb),
               "stdin": stdin, "max_output": int(max_output), "max_file_mb": int(max_file_mb)}
        body = json.dumps(req).encode("utf-8")
        with self._lock:
            proc = self._worker()
            try:
                proc.stdin.write(struct.pack(">I", len(body)) + body)
                proc.stdin.flush()
                answer = self._read(proc, float(timeout) + _GRACE)
            except (BrokenPipeError, OSError, ValueError):
                answer = None
            if not isinstance(answer, dict) or answer.get("status") not in STATUSES:
                self._stop()
                return SandboxResult("killed", exception="the sandbox worker stopped answering")
        return SandboxResult(status=answer["status"], stdout=answer.get("stdout", ""),
                             stderr=answer.get("stderr", ""),
                             exception=answer.get("exception"),
                             seconds=float(answer.get("seconds", 0.0)))


_DEFAULT = Sandbox()
atexit.register(_DEFAULT.close)


def run(code: str, *, timeout: float = 5.0, memory_mb: int = 512, stdin: str | None = None,
        max_output: int = 65536, max_file_mb: int = 16) -> SandboxResult:
    """Run ``code`` in the shared default sandbox (see the module doc and ``Sandbox.run``)."""
    return _DEFAULT.run(code, timeout=timeout, memory_mb=memory_mb, stdin=stdin,
                        max_output=max_output, max_file_mb=max_file_mb)


def default() -> Sandbox:
    """The shared sandbox used by ``run`` (its ``info`` says which layers the kernel gave)."""
    return _DEFAULT


__all__ = ["STATUSES", "Sandbox", "SandboxError", "SandboxResult", "default", "run"]
