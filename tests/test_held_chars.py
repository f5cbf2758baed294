"""Tokens that end inside a UTF-8 character: the characters they can still become, the
grammar's ``prefix_held``, the mask's held edges, and exactness with them."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import grammars
import smc
from potentials import LarkGrammar
from potentials.base import NEG_INF, FunctionPotential
from potentials.held_chars import MAX_HELD_RANGE, HeldChars, char_range, narrows
from tests.exact import enumerate_laws, random_function_lm, tv
from tests.test_exactness import assert_unbiased, z_weighted_posterior


@functools.cache
def by_prefix() -> dict[bytes, list[int]]:
    """Every code point under each 1- and 2-byte prefix of its UTF-8 encoding."""
    out: dict[bytes, list[int]] = {}
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        data = chr(cp).encode()
        out.setdefault(data[:1], []).append(cp)
        if len(data) > 2:
            out.setdefault(data[:2], []).append(cp)
        if len(data) > 3:
            out.setdefault(data[:3], []).append(cp)
    return out


def test_char_range_is_every_character_that_starts_so():
    table = by_prefix()
    for held, cps in table.items():
        r = char_range(held)
        assert r is not None and list(r) == cps, held
    for lead in range(0x80, 0x100):                      # bytes that start no character
        if bytes([lead]) not in table:
            assert char_range(bytes([lead])) is None
    for held in (b"", b"a", b"\xe0\x80", b"\xed\xa0", b"\xf0\x80", b"\xf4\x90", b"\xc3\xa9",
                 b"\xe2\x28"):
        assert char_range(held) is None, held


def test_which_prefixes_are_narrowed():
    assert narrows(b"\xc3") and narrows(b"\xe2") and narrows(b"\xe2\x82")
    assert narrows(b"\xf0\x9f") and narrows(b"\xf0\x9f\x98")
    assert not any(narrows(bytes([b])) for b in range(0xF0, 0xF5))   # 65k-262k characters
    assert not narrows(b"a") and not narrows(b"\xff")
    assert max(len(char_range(h)) for h in by_prefix() if narrows(h)) == MAX_HELD_RANGE


@pytest.mark.parametrize("name", ["json", "python", "sql"])
def test_representatives_cover_every_row(name):
    g = LarkGrammar(grammars.load(name), ignore_case=name == "sql")
    atoms = g.atoms()
    held = HeldChars(atoms)

    def row(ch):
        return tuple(a.fullmatch(ch) is not None for a in atoms)

    for key in (b"\xc2", b"\xc3", b"\xe2", b"\xe2\x80", b"\xe3", b"\xf0\x9f", b"\xef"):
        reps = held.reps(key)
        rows = [row(c) for c in reps]
        assert len(set(rows)) == len(rows)                # one per row
        assert {row(chr(cp)) for cp in char_range(key)} == set(rows), key
    assert held.reps(b"\xf0") is None and held.reps(b"\xe0\x80") == ()


@pytest.mark.parametrize("name, text, key, expected", [
    ("json", '{"a": "x', b"\xe2", 0.0),         # inside a string: any character
    ("json", '{"a": ', b"\xe2", NEG_INF),       # no JSON value starts with U+2000..2FFF
    ("json", '{"a": ', b"\xc2", NEG_INF),      # U+0080..07FF: not JSON whitespace either
    ("python", "x = 1  # note ", b"\xe2\x82", 0.0),
    ("python", "x = ", b"\xe2", NEG_INF),       # identifiers are ASCII in this grammar
    ("python", "s = 'caf", b"\xc3", 0.0),
])
def test_prefix_held_equals_brute_force(name, text, key, expected):
    g = LarkGrammar(grammars.load(name))
    brute = max(g.prefix(text + chr(cp)) for cp in char_range(key))
    assert g.prefix_held(text, key) == brute == expected


def test_the_mask_drops_lead_bytes_no_character_can_complete():
    from smc.token_bytes import vocab_bytes
    from tests.tiny_hf import tiny_tokenizer

    vocab = [b for b in vocab_bytes(tiny_tokenizer()) if b is not None]
    vocab += [b"\xe2", b"\xe2\x82", b"x\xe2", b"\xf0"]
    vocab = [*dict.fromkeys(vocab)]
    ids = {b: vocab.index(b) for b in (b"\xe2", b"\xe2\x82", b"x\xe2", b"\xf0")}
    vocab = [*vocab, None]
    g = LarkGrammar(grammars.load("json"))
    masker = g.token_masker(vocab, [len(vocab) - 1])
    outside, inside = masker.allowed('{"a": '), masker.allowed('{"a": "')
    assert not outside[ids[b"\xe2"]] and not outside[ids[b"\xe2\x82"]]
    assert not outside[ids[b"x\xe2"]]
    assert outside[ids[b"\xf0"]]                       # a lone 4-byte lead: not narrowed
    assert all(inside[i] for i in ids.values())


GRAMMAR = r"""
start: WORD | QUOTED
WORD: /[a-z]+/
QUOTED: /'[^']*'/
"""
VOCAB = ["a", "'", b"\xc3", b"\xa9", b"\xa9'", "a\xe9", "<eos>"]


@pytest.mark.parametrize("proposal", ["mask", "awrs"])
def test_smc_with_held_edges_matches_enumeration(proposal):
    """'é' split over tokens is allowed only inside quotes: the narrowed mask (and AWRS,
    which scores tokens the same way) still gives the exact law."""
    lm = random_function_lm(VOCAB, len(VOCAB) - 1, seed=3, temperature=1.0)
    g = LarkGrammar(GRAMMAR)
    assert g.prefix_held("a", b"\xc3") == NEG_INF and g.prefix_held("'a", b"\xc3") == 0.0
    pi, z, _ = enumerate_laws(lm, g, max_tokens=4)
    assert any("é" in t for t in pi)
    runs = [smc.generate(lm, "", constraint=g, method="smc", proposal=proposal,
                         n_particles=128, max_tokens=4, seed=s) for s in range(60)]
    assert tv(z_weighted_posterior(runs), pi) < 0.05
    assert_unbiased(runs, z)


def test_other_potentials_keep_the_bound():
    pot = FunctionPotential(lambda t: 0.0 if "x" not in t else NEG_INF)
    assert pot.prefix_held("ab", b"\xe2") == 0.0 and pot.prefix_held("x", b"\xe2") == NEG_INF
    prod = pot * LarkGrammar(GRAMMAR)
    assert prod.prefix_held("a", b"\xc3") == NEG_INF and prod.prefix_held("'a", b"\xc3") == 0.0


def test_walk_and_mask_agree_below_a_held_prefix_no_character_completes():
    """b"\\xe2a" decodes to U+FFFD + "a": scored on its own even though no character
    starting with b"\\xe2" can follow "a" in this grammar."""
    from smc.token_trie import TokenTrie

    g = LarkGrammar('start: WORD\nWORD: /[a-z\\ufffd]+/')
    vocab = [b"a", b"\xe2", b"\xe2a", None]
    assert g.prefix_held("a", b"\xe2") == NEG_INF
    ids, _ = TokenTrie(vocab, exclude=[3]).walk(g, "a", b"")
    masker = g.token_masker(vocab, [3])
    assert sorted(ids.tolist()) == [0, 2]
    assert np.flatnonzero(masker.allowed("a")[:3]).tolist() == [0, 2]
