"""smc.sandbox: every refusal is really attempted, and the library process is unaffected."""

from __future__ import annotations

import os
import tempfile
import uuid

import pytest

from smc import sandbox


def run(code: str, **kw) -> sandbox.SandboxResult:
    kw.setdefault("timeout", 3.0)
    kw.setdefault("memory_mb", 256)
    return sandbox.run(code, **kw)


def test_ok_stdout_stdin_and_stderr():
    res = run("import sys\nprint(input()[::-1])\nprint('warn', file=sys.stderr)", stdin="abc")
    assert res.ok and res.status == "ok" and res.exception is None
    assert res.stdout == "cba\n" and res.stderr == "warn\n"
    assert res.seconds > 0


def test_exception_is_reported_with_traceback():
    res = run("def f():\n    return 1 / 0\nf()\n")
    assert res.status == "error" and not res.ok
    assert res.exception == "ZeroDivisionError: division by zero"
    assert "line 2, in f" in res.stderr and "_zygote" not in res.stderr


def test_infinite_loop_times_out():
    res = run("while True:\n    pass\n", timeout=0.5)
    assert res.status == "timeout"
    assert 0.5 <= res.seconds < 3.0


def test_cpu_limit_applies_even_when_time_is_spent_elsewhere():
    # sleeping does not use CPU: the wall clock stops it
    res = run("import time\ntime.sleep(10)\n", timeout=0.3)
    assert res.status == "timeout"


def test_unbounded_allocation_hits_the_memory_cap():
    assert run("x = bytearray(8 * 1024 ** 3)\n").status == "memory"
    assert run("xs = []\nwhile True:\n    xs.append(' ' * 10 ** 6)\n").status == "memory"


@pytest.mark.parametrize("code", [
    "import os\nos.fork()\n",
    "import os\ntry:\n    os.fork()\nexcept BaseException:\n    pass\nprint('survived')\n",
    "import os\nos.system('echo hi')\n",
    "import os\nos.execv('/bin/sh', ['sh', '-c', 'echo hi'])\n",
    "import subprocess\nsubprocess.run(['echo', 'hi'])\n",
    "import os\nos.posix_spawn('/bin/echo', ['echo'], {})\n",
    "import ctypes\n",
    "import importlib\nimportlib.import_module('_posixsubprocess')\n",
])
def test_process_creation_and_ctypes_are_stopped(code):
    res = run(code)
    assert res.status == "forbidden", res
    assert "survived" not in res.stdout and "hi" not in res.stdout


@pytest.mark.parametrize("code", [
    "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 9))\n",
    "import socket\nsocket.create_connection(('example.com', 80), timeout=1)\n",
    "import socket\ntry:\n    socket.socket().bind(('127.0.0.1', 0))\nexcept BaseException:\n"
    "    pass\nprint('survived')\n",
])
def test_network_is_stopped(code):
    res = run(code)
    assert res.status == "forbidden", res
    assert "survived" not in res.stdout


def test_write_outside_scratch_is_stopped_and_nothing_is_written():
    target = os.path.join(tempfile.gettempdir(), f"smc-sandbox-escape-{uuid.uuid4().hex}")
    for code in (f"open({target!r}, 'w').write('x')\n",
                 f"import os\nos.open({target!r}, os.O_WRONLY | os.O_CREAT)\n",
                 f"import os\nos.mkdir({target!r})\n",
                 f"import os\nos.symlink({target!r}, 'link')\nopen('link', 'w')\n",
                 f"import os\nfd = os.open({os.path.dirname(target)!r}, os.O_RDONLY)\n"
                 f"os.open({os.path.basename(target)!r}, os.O_WRONLY | os.O_CREAT, dir_fd=fd)\n"):
        res = run(code)
        assert res.status in ("forbidden", "error"), (code, res)
        assert not os.path.exists(target), code


def test_scratch_directory_is_writable_private_and_removed():
    res = run("import os, tempfile\nopen('a.txt', 'w').write('hello')\n"
              "print(open('a.txt').read(), os.listdir('.'), os.getcwd())\n"
              "print(sorted(os.environ))\nprint(tempfile.mkstemp()[1].startswith(os.getcwd()))\n")
    assert res.ok, res
    first, keys, in_scratch = res.stdout.splitlines()
    assert first.startswith("hello ['a.txt'] ")
    scratch = first.split("] ", 1)[1]
    assert keys == "['HOME', 'LC_ALL', 'TMPDIR']" and in_scratch == "True"
    assert not os.path.exists(scratch) and not os.path.exists(os.path.dirname(scratch))


@pytest.mark.parametrize("code, status", [
    ("raise SystemExit(3)\n", "error"),
    ("import sys\nsys.exit(0)\n", "error"),
    ("import os\nos._exit(0)\n", "error"),
    ("import os\nos.abort()\n", "killed"),
    ("import faulthandler\nfaulthandler._sigsegv()\n", "killed"),
    ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", "forbidden"),
])
def test_crashes_are_reported_not_propagated(code, status):
    pid = os.getpid()
    res = run(code)
    assert res.status == status, res
    assert os.getpid() == pid
    assert run("print('next')\n").stdout == "next\n"     # the worker still serves


def test_no_escape_modules_are_preloaded_and_limits_cannot_be_raised():
    res = run("import sys\nprint(sorted(m for m in sys.modules if 'ctypes' in m or "
              "'subprocess' in m or m == 'socket'))\n")
    assert res.stdout == "[]\n"
    res = run("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n")
    assert res.status == "forbidden"


def test_worker_restarts_after_it_dies():
    box = sandbox.Sandbox()
    try:
        assert box.run("print(1)").stdout == "1\n"
        box._proc.kill()
        box._proc.wait()
        assert box.run("print(2)").stdout == "2\n"
    finally:
        box.close()


def test_bad_arguments():
    with pytest.raises(TypeError):
        sandbox.run(b"print(1)")
    for kw in ({"timeout": 0}, {"timeout": float("inf")}, {"memory_mb": 1}, {"max_output": -1}):
        with pytest.raises(ValueError):
            sandbox.run("pass", **kw)
    with pytest.raises(TypeError):
        sandbox.run("pass", stdin=b"x")


def test_output_is_truncated():
    res = run("print('x' * 100000)\n", max_output=1000)
    assert res.ok and res.stdout.endswith("[output truncated]") and len(res.stdout) < 1100
