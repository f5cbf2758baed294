"""The transformers backend: token bytes, batched steps, KV-cache reordering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import smc
from smc.token_bytes import byte_level_decoder, complete_utf8, vocab_bytes
from tests.tiny_hf import tiny_lm, tiny_tokenizer


def full_logprobs(lm, ids):
    """log p(· | ids) recomputed from scratch, no cache."""
    with torch.inference_mode():
        out = lm.model(input_ids=torch.tensor([ids]), use_cache=False)
    return torch.log_softmax(out.logits[0, -1].float(), -1).numpy()


def test_vocab_bytes_roundtrip_tokenizer():
    tok = tiny_tokenizer()
    table = vocab_bytes(tok)
    assert table[tok.eos_token_id] is None and table[tok.bos_token_id] is None
    for text in ["héllo wörld", "数学 € (12 + 3)", "def f(x):\n    return x"]:
        ids = tok.encode(text, add_special_tokens=False)
        assert b"".join(table[i] for i in ids).decode("utf-8") == text


def test_byte_level_table_is_a_bijection():
    table = byte_level_decoder()
    assert len(table) == 256 and sorted(table.values()) == list(range(256))


@pytest.mark.parametrize(
    "data, text, held",
    [(b"ab", "ab", 0), ("é".encode()[:1], "", 1), ("a€".encode()[:3], "a", 2),
     ("😀".encode()[:3], "", 3), (b"a\xffb", "a\ufffdb", 0)],
)
def test_complete_utf8(data, text, held):
    assert complete_utf8(data) == (text, held)


def test_logits_after_reorder_equal_recomputed():
    lm = tiny_lm()
    prompt = lm.encode("1 + 2")
    state = lm.start(prompt, 4)
    np.testing.assert_allclose(state.logprobs[0], full_logprobs(lm, prompt), atol=1e-5)
    rng = np.random.default_rng(0)
    seqs = [list(prompt) for _ in range(4)]
    for step in range(5):
        tokens = rng.integers(3, lm.vocab_size, size=state.rows)
        state.advance(tokens)
        seqs = [s + [int(t)] for s, t in zip(seqs, tokens, strict=True)]
        if step == 1:  # resample: duplicate, drop and reorder rows
            rows = np.array([2, 0, 2, 3, 1])
            state.select(rows)
            seqs = [list(seqs[r]) for r in rows]
        if step == 3:  # a particle finishes: its row is dropped
            state.select(np.array([0, 1, 3, 4]))
            seqs = [seqs[r] for r in (0, 1, 3, 4)]
        for r, s in enumerate(seqs):
            np.testing.assert_allclose(state.logprobs[r], full_logprobs(lm, s), atol=1e-4)


def test_generate_runs_every_method_on_a_transformer():
    lm = tiny_lm()
    from potentials import FunctionPotential

    digits = FunctionPotential(
        lambda t: 0.0 if all(c in "0123456789+ " for c in t) else float("-inf"),
        lambda t: 0.0 if t and all(c in "0123456789+ " for c in t) else float("-inf"),
        name="Digits",
    )
    for method in smc.METHODS:
        res = smc.generate(lm, "1 + 2", constraint=digits, method=method, n_particles=8,
                           max_tokens=8, seed=0)
        assert len(res.particles) == 8 and len(res.ess_trace) >= 1
        if method in ("lcd", "is", "smc"):
            assert all(set(p.text) <= set("0123456789+ ") for p in res.particles)


def test_context_overflow_is_a_clear_error():
    lm = tiny_lm(max_positions=16)
    with pytest.raises(ValueError, match="context of 16 tokens"):
        smc.generate(lm, "(12 + 34) * 56 - 7 / 8 + 90 " * 3, method="direct", max_tokens=4)
    with pytest.raises(ValueError, match="context"):
        smc.generate(lm, "1 + 2", method="direct", max_tokens=64)
