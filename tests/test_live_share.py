"""smc also resamples when the live particles hold next to no weight (LIVE_SHARE_FLOOR)."""

from __future__ import annotations

import numpy as np
import pytest

import smc
from potentials.base import NEG_INF, FunctionPotential
from smc.bookkeeping import LIVE_SHARE_FLOOR
from smc.generate import live_share
from tests.exact import enumerate_laws, tv
from tests.test_exactness import assert_unbiased, z_weighted_posterior

VOCAB = ["a", " ", "<eos>"]


def _next_logprobs(ids):
    if not ids:
        return np.log(np.array([0.9, 0.1, 1e-12]))
    if VOCAB[ids[0]] == "a":
        return np.log(np.array([1e-12, 1e-12, 1.0]))
    return np.log(np.array([1e-12, 0.9, 0.1]))          # spaces go on and on


def _critic():
    """Two leading spaces cost e^-20: such particles keep running, with no weight."""
    def value(t):
        return -20.0 if t.startswith("  ") else 0.0
    return FunctionPotential(value, value, name="NoSpaces")


def test_live_share():
    assert live_share(np.array([0.0, NEG_INF]), np.array([True, False])) == 1.0
    assert live_share(np.array([0.0, 0.0]), np.array([False, True])) == pytest.approx(0.5)
    assert live_share(np.array([NEG_INF, NEG_INF]), np.array([True, True])) == 0.0
    assert live_share(np.array([0.0, -30.0]), np.array([False, True])) < LIVE_SHARE_FLOOR


@pytest.mark.parametrize("step", ["host", "device"])
def test_starved_particles_end_the_run_and_the_law_holds(step):
    lm = smc.FunctionLM(VOCAB, 2, _next_logprobs)
    critic = _critic()
    pi, z, _ = enumerate_laws(lm, critic=critic, max_tokens=10)
    runs = [smc.generate(lm, "", critic=critic, method="smc", n_particles=32, max_tokens=10,
                         seed=s, step=step) for s in range(80)]
    # the "a" particles finish at step 2; the space particles are then starved and drawn
    # out, instead of running to max_tokens (0.9 per step to go on)
    assert np.mean([r.steps <= 3 for r in runs]) > 0.9
    assert tv(z_weighted_posterior(runs), pi) < 0.01
    assert_unbiased(runs, z)


def test_importance_sampling_never_resamples():
    lm = smc.FunctionLM(VOCAB, 2, _next_logprobs)
    res = smc.generate(lm, "", critic=_critic(), method="smc", ess_threshold=0.0,
                       n_particles=32, max_tokens=10, seed=0)
    assert res.resampled_at == []
