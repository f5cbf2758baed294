"""The plugin path: a third-party domain pip-installed from a temporary directory is found
through the ``smc.domains`` entry-point group, by the Python API and by the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import smc
from smc.cli_domains import _read_questions
from smc.domains import Domain, Evaluation, Task

TOY_MODULE = '''
"""A third-party domain: answer yes or no."""
import potentials
from smc.domains import Domain, Evaluation, Task


class ToyDomain(Domain):
    name = "toy"
    description = "yes/no answers (a test plugin)"
    max_tokens = 4

    def __init__(self, polite: bool = False):
        self.polite = polite
        self.constraint = potentials.LarkGrammar('start: "yes" | "no"')
        self.critic = None

    def instruction(self, question):
        return ("Please answer: " if self.polite else "Answer: ") + question

    def tasks(self):
        return [Task("t1", "Is water wet?", "yes"), Task("t2", "Is fire cold?", "no")]

    def evaluate(self, output, task):
        return Evaluation(output in ("yes", "no"), output == task.gold,
                          float(output == task.gold))

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--polite", action="store_true")

    @classmethod
    def options_from(cls, args):
        return {"polite": args.polite}


class NotADomain:
    pass
'''

TOY_PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "toy-dsl"
version = "0.1"

[project.entry-points."smc.domains"]
toy = "toy_dsl:ToyDomain"
broken = "toy_dsl:NotADomain"

[tool.setuptools]
packages = ["toy_dsl"]
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A directory into which the toy plugin was pip-installed (a real wheel build)."""
    root = tmp_path_factory.mktemp("toy")
    pkg = root / "src"
    (pkg / "toy_dsl").mkdir(parents=True)
    (pkg / "toy_dsl" / "__init__.py").write_text(TOY_MODULE)
    (pkg / "pyproject.toml").write_text(TOY_PYPROJECT)
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(pkg)],
        check=True, capture_output=True, timeout=300,
    )
    assert list(target.glob("toy_dsl-0.1.dist-info/entry_points.txt"))
    return target


def _python(site: Path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300)


def test_installed_plugin_is_found_and_loaded(site):
    out = _python(site, """
        import smc
        dom = smc.domains.load("toy", polite=True)
        print(sorted(smc.domains.names()))
        print(type(dom).__name__, repr(dom.prompt("Is water wet?")))
        print(dom.evaluate("yes", dom.tasks()[0]).correct)
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert {"toy", "sql", "python", "smiles", "pddl"} <= set(eval(lines[0]))
    assert lines[1] == "ToyDomain 'Please answer: Is water wet?\\n'"
    assert lines[2] == "True"


def test_plugin_that_is_not_a_domain_is_a_clear_error(site):
    out = _python(site, """
        import smc
        try:
            smc.domains.load("broken")
        except TypeError as err:
            print(err)
    """)
    assert "is not a smc.domains.Domain subclass" in out.stdout, out.stderr


@pytest.mark.parametrize("extra", [[], ["--step", "device", "--dtype", "float32"]],
                         ids=["default", "device-step"])
def test_plugin_runs_from_the_command_line(site, tmp_path, extra):
    from tests.tiny_hf import tiny_model

    model, tokenizer = tiny_model(seed=3)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{Path(__file__).parents[1]}"}
    out = subprocess.run(
        [sys.executable, "-m", "smc.cli", "toy", "--polite", "--tasks", "0", "--json",
         "--model", str(tmp_path / "model"), "--particles", "4", "--max-tokens", "3", *extra],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["t1", "t2"]
    for r in rows:
        # every particle that finished is in the grammar's language
        assert set(r["posterior"]) <= {"yes", "no"}
        assert r["method"] == "smc" and r["n_particles"] == 4
        assert r["evaluation"]["correct"] == (r["best"] == {"t1": "yes", "t2": "no"}[r["id"]])
    help_out = subprocess.run([sys.executable, "-m", "smc.cli", "--help"], env=env,
                              capture_output=True, text=True, timeout=120)
    assert "toy" in help_out.stdout and "yes/no answers" in help_out.stdout


def test_unknown_domain_names_the_registered_ones():
    with pytest.raises(ValueError, match="unknown domain 'nope'; registered: .*sql"):
        smc.domains.load("nope")


class _Echo(Domain):
    name = "echo"

    def evaluate(self, output, task):
        return Evaluation(output is not None, output == task.gold, 0.0)


def test_questions_file_errors_name_the_line(tmp_path):
    dom = _Echo()
    f = tmp_path / "q.jsonl"
    f.write_text('{"question": "a", "gold": "x"}\n\n{"question": "b"\n')
    with pytest.raises(ValueError, match=r"q.jsonl:3: not JSON"):
        _read_questions(dom, str(f))
    f.write_text('{"question": "a"}\n{"prompt": "b"}\n')
    with pytest.raises(ValueError, match=r'q.jsonl:2: expected an object with a "question"'):
        _read_questions(dom, str(f))
    f.write_text('{"question": "   "}\n')
    with pytest.raises(ValueError, match=r"q.jsonl:1: echo: the question is empty"):
        _read_questions(dom, str(f))
    f.write_text('{"question": "a", "gold": "x", "id": 7, "db": "shop"}\n{"question": "b"}\n')
    tasks = _read_questions(dom, str(f))
    assert tasks[0] == Task("7", "a", "x", {"db": "shop"})
    assert tasks[1].id == "q:2" and tasks[1].gold is None
    with pytest.raises(ValueError, match="does not exist"):
        _read_questions(dom, str(tmp_path / "missing.jsonl"))


def test_domain_base_prompt_and_clean():
    dom = _Echo()
    with pytest.raises(ValueError, match="question is empty"):
        dom.prompt("  ")
    assert dom.prompt("hi") == "hi\n"
    assert Domain.clean("Sure!\n```sql\nSELECT 1;\n```\nDone") == "SELECT 1;"
    assert Domain.clean("```python\ndef f():\n    return 1\n") == "def f():\n    return 1"
    assert Domain.clean("  SELECT 2 ") == "SELECT 2"
    assert Domain.clean(None) is None


def test_no_question_is_the_domains_call():
    import argparse

    from smc.cli_domains import select_tasks

    args = argparse.Namespace(question=None, questions=None, task=None, tasks=None)
    with pytest.raises(ValueError, match="echo: the question is empty"):
        select_tasks(_Echo(), args)
