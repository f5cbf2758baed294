"""``smc.generate(..., speculate=k)``: prompt-lookup drafts computed ahead in one forward.

The drafts decide only which positions a forward computes; every token is drawn from the
proposal at its position and a draw that leaves the draft ends the particle's step.  So
the sampled law and Ẑ must equal exact enumeration as without drafts, on models where the
drafts are often taken (several tokens per step) and where they are not.
"""

from __future__ import annotations

import numpy as np
import pytest

import smc
from smc.drafts import PromptLookup
from tests.exact import enumerate_laws, random_function_lm, tv
from tests.test_exactness import (
    EOS,
    MAX_TOKENS,
    VOCAB,
    assert_unbiased,
    b_critic,
    finite_language,
    z_weighted_posterior,
)

REPEAT_VOCAB = ["a", "b", "<eos>"]


@pytest.fixture(autouse=True)
def unigram_drafts(monkeypatch):
    """Outputs of 6 tokens have few repeated pairs: draft after one-token matches too, so
    these runs take many drafts (the default needs two)."""
    monkeypatch.setattr(PromptLookup, "N_MIN", 1)


def _repeater(ids):
    """After "a" mostly the token two back, after "b" "a" or "b" (so "abab…" runs and
    drafts from the own output are often right); the law depends on the last token, so a
    step that read logits past a draw that left the draft would be visibly wrong."""
    p = np.full(3, 0.1)
    if not ids:
        p[0] += 1.0
    elif ids[-1] == 0:
        p[ids[-2] if len(ids) >= 2 else 1] += 2.0
    else:
        p[0] += 1.0
        p[1] += 0.8
    p[2] = 0.05 + 0.1 * len(ids)
    return np.log(p / p.sum())


def _no_bb():
    """A constraint that masks ~40% of the mass after every "b", where the draws follow
    the draft ("a"): the weight factors log Zₜ of drafted positions matter."""
    from potentials import FunctionPotential

    def value(t):
        return float("-inf") if "bb" in t else 0.0
    return FunctionPotential(value, value, name="NoBB")


def _multi_token_steps(runs) -> int:
    """Runs in which some particle drew more tokens than the run had steps."""
    return sum(max((len(p.token_ids) for p in r.particles), default=0) > r.steps for r in runs)


@pytest.mark.parametrize("method", ["smc", "is"])
def test_law_and_normaliser_against_enumeration(method):
    lm = random_function_lm(VOCAB, EOS, seed=3)
    critic = b_critic()
    pi, z, _ = enumerate_laws(lm, finite_language(), critic, max_tokens=MAX_TOKENS)
    runs = [smc.generate(lm, "", constraint=finite_language(), critic=critic, method=method,
                         n_particles=64, max_tokens=MAX_TOKENS, seed=s, speculate=3)
            for s in range(60)]
    assert _multi_token_steps(runs) > 0  # drafts were taken
    assert tv(z_weighted_posterior(runs), pi) < 0.03
    assert_unbiased(runs, z)


def test_a_model_that_repeats_itself_takes_most_drafts_and_keeps_its_law():
    lm = smc.FunctionLM(REPEAT_VOCAB, 2, _repeater)
    pi, z, _ = enumerate_laws(lm, _no_bb(), max_tokens=6)
    runs = [smc.generate(lm, "", constraint=_no_bb(), method="smc", n_particles=32,
                         max_tokens=6, seed=s, speculate=4, ess_threshold=0.9)
            for s in range(600)]
    # tokens drawn per row of a forward: exactly 1 without drafts
    per_row = sum(r.tokens_generated for r in runs) / sum(sum(r.timing["rows"]) for r in runs)
    assert per_row > 1.2, per_row
    assert sum(len(r.resampled_at) for r in runs) > 50  # resampling between speculative steps
    assert tv(z_weighted_posterior(runs), pi) < 0.03  # one-token steps: 0.015 at 600 runs
    assert_unbiased(runs, z)


