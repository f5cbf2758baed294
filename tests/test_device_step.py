"""The device-resident step (``step="device"``) on CPU torch tensors.

* its sync-free kernels (``smc.device_kernels``) against the NumPy reference and their laws;
* exactness, as ``test_exactness`` checks the host path: SMC/IS/rerank estimates converge to the
  enumerated π, exp(log Ẑ) is unbiased, ``lcd`` and ``direct`` match their own laws — through
  ``FunctionLM.start_device`` (torch log-probabilities), with dense log c rows (a
  ``FunctionPotential``), packed bitmask rows (a ``LarkGrammar``) and held UTF-8 bytes;
* host syncs, counted: on a tiny transformers model every tensor-to-host conversion made by the
  engine's code (``.item``/``.cpu``/``.numpy``/``.tolist``/``float``/``int``/``bool``/
  ``.to(cpu)``) during a run is recorded; only ``device_step.fetch`` (once per step) and the
  closing read-back may make one.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import smc
from kernels import reference
from potentials import FunctionPotential, LarkGrammar
from smc import device_kernels as dk
from smc import device_step
from tests.exact import enumerate_laws, random_function_lm, tv, tv_noise
from tests.test_exactness import (
    EOS,
    LANGUAGE,
    MAX_TOKENS,
    VOCAB,
    assert_unbiased,
    b_critic,
    finite_language,
    z_weighted_posterior,
)
from tests.test_exactness import run_many as host_run_many

REPO = Path(__file__).resolve().parents[1]
LANGUAGE_LARK = "start: " + " | ".join(f'"{w}"' for w in sorted(LANGUAGE))


@pytest.fixture(scope="module")
def lm():
    return random_function_lm(VOCAB, EOS, seed=3)


def run_many(lm, seeds, **kw):
    return host_run_many(lm, seeds, step="device", **kw)


# --- kernels --------------------------------------------------------------------------------------


def random_log_weights(rng, n, dead=0.3):
    lw = rng.normal(size=n) * 2.0
    lw[rng.random(n) < dead] = -np.inf
    lw[rng.integers(n)] = 0.5  # at least one alive
    return lw


@pytest.mark.parametrize("method", ["multinomial", "stratified", "systematic", "residual"])
def test_resample_equals_reference_given_the_same_randomness(method):
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 64, 500):
        for _ in range(5):
            lw = random_log_weights(rng, n)
            u = reference.draw_uniforms(method, rng, n)
            want = reference.SCHEMES[method](lw, u, n)
            got = dk.resample(torch.from_numpy(lw), method, torch.from_numpy(u)).numpy()
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("method", ["multinomial", "stratified", "systematic", "residual"])
def test_resample_is_unbiased_and_never_picks_the_dead(method):
    rng = np.random.default_rng(1)
    lw = random_log_weights(rng, 12)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    gen = torch.Generator().manual_seed(3)
    counts = np.zeros(12)
    reps = 4000
    for _ in range(reps):
        a = dk.resample(torch.from_numpy(lw), method, dk.draw_randomness(method, 12, gen, "cpu"))
        assert torch.all(a[1:] >= a[:-1])
        counts += np.bincount(a.numpy(), minlength=12)
    assert counts[np.isinf(lw)].sum() == 0
    se = np.sqrt(12 * w * (1 - w) / reps) + 1e-9
    assert np.all(np.abs(counts / reps - 12 * w) < 5 * se), (counts / reps, 12 * w)


def test_resample_of_all_dead_weights_stays_in_range():
    lw = torch.full((9,), -math.inf, dtype=torch.float64)
    for method in ("multinomial", "stratified", "systematic", "residual"):
        a = dk.resample(lw, method, dk.draw_randomness(method, 9, torch.Generator(), "cpu"))
        assert a.shape == (9,) and int(a.min()) >= 0 and int(a.max()) < 9


def test_ess_and_logsumexp_equal_reference():
    rng = np.random.default_rng(2)
    for lw in [random_log_weights(rng, 50), np.full(4, -np.inf), np.array([0.0]),
               np.array([-3.0, -np.inf, 1e-3])]:
        t = torch.from_numpy(lw)
        assert math.isclose(float(dk.ess(t)), reference.ess(lw), rel_tol=1e-12)
        want = reference.logsumexp(lw)
        got = float(dk.logsumexp(t))
        assert got == want or math.isclose(got, want, rel_tol=1e-12)


def test_draw_tokens_law_log_z_and_dead_rows():
    rng = np.random.default_rng(4)
    v = 9
    row = rng.normal(size=v)
    row[[1, 4, 8]] = -np.inf  # banned, the last one too
    scores = torch.from_numpy(np.stack([row] * 20000 + [np.full(v, -np.inf)]))
    u = torch.rand(scores.shape[0], generator=torch.Generator().manual_seed(0),
                   dtype=torch.float64)
    tok, log_z = dk.draw_tokens(scores, u)
    assert int(tok[-1]) == -1 and float(log_z[-1]) == -math.inf
    want_z = float(torch.logsumexp(torch.from_numpy(row), 0))
    assert torch.allclose(log_z[:-1], torch.full((20000,), want_z, dtype=torch.float64))
    freq = np.bincount(tok[:-1].numpy(), minlength=v) / 20000
    p = np.exp(row - want_z)
    assert freq[[1, 4, 8]].sum() == 0
    assert 0.5 * np.abs(freq - p).sum() < 0.02
    # a point rounded up to the total lands on the last allowed token, not the banned tail
    top, _ = dk.draw_tokens(torch.from_numpy(row[None]), torch.tensor([1.0 - 2**-53]))
    assert int(top[0]) == 7


def test_bitmask_rows_equal_the_reference_kernel():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(3, 70))
    allowed = rng.random((3, 70)) < 0.4
    words = reference.pack_bitmask(allowed)
    want = reference.apply_token_bitmask_(logits.copy(), words)
    got = device_step.apply_bits(torch.from_numpy(logits.copy()), torch.from_numpy(words))
    np.testing.assert_array_equal(got.numpy(), want)


# --- exactness ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["smc", "is"])
@pytest.mark.parametrize("with_critic", [False, True])
def test_weighted_methods_converge_to_pi(lm, method, with_critic):
    critic = b_critic() if with_critic else None
    pi, z, _ = enumerate_laws(lm, finite_language(), critic, max_tokens=MAX_TOKENS)
    runs = run_many(lm, range(200), constraint=finite_language(), critic=critic,
                    method=method, n_particles=64)
    assert tv(z_weighted_posterior(runs), pi) < 0.025
    assert_unbiased(runs, z)


@pytest.mark.parametrize("resampler", ["multinomial", "stratified", "systematic", "residual"])
def test_smc_every_resampler_converges(lm, resampler):
    critic = b_critic()
    pi, z, _ = enumerate_laws(lm, finite_language(), critic, max_tokens=MAX_TOKENS)
    runs = run_many(lm, range(200), constraint=finite_language(), critic=critic, method="smc",
                    n_particles=64, resampler=resampler, ess_threshold=0.9)
    assert sum(len(r.resampled_at) for r in runs) > 200  # resampling did happen
    assert tv(z_weighted_posterior(runs), pi) < 0.025
    assert_unbiased(runs, z)


def test_smc_with_a_lark_grammar_uses_bitmask_rows(lm):
    """The packed-bitmask path (``GrammarMask.bits``) against the same enumerated law."""
    grammar = LarkGrammar(LANGUAGE_LARK)
    assert grammar.token_masker(lm.vocab_bytes, lm.eos_ids) is not None
    critic = b_critic()
    pi, z, _ = enumerate_laws(lm, finite_language(), critic, max_tokens=MAX_TOKENS)
    runs = run_many(lm, range(200), constraint=grammar, critic=critic, method="smc",
                    n_particles=64, ess_threshold=0.9)
    assert tv(z_weighted_posterior(runs), pi) < 0.025
    assert_unbiased(runs, z)


def test_rerank_converges_to_pi(lm):
    critic = b_critic()
    pi, z, _ = enumerate_laws(lm, finite_language(), critic, max_tokens=MAX_TOKENS)
    runs = run_many(lm, range(100), constraint=finite_language(), critic=critic,
                    method="rerank", n_particles=200)
    assert tv(z_weighted_posterior(runs), pi) < 0.03
    assert_unbiased(runs, z)


@pytest.mark.parametrize("lark", [False, True])
def test_lcd_matches_its_own_biased_law(lm, lark):
    pi, _, lcd = enumerate_laws(lm, finite_language(), max_tokens=MAX_TOKENS)
    constraint = LarkGrammar(LANGUAGE_LARK) if lark else finite_language()
    res = smc.generate(lm, "", constraint=constraint, method="lcd", n_particles=4000,
                       max_tokens=MAX_TOKENS, seed=5, step="device")
    assert tv(res.posterior, lcd) < 0.03
    assert tv(res.posterior, pi) > 0.05
    assert math.isnan(res.log_ml)


def test_direct_matches_the_model(lm):
    pi, _, _ = enumerate_laws(lm, None, max_tokens=MAX_TOKENS)
    res = smc.generate(lm, "", method="direct", n_particles=4000, max_tokens=MAX_TOKENS, seed=2,
                       step="device")
    n_done = sum(p.finished for p in res.particles)
    assert n_done > 1000
    assert tv(res.posterior, pi) < 1.5 * tv_noise(pi, n_done)


@pytest.mark.parametrize("lark", [False, True])
def test_held_utf8_bytes(lark):
    """Rows holding part of a character: dense rows (FunctionPotential) or bits from the trie
    walk (LarkGrammar); π on strings whose characters span tokens."""
    vocab = [b"\xc3", b"\xa9", b"\xe2\x82", b"\xac", b"e", b"\xc3\xa9", "<eos>"]
    lm = random_function_lm(vocab, 6, seed=1, temperature=1.0)
    words = {"é", "eé", "€", "é€", "e"}
    prefixes = {w[:k] for w in words for k in range(len(w) + 1)}
    lang = FunctionPotential(lambda t: 0.0 if t in prefixes else float("-inf"),
                             lambda t: 0.0 if t in words else float("-inf"))
    constraint = LarkGrammar("start: " + " | ".join(f'"{w}"' for w in sorted(words))) \
        if lark else lang
    pi, z, _ = enumerate_laws(lm, lang, max_tokens=5)
    runs = [smc.generate(lm, "", constraint=constraint, method="smc", n_particles=64,
                         max_tokens=5, seed=s, step="device") for s in range(200)]
    est = z_weighted_posterior(runs)
    assert tv(est, pi) < 0.025
    assert pi["€"] > 0.01 and abs(est.get("€", 0.0) - pi["€"]) < 0.02
    assert_unbiased(runs, z)


def test_ess_threshold_zero_is_importance_sampling_and_seeds_repeat(lm):
    kw = dict(constraint=finite_language(), critic=b_critic(), n_particles=32,
              max_tokens=MAX_TOKENS, seed=9, step="device")
    a = smc.generate(lm, "", method="smc", ess_threshold=0.0, **kw)
    b = smc.generate(lm, "", method="is", **kw)
    assert a.posterior == b.posterior and a.log_ml == b.log_ml and not a.resampled_at
    c = smc.generate(lm, "", method="smc", ess_threshold=0.9, **kw)
    d = smc.generate(lm, "", method="smc", ess_threshold=0.9, **kw)
    assert [p.token_ids for p in c.particles] == [p.token_ids for p in d.particles]
    assert c.log_ml == d.log_ml and c.resampled_at == d.resampled_at
    assert len(c.ess_trace) == c.steps and len(c.log_weight_trace) == c.steps


def test_step_selection(lm):
    assert not device_step.use_device("auto", lm, True, "mask")  # a host FunctionLM
    assert device_step.use_device("device", lm, True, "mask")
    assert device_step.use_device("device", lm, False, "awrs")  # no constraint: AWRS unused
    with pytest.raises(ValueError, match="awrs"):
        smc.generate(lm, "", constraint=finite_language(), proposal="awrs", step="device")
    with pytest.raises(ValueError, match="unknown step"):
        smc.generate(lm, "", step="gpu")


# --- host syncs -----------------------------------------------------------------------------------

TO_HOST = ("item", "cpu", "numpy", "tolist", "__float__", "__int__", "__bool__", "__index__")


class SyncCounter:
    """Records every conversion of a tensor to host data made from the engine's own files."""

    def __init__(self, monkeypatch) -> None:
        self.fetches = 0
        self.allowed = 0  # > 0 while inside fetch or the closing read-back
        self.ours: list[str] = []
        self.elsewhere: list[str] = []
        real_fetch, real_finish = device_step.fetch, device_step._finish

        def fetch(packed):
            self.fetches += 1
            return self._allowing(real_fetch, packed)

        def finish(*args):
            return self._allowing(real_finish, *args)

        monkeypatch.setattr(device_step, "fetch", fetch)
        monkeypatch.setattr(device_step, "_finish", finish)
        for name in TO_HOST:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, getattr(torch.Tensor, name)))
        real_to = torch.Tensor.to

        def to(t, *args, **kwargs):
            target = kwargs.get("device", args[0] if args else None)
            if isinstance(target, str | torch.device) and torch.device(target).type == "cpu":
                self._note("to(cpu)")
            return real_to(t, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, "to", to)

    def _allowing(self, fn, *args):
        self.allowed += 1
        try:
            return fn(*args)
        finally:
            self.allowed -= 1

    def _note(self, name: str) -> None:
        if self.allowed:
            return
        caller = sys._getframe(2)
        where = f"{name} at {caller.f_code.co_filename}:{caller.f_lineno}"
        ours = caller.f_code.co_filename.startswith(str(REPO)) and "/tests/" not in \
            caller.f_code.co_filename and "/.venv/" not in \
            caller.f_code.co_filename
        (self.ours if ours else self.elsewhere).append(where)

    def _wrap(self, name, real):
        def wrapper(t, *args, **kwargs):
            self._note(name)
            return real(t, *args, **kwargs)

        return wrapper


