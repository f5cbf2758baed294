"""TreeSitter potential: accept/reject tables, sound prefixes, incremental parsing, engine use."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tree_sitter
from hypothesis import given, settings
from hypothesis import strategies as st

import smc
from potentials import NEG_INF, TreeSitter
from potentials.tree_sitter import _Trace, installed_languages
from tests.exact import enumerate_laws, random_function_lm, tv

PY_ACCEPT = [
    # HumanEval-style function with a docstring and doctests
    '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    """
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True

    return False
''',
    '''def truncate_number(number: float) -> float:
    \'\'\'Return the decimal part of the number.

    >>> truncate_number(3.5)
    0.5
    \'\'\'
    return number % 1.0
''',
    '''import functools


@functools.lru_cache(maxsize=None)
def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


@staticmethod
@other.decorator(1, key="v")
def g():
    pass
''',
    '''from dataclasses import dataclass, field


@dataclass(frozen=True)
class Point:
    x: float = 0.0
    y: float = field(default=0.0)

    @property
    def norm(self) -> float:
        return (self.x ** 2 + self.y ** 2) ** 0.5

    def __add__(self, other: "Point") -> "Point":
        return Point(self.x + other.x, self.y + other.y)
''',
    '''squares = [x * x for x in range(10) if x % 2 == 0]
pairs = {(a, b) for a in range(3) for b in range(a)}
index = {name: i for i, name in enumerate(["a", "b"])}
total = sum(v for v in index.values())
nested = [[c for c in row] for row in matrix]
''',
    '''name, width = "world", 10
print(f"hello {name!r:>{width}} {3.14159:.2f}")
print(f'{index["a"]} and {{literal braces}}', F"{name=}")
msg = rf"raw \\d {name}" + b"bytes".decode()
''',
    '''import asyncio


async def fetch(session, url):
    async with session.get(url) as response:
        return await response.text()


async def main(urls):
    results = []
    async for chunk in stream(urls):
        results.append(chunk)
    return await asyncio.gather(*(fetch(s, u) for s, u in results))
''',
    '''def parse(text):
    try:
        value = int(text)
    except (TypeError, ValueError) as exc:
        raise RuntimeError("bad input") from exc
    else:
        return value
    finally:
        cleanup()
''',
    '''with open("a.txt") as src, open("b.txt", "w") as dst:
    for line in src:
        dst.write(line.upper())
''',
    '''def first_long(words):
    key = lambda w: (len(w), w)
    if (n := len(words)) > 10:
        return sorted(words, key=key)[0] if n else None
    return None
''',
    '''def describe(command):
    match command.split():
        case [action]:
            return action
        case ["go", direction] | ["move", direction]:
            return direction
        case {"x": x, **rest}:
            return x
        case _:
            return None
''',
    '''def f(a: int, /, *args: str, b: list[int] | None = None, **kw: object) -> dict[str, int]:
    """Type hints everywhere."""
    return {"a": a, **{k: 1 for k in kw}}
''',
    '''def find(items, target):
    i = 0
    while i < len(items):
        if items[i] == target:
            break
        i += 1
    else:
        return -1
    for j in range(3):
        continue
    else:
        pass
    return i
''',
    '''counter = 0


def make():
    global counter
    total = 0

    def add(x):
        nonlocal total
        total += x
        yield total
        yield from range(x)

    return add
''',
    '''TEXT = """first line
second line with 'quotes' and "double quotes"
"""
joined = ("implicit "
          "concatenation")
long_sum = 1 + \\
    2
empty = \'\'\'\'\'\'
''',
    '''from . import sibling
from ..pkg.mod import (alpha, beta as b,)
import os.path as osp


assert osp.sep, "message"
del alpha
first, *rest = [1, 2, 3]
evens = rest[::2]
''',
    "",
    "# only a comment\n",
    '''class Stack:
    """A LIFO stack."""

    def __init__(self):
        self._items: list = []

    def push(self, item) -> None:
        self._items.append(item)

    def pop(self):
        if not self._items:
            raise IndexError("pop from empty stack")
        return self._items.pop()
''',
]

PY_REJECT = [
    "def f(:\n    return 1\n",
    "x = = 1\n",
    "def f(x)\n    return x\n",
    "return )\n",
    "x = (1, 2\n",
    'x = "abc\n',
    "for i in range(3) print(i)\n",
    "class :\n    pass\n",
    "print('a' +)\n",
    "def f():\n    return [1, 2,, 3]\n",
    "x = {'a': 1 'b': 2}\n",
    "async def f(:\n    pass\n",
    "@\ndef f(): pass\n",
    "1 +\n",
    "def f(a, b):\n    return a b\n",
    "x = [i for i in]\n",
    "if x = 1:\n    pass\n",
    "def f():\n    '''unterminated docstring\n    return 1\n",
]

