"""Python-style indentation in LarkGrammar: prefix() is sound against Lark + its Indenter,
catches indentation errors early, and the compiled mask agrees with brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from potentials import LarkGrammar
from smc.token_trie import TokenTrie

NEG_INF = float("-inf")
GRAMMAR = r"""
start: (_NEWLINE | stmt)*
stmt: NAME ":" _NEWLINE _INDENT stmt+ _DEDENT | NAME _NEWLINE | LPAR NAME RPAR _NEWLINE
LPAR: "("
RPAR: ")"
NAME: /[a-z]+/
_NEWLINE: /(?:#[^\r\n]*)?\r?\n[\t ]*(?:(?:#[^\r\n]*)?\r?\n[\t ]*)*/
COMMENT: /#[^\r\n]*/
%ignore /[\t ]+/
%ignore COMMENT
%declare _INDENT _DEDENT
"""
ALPHABET = ["a", ":", "\n", " ", "(", ")"]


@pytest.fixture(scope="module")
def grammar():
    return LarkGrammar(GRAMMAR)


def lark_accepts(g, text):
    try:
        g._lark.parse(text)
        return True
    except Exception:  # noqa: BLE001 - any failure of Lark's parser is a rejection
        return False


@pytest.fixture(scope="module")
def language(grammar):
    """Every string over ALPHABET of length <= 7 that Lark (with its indenter) accepts."""
    return {s for n in range(8) for s in map("".join, itertools.product(ALPHABET, repeat=n))
            if lark_accepts(grammar, s)}


def test_the_grammar_gets_an_indenter(grammar, language):
    assert grammar._engine.indentation is not None
    assert "a:\n a\n" in language and "a:\n a\n  a\n" not in language and len(language) > 500


def test_prefix_is_sound(grammar, language):
    prefixes = {s[:k] for s in language for k in range(len(s) + 1)}
    assert [p for p in prefixes if grammar.prefix(p) != 0.0] == []


def test_complete_is_lark(grammar, language):
    for n in range(7):
        for s in map("".join, itertools.product(ALPHABET, repeat=n)):
            assert (grammar.complete(s) == 0.0) == (s in language), s


@pytest.mark.parametrize("text, dead_at", [
    ("a:\n  b\n c\n", 9),        # dedent to a column no block opened
    ("a\n  b\n", 5),             # unexpected indent
    ("a:\nb\n", 4),              # a block must be indented
    ("a:\n  b\n\tc\n", None),    # a tab is 8 columns: an indent, and then the block cannot end
])
def test_indentation_errors_are_caught_early(grammar, text, dead_at):
    assert grammar.complete(text) == NEG_INF
    first_dead = next((k for k in range(len(text) + 1) if grammar.prefix(text[:k]) == NEG_INF),
                      None)
    if dead_at is not None:
        assert first_dead == dead_at, first_dead


def test_brackets_suspend_indentation(grammar):
    assert grammar.complete("(a\n)\n") == 0.0
    assert grammar.complete("(a\n   )\nb\n") == 0.0
    assert grammar.prefix(")") == NEG_INF


def test_compiled_mask_equals_brute_force(grammar, language):
    vocab = [b"a", b":", b"\n", b" ", b"  ", b"    ", b"\n  ", b"\n    ", b":\n", b"(", b")",
             b"a\n", b"\n\n", b"#", b" #x\n", b"\t", None]
    eos = len(vocab) - 1
    masker = grammar.token_masker(vocab, [eos])
    trie = TokenTrie(vocab, exclude=[eos])
    texts = sorted({s[:k] for s in language if len(s) <= 6 for k in range(len(s) + 1)})
    assert len(texts) > 300
    for text in texts:
        brute = np.zeros(len(vocab), bool)
        ids, _ = trie.walk(grammar, text, b"")
        brute[ids] = True
        brute[eos] = grammar.complete(text) == 0.0
        assert np.array_equal(masker.allowed(text), brute), text
