"""KV bytes per particle per token against the real cache; refusal before allocating."""

from __future__ import annotations

import re

import pytest

import smc
import smc.memory
from tests.tiny_hf import tiny_lm


def _cache_bytes(cache) -> int:
    total = 0
    for layer in cache.layers:
        total += layer.keys.numel() * layer.keys.element_size()
        total += layer.values.numel() * layer.values.element_size()
    return total


def test_kv_bytes_per_token_matches_the_real_cache(monkeypatch):
    monkeypatch.setenv("SMC_DECODE_SHARED_PREFIX", "0")     # the transformers cache
    lm = tiny_lm()
    ids = lm.encode("1 + 2 * 3")
    state = lm.start(ids, 3)
    state.advance([5, 6, 7])
    state.advance([8, 9, 10])
    tokens = len(ids) + 2
    assert _cache_bytes(state.cache) == 3 * tokens * lm.kv_bytes_per_token
    # 2 layers, 2 kv heads, head_dim 32/4 = 8, float32
    assert lm.kv_bytes_per_token == 2 * 2 * 2 * 8 * 4


def test_shared_prefix_bytes_match_the_estimate():
    """The shared-prefix state holds the prompt once and T generated positions per row."""
    lm = tiny_lm()
    assert lm.shares_prefix
    ids = lm.encode("1 + 2 * 3")
    state = lm.start(ids, 3)
    for step in range(16):
        state.advance([5 + step, 6, 7])
    prompt = sum(k.numel() * k.element_size() + v.numel() * v.element_size()
                 for k, v in state.prefix)
    rows = sum(k.numel() * k.element_size() + v.numel() * v.element_size()
               for k, v in state.buffers)          # capacity 16 = max_tokens here
    est = smc.memory.estimate(lm, 3, len(ids), 16)
    per_token = smc.memory.kv_bytes_per_token(lm.model.config, 4)
    assert est.shared_bytes == prompt == len(ids) * per_token
    assert rows == 3 * 16 * per_token                    # capacity 16 = max_tokens here
    peak_rows = 3 * 4 * 16 * per_token                   # doubled and copied, at most
    assert est.host_bytes == (prompt + peak_rows + 3 * (2 * lm.vocab_size * 4)
                              + 3 * lm.vocab_size * 8)


def test_generate_refuses_what_does_not_fit_and_names_the_largest(monkeypatch):
    lm = tiny_lm()
    prompt = "1 + 2"
    p = len(lm.encode(prompt))
    est = smc.memory.estimate(lm, 1, p, 16)
    per_particle = est.host_bytes - est.shared_bytes
    monkeypatch.setattr(smc.memory, "host_free_bytes",
                        lambda: est.shared_bytes + 10 * per_particle + 5)
    with pytest.raises(smc.memory.InsufficientMemoryError) as err:
        smc.generate(lm, prompt, method="direct", n_particles=11, max_tokens=16)
    msg = str(err.value)
    assert "bytes of KV cache per particle per token" in msg
    largest = int(re.search(r"largest particle count that fits is (\d+)", msg).group(1))
    assert largest == 10
    assert smc.memory.estimate(lm, largest, p, 16).fits()
    assert not smc.memory.estimate(lm, largest + 1, p, 16).fits()
    res = smc.generate(lm, prompt, method="direct", n_particles=10, max_tokens=16)
    assert len(res.particles) == 10
    assert isinstance(err.value, ValueError)  # the CLI reports it like any bad argument


def test_the_check_can_be_switched_off(monkeypatch):
    lm = tiny_lm()
    monkeypatch.setattr(smc.memory, "host_free_bytes", lambda: 1)
    with pytest.raises(smc.memory.InsufficientMemoryError, match="fits is 0"):
        smc.generate(lm, "1", method="direct", n_particles=2, max_tokens=4)
    monkeypatch.setenv("SMC_DECODE_NO_MEMORY_CHECK", "1")
    assert len(smc.generate(lm, "1", method="direct", n_particles=2, max_tokens=4).particles) == 2


def test_function_lm_has_no_cache_to_check():
    lm = smc.FunctionLM(["a", "<eos>"], 1, lambda ids: __import__("numpy").log([0.5, 0.5]))
    assert smc.memory.estimate(lm, 10**9, 0, 10) is None