SQL_ACCEPT = [
    "SELECT 1;",
    "SELECT id, name FROM users WHERE age > 21 ORDER BY name DESC LIMIT 10;",
    "SELECT u.name, COUNT(o.id) AS n\nFROM users u\nJOIN orders o ON o.user_id = u.id\n"
    "GROUP BY u.name\nHAVING COUNT(o.id) > 2;",
    "WITH recent AS (SELECT * FROM orders WHERE created_at > '2024-01-01')\n"
    "SELECT COUNT(*) FROM recent;",
    "INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b');",
    "UPDATE users SET name = 'x', age = age + 1 WHERE id = 3;",
    "DELETE FROM users WHERE id IN (SELECT user_id FROM bans);",
    "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL);",
    "SELECT CASE WHEN a > 0 THEN 'pos' ELSE 'neg' END AS sign FROM t;",
    "SELECT * FROM a LEFT JOIN b ON a.id = b.a_id WHERE b.id IS NULL;\nSELECT 2;",
    "BEGIN;\nUPDATE t SET x = 1;\nCOMMIT;",
    "SELECT id, ROW_NUMBER() OVER (PARTITION BY g ORDER BY x) AS rn FROM t;",
    "-- leading comment\nSELECT a FROM t /* inline */ WHERE b LIKE '%x%';",
    "SELECT DISTINCT city FROM customers UNION SELECT city FROM suppliers;",
    "SELECT name\nFROM products\nWHERE price BETWEEN 10 AND 20\n  AND category = 'toys'\n",
]

SQL_REJECT = [
    "SELECT a FROM t WHERE;",
    "SELECT a FROM t) ;",
    "SELECT * FROM t WHERE a = 'x;",
    "INSERT INTO t VALUES (1, 2;",
    "UPDATE SET x = 1;",
    "SELECT 1 2 3;",
    "DELETE DELETE x;",
    "SELECT a FROM t WHERE x = = 1;",
    "CREATE TABLE (id INT);",
    "SELECT (1 + 2;",
    "SELECT a,, b FROM t;",
    "SELECT a FROM t WHERE x IN (1, 2;",
]
SQL_ACCEPT += [
    "CREATE FUNCTION add(a INT, b INT) RETURNS INT AS $$ SELECT a + b $$ LANGUAGE sql;",
    "BEGIN TRANSACTION;\nDELETE FROM t;\nROLLBACK;",
]

# Prefixes no continuation can repair: tree-sitter rejects a token lexed inside the text.
DEAD = {
    "python": ["def f(:\n", "x = = 2\n", "x = 1)\ny = 2\n", "def f(x)\n    return x\n",
               "class :\n", "for i in range(3) print(", "x = {'a': 1 'b'"],
    "sql": ["SELECT a FROM t) ", "SELECT 1 2 3", "DELETE DELETE x", "SELECT a FROM t WHERE x = = 1",
            "UPDATE SET x = 1", "SELECT a,, b"],
}
# Rejected as they stand, yet some continuation is accepted: prefix must stay 0.
OPEN = {
    "python": ["x = (1,\n", 'x = """doc\n', 'x = "ab', "def f(:", "def f():\n    return [\n",
               "x = \n", "1 +\n", "@dec\n", "if x:\n    pass\nelse",
               "x = [i for i in", "x = 1 if y"],
    "sql": ["SELECT a FROM t WHERE", "SELECT * FROM t WHERE a = 'x", "SELECT (1 + 2",
            "INSERT INTO t VALUES (1,", "SELECT a FROM t WHERE x IN (1, 2;"[:-1]],
}
PROGRAMS = {"python": (PY_ACCEPT, PY_REJECT), "sql": (SQL_ACCEPT, SQL_REJECT)}


@pytest.fixture(scope="module", params=["python", "sql"])
def lang(request):
    return request.param


@pytest.fixture(scope="module")
def pots():
    return {name: TreeSitter(name) for name in PROGRAMS}


def test_tables_are_big_enough():
    assert len(PY_ACCEPT) >= 15 and len(PY_REJECT) >= 15
    assert len(SQL_ACCEPT) >= 10 and len(SQL_REJECT) >= 10


