"""AWRS proposal: per-step proper weighting, exactness of lcd/is/smc, constraint-call savings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import smc
from potentials import FunctionPotential, Potential
from smc.awrs import AWRSProposal, log_inverse_time
from tests.exact import enumerate_laws, random_function_lm, tv, tv_noise
from tests.test_exactness import (
    EOS,
    MAX_TOKENS,
    VOCAB,
    b_critic,
    finite_language,
    z_weighted_posterior,
)

NEG_INF = float("-inf")


@pytest.fixture(scope="module")
def lm():
    return random_function_lm(VOCAB, EOS, seed=3)


def soft_language():
    """Finite language times a fractional factor c = 0.6^(number of new a's) ∈ (0, 1]."""
    return finite_language() * FunctionPotential(
        lambda t: t.count("a") * math.log(0.6), name="SoftA"
    )


class Counting(Potential):
    """Wraps a potential and counts its prefix/complete calls."""

    def __init__(self, inner: Potential) -> None:
        self.inner = inner
        self.calls = 0

    def prefix(self, text: str) -> float:
        self.calls += 1
        return self.inner.prefix(text)

    def complete(self, text: str) -> float:
        self.calls += 1
        return self.inner.complete(text)


def assert_weighted_per_token(tokens: np.ndarray, zhat: np.ndarray, pc: np.ndarray) -> None:
    """Proper weighting, token by token: the mean of Ẑ·1{v} is p(v)·c(v) (4.5 s.e.)."""
    n = len(tokens)
    for v in np.flatnonzero(pc > 0):
        contrib = np.where(tokens == v, zhat, 0.0)
        se_v = contrib.std(ddof=1) / math.sqrt(n)
        assert abs(contrib.mean() - pc[v]) < 4.5 * se_v + 1e-12, (v, contrib.mean(), pc[v])


# ---------------------------------------------------------------- the estimator itself


def test_log_inverse_time_closed_forms():
    # one rate M repeated n times: T ~ Gamma(n, M), E[1/T] = M/(n−1)
    assert math.isclose(math.exp(log_inverse_time(np.log([0.3] * 4))), 0.1, rel_tol=1e-12)
    # partial fractions: ∫ ds/((1+s)²(1+2s)) = 2 ln 2 − 1, ∫ ds/((1+s)(1+2s)²) = 1 − ln 2
    assert math.isclose(math.exp(log_inverse_time(np.log([1, 1, 0.5]))),
                        2 * math.log(2) - 1, rel_tol=1e-12)
    assert math.isclose(math.exp(log_inverse_time(np.log([1, 0.5, 0.5]))),
                        1 - math.log(2), rel_tol=1e-12)
    # distinct rates: E[1/T] = −Σᵢ Mᵢ log Mᵢ Πⱼ≠ᵢ Mⱼ/(Mⱼ−Mᵢ)
    rates = np.array([1.0, 0.5, 0.2, 1e-3])
    exact = -sum(m * math.log(m) * np.prod([r / (r - m) for r in rates if r != m])
                 for m in rates)
    assert math.isclose(math.exp(log_inverse_time(np.log(rates))), exact, rel_tol=1e-10)
    # scale invariance: rates × a gives E[1/T] × a, also far outside [0, 1]
    assert math.isclose(log_inverse_time(np.log(rates) + 300.0),
                        log_inverse_time(np.log(rates)) + 300.0, rel_tol=1e-12)
    with pytest.raises(ValueError):
        log_inverse_time(np.array([0.0]))


STEP_VOCAB = ["a", "b", "c", "ab", "ba", "bb", "cab", "x", "xy", "abc", "bca", "y",
              "aa", "cc", "<eos>"]
STEP_EOS = len(STEP_VOCAB) - 1


def _step_setup(soft: bool):
    """A FunctionLM vocabulary, a fixed log-prob vector and the exact p·c of the first step."""
    lm = random_function_lm(STEP_VOCAB, STEP_EOS, seed=0)
    letters = set("abc")

    def prefix(t):
        if not set(t) <= letters:
            return NEG_INF
        return t.count("b") * math.log(0.5) if soft else 0.0

    # EOS after "" is allowed with c = exp(complete("") − prefix("")) = 0.4
    pot = FunctionPotential(prefix, lambda t: math.log(0.4) if t == "" else prefix(t))
    logprobs = np.random.default_rng(7).normal(size=len(STEP_VOCAB)) * 1.5
    logprobs -= np.logaddexp.reduce(logprobs) - 0.3  # unnormalised on purpose: Σp = e^0.3
    pc = np.zeros(len(STEP_VOCAB))
    for v, tok in enumerate(STEP_VOCAB):
        c = math.exp(pot.complete("")) if v == STEP_EOS else math.exp(prefix(tok))
        pc[v] = math.exp(logprobs[v]) * c
    return lm, pot, logprobs, pc


@pytest.mark.parametrize("soft", [False, True], ids=["boolean", "fractional"])
@pytest.mark.parametrize("n_accept", [2, 3])
def test_step_is_properly_weighted(soft, n_accept):
    """E[Ẑ] = Zₜ, the token law is p·c/Zₜ (chi-square), and E[Ẑ·1{v}] = p(v)·c(v) per token."""
    lm, pot, logprobs, pc = _step_setup(soft)
    z = pc.sum()
    prop = AWRSProposal(lm, pot, np.random.default_rng(1), n_accept=n_accept)
    n = 20000
    draws = [prop.step(logprobs, "", b"", 0.5) for _ in range(n)]
    tokens = np.array([v for v, _ in draws])
    zhat = np.exp([lz for _, lz in draws])
    assert (pc[tokens] > 0).all()  # only allowed tokens are returned
    se = zhat.std(ddof=1) / math.sqrt(n)
    assert abs(zhat.mean() - z) < 4 * se, (zhat.mean(), z, se)
    assert zhat.max() <= np.exp(logprobs).sum() * (1 + 1e-12)  # Ẑ ≤ Σp: finite variance
    counts = np.bincount(tokens, minlength=len(pc))
    allowed = pc > 0
    assert stats.chisquare(counts[allowed], n * pc[allowed] / z).pvalue > 1e-3
    # proper weighting, token by token: mean of Ẑ·1{v} is p(v)·c(v)
    assert_weighted_per_token(tokens, zhat, pc)


def test_step_without_estimate_is_an_exact_draw_of_q():
    lm, pot, logprobs, pc = _step_setup(soft=True)
    prop = AWRSProposal(lm, pot, np.random.default_rng(2), estimate=False)
    n = 20000
    draws = [prop.step(logprobs, "", b"", 0.5) for _ in range(n)]
    assert all(math.isnan(lz) for _, lz in draws)
    counts = np.bincount([v for v, _ in draws], minlength=len(pc))
    allowed = pc > 0
    assert counts[~allowed].sum() == 0
    assert stats.chisquare(counts[allowed], n * pc[allowed] / pc.sum()).pvalue > 1e-3


def test_step_with_no_allowed_token_dies():
    lm, _, logprobs, _ = _step_setup(soft=False)
    nothing = FunctionPotential(lambda t: 0.0 if t == "" else NEG_INF,
                                lambda t: NEG_INF)
    prop = AWRSProposal(lm, nothing, np.random.default_rng(0))
    assert prop.step(logprobs, "", b"", 0.5) == (-1, NEG_INF)
    # held bytes of an unfinished character: EOS is impossible, the text tokens are rejected
    only_end = FunctionPotential(lambda t: 0.0 if t == "" else NEG_INF, lambda t: 0.0)
    prop = AWRSProposal(lm, only_end, np.random.default_rng(0))
    assert prop.step(logprobs, "", b"\xc3", 0.5) == (-1, NEG_INF)
    v, log_z = prop.step(logprobs, "", b"", 0.5)  # without held bytes only EOS is left
    assert v == STEP_EOS and math.isfinite(log_z)
    # a context whose own prefix is impossible dies without drawing
    assert prop.step(logprobs, "zzz", b"", 0.5) == (-1, NEG_INF)


def test_constraint_above_one_is_refused():
    lm, _, logprobs, _ = _step_setup(soft=False)
    growing = FunctionPotential(lambda t: float(len(t)) - 5.0, name="Growing")
    prop = AWRSProposal(lm, growing, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"c\(v \| x\) <= 1.*Growing.*proposal='mask'"):
        prop.step(logprobs, "", b"", 0.5)
    with pytest.raises(ValueError, match="n_accept"):
        AWRSProposal(lm, growing, np.random.default_rng(0), n_accept=1)


# ---------------------------------------------------------------- exactness of the samplers


def _runs(lm, seeds, **kw):
    return [smc.generate(lm, "", max_tokens=MAX_TOKENS, proposal="awrs", seed=s, **kw)
            for s in seeds]


@pytest.mark.parametrize("method", ["smc", "is"])
@pytest.mark.parametrize("with_critic", [False, True])
def test_weighted_methods_converge_to_pi(lm, method, with_critic):
    critic = b_critic() if with_critic else None
    pi, z, _ = enumerate_laws(lm, finite_language(), critic, max_tokens=MAX_TOKENS)
    runs = _runs(lm, range(120), constraint=finite_language(), critic=critic, method=method,
                 n_particles=64)
    assert tv(z_weighted_posterior(runs), pi) < 0.03
    zs = np.exp([r.log_ml for r in runs])  # Ẑ is unbiased
    se = zs.std(ddof=1) / math.sqrt(len(zs))
    assert abs(zs.mean() - z) < 4 * se + 1e-3 * z, (zs.mean(), z, se)


def test_smc_with_fractional_constraint_converges(lm):
    pi, z, _ = enumerate_laws(lm, soft_language(), b_critic(), max_tokens=MAX_TOKENS)
    runs = _runs(lm, range(120), constraint=soft_language(), critic=b_critic(), method="smc",
                 n_particles=64, ess_threshold=0.9)
    assert sum(len(r.resampled_at) for r in runs) > 60  # resampling did happen
    assert tv(z_weighted_posterior(runs), pi) < 0.03
    zs = np.exp([r.log_ml for r in runs])
    assert abs(zs.mean() - z) < 4 * zs.std(ddof=1) / math.sqrt(len(zs)) + 1e-3 * z


@pytest.mark.parametrize("make", [finite_language, soft_language], ids=["boolean", "fractional"])
def test_lcd_matches_its_own_law(lm, make):
    pi, _, lcd = enumerate_laws(lm, make(), max_tokens=MAX_TOKENS)
    res = smc.generate(lm, "", constraint=make(), method="lcd", proposal="awrs",
                       n_particles=4000, max_tokens=MAX_TOKENS, seed=5)
    n_done = sum(p.finished for p in res.particles)
    assert n_done > 3000
    assert tv(res.posterior, lcd) < 1.5 * tv_noise(lcd, n_done), (tv(res.posterior, lcd),
                                                                  tv_noise(lcd, n_done))
    assert tv(res.posterior, pi) > 0.05  # and it is not π
    assert math.isnan(res.log_ml)


def test_held_utf8_bytes_converge():
    """Tokens split 'é' and '€' across tokens: held-back bytes are joined, then scored."""
    vocab = [b"\xc3", b"\xa9", b"\xe2\x82", b"\xac", b"e", b"\xc3\xa9", "<eos>"]
    lm = random_function_lm(vocab, 6, seed=1, temperature=1.0)
    words = {"é", "eé", "€", "é€", "e"}
    prefixes = {w[:k] for w in words for k in range(len(w) + 1)}
    lang = FunctionPotential(lambda t: 0.0 if t in prefixes else NEG_INF,
                             lambda t: 0.0 if t in words else NEG_INF)
    pi, z, _ = enumerate_laws(lm, lang, max_tokens=5)
    runs = [smc.generate(lm, "", constraint=lang, method="smc", proposal="awrs",
                         n_particles=64, max_tokens=5, seed=s) for s in range(60)]
    assert tv(z_weighted_posterior(runs), pi) < 0.04
    assert pi["€"] > 0.01
    zs = np.exp([r.log_ml for r in runs])
    assert abs(zs.mean() - z) < 4 * zs.std(ddof=1) / math.sqrt(len(zs)) + 1e-3 * z


def test_same_seed_same_output(lm):
    kw = dict(constraint=finite_language(), critic=b_critic(), n_particles=16,
              max_tokens=MAX_TOKENS, ess_threshold=0.9, proposal="awrs")
    a, b = smc.generate(lm, "", seed=4, **kw), smc.generate(lm, "", seed=4, **kw)
    assert a.posterior == b.posterior and a.log_ml == b.log_ml
    assert [p.token_ids for p in a.particles] == [p.token_ids for p in b.particles]
    c = smc.generate(lm, "", seed=5, **kw)
    assert [p.token_ids for p in a.particles] != [p.token_ids for p in c.particles]


def test_every_particle_dies(lm):
    nothing = FunctionPotential(lambda t: 0.0 if t == "" else NEG_INF, lambda t: NEG_INF)
    for method in ("lcd", "is", "smc"):
        with pytest.warns(RuntimeWarning, match="every particle died"):
            res = smc.generate(lm, "", constraint=nothing, method=method, proposal="awrs",
                               n_particles=8, max_tokens=MAX_TOKENS, seed=0)
        assert res.posterior == {} and res.log_ml == NEG_INF
        assert res.deaths == {"the constraint allows no token": 8}


# ---------------------------------------------------------------- cost


def _big_lm(size: int = 2000, seed: int = 0):
    """A FunctionLM over ``size`` distinct random 1–6 letter tokens (logits ~ N(0, 3²))."""
    r = np.random.default_rng(seed)
    letters = list("abcdefgh ")
    words = {"".join(r.choice(letters, size=r.integers(1, 7))) for _ in range(2 * size)}
    vocab = sorted(words)[: size - 1] + ["<eos>"]
    assert len(vocab) == size
    return random_function_lm(vocab, size - 1, seed=seed, temperature=3.0)


def _no_h():
    """Boolean: no 'h' anywhere (about a third of the tokens break it)."""
    return FunctionPotential(lambda t: NEG_INF if "h" in t else 0.0, name="NoH")


@pytest.mark.filterwarnings("ignore:every particle died")
def test_awrs_scores_far_fewer_tokens_than_the_vocabulary():
    lm = _big_lm()
    counting = Counting(_no_h())
    res = smc.generate(lm, "", constraint=counting, method="smc", proposal="awrs",
                       n_particles=8, max_tokens=6, seed=0)
    assert res.tokens_generated >= 8
    assert all("h" not in p.text for p in res.particles)
    per_step = counting.calls / res.tokens_generated
    assert per_step < lm.vocab_size / 20, per_step
    masked = Counting(_no_h())
    res_mask = smc.generate(lm, "", constraint=masked, method="smc", n_particles=8,
                            max_tokens=6, seed=0)
    assert masked.calls / res_mask.tokens_generated > 5 * per_step


@pytest.mark.filterwarnings("ignore:every particle died")
def test_awrs_on_a_transformer():
    from tests.tiny_hf import tiny_lm

    lm = tiny_lm()
    allowed = set("0123456789+ ")
    digits = FunctionPotential(
        lambda t: 0.0 if set(t) <= allowed else NEG_INF,
        lambda t: 0.0 if t and set(t) <= allowed else NEG_INF,
        name="Digits",
    )
    for method in ("lcd", "is", "smc"):
        res = smc.generate(lm, "1 + 2", constraint=digits, method=method, proposal="awrs",
                           n_particles=8, max_tokens=8, seed=0)
        assert len(res.particles) == 8 and len(res.ess_trace) >= 1 and res.tokens_generated > 0
        assert all(set(p.text) <= allowed for p in res.particles)


# ------------------------------------------------- finishing the race on the exact mask


def _grammar_step_setup():
    """A LarkGrammar (it has a token mask) over STEP_VOCAB, with most mass on dead tokens."""
    from potentials import LarkGrammar

    lm = random_function_lm(STEP_VOCAB, STEP_EOS, seed=0)
    g = LarkGrammar('start: WORD?\nWORD: /[abc]+/')
    logprobs = np.random.default_rng(11).normal(size=len(STEP_VOCAB))
    for v, tok in enumerate(STEP_VOCAB):
        if tok in ("x", "xy", "y"):
            logprobs[v] += 3.0  # the model prefers what the grammar forbids
    logprobs -= np.logaddexp.reduce(logprobs)
    pc = np.array([math.exp(lp) if (v == STEP_EOS or set(STEP_VOCAB[v]) <= set("abc")) else 0.0
                   for v, lp in enumerate(logprobs)])
    return lm, g, logprobs, pc


@pytest.mark.parametrize("switch_after", [0, 1, 2, 3, None])
def test_switching_to_the_mask_keeps_the_step_properly_weighted(switch_after, monkeypatch):
    """Stopping the race after j rejections and finishing it on the exact mask (the first
    mark drawn from q, k − a holding times of rate Zₜ added) keeps E[Ẑ·1{v}] = p(v)·c(v)."""
    lm, g, logprobs, pc = _grammar_step_setup()
    z = pc.sum()
    prop = AWRSProposal(lm, g, np.random.default_rng(5), n_accept=3, switch_after=switch_after)
    if switch_after is not None:  # a cached mask would short-circuit every race after the first
        monkeypatch.setattr(prop.masker, "cached_bits", lambda text: None)
    n = 20000
    draws = [prop.step(logprobs, "", b"", 0.5) for _ in range(n)]
    tokens = np.array([v for v, _ in draws])
    zhat = np.exp([lz for _, lz in draws])
    assert (pc[tokens] > 0).all()
    if switch_after is None:
        assert prop.switches == 0
    else:
        assert prop.switches > (n // 2 if switch_after <= 1 else 0)
    if switch_after == 0:  # J = 0 is the exact mask: Ẑ = Zₜ every time
        np.testing.assert_allclose(zhat, z, rtol=1e-12)
    se = zhat.std(ddof=1) / math.sqrt(n)
    assert abs(zhat.mean() - z) < 4 * se + 1e-12, (zhat.mean(), z, se)
    counts = np.bincount(tokens, minlength=len(pc))
    allowed = pc > 0
    assert stats.chisquare(counts[allowed], n * pc[allowed] / z).pvalue > 1e-3
    assert_weighted_per_token(tokens, zhat, pc)


def test_a_cached_mask_makes_the_step_exact_and_skips_the_race():
    lm, g, logprobs, pc = _grammar_step_setup()
    prop = AWRSProposal(lm, g, np.random.default_rng(5))
    prop.masker.bits("")  # the mask of "" is now cached
    calls = prop.calls
    draws = [prop.step(logprobs, "", b"", 0.5) for _ in range(4000)]
    assert prop.switches == 4000 and prop.calls == calls + 1  # one prefix("") for the context
    np.testing.assert_allclose(np.exp([lz for _, lz in draws]), pc.sum(), rtol=1e-12)
    counts = np.bincount([v for v, _ in draws], minlength=len(pc))
    allowed = pc > 0
    assert stats.chisquare(counts[allowed], 4000 * pc[allowed] / pc.sum()).pvalue > 1e-3


@pytest.mark.parametrize("switch_after", [0, 1, 2])
def test_switching_inside_a_held_character_keeps_the_step_properly_weighted(switch_after):
    """Inside a held-back UTF-8 character c comes from the byte-trie walk below the held
    bytes; finishing the race there is still properly weighted."""
    vocab = [b"\xa9", b"\xa8", b"\xc3", b"a", b"\xa9a", b"b", b"\xa9b", b"<eos>"]
    lm = smc.FunctionLM(vocab, len(vocab) - 1, lambda ids: np.full(len(vocab), -2.0))
    allowed = set("éa")
    pot = FunctionPotential(lambda t: 0.0 if set(t) <= allowed else NEG_INF)
    logprobs = np.log(np.array([0.05, 0.3, 0.2, 0.2, 0.05, 0.1, 0.05, 0.05]))
    reference = AWRSProposal(lm, pot, np.random.default_rng(0), switch_after=None)
    ctx = reference._context("a", b"\xc3")
    pc = np.array([math.exp(lp + reference._log_c(ctx, "a", b"\xc3", v))
                   for v, lp in enumerate(logprobs)])
    assert pc[0] > 0 and pc[4] > 0 and pc[1] == pc[6] == pc[7] == 0  # é, éa; not è, éb, EOS
    z = pc.sum()
    prop = AWRSProposal(lm, pot, np.random.default_rng(9), n_accept=2,
                        switch_after=switch_after)
    n = 20000
    draws = [prop.step(logprobs, "a", b"\xc3", 0.5) for _ in range(n)]
    assert prop.switches > (n // 2 if switch_after == 0 else 0)
    tokens = np.array([v for v, _ in draws])
    zhat = np.exp([lz for _, lz in draws])
    assert (pc[tokens] > 0).all()
    if switch_after == 0:
        np.testing.assert_allclose(zhat, z, rtol=1e-12)
    assert_weighted_per_token(tokens, zhat, pc)
