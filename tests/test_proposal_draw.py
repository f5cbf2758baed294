"""``smc.proposal.draw``: one inverse-CDF draw and the log-normaliser, against their
definitions (NumPy and torch passes alike)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from smc.proposal import draw

scores_st = st.integers(0, 2**31 - 1).flatmap(lambda seed: st.tuples(
    st.just(seed), st.sampled_from([1, 7, 1023, 1024, 5000]), st.floats(0.0, 0.999999)))


def _reference(scores: np.ndarray, u: float) -> tuple[int, float]:
    """The smallest i with P(0..i) > u, by exact partial sums (math.fsum)."""
    import math

    m = float(np.max(scores))
    w = [math.exp(s - m) for s in scores]
    total = math.fsum(w)
    acc = 0.0
    for i, x in enumerate(w):
        acc += x
        if acc > u * total:
            return i, m + math.log(total)
    return len(w) - 1, m + math.log(total)


def _draw(scores: np.ndarray, u: float, with_torch: bool) -> tuple[int, float]:
    """``draw`` with torch loaded, or as if it were not (the NumPy passes)."""
    import torch

    sys.modules["torch"] = torch if with_torch else None
    try:
        return draw(scores, u)
    finally:
        sys.modules["torch"] = torch


@pytest.mark.parametrize("with_torch", [True, False])
@settings(max_examples=60, deadline=None)
@given(case=scores_st)
def test_draw_is_the_inverse_cdf_and_the_log_normaliser(with_torch, case):
    seed, size, u = case
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal(size) * 4
    scores[rng.random(size) < 0.2] = -np.inf              # masked-out entries
    if np.all(scores == -np.inf):
        scores[0] = 0.0
    index, log_z = _draw(scores, u, with_torch)
    want_index, want_z = _reference(scores, u)
    assert log_z == pytest.approx(logsumexp(scores), rel=0, abs=1e-10)
    assert log_z == pytest.approx(want_z, rel=0, abs=1e-10)
    cdf = np.cumsum(np.exp(scores - scores.max()))
    if abs(cdf[want_index] - u * cdf[-1]) > 1e-9 * cdf[-1] and (
            want_index == 0 or abs(cdf[want_index - 1] - u * cdf[-1]) > 1e-9 * cdf[-1]):
        assert index == want_index                          # away from a boundary
    assert scores[index] > -np.inf


def test_u_of_one_draws_the_last_token_of_nonzero_weight():
    scores = np.array([0.0, 0.5, -np.inf, -np.inf] * 300)   # 1,200 scores: both passes
    for with_torch in (True, False):
        index, _ = _draw(scores, 1.0, with_torch)
        assert index == len(scores) - 3


def test_nothing_to_draw():
    assert draw(np.empty(0), 0.5) == (-1, -np.inf)
    assert draw(np.full(3, -np.inf), 0.5) == (-1, -np.inf)
    assert draw(np.full(2000, -np.inf), 0.5) == (-1, -np.inf)


def test_both_passes_draw_the_same_tokens():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal(49152) * 3
    fast = [_draw(scores, u, True) for u in np.linspace(0.001, 0.999, 200)]
    slow = [_draw(scores, u, False) for u in np.linspace(0.001, 0.999, 200)]
    assert [i for i, _ in fast] == [i for i, _ in slow]
    np.testing.assert_allclose([z for _, z in fast], [z for _, z in slow], rtol=0, atol=1e-12)
