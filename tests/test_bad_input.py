"""Bad input gets a clear error; a run where every particle dies returns an empty posterior."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smc
from potentials import FunctionPotential, Potential
from tests.exact import random_function_lm

VOCAB = ["a", "b", "<eos>"]


@pytest.fixture(scope="module")
def lm():
    return random_function_lm(VOCAB, 2, seed=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_particles=0), "n_particles must be an integer >= 1"),
        (dict(n_particles=-3), "n_particles"),
        (dict(n_particles=2.5), "n_particles"),
        (dict(method="beam"), "allowed: direct, lcd, rerank, is, smc"),
        (dict(resampler="fancy"), "allowed: multinomial, stratified, systematic, residual"),
        (dict(proposal="greedy"), "allowed: mask, awrs"),
        (dict(max_tokens=0), "max_tokens must be an integer >= 1"),
        (dict(ess_threshold=1.5), "ess_threshold"),
    ],
)
def test_bad_arguments_name_what_is_allowed(lm, kwargs, match):
    with pytest.raises(ValueError, match=match):
        smc.generate(lm, "", **kwargs)


def test_wrong_types_are_type_errors(lm):
    with pytest.raises(TypeError, match="constraint must be a potentials.Potential"):
        smc.generate(lm, "", constraint="start: 'a'")
    with pytest.raises(TypeError, match="lm must be"):
        smc.generate(object(), "")


def test_function_lm_rejects_a_prompt(lm):
    with pytest.raises(ValueError, match="no tokenizer"):
        smc.generate(lm, "hello")


def test_function_lm_checks_its_function():
    bad = smc.FunctionLM(["a", "<eos>"], 1, lambda ids: np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        smc.generate(bad, "", method="direct")
    with pytest.raises(ValueError, match="eos=5"):
        smc.FunctionLM(["a"], 5, lambda ids: np.zeros(1))


@pytest.mark.parametrize("method", ["lcd", "is", "smc", "rerank"])
def test_everyone_dies_gives_empty_posterior_and_a_reason(lm, method):
    impossible = FunctionPotential(lambda t: 0.0 if t in ("", "a") else float("-inf"),
                                   lambda t: float("-inf"), name="Nothing")
    with pytest.warns(RuntimeWarning, match="every particle died"):
        res = smc.generate(lm, "", constraint=impossible, method=method, n_particles=8,
                           max_tokens=5)
    assert res.posterior == {} and res.best is None
    assert res.log_ml == -math.inf
    assert all(not math.isnan(x) for x in res.ess_trace)
    assert sum(res.deaths.values()) == 8


def test_dead_from_the_start(lm):
    never = FunctionPotential(lambda t: float("-inf"), name="Never")
    with pytest.warns(RuntimeWarning, match="constraint allows no token"):
        res = smc.generate(lm, "", constraint=never, method="smc", n_particles=4)
    assert res.posterior == {} and res.log_ml == -math.inf


def test_max_tokens_too_small_is_explained(lm):
    with pytest.warns(RuntimeWarning, match="max_tokens reached before EOS"):
        res = _run_until_unfinished(lm)
    assert res.posterior == {}


def _run_until_unfinished(lm):
    never_end = FunctionPotential(lambda t: 0.0, lambda t: float("-inf"), name="NoEnd")
    return smc.generate(lm, "", constraint=never_end, method="smc", n_particles=4, max_tokens=3)


def test_potential_returning_nan_is_named():
    class Broken(Potential):
        def prefix(self, text):
            return float("nan")

        def complete(self, text):
            return 0.0

    lm = random_function_lm(VOCAB, 2, seed=0)
    with pytest.raises(ValueError, match="Broken.*NaN|Broken.*nan"):
        smc.generate(lm, "", constraint=Broken(), method="smc", n_particles=2)


def test_product_of_potentials():
    a = FunctionPotential(lambda t: -1.0, lambda t: -2.0, name="A")
    b = FunctionPotential(lambda t: -0.5, lambda t: float("-inf"), name="B")
    p = a * b
    assert p.prefix("x") == -1.5 and p.complete("x") == -math.inf
    assert len((p * a).factors) == 3
    with pytest.raises(TypeError):
        _ = a * 3


def test_trace_plot_is_written(tmp_path, lm):
    from smc.plots import plot_traces

    res = smc.generate(lm, "", method="smc", n_particles=8, max_tokens=6, ess_threshold=0.9,
                       critic=FunctionPotential(lambda t: -0.5 * t.count("a"), name="A"))
    out = plot_traces(res, tmp_path / "trace.png")
    assert out.stat().st_size > 5000 and out.read_bytes()[:4] == b"\x89PNG"