def test_complete_accepts_and_rejects(pots, lang):
    accept, reject = PROGRAMS[lang]
    pot = pots[lang]
    for text in accept:
        assert pot.complete(text) == 0.0, text
    for text in reject:
        assert pot.complete(text) == NEG_INF, text


def test_complete_python_tables_agree_with_cpython():
    import ast

    for text in PY_ACCEPT:
        ast.parse(text)
    for text in PY_REJECT:
        with pytest.raises(SyntaxError):
            ast.parse(text)


def test_prefix_sound_at_every_line_and_char(pots, lang):
    """For an accepted program, no prefix of it may be declared dead."""
    pot = pots[lang]
    for text in PROGRAMS[lang][0]:
        lines = [i + 1 for i, c in enumerate(text) if c == "\n"]
        for k in [*lines, *range(len(text) + 1)]:
            assert pot.prefix(text[:k]) == 0.0, (text[:k], text)


def test_prefix_catches_dead_prefixes_and_stays_dead(pots, lang):
    pot = pots[lang]
    for text in DEAD[lang]:
        assert pot.complete(text) == NEG_INF
        assert pot.prefix(text) == NEG_INF, text
        for more in ["\n", " x", ")\n", "\n    return 1\n", ";", " FROM t;"]:
            assert pot.prefix(text + more) == NEG_INF, (text, more)
            assert pot.complete(text + more) == NEG_INF, (text, more)


def test_prefix_keeps_repairable_prefixes(pots, lang):
    pot = pots[lang]
    for text in OPEN[lang]:
        assert pot.complete(text) == NEG_INF, text
        assert pot.prefix(text) == 0.0, text


def test_rejected_programs_are_dead_unless_still_open(pots, lang):
    """The dead rule prunes real errors: a rejected program is dead at its end unless what
    is wrong could still be completed (an open bracket, string or expression)."""
    pot = pots[lang]
    still_open = [t for t in PROGRAMS[lang][1] if pot.prefix(t) == 0.0]
    expected = {
        "python": ["x = (1, 2\n", "1 +\n", PY_REJECT[-1]],
        "sql": ["SELECT a FROM t WHERE;", "SELECT * FROM t WHERE a = 'x;",
                "INSERT INTO t VALUES (1, 2;", "SELECT (1 + 2;", SQL_REJECT[-1]],
    }[lang]
    assert still_open == expected


def test_column_zero_rule_would_be_unsound():
    """Tree-sitter-python reads a newline as whitespace where a statement cannot end, so an
    error before a column-0 line is not final: prefix must not kill "x = \\n"."""
    pot = TreeSitter("python")
    assert pot.complete("x = \n") == NEG_INF
    assert pot.complete("x = \n1\n") == 0.0
    assert pot.prefix("x = \n") == 0.0
    assert pot.prefix("x = \n1") == 0.0


def test_prefix_check_none_never_kills():
    pot = TreeSitter("python", prefix_check="none")
    for text in DEAD["python"]:
        assert pot.prefix(text) == 0.0
        assert pot.complete(text) == NEG_INF


def test_trace_fails_safe_on_unknown_log_lines():
    trace = _Trace(b"x = = 1\n")
    trace(tree_sitter.LogType.PARSE, "lex_internal state:1, row:0, column:0")
    trace(tree_sitter.LogType.LEX, "teleport character:'x'")
    trace(tree_sitter.LogType.PARSE, "resume version:0")
    assert trace.done and not trace.failed
    trace = _Trace(b"x = = 1\n")
    trace(tree_sitter.LogType.PARSE, "lex_internal state:1, row:0, column:0")
    trace(tree_sitter.LogType.LEX, "consume character:'y'")  # not the text's character
    trace(tree_sitter.LogType.PARSE, "resume version:0")
    assert trace.done and not trace.failed


def test_evaluate_at_schedule():
    pot = TreeSitter("python")
    assert pot.evaluate_at("x = 1\n") and not pot.evaluate_at("x = 1")
    assert not pot.evaluate_at("")
    always = TreeSitter("python", schedule="always")
    assert always.evaluate_at("x") and always.evaluate_at("")
    semi = TreeSitter("sql", schedule=lambda t: t.rstrip().endswith(";"))
    assert semi.evaluate_at("SELECT 1; ") and not semi.evaluate_at("SELECT 1")
    with pytest.raises(ValueError, match="schedule"):
        TreeSitter("python", schedule="sometimes")
    with pytest.raises(ValueError, match="prefix_check"):
        TreeSitter("python", prefix_check="hopeful")
    with pytest.raises(ValueError, match="cache_size"):
        TreeSitter("python", cache_size=0)