def arithmetic():
    return LarkGrammar(r"""
        start: expr
        expr: NUMBER | expr OP expr | "(" expr ")"
        OP: " + " | " - " | " * " | " / "
        NUMBER: /[0-9]+/
    """)


def digits():
    """A constraint without a token_masker: dense log c rows."""
    ok = set("0123456789+ ")
    return FunctionPotential(lambda t: 0.0 if set(t) <= ok else float("-inf"),
                             lambda t: 0.0 if t and set(t) <= ok else float("-inf"), name="Digits")


@pytest.mark.parametrize("method, kind, seed", [
    ("smc", "lark", 5), ("smc", "dense", 3), ("is", "lark", 1), ("is", "dense", 3),
    ("lcd", "lark", 1), ("direct", "lark", 0), ("rerank", "dense", 0),
])
def test_one_device_to_host_copy_per_step(monkeypatch, method, kind, seed):
    from tests.tiny_hf import tiny_lm

    lm = tiny_lm()
    critic = FunctionPotential(lambda t: -0.05 * len(t), lambda t: 0.0, name="Short")
    constraint = arithmetic() if kind == "lark" else digits()
    counter = SyncCounter(monkeypatch)
    res = smc.generate(lm, "1 + 2 =", constraint=constraint, critic=critic, method=method,
                       n_particles=16, max_tokens=12, seed=seed, ess_threshold=1.0,
                       step="device")
    assert counter.fetches == res.steps >= 5
    assert counter.ours == [], counter.ours
    # the model's forward (transformers) reads nothing back either: only same-device .to()
    assert all(w.startswith("to(cpu)") for w in counter.elsewhere), counter.elsewhere
    if method == "smc":
        assert res.resampled_at  # the resampling branch ran (τ = 1)
    if method in ("smc", "is", "lcd"):  # the constraint held on the device path
        check = arithmetic() if kind == "lark" else digits()
        assert all(check.prefix(p.text) == 0.0 for p in res.particles if p.death is None)


