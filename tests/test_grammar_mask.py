"""The compiled token mask of a LarkGrammar equals the brute-force mask, on every shipped grammar.

Brute force: walk the byte trie of the vocabulary and call ``prefix`` per node
(``smc.token_trie.TokenTrie.walk``), plus EOS where ``complete`` accepts.  The fast
path (``potentials.grammar_mask.GrammarMask``) must give the same set of tokens on
reachable prefixes: prefixes of accepted strings cut at random characters, and random
walks that follow the mask itself.  Then the sampler that uses it is checked against
exact enumeration.
"""

from __future__ import annotations

import functools
import math
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grammars
import smc
from potentials import LarkGrammar
from potentials.grammar_mask import unpack
from smc.token_trie import TokenTrie
from tests.exact import enumerate_laws, random_function_lm, tv, tv_noise
from tests.test_shipped_grammars import ACCEPT, LOAD_OPTIONS

# "file:rule" = a shipped grammar loaded with another start rule (the domains' answers)
VARIANTS = {
    "python:function": ["def f(x):\n    return x\n",
                        "import math\n\ndef g(a, b=2):\n    if a:\n        return math.pi\n"
                        "    return [b for _ in range(a)]\n",
                        "```python\ndef f(x):\n    return x\n```\nIt returns x.\n",
                        "def g():\n    pass\n\nprint(g())\n```"],
    "smiles:answer": ["CCO\n", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O\n", "[NH4+].[Cl-]\n"],
}
ACCEPT = {**ACCEPT, **VARIANTS}
NAMES = grammars.names() + sorted(VARIANTS)


@functools.cache
def fresh_grammar(name: str, copy: int) -> LarkGrammar:
    """Separate instances for the fast path (copy 0) and brute force (copy 1)."""
    file, _, start = name.partition(":")
    options = dict(LOAD_OPTIONS.get(file, {}))
    if start:
        options["start"] = start
    return LarkGrammar(grammars.load(file), **options)


@functools.cache
def smollm_subset() -> tuple[list[bytes | None], int]:
    """6,000 tokens of the embedded model's vocabulary: every token of at most 2 bytes,
    every partial-UTF-8 token and a fixed random sample of the rest; EOS last."""
    from transformers import AutoTokenizer

    from smc.models import embedded_model_dir
    from smc.token_bytes import complete_utf8, vocab_bytes

    table = vocab_bytes(AutoTokenizer.from_pretrained(embedded_model_dir()))
    real = [b for b in table if b is not None]
    short = [b for b in real if len(b) <= 2 or complete_utf8(b)[1] or "\ufffd" in
             complete_utf8(b)[0]]
    rest = [b for b in real if b not in set(short)]
    pick = np.random.default_rng(0).choice(len(rest), 6000 - len(short), replace=False)
    vocab = short + [rest[i] for i in sorted(pick)]
    return [*vocab, None], len(vocab)


@functools.cache
def tiny_vocab() -> tuple[list[bytes | None], int]:
    """The tiny test BPE vocabulary plus hand-made multi-byte and whitespace tokens."""
    from smc.token_bytes import vocab_bytes
    from tests.tiny_hf import tiny_tokenizer

    table = [b for b in vocab_bytes(tiny_tokenizer()) if b is not None]
    extra = [b"\xc3", b"\xa9", "é".encode(), "€".encode()[:2], b"  ", b"    ", b"\n  ", b"\",",
             b"\"}", b"]}", b"SELECT", b" FROM", b" *", b"(C", b"=O)", b"))", b"\n(", b"-up"]
    vocab = table + [b for b in extra if b not in table]
    return [*vocab, None], len(vocab)


VOCABS = {"tiny": tiny_vocab, "smollm2": smollm_subset}


@functools.cache
def byte_trie(vocab_name: str) -> TokenTrie:
    vocab, eos = VOCABS[vocab_name]()
    return TokenTrie(vocab, exclude=[eos])


def brute_allowed(name: str, vocab_name: str, text: str) -> np.ndarray:
    vocab, eos = VOCABS[vocab_name]()
    g = fresh_grammar(name, 1)
    out = np.zeros(len(vocab), bool)
    ids, _ = byte_trie(vocab_name).walk(g, text, b"")
    out[ids] = True
    out[eos] = g.prefix(text) == 0.0 and g.complete(text) == 0.0
    return out


def fast_allowed(name: str, vocab_name: str, text: str) -> np.ndarray:
    vocab, eos = VOCABS[vocab_name]()
    masker = fresh_grammar(name, 0).token_masker(vocab, [eos])
    got = masker.allowed(text)
    ids = masker.token_ids(text)
    assert np.array_equal(np.flatnonzero(got), ids)
    return got


def assert_same_mask(name: str, vocab_name: str, text: str) -> np.ndarray:
    fast = fast_allowed(name, vocab_name, text)
    brute = brute_allowed(name, vocab_name, text)
    if not np.array_equal(fast, brute):
        vocab, _ = VOCABS[vocab_name]()
        extra = [vocab[i] for i in np.flatnonzero(fast & ~brute)[:8]]
        missing = [vocab[i] for i in np.flatnonzero(brute & ~fast)[:8]]
        pytest.fail(f"{name} after {text!r}: fast allows {extra} wrongly, misses {missing}")
    return fast


SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("vocab_name", sorted(VOCABS))
@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_mask_equals_brute_force_on_prefixes_of_accepted_text(name, vocab_name, data):
    text = data.draw(st.sampled_from(ACCEPT[name]), label="accepted")
    cut = data.draw(st.integers(0, len(text)), label="cut")
    assert_same_mask(name, vocab_name, text[:cut])


@pytest.mark.parametrize("vocab_name", sorted(VOCABS))
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_mask_equals_brute_force_along_random_walks(name, vocab_name, seed):
    """Follow the mask: each step picks an allowed token (short ones more often)."""
    vocab, eos = VOCABS[vocab_name]()
    rng = np.random.default_rng(seed)
    start = ACCEPT[name][int(rng.integers(len(ACCEPT[name])))]
    text = start[: int(rng.integers(len(start) + 1))]
    for _ in range(6):
        allowed = assert_same_mask(name, vocab_name, text)
        allowed[eos] = False
        ids = np.flatnonzero(allowed)
        if ids.size == 0:
            break
        p = 1.0 / np.array([len(vocab[i]) for i in ids]) ** 2
        pick = int(rng.choice(ids, p=p / p.sum()))
        text = text + vocab[pick].decode("utf-8", errors="replace")
        if "\ufffd" in text:  # a lone partial byte: the engine would hold it back
            break


def test_dead_text_has_an_empty_mask():
    vocab, eos = tiny_vocab()
    masker = fresh_grammar("json", 0).token_masker(vocab, [eos])
    assert not masker.allowed('{"a": }').any()
    assert masker.allowed('{"a": 1}')[eos] and not masker.allowed('{"a": 1')[eos]


def test_masks_repeat_as_cache_hits():
    vocab, eos = tiny_vocab()
    g = LarkGrammar(grammars.load("json"))
    masker = g.token_masker(vocab, [eos])
    assert g.token_masker(vocab, [eos]) is masker
    masker.allowed('{"a": "xy')
    before = dict(masker.stats)
    masker.allowed('{"a": "xyz')  # same lexer state inside the string: same configurations
    assert masker.stats["hits"] == before["hits"] + 1 and masker.stats["walks"] == before["walks"]


# ---- the sampler with the compiled mask, against exact enumeration ------------------------

ARITH_VOCAB = ["1", "2", "+", "*", "(", ")", "12", "+1", "2)", " ", "(1", "<eos>"]


def test_packed_bits_layout():
    bits = np.array([0b101, 1 << 31], np.uint32)
    assert np.flatnonzero(unpack(bits, 64)).tolist() == [0, 2, 63]


@pytest.mark.parametrize("method", ["smc", "is"])
def test_smc_with_compiled_grammar_mask_converges_to_pi(method):
    lm = random_function_lm(ARITH_VOCAB, len(ARITH_VOCAB) - 1, seed=7, temperature=1.2)
    g = LarkGrammar(grammars.load("arith"))
    assert g.token_masker(lm.vocab_bytes, lm.eos_ids) is not None
    pi, z, lcd = enumerate_laws(lm, g, max_tokens=3)
    assert len(pi) > 10 and tv(pi, lcd) > 0.05
    runs = [smc.generate(lm, "", constraint=g, method=method, n_particles=256, max_tokens=3,
                         seed=s) for s in range(100)]
    logs = np.array([r.log_ml for r in runs])
    m = logs.max()
    est: dict[str, float] = {}
    for r, lz in zip(runs, logs, strict=True):
        for k, v in r.posterior.items():
            est[k] = est.get(k, 0.0) + math.exp(lz - m) * v
    total = sum(est.values())
    est = {k: v / total for k, v in est.items()}
    assert tv(est, pi) < 0.05, tv(est, pi)
    zs = np.exp(logs)
    assert abs(zs.mean() - z) < 4 * zs.std(ddof=1) / math.sqrt(len(zs)) + 1e-3 * z
    lcd_run = smc.generate(lm, "", constraint=g, method="lcd", n_particles=10000, max_tokens=3,
                           seed=1)
    n_done = sum(p.finished for p in lcd_run.particles)
    assert n_done > 1000
    assert tv(lcd_run.posterior, lcd) < 1.5 * tv_noise(lcd, n_done)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 400), st.sampled_from([50, 5000, 200000]))