def test_lcd_keeps_its_own_law():
    """Token masking is biased, and drafts must not change *which* biased law it samples."""
    lm = random_function_lm(VOCAB, EOS, seed=3)
    _, _, lcd = enumerate_laws(lm, finite_language(), max_tokens=MAX_TOKENS)
    res = smc.generate(lm, "", constraint=finite_language(), method="lcd", n_particles=4000,
                       max_tokens=MAX_TOKENS, seed=5, speculate=3)
    got: dict[str, float] = {}
    for p in res.particles:
        if p.finished:
            got[p.text] = got.get(p.text, 0.0) + 1.0 / len(res.particles)
    assert tv(got, lcd) < 0.03


def test_same_seed_same_output_and_budget_respected():
    lm = smc.FunctionLM(REPEAT_VOCAB, 2, _repeater)
    a = smc.generate(lm, "", method="smc", n_particles=16, max_tokens=5, seed=9, speculate=4)
    b = smc.generate(lm, "", method="smc", n_particles=16, max_tokens=5, seed=9, speculate=4)
    assert [p.token_ids for p in a.particles] == [p.token_ids for p in b.particles]
    assert all(len(p.token_ids) <= 5 for p in a.particles)
    assert all(p.finished or p.death is not None for p in a.particles)


def test_speculate_is_checked():
    lm = smc.FunctionLM(REPEAT_VOCAB, 2, _repeater)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="speculate"):
            smc.generate(lm, "", speculate=bad)


def test_the_shared_prefix_model_speculates_and_others_do_not_need_to():
    """The embedded model's state takes chunks; a state without them runs one token a
    step with the same option (drafts are a cost choice, never required)."""
    from tests.tiny_hf import tiny_lm

    lm = tiny_lm()
    res = smc.generate(lm, "1 + 1 + 1 + 1 +", method="smc", n_particles=4, max_tokens=12,
                       seed=0, speculate=4)
    assert res.steps <= 12 and res.tokens_generated >= 4
    assert all(len(p.token_ids) <= 12 for p in res.particles)


def test_prompt_lookup_drafts():
    d = PromptLookup([5, 6, 7, 8, 5, 6, 9], n_max=3, eos_ids=[8], n_min=1)
    assert d.draft([5, 6], 3) == [9]          # latest occurrence of (5, 6) in the prompt
    assert d.draft([7], 4) == [8]             # cut after EOS
    assert d.draft([1, 2, 1], 2) == [2, 1]    # own output first
    assert d.draft([42], 3) == [] and d.draft([], 3) == [] and d.draft([5], 0) == []


def test_prompt_lookup_needs_a_long_enough_match_by_default(monkeypatch):
    monkeypatch.setattr(PromptLookup, "N_MIN", 2)
    d = PromptLookup([5, 6, 7, 8, 5, 6, 9])
    assert d.draft([7], 3) == []              # a one-token match is not enough
    assert d.draft([1, 5, 6], 2) == [9]       # a two-token one is
    with pytest.raises(ValueError):
        PromptLookup([1, 2], n_max=2, n_min=3)


def test_the_sql_domain_does_not_speculate_by_default_but_solve_passes_it_on(monkeypatch):
    """Off by default (it paid on one CPU and cost on another, README); an explicit
    ``speculate`` reaches ``smc.generate`` through ``runner.solve``."""
    import smc.domains
    from tests.generate_spy import generate_kwargs

    dom = smc.domains.load("sql")
    assert "speculate" not in dom.smc_options
    lm = smc.FunctionLM(["a", "<eos>"], 1, lambda ids: np.log(np.full(2, 0.5)))
    seen = generate_kwargs(monkeypatch, lm, dom, dom.tasks()[0],
                           [("smc", {}), ("smc", {"speculate": 3})])
    assert [k.get("speculate") for k in seen] == [None, 3]
