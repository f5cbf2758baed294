"""``longest_match_safe``: when it says yes, ``re.match`` returns the longest match."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grammars
from potentials import LarkGrammar
from potentials._lark_munch import longest_match_safe

ATOMS = ["a", "b", "[ab]", "[bc]", "c", ".", "[^a]", "(?:ab|c)", "(?:a|bc)", "(?:ab|a)",
         "(?:|a)", "(?:a|)", "(?:a?|b)", "(?:b|a?)", r"\d", r"\w"]
QUANTS = ["", "?", "*", "+", "{0,2}", "{1,2}", "{2,3}", "*?", "??"]


def longest(rx: re.Pattern, s: str) -> int | None:
    return max((i for i in range(len(s) + 1) if rx.fullmatch(s[:i])), default=None)


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.tuples(st.sampled_from(ATOMS), st.sampled_from(QUANTS)), min_size=1,
                      max_size=4),
       texts=st.lists(st.text(alphabet="abcd1_", max_size=7), min_size=20, max_size=20))
def test_safe_patterns_match_longest(parts, texts):
    pattern = "".join(a + q for a, q in parts)
    if not longest_match_safe(pattern):
        return
    rx = re.compile(pattern)
    for s in texts:
        m = rx.match(s)
        assert (m.end() if m else None) == longest(rx, s), (pattern, s)


@pytest.mark.parametrize("pattern, safe", [
    (r"[a-z]+", True), (r"[A-Za-z_][A-Za-z0-9_]*", True), (r"[ \t\r\n]+", True),
    (r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", True),
    (r"(?:#[^\r\n]*)?\r?\n[\t ]*(?:(?:#[^\r\n]*)?\r?\n[\t ]*)*", True),
    (r"(?:|a)b?", False),          # the empty alternative first: re stops early
    (r"(?:ab)?(?:abcd)?", False),  # not deterministic: re.match('abcd') is 'ab'
    (r"a*?", False), (r"a(?=b)", False), (r"(a)\1", False), (r"a{40}", False),
])
def test_verdicts(pattern, safe):
    assert longest_match_safe(pattern) is safe
    if not safe and pattern.startswith("(?:ab)?"):
        assert re.match(pattern, "abcd").end() == 2  # the reason it must be unsafe


def test_case_folding_counts_non_ascii_letters():
    # with IGNORECASE 'k' also matches U+212A KELVIN SIGN: k|\u212ax is not deterministic
    assert longest_match_safe(r"[k]+", re.IGNORECASE)
    assert not longest_match_safe("(?:k|\u212ax)", re.IGNORECASE)
    assert re.match("(?:k|\u212ax)", "\u212ax", re.IGNORECASE).end() == 1  # not the longest
    assert longest_match_safe("(?:k|\u212ax)")  # without case folding it is deterministic


def test_longest_match_makes_prefix_exact_for_split_words():
    g = LarkGrammar('start: NAME | NAME NAME "!"\nNAME: /[a-z]+/\n%ignore " "')
    assert g.prefix("ab!") == float("-inf")  # 'ab' cannot be read as 'a' + 'b'
    assert g.prefix("a b!") == 0.0 and g.complete("a b!") == 0.0


@pytest.mark.parametrize("name", ["json", "arith", "pddl_plan", "pddl_goal"])
def test_shipped_grammars_use_longest_match(name):
    engine = LarkGrammar(grammars.load(name))._engine
    assert all(a.longest for a in engine.autos), [
        n for n, a in zip(engine.names, engine.autos, strict=False) if not a.longest]