def test_group_events_equals_a_set_reference(seed, n_events, n_nodes):
    """Events (node, lexer state) grouped by key: distinct nodes, ascending, per key —
    both the sorting branch (small groups) and the marks branch (large ones)."""
    from potentials._mask_walk import event_states, group_events

    rng = np.random.default_rng(seed)
    n_states = int(rng.integers(1, 12))
    ev_node = rng.integers(0, n_nodes, n_events + 3).astype(np.int64)  # + unused slack
    ev_state = rng.integers(0, n_states, n_events + 3).astype(np.int64)
    n_keys = int(rng.integers(1, 6))
    keys_of = {s: sorted(set(rng.integers(0, n_keys, rng.integers(0, 3)).tolist()))
               for s in range(n_states)}
    present = event_states(ev_state, n_events, n_states)
    assert present.tolist() == sorted(set(ev_state[:n_events].tolist()))
    key_start = np.zeros(n_states + 1, np.int64)
    key_ids: list[int] = []
    for s in range(n_states):
        key_ids += keys_of[s]
        key_start[s + 1] = len(key_ids)
    marks = np.zeros(n_nodes, np.uint8)
    nodes, offsets = group_events(ev_node, ev_state, n_events, key_start,
                                  np.asarray(key_ids, np.int64), n_keys, marks)
    assert not marks.any()
    for g in range(n_keys):
        want = sorted({int(ev_node[i]) for i in range(n_events) if g in keys_of[int(ev_state[i])]})
        assert nodes[offsets[g]:offsets[g + 1]].tolist() == want