def test_language_by_name_or_object_and_errors():
    import tree_sitter_python

    assert {"python", "sql"} <= set(installed_languages())
    by_obj = TreeSitter(tree_sitter.Language(tree_sitter_python.language()))
    assert by_obj.complete("x = 1\n") == 0.0 and by_obj.name == "python"
    assert TreeSitter("Python").complete("x = (\n") == NEG_INF
    assert repr(TreeSitter("sql")) == "TreeSitter('sql')"
    with pytest.raises(ValueError, match=r"unknown tree-sitter language 'klingon'.*python.*sql"):
        TreeSitter("klingon")
    for bad in (3, None, b"python", ["python"]):
        with pytest.raises(TypeError, match="tree_sitter.Language"):
            TreeSitter(bad)


def test_parses_are_incremental_and_timed():
    pot = TreeSitter("python")
    text = PY_ACCEPT[0]
    for k in range(1, len(text) + 1):
        pot.complete(text[:k])
    assert pot.stats["parses"] == len(text)
    assert pot.stats["incremental"] == len(text) - 1
    assert pot.stats["parse_seconds"] > 0
    pot.complete(text)
    assert pot.stats["cache_hits"] >= 1


@settings(max_examples=150, deadline=None)
@given(data=st.data(), lang=st.sampled_from(["python", "sql"]))
def test_incremental_parse_matches_fresh_parse(data, lang):
    """Random extensions, truncations and edits of accepted programs, in one potential with a
    tiny cache: the incremental verdict always equals a fresh parse's."""
    pot = TreeSitter(lang, cache_size=3)
    fresh = tree_sitter.Parser(pot.language)
    text = data.draw(st.sampled_from(PROGRAMS[lang][0]))
    current = ""
    for _ in range(data.draw(st.integers(3, 12))):
        op = data.draw(st.sampled_from(["extend", "cut", "insert", "delete"]))
        k = data.draw(st.integers(0, len(text)))
        if op == "extend":
            current = text[:max(k, len(current))]
        elif op == "cut":
            current = current[:min(k, len(current))]
        elif op == "insert":
            i = min(k, len(current))
            current = current[:i] + data.draw(st.sampled_from(
                ["(", ")", ":", "\n", "    ", "x", '"', "=", ";", "SELECT ", "é"])) + current[i:]
        else:
            i = min(k, len(current))
            current = current[:i] + current[i + data.draw(st.integers(1, 5)):]
        mine = pot.parse(current).root_node
        ref = fresh.parse(current.encode()).root_node
        assert mine.has_error == ref.has_error, current
        assert (pot.complete(current) == 0.0) == (not ref.has_error)
        if not ref.has_error:
            assert str(mine) == str(ref)


VOCAB = ["x = 1\n", "y = (\n", "2)\n", "x = 1)\n", "def f(:\n", "z\n", "<eos>"]
EOS = 6


def test_critic_in_smc_generate_matches_exact_law():
    """TreeSitter as a line-boundary critic: SMC's Ẑ-weighted posterior converges to
    π ∝ p·Φ (enumerated), Ẑ is unbiased, and dead prefixes were pruned mid-run."""
    lm = random_function_lm(VOCAB, EOS, seed=5, temperature=1.0)
    critic = TreeSitter("python")
    pi, z, _ = enumerate_laws(lm, None, critic, max_tokens=5)
    assert all(critic.complete(t) == 0.0 for t in pi) and len(pi) > 20
    runs = [smc.generate(lm, "", critic=critic, method="smc", n_particles=64, max_tokens=5,
                         seed=s, ess_threshold=0.9) for s in range(60)]
    logs = np.array([r.log_ml for r in runs])
    top = logs[np.isfinite(logs)].max()
    est: dict[str, float] = {}
    for r, lz in zip(runs, logs, strict=True):
        for k, v in r.posterior.items():
            est[k] = est.get(k, 0.0) + math.exp(lz - top) * v
    total = sum(est.values())
    est = {k: v / total for k, v in est.items()}
    assert set(est) <= set(pi)
    assert tv(est, pi) < 0.08, tv(est, pi)
    zs = np.exp(logs)
    assert abs(zs.mean() - z) < 4 * zs.std(ddof=1) / math.sqrt(len(zs)) + 1e-3 * z
    assert sum(r.deaths.get("the critic rejected a prefix", 0) for r in runs) > 50
    assert critic.stats["traces"] > 0
