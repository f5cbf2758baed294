"""``PackedLinear`` (oneDNN-prepacked weight) against ``F.linear`` with the same weight."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from smc.packed_linear import PackedLinear
from smc.shared_prefix import SharedPrefixState, forget
from tests.tiny_hf import tiny_lm

CAN_PACK = torch.backends.mkldnn.is_available()


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 40), lead=st.integers(1, 3), n_in=st.integers(1, 70),
       n_out=st.integers(1, 90), bias=st.booleans(), strided=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_equals_f_linear(rows, lead, n_in, n_out, bias, strided, seed):
    """Any leading shape, with and without bias, contiguous or not: the same product."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_out, n_in, generator=g)
    b = torch.randn(n_out, generator=g) if bias else None
    lin = PackedLinear(w, b)
    assert lin.is_packed == CAN_PACK
    x = torch.randn(lead, rows, 2 * n_in if strided else n_in, generator=g)
    if strided:
        x = x[..., ::2]                                   # a non-contiguous view
    with torch.inference_mode():
        got = lin(x)
    want = F.linear(x, w, b)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_weight_that_needs_grad_is_packed_and_grad_free():
    w = torch.nn.Parameter(torch.randn(8, 5))
    lin = PackedLinear(w, torch.nn.Parameter(torch.randn(8)))
    assert lin.is_packed == CAN_PACK
    with torch.inference_mode():
        torch.testing.assert_close(lin(torch.ones(2, 5)),
                                   F.linear(torch.ones(2, 5), w.detach(), lin.bias))


def test_dtypes_without_a_packed_path_fall_back_to_f_linear():
    w = torch.randn(6, 4, dtype=torch.float64)
    lin = PackedLinear(w)
    assert not lin.is_packed
    x = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(lin(x), F.linear(x, w))
    b16 = PackedLinear(torch.randn(6, 4).bfloat16())    # packed only where the CPU has it
    x16 = torch.randn(3, 4).bfloat16()
    torch.testing.assert_close(b16(x16), F.linear(x16, b16.weight), rtol=2e-2, atol=2e-2)


def test_the_environment_switch_turns_packing_off(monkeypatch):
    monkeypatch.setenv("SMC_PACKED_LINEAR", "0")
    assert not PackedLinear(torch.randn(4, 4)).is_packed


@pytest.mark.parametrize("packed", ["0", "1"])
def test_the_shared_prefix_step_is_the_same_packed_or_not(monkeypatch, packed):
    """Both settings of the switch give the transformers path's log-probs (tiny model),
    and the step's matrices are packed exactly when the switch and torch allow it."""
    from smc.hf_lm import _HFState

    monkeypatch.setenv("SMC_PACKED_LINEAR", packed)
    lm = tiny_lm(seed=11)
    forget(lm.model)
    ids = lm.encode("1 + 2 * (3")
    fast, ref = SharedPrefixState(lm, ids, 3), _HFState(lm, ids, 3)
    assert fast.fused.lm_head.is_packed == (packed == "1" and CAN_PACK)
    assert all(lin.is_packed == fast.fused.lm_head.is_packed
               for layer in fast.fused.layers for lin in layer)
    rng = np.random.default_rng(0)
    for step in range(6):
        toks = rng.integers(0, lm.vocab_size, 3)
        fast.advance(toks)
        ref.advance(toks)
        np.testing.assert_allclose(fast.logprobs, ref.logprobs, atol=1e-5)
        if step == 2:
            fast.select(np.array([2, 2, 0]))
            ref.select(np.array([2, 2, 0]))
    forget(lm.model)