def test_compiling_a_mask_freezes_the_long_lived_heap(monkeypatch):
    import gc

    import potentials._heap as gm

    gc.unfreeze()
    monkeypatch.setenv("SMC_DECODE_NO_GC_FREEZE", "1")
    gm.freeze_long_lived_heap()
    assert gc.get_freeze_count() == 0
    monkeypatch.delenv("SMC_DECODE_NO_GC_FREEZE")
    gm.freeze_long_lived_heap()
    assert gc.get_freeze_count() > 1000  # pytest, numpy, lark ... are frozen


def test_a_token_of_thousands_of_lexemes_is_masked_not_a_recursion_error():
    """The collectors recurse once per lexeme ending inside a token: a token of 3,000
    one-character lexemes (and 1,500 unary minuses under the indenting Python grammar)
    is judged like any other, by the brute-force rule."""
    g = LarkGrammar('start: "a"+')
    vocab = [b"a", b"a" * 3000, b"b", b"a" * 2999 + b"b"]
    assert unpack(g.token_masker(vocab, []).bits(""), 4).tolist() == [True, True, False, False]
    py = LarkGrammar(grammars.load("python"), start="function")
    vocab = [b"(", b"-" * 1500, b"-" * 1499 + b")", b"x"]
    text = "def f(x):\n    return "
    want = [py.prefix(text + v.decode()) == 0.0 for v in vocab]
    assert want == [True, True, False, True]
    limit = sys.getrecursionlimit()
    assert unpack(py.token_masker(vocab, []).bits(text), 4).tolist() == want
    assert sys.getrecursionlimit() == limit  # raised only while collecting
