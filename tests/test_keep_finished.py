"""``smc(keep_finished=True)``: only the running particles resample, among themselves.

Defining law of the step: finished particles are their own ancestors and keep their
weights; running ones draw ancestors among the running, each offspring weighing the
running mean (so the running total is preserved).  Then the sampler against exact
enumeration (law and Ẑ) on a model whose outputs either end at once or run on, and a
run in which a finished output survives where plain ``smc`` trades it away.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import kernels
import smc
from potentials.base import FunctionPotential
from smc.bookkeeping import Run
from smc.device_step import use_device
from smc.generate import _resample_running
from tests.exact import enumerate_laws, tv
from tests.test_exactness import assert_unbiased, z_weighted_posterior

VOCAB = ["a", "b", "<eos>"]


def _next_logprobs(ids):
    """"a" then EOS is short and likely to end; "b…" runs on (0.85 per step)."""
    if not ids:
        return np.log(np.array([0.3, 0.7, 1e-12]))
    if VOCAB[ids[0]] == "a":
        return np.log(np.array([0.1, 0.1, 0.8]))
    return np.log(np.array([0.05, 0.85, 0.10]))


def _critic():
    def value(t):  # a "b…" output is worth a little less for each "a" it contains
        return -1.5 * t.count("a") if t.startswith("b") else 0.0
    return FunctionPotential(value, value, name="FewA")


def _run(n=8, tau=0.5):
    return Run(lm=None, constraint=None, critic=None, method="smc", n=n, ess_threshold=tau,
               resampler="systematic", max_tokens=8, weighted=True, masked=False,
               twisted=False, keep_finished=True)


@pytest.mark.parametrize("seed", range(20))
def test_finished_particles_keep_their_place_and_weight(seed):
    rng = np.random.default_rng(seed)
    n = 8
    log_w = rng.normal(0, 2, n)
    live = rng.random(n) < 0.6
    live[0] = True
    ancestors, running = _resample_running(_run(n, tau=1.0), log_w, live, rng)
    idx = np.flatnonzero(live)
    if kernels.ess(log_w[idx]) >= len(idx):  # equal weights: nothing to do
        assert ancestors is None
        return
    assert np.array_equal(ancestors[~live], np.flatnonzero(~live))
    assert set(ancestors[live].tolist()) <= set(idx.tolist())
    got_idx, log_mean = running
    assert np.array_equal(got_idx, idx)
    assert log_mean == pytest.approx(math.log(np.exp(log_w[idx]).mean()))


def test_running_offspring_follow_the_running_weights():
    """Over many draws, each running particle is drawn in proportion to its weight."""
    log_w = np.log(np.array([0.1, 5.0, 0.3, 0.6, 2.0]))
    live = np.array([True, False, True, True, False])
    counts = np.zeros(5)
    rng = np.random.default_rng(0)
    for _ in range(4000):
        ancestors, _ = _resample_running(_run(5, tau=1.0), log_w, live, rng)
        for a in ancestors[live]:
            counts[a] += 1
    share = counts[live] / counts[live].sum()
    want = np.exp(log_w[live]) / np.exp(log_w[live]).sum()
    assert np.abs(share - want).max() < 0.02


def test_law_and_normaliser_against_enumeration():
    lm = smc.FunctionLM(VOCAB, 2, _next_logprobs)
    critic = _critic()
    pi, z, _ = enumerate_laws(lm, critic=critic, max_tokens=6)
    runs = [smc.generate(lm, "", critic=critic, method="smc", n_particles=16, max_tokens=6,
                         seed=s, keep_finished=True, ess_threshold=0.9) for s in range(300)]
    assert sum(len(r.resampled_at) for r in runs) > 100  # it does resample
    assert tv(z_weighted_posterior(runs), pi) < 0.03
    assert_unbiased(runs, z)


def test_a_finished_output_is_not_traded_for_one_that_never_ends():
    """"a"+EOS finishes at step 2 but the critic leaves it 5% of its weight; the "b…"
    particles weigh more at every step yet almost never end within the budget (0.99 per
    step to go on). Plain smc resamples the finished ones away; keep_finished keeps them."""
    lm = smc.FunctionLM(VOCAB, 2, lambda ids: np.log(np.array(
        [0.3, 0.7, 1e-12] if not ids else [1e-12, 1e-12, 1.0] if VOCAB[ids[0]] == "a"
        else [1e-12, 0.99, 0.01])))
    critic = FunctionPotential(lambda t: 0.0, lambda t: math.log(0.05) if t == "a" else 0.0)
    kept = plain = 0
    for s in range(30):
        for keep in (True, False):
            res = smc.generate(lm, "", critic=critic, method="smc", n_particles=16,
                               max_tokens=30, seed=s, ess_threshold=0.9, keep_finished=keep)
            n_a = sum(p.finished and p.text == "a" for p in res.particles)
            if keep:
                kept += n_a
            else:
                plain += n_a
    assert kept > 3 * plain


def test_the_device_step_is_not_taken():
    class Cuda:
        on_cuda = True
        supports_device_step = True

    assert use_device("auto", Cuda(), False, "mask")
    assert not use_device("auto", Cuda(), False, "mask", keep_finished=True)
    with pytest.raises(ValueError, match="keep_finished"):
        use_device("device", Cuda(), False, "mask", keep_finished=True)


def test_domains_pass_their_smc_options(monkeypatch):
    """The SMILES domain's smc runs keep finished molecules; other methods, and explicit
    options, are left alone."""
    import smc.domains
    from tests.generate_spy import generate_kwargs

    dom = smc.domains.load("smiles")
    lm = smc.FunctionLM(VOCAB, 2, _next_logprobs)
    seen = generate_kwargs(monkeypatch, lm, dom, dom.tasks()[0],
                           [("smc", {}), ("is", {}), ("smc", {"keep_finished": False})])
    assert [k.get("keep_finished") for k in seen] == [True, None, False]