def test_device_state_matches_host_state_through_select_and_advance():
    from tests.tiny_hf import tiny_lm

    lm = tiny_lm()
    prompt = lm.encode("1 + 2")
    host, dev = lm.start(prompt, 3), lm.start_device(prompt, 3)
    rng = np.random.default_rng(0)
    for step in range(4):
        np.testing.assert_allclose(dev.logprobs.numpy(), host.logprobs, atol=1e-6)
        if step == 1:
            rows = np.array([2, 0, 2, 1])
            host.select(rows)
            dev.select(torch.from_numpy(rows))
        tokens = rng.integers(3, lm.vocab_size, size=host.rows)
        host.advance(tokens)
        dev.advance(torch.from_numpy(tokens))
    np.testing.assert_allclose(dev.logprobs.numpy(), host.logprobs, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_cuda_sync_outside_the_copy():  # pragma: no cover - GPU only
    """On CUDA, torch's sync debug mode flags every synchronising call; only ``fetch`` and the
    closing read-back may make one."""
    import warnings

    from tests.tiny_hf import tiny_model

    model, tokenizer = tiny_model()
    lm = smc.HFLanguageModel(model.cuda(), tokenizer)
    real_fetch, real_finish = device_step.fetch, device_step._finish

    def quiet(fn):
        def call(*args):
            mode = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode(0)
            try:
                return fn(*args)
            finally:
                torch.cuda.set_sync_debug_mode(mode)

        return call

    device_step.fetch, device_step._finish = quiet(real_fetch), quiet(real_finish)
    try:
        smc.generate(lm, "1 + 2 =", constraint=arithmetic(), method="smc", n_particles=8,
                     max_tokens=3, seed=0)  # warm-up: compiles, allocates
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode(1)
            res = smc.generate(lm, "1 + 2 =", constraint=arithmetic(), method="smc",
                               n_particles=8, max_tokens=8, seed=0, ess_threshold=1.0)
            torch.cuda.set_sync_debug_mode(0)
    finally:
        device_step.fetch, device_step._finish = real_fetch, real_finish
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert res.steps >= 2 and not syncs, [str(w.message) for w in syncs]
