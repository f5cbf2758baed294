"""``complete`` read off the configurations must equal Lark's own parse.

For grammars whose terminals are all exact and longest-match (``ends_exactly``),
``LarkGrammar.complete`` no longer runs Lark: it asks whether some configuration of the
text can end.  These tests hold that answer against ``Lark.parse`` on every prefix of
every accepted and rejected table row of the shipped grammars, and on random edits of
them (hypothesis), and check that a grammar outside the exact class still gets Lark's
verdict.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark.exceptions import LarkError

from potentials import LarkGrammar
from tests.test_shipped_grammars import ACCEPT, REJECT, REJECT_XFAIL, grammar

EXACT = ["arith", "json", "sql", "smiles", "pddl_plan", "pddl_goal"]


def lark_accepts(g: LarkGrammar, text: str) -> bool:
    """The reference: Lark's LALR parser with its contextual lexer."""
    try:
        g._lark.parse(text)
    except LarkError:
        return False
    return True


def rows(name: str) -> list[str]:
    return (ACCEPT[name] + [t for t, _c in REJECT[name]]
            + [t for t, _c, _why in REJECT_XFAIL.get(name, [])])


def test_which_shipped_grammars_end_exactly():
    for name in EXACT:
        assert grammar(name)._engine.ends_exactly, name
    assert not grammar("python")._engine.ends_exactly  # indentation: Lark decides


@pytest.mark.parametrize("name", EXACT)
def test_complete_equals_lark_on_every_prefix_of_the_tables(name):
    g = grammar(name)
    checked = 0
    for text in rows(name):
        for k in range(len(text) + 1):
            want = lark_accepts(g, text[:k])
            assert (g.complete(text[:k]) == 0.0) == want, (name, text[:k], want)
            checked += want
    assert checked >= len(ACCEPT[name])  # the accepted rows at least


def _edit_strategy():
    return st.tuples(st.sampled_from(EXACT), st.integers(0, 10_000), st.integers(0, 10_000),
                     st.sampled_from(["insert", "delete", "replace", "duplicate"]),
                     st.integers(0, 10_000))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_edit_strategy())
def test_complete_equals_lark_on_random_edits(edit):
    """One edit of a table row (a character of the same grammar's rows inserted, deleted,
    replaced, or a slice repeated), then every prefix of the result."""
    name, i, pos, op, j = edit
    texts = rows(name)
    text = texts[i % len(texts)]
    alphabet = sorted({c for t in texts for c in t} | {" ", "'", "\"", "(", ")"})
    ch = alphabet[j % len(alphabet)]
    p = pos % (len(text) + 1)
    if op == "insert":
        text = text[:p] + ch + text[p:]
    elif op == "delete":
        text = text[:p] + text[p + 1:]
    elif op == "replace":
        text = text[:p] + ch + text[p + 1:]
    else:
        q = min(len(text), p + 1 + j % 7)
        text = text[:q] + text[p:q] + text[q:]
    g = grammar(name)
    for k in range(len(text) + 1):
        assert (g.complete(text[:k]) == 0.0) == lark_accepts(g, text[:k]), (name, text[:k])


@pytest.mark.parametrize("text, ok", [
    ("SELECT 'a''b'", True), ("SELECT 'a'''", True), ("SELECT ''", True),
    ("SELECT '''", False), ("SELECT 'a' 'b'", False), ("SELECT 'it''s' AS x", True),
    ('SELECT "a""b" FROM t', True), ('SELECT `a``b` FROM t', True),
    ('SELECT "a"" FROM t', False),
])
def test_sql_quote_escapes(text, ok):
    g = grammar("sql")
    assert lark_accepts(g, text) == ok
    assert (g.complete(text) == 0.0) == ok


def test_a_grammar_with_a_non_longest_terminal_gets_lark_s_verdict():
    """``/a|ab/``: re.match takes "a" even when "ab" follows, so the configurations (which
    keep both lengths) would accept "ab"; Lark rejects it, and so must ``complete``."""
    g = LarkGrammar('start: A\nA: /a|ab/')
    assert not g._engine.ends_exactly
    assert g._engine.can_end(g._configs("ab"))
    assert g.complete("ab") == -math.inf
    assert g.complete("a") == 0.0
