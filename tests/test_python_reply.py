"""Chat-shaped Python replies: the ``function`` rule's fences and trailing statements,
``split_reply``, ``ReplyCritic`` and the evaluator's sanitising (no model load)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grammars
from potentials import LarkGrammar
from potentials.python_critic import PythonCritic
from potentials.python_reply import ReplyCritic, split_reply
from smc.domains.python import PythonDomain, _problems

NEG_INF = float("-inf")
F = "```"
BODY = "def f(x):\n    return x + 1\n"


@functools.cache
def grammar() -> LarkGrammar:
    return LarkGrammar(grammars.load("python"), start="function")


ACCEPT = [
    BODY,
    F + "python\n" + BODY + F,
    F + "python\n" + BODY + F + "\n\nThis function adds one to `x`.\n",
    F + "\n" + BODY + F + "\n",
    F + "py  \r\n" + BODY,                                  # fence left open: code to EOS
    BODY + F + "\nExplanation without an opening fence.",
    BODY + "\nprint(f(2))\nassert f(1) == 2\n",               # example usage after it
    BODY + "\n\ndef g(y):\n    return f(y) * 2\n" + F + "\n",
    "import math\nfrom typing import List\n\n" + BODY,
    "  " + F + "python\n" + BODY,                             # ignored spaces before it
    "def f(x):\n    s = '''\n```\n'''\n    return s\n",       # a fence inside a string
]
REJECT = [
    "",
    "x = 1\n" + BODY,                                  # only imports may come first
    "Here is the code:\n" + F + "python\n" + BODY,     # prose before the fence
    "\n" + F + "python\n" + BODY,
    BODY + "    " + F + "\n",                          # an indented fence
    BODY + "This is not Python.\n",                   # prose without a closing fence
    F + "python " + BODY,                              # the fence line must end first
    "def f(x):\n    return (x\n" + F + "\n",           # inside brackets
    F + "python\n" + F + "\n",                         # no function
]


@pytest.mark.parametrize("text", ACCEPT)
def test_function_rule_accepts(text):
    assert grammar().complete(text) == 0.0, text


@pytest.mark.parametrize("text", REJECT)
def test_function_rule_rejects(text):
    assert grammar().complete(text) == NEG_INF, text


@pytest.mark.parametrize("reply, code, fenced, closed, epilogue", [
    (BODY, BODY, False, False, ""),
    (F + "python\n" + BODY + F + "\nWorks.", BODY, True, True, "\nWorks."),
    (F + "pyth", "", True, False, ""),
    (F + "python\n", "", True, False, ""),
    (BODY + F, BODY, False, True, ""),
    (BODY + "``", BODY + "``", False, False, ""),          # not a fence yet
    ("def f(x):\n    s = '''\n```\n'''\n", "def f(x):\n    s = '''\n```\n'''\n", False,
     False, ""),
    ("def f(x):\n    s = '''\n```\n'''\n" + F + "\nok", "def f(x):\n    s = '''\n```\n'''\n",
     False, True, "\nok"),
])
def test_split_reply(reply, code, fenced, closed, epilogue):
    r = split_reply(reply)
    assert (r.code, r.fenced, r.closed, r.epilogue) == (code, fenced, closed, epilogue)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([a for a in ACCEPT if a]), st.integers(0, 10_000))
def test_the_code_of_a_prefix_is_a_prefix_of_the_code(reply, cut):
    """Code only grows as a reply is written (up to a fence being typed): what the critic
    sees of a prefix is a prefix of what it sees of the reply (up to the spaces before a
    fence, which the grammar ignores)."""
    prefix = reply[: cut % (len(reply) + 1)]
    seen = split_reply(prefix).code.lstrip(" \t\f").rstrip("`")
    assert split_reply(reply).code.lstrip(" \t\f").startswith(seen)


def test_reply_critic_reads_the_code():
    row = _problems()[2]
    solution = row["prompt"] + row["canonical_solution"]
    critic = ReplyCritic(PythonCritic("", row["entry_point"]))
    reply = F + "python\n" + solution + F + "\n\nThis returns the fractional part."
    for cut in range(0, len(reply) + 1, 7):
        assert critic.prefix(reply[:cut]) == 0.0, reply[:cut]
    assert critic.complete(reply) == 0.0 and critic.complete(solution) == 0.0
    assert critic.entry_point == row["entry_point"]          # the inner critic's fields


def test_reply_critic_judges_the_finished_code_at_the_closing_fence():
    """Once the fence closes the code is final: a reply whose code lacks the entry point
    (or fails) is -inf at the fence, before any explanation is written."""
    critic = ReplyCritic(PythonCritic("", "truncate_number"))
    wrong = F + "python\n" + BODY
    assert critic.prefix(wrong) == 0.0
    assert critic.evaluate_at(wrong + F)
    assert critic.prefix(wrong + F) == NEG_INF
    assert critic.complete(wrong + F + "\nDone.") == NEG_INF
    right = F + "python\ndef truncate_number(x):\n    return x % 1.0\n" + F
    assert critic.prefix(right) == 0.0 and critic.prefix(right + "\nIt works") == 0.0


def test_evaluation_drops_example_usage():
    dom = PythonDomain(timeout=5.0)
    task = dom.task("HumanEval/2")
    code = "def truncate_number(number):\n    return number % 1.0\n"
    usage = ("\nprint(truncate_number(3.5))\nassert truncate_number(1.5) == 99\n"
             "if __name__ == '__main__':\n    raise SystemExit(1)\n")
    ev = dom.evaluate(F + "python\n" + code + usage + F + "\n\nIt keeps the decimals.", task)
    assert ev.valid and ev.correct, ev.details
    ev = dom.evaluate(code.replace("% 1.0", "// 1.0") + usage, task)
    assert ev.valid and not ev.correct                  # the tests still decide
    assert dom.clean("Sure!\n" + F + "python\n" + code + F + "\nBye") == code.strip()


def test_clean_falls_back_to_the_fenced_block_for_replies_the_grammar_rejects():
    dom = PythonDomain(timeout=5.0)
    code = "def f():\n    return 1"
    assert dom.clean("\n" + F + "python\n" + code + "\n" + F) == code
    assert dom.clean("# sol\n" + F + "python\n" + code + "\n" + F + "\nok") == code
    assert dom.clean(F + "python\n" + code + "\n" + F + "\nIt returns 1.") == code
