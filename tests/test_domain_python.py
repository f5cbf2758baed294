"""The python domain: critic soundness on HumanEval, evaluator, wiring (no model load)."""

from __future__ import annotations

import argparse
import math

import pytest

import smc
from potentials import python_source as src
from potentials.python_critic import PythonCritic
from smc.domains.python import PythonDomain, _problems

NEG_INF = float("-inf")


@pytest.fixture(scope="module")
def dom() -> PythonDomain:
    return smc.domains.load("python", timeout=5.0)


def boundaries(text: str) -> list[str]:
    return [text[: i + 1] for i, ch in enumerate(text)
            if ch == "\n" and src.at_boundary(text[: i + 1])]


# ---- prefix analysis -------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("def f(x):\n", True), ("x = (1,\n", False), ('x = """a\n', False), ("x = 1 \\\n", False),
    ("x = 1", False), ("def f(x):\n    # note\n", True), ("", False),
])
def test_boundary(text, expected):
    assert src.at_boundary(text) is expected


def test_close_blocks_makes_open_headers_compile():
    for text in ("def f(x):\n", "def f(x):\n    if x:\n", "def f(x):\n    for i in (1,\n"
                 "              2):\n", "class A:\n    def m(self):\n"):
        assert src.compile_error(src.close_blocks(text)) is None, text


@pytest.mark.parametrize("text", [
    "return 1\n", "def f(a, a):\n", "for x in y:\n    pass\nbreak\n", "f() = 1\n",
    "def f():\n    x = 1\n    global x\n",
])
def test_final_errors(text):
    assert src.final_error(text) is not None


@pytest.mark.parametrize("text", [
    "def outer():\n    def inner():\n        nonlocal y\n        y = 2\n",   # bound later
    "try:\n    x = 1\n",                                                    # handler later
    "@decorator\n",                                                          # def later
])
def test_errors_that_a_completion_can_fix_are_not_final(text):
    assert src.final_error(text) is None


# ---- critic soundness --------------------------------------------------------------------
def test_critic_never_rejects_a_prefix_of_a_canonical_solution():
    """Every statement-boundary prefix of 40 HumanEval solutions (every 4th task) gets 0:
    prefix is an upper bound, and the solutions are lint-clean as they go."""
    for row in _problems()[::4]:
        text = row["prompt"] + row["canonical_solution"]
        critic = PythonCritic("", row["entry_point"])
        assert critic.prefix("") == 0.0
        for b in boundaries(text):
            assert critic.prefix(b) == 0.0, (row["task_id"], b[-60:], critic.last_failure)
        assert critic.complete(text) == 0.0, (row["task_id"], critic.last_failure)


def test_critic_domain_format_context_plus_function():
    row = _problems()[2]
    critic = PythonCritic(row["prompt"], row["entry_point"])
    body = ("def truncate_number(number: float) -> float:\n    return number % 1.0\n")
    assert [critic.prefix(b) for b in boundaries(body)] == [0.0, 0.0]
    assert critic.complete(body) == 0.0
    assert critic.complete("def other(x):\n    return x\n") == NEG_INF   # no entry point


@pytest.mark.parametrize("text", [
    "import nonexistent_module_xyz\n",
    "import nonexistent_module_xyz\ndef f():\n",
    "x = 1 / 0\n",
    "def f(a=1/0):\n    return a\nx = 1\n",
    "return 1\n",
    "import socket\ns = socket.socket()\n",
])
def test_critic_rejects_what_no_completion_can_fix(text):
    critic = PythonCritic()
    assert critic.prefix(text) == NEG_INF
    assert critic.prefix(text + "y = 2\n") == NEG_INF       # stays -inf
    assert critic.complete(text + "pass\n") == NEG_INF


def test_open_last_statement_is_not_run_yet():
    critic = PythonCritic()
    text = "def f(a=1/0):\n    return a\n"            # could still grow: not run
    assert critic.prefix(text) == 0.0 and critic.runs == 0
    assert critic.complete(text) == NEG_INF and critic.runs == 1


def test_calls_of_defined_functions_are_not_run():
    critic = PythonCritic()
    text = "def f():\n    while True:\n        pass\nx = f()\ny = 1\n"
    assert critic.prefix(text) == 0.0 and critic.complete(text) == 0.0


def test_lint_penalty_is_an_upper_bound_and_monotone():
    critic = PythonCritic(lint_penalty=2.0)
    text = "def f(x):\n    y = z + x\n    z = 1\n    return y\n"
    values = [critic.prefix(b) for b in boundaries(text)]
    assert values == [0.0, -2.0, -2.0, -2.0]                 # z used before it is bound
    assert critic.complete(text) == -2.0
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert PythonCritic(lint_penalty=math.inf).complete(text) == NEG_INF
    assert PythonCritic(lint_penalty=0).complete(text) == 0.0
    # a name bound later at top level is still an error where it was used (LintSeq)
    assert critic.complete("def f():\n    return g()\ndef g():\n    return 1\n") == -2.0


