"""Lark's parser cached on disk (``potentials._lark_cache``): a grammar built from the cache
is the same parser as a fresh build (tables, terminals, masks), keeps what only the
analysis logs (shift/reduce conflicts for ``strict=True``), and a damaged or partial
cache is rebuilt, never trusted."""

from __future__ import annotations

import numpy as np
import pytest

import grammars
from potentials import GrammarError, LarkGrammar
from potentials import _lark_cache as lc

SHIPPED = [("sql", {"ignore_case": True}), ("python", {"start": "function"}), ("json", {}),
           ("smiles", {"start": "answer"}), ("arith", {})]
TEXTS = {"sql": ["SELECT a FROM t WHERE b = 1", "select count(*) from t group by"],
         "python": ["def f(x):\n    if x:\n        return 1\n    return 2\n", "def g(a, b"],
         "json": ['{"a": [1, 2.5, "x"], "b": null}', '[{"k": tr'],
         "smiles": ["CC(=O)O", "c1ccccc1C"], "arith": ["1+2*(3-4)", "(1+"]}


@pytest.fixture
def loads(monkeypatch, tmp_path):
    """A fresh cache folder; returns the list of ``was_loaded`` answers, one per build."""
    monkeypatch.setenv("SMC_DECODE_GRAMMAR_CACHE", str(tmp_path))
    answers: list[bool] = []
    real = lc.was_loaded

    def spy(log):
        answers.append(real(log))
        return answers[-1]

    monkeypatch.setattr(lc, "was_loaded", spy)
    return answers


def _same_parser(a: LarkGrammar, b: LarkGrammar) -> None:
    ea, eb = a._engine, b._engine
    assert ea._table == eb._table and ea.names == eb.names and ea.ignore == eb.ignore
    assert [x.pattern for x in ea.autos] == [x.pattern for x in eb.autos]
    assert ea._start_state == eb._start_state and ea.end_state == eb.end_state


@pytest.mark.parametrize("name,options", SHIPPED, ids=[n for n, _o in SHIPPED])
def test_a_cached_parser_is_the_fresh_one(loads, name, options):
    fresh = LarkGrammar(grammars.load(name), **options)
    cached = LarkGrammar(grammars.load(name), **options)
    assert loads == [False, True]
    _same_parser(fresh, cached)
    vocab = sorted({ch.encode() for t in TEXTS[name] for ch in t} | {b"  ", b"ab", b"1)"})
    ma, mb = fresh.token_masker(vocab, []), cached.token_masker(vocab, [])
    for text in TEXTS[name]:
        for cut in range(len(text) + 1):
            assert fresh.prefix(text[:cut]) == cached.prefix(text[:cut])
            assert np.array_equal(ma.bits(text[:cut]), mb.bits(text[:cut]))
        assert fresh.complete(text) == cached.complete(text)


def test_strict_conflicts_are_reported_from_the_cache(loads):
    ambiguous = 'start: e\ne: e "+" e | "a"\n'
    for _ in range(2):
        with pytest.raises(GrammarError, match=r"Shift/Reduce conflict for terminal PLUS") as info:
            LarkGrammar(ambiguous, strict=True)
        assert (info.value.line, info.value.column) == (2, 1)
    assert loads == [False, True]
    assert LarkGrammar(ambiguous).complete("a+a") == 0.0  # lax: the same cache, accepted


def test_a_damaged_cache_file_is_rebuilt(loads):
    text = 'start: WORD ("," WORD)*\nWORD: /[a-z]+/\n'
    LarkGrammar(text)
    path = lc.cache_file(text, "start", False)
    path.write_bytes(b"not a pickle")
    g = LarkGrammar(text)  # Lark cannot read it: builds, and writes it again
    assert g.complete("ab,c") == 0.0
    LarkGrammar(text)
    assert loads == [False, False, True]


def test_a_cache_without_its_conflicts_file_is_not_used(loads):
    text = 'start: "x" | "y" "z"\n'
    LarkGrammar(text)
    path = lc.cache_file(text, "start", False)
    lc.conflicts_file(path).unlink()
    assert LarkGrammar(text).complete("yz") == 0.0
    assert lc.conflicts_file(path).is_file()
    LarkGrammar(text)
    assert loads == [False, False, True]


@pytest.mark.parametrize("off", ["0", "off", ""])
def test_the_cache_can_be_turned_off(monkeypatch, tmp_path, off):
    monkeypatch.setenv("SMC_DECODE_GRAMMAR_CACHE", off)
    monkeypatch.chdir(tmp_path)
    assert lc.cache_file('start: "a"\n', "start", False) is None
    assert LarkGrammar('start: "a"\n').complete("a") == 0.0
    assert not any(tmp_path.iterdir())


def test_the_key_covers_start_rule_and_case():
    text = 'start: "a" | b\nb: "b"\n'
    keys = {lc.cache_file(text, s, c) for s in ("start", "b") for c in (False, True)}
    assert len(keys) == 4 and lc.cache_file(text + " ", "start", False) not in keys


def test_a_cache_written_by_another_process_meanwhile_is_not_trusted(loads, monkeypatch):
    """The conflicts file is read before Lark loads its cache: a cache that appears in
    between (another process's build) has no conflicts known here, so this build is
    fresh and still reports them."""
    ambiguous = 'start: e\ne: e "+" e | "a"\n'
    LarkGrammar(ambiguous)  # both files written
    monkeypatch.setattr(lc, "known_conflicts", lambda path: None)  # as if read before
    with pytest.raises(GrammarError, match=r"Shift/Reduce conflict"):
        LarkGrammar(ambiguous, strict=True)
    assert loads == [False, True]  # the second: loaded, distrusted, built again


def test_a_cache_that_cannot_be_written_costs_only_the_speed_up(loads, monkeypatch):
    """A full disk while Lark saves its cache: Lark logs the failure (with a message
    that has more arguments than placeholders, in Lark 1.3) and the grammar still
    builds; so does it with a folder where the cache file should be."""
    import errno

    import lark.lark as lark_module

    real_open = lark_module.FS.open

    def full_disk(name, mode="r", **kwargs):
        if "w" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(name, mode, **kwargs)

    monkeypatch.setattr(lark_module.FS, "open", full_disk)
    assert LarkGrammar('start: "a"+\n').complete("aa") == 0.0
    monkeypatch.setattr(lark_module.FS, "open", real_open)
    text = 'start: "b"+\n'
    lc.cache_file(text, "start", False).mkdir(parents=True)
    assert LarkGrammar(text).complete("bb") == 0.0