def test_prefix_between_boundaries_uses_the_last_boundary():
    critic = PythonCritic()
    assert critic.prefix("return 1\nx = (") == NEG_INF
    assert critic.prefix("x = 1\ny = (1,\n") == 0.0
    assert not critic.evaluate_at("x = (1,\n") and critic.evaluate_at("x = 1\n")


def test_critic_bad_arguments():
    with pytest.raises(ValueError):
        PythonCritic("def f(:\n")
    with pytest.raises(ValueError):
        PythonCritic(entry_point="not an id")
    with pytest.raises(ValueError):
        PythonCritic(lint_penalty=-1)


# ---- evaluator -----------------------------------------------------------------------------
def test_canonical_solution_passes_wrong_body_fails(dom):
    task = dom.task("HumanEval/0")
    row = _problems()[0]
    ev = dom.evaluate(row["prompt"] + row["canonical_solution"], task)
    assert ev.valid and ev.correct and ev.score == 1.0 and ev.details["status"] == "ok"
    sig = row["prompt"].split('"""')[0].strip().splitlines()[-1]
    ev = dom.evaluate(sig + "\n    return False\n", task)
    assert ev.valid and not ev.correct and ev.score == 0.0 and ev.details["status"] == "error"
    ev = dom.evaluate("```python\n" + sig + "\n    return False\n```\nDone.", task)
    assert ev.valid and not ev.correct                               # fenced output is read


def test_infinite_loop_is_a_timeout_failure():
    task = smc.domains.load("python").task("HumanEval/2")
    ev = PythonDomain(timeout=0.5).evaluate(
        "def truncate_number(number):\n    while True:\n        pass\n", task)
    assert ev.valid and not ev.correct and ev.details["status"] == "timeout"


def test_invalid_outputs(dom):
    task = dom.task("HumanEval/2")
    assert dom.evaluate(None, task).to_json()["valid"] is False
    ev = dom.evaluate("def truncate_number(x)\n    return 1\n", task)
    assert not ev.valid and ev.details["status"] == "syntax"


def test_stub_questions(dom):
    task = dom.task('def add(a, b):\n    """Add two numbers."""\n')
    assert task.meta["entry_point"] == "add" and task.meta["test"] is None
    assert dom.task("def add(a, b):").meta["context"].endswith("    ...\n")
    ev = dom.evaluate("def add(a, b):\n    return a + b\n", task)
    assert ev.valid and ev.correct and ev.details["tests"] is False
    test = "def check(candidate):\n    assert candidate(2, 3) == 5\n"
    task = dom.task("def add(a, b):", test=test)
    assert dom.evaluate("def add(a, b):\n    return a - b\n", task).correct is False
    for bad in ("   ", "x = 1", "def (:"):
        with pytest.raises(ValueError):
            dom.task(bad)
    with pytest.raises(ValueError):
        dom.task("HumanEval/999")


# ---- wiring ---------------------------------------------------------------------------------
def test_wiring(dom):
    assert isinstance(dom, PythonDomain) and "python" in smc.domains.names()
    assert len(dom.tasks()) == 164
    assert [t.id for t in PythonDomain(subset=3).tasks()] == [f"HumanEval/{i}" for i in range(3)]
    task = dom.tasks()[0]
    prompt = dom.prompt(task.question)
    assert "def has_close_elements" in prompt and "whole function" in prompt
    assert dom.prompt("HumanEval/0") == prompt
    bound = dom.for_task(task)
    assert bound.critic.entry_point == "has_close_elements" and dom.critic.entry_point is None
    assert bound.constraint is dom.constraint
    row = _problems()[0]
    assert bound.constraint.complete(row["prompt"] + row["canonical_solution"]) == 0.0
    parser = argparse.ArgumentParser()
    PythonDomain.add_arguments(parser)
    opts = PythonDomain.options_from(parser.parse_args(["--timeout", "3", "--subset", "5"]))
    assert PythonDomain(**opts).timeout == 3.0 and len(PythonDomain(**opts).tasks()) == 5
    with pytest.raises(ValueError):
        PythonDomain(subset=0)
    with pytest.raises(ValueError):
        PythonDomain(timeout=-1)


def test_generate_with_a_function_lm(dom):
    """The critic in smc.generate: a tiny LM that writes a correct or a failing program."""
    good = "def truncate_number(number):\n    return number % 1.0\n"
    bad = "import nonexistent_module_xyz\n"
    vocab = [good, bad, "<eos>"]

    def next_logprobs(ids):
        import numpy as np
        if not ids:
            return np.log(np.array([0.5, 0.5, 1e-12]))
        return np.log(np.array([1e-12, 1e-12, 1.0]))

    lm = smc.FunctionLM(vocab, 2, next_logprobs)
    task = dom.task("HumanEval/2")
    bound = dom.for_task(task)
    res = smc.generate(lm, "", critic=bound.critic, method="smc", n_particles=8, max_tokens=3)
    assert res.posterior == {good: pytest.approx(1.0)}
    assert bound.evaluate(res.best, task).correct
