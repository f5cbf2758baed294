"""``smc.generate``: direct, lcd, rerank, importance sampling and SMC in one loop.

Target: π(x) ∝ p(x | prompt)·Φ(x), Φ = constraint × critic, over outputs ending
in EOS within ``max_tokens``.  Each step every live particle draws one token
(all rows in one batched forward), its log-weight gains log Zₜ (masked
proposal) and the critic's twist prefix(x′) − prefix(x) where the critic is
evaluated; at EOS the critic's ``complete`` closes the telescoping product, so a
finished particle's weight is p(x)Φ(x)/q(x).  ``smc`` resamples when
ESS < τ·N, or (τ > 0) when the live particles hold less than ``LIVE_SHARE_FLOOR`` of
the total weight, and accumulates log Ẑ = Σ_epochs log mean wᵢ.  The second rule ends
runs in which one improbable particle (e.g. a query followed by whitespace the grammar
still allows) would otherwise cost every step up to ``max_tokens`` while almost surely
never being drawn; like the ESS rule it depends only on the current weights.

Two step paths compute this (``step=``): the host path below (log-probabilities copied to
the host each step, one particle at a time) and the device path of ``smc.device_step``
(sampling, weights, ESS, resampling and the KV-cache reorder stay on the model's device; one
small device-to-host copy per step).  ``"auto"`` takes the device path for a model on CUDA.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

import kernels
from potentials.base import NEG_INF, Potential, check_log_weight
from smc import dedup
from smc.awrs import AWRSProposal
from smc.bookkeeping import (  # noqa: F401  (the DEATH_* names are part of this module's API)
    DEATH_CRITIC,
    DEATH_END,
    DEATH_LENGTH,
    DEATH_NO_TOKEN,
    LIVE_SHARE_FLOOR,
    Loop,
    Run,
    record_token,
)
from smc.lm import LanguageModel
from smc.memory import check_fits
from smc.population import Population
from smc.proposal import LMProposal, MaskedProposal
from smc.result import Result, posterior_from

METHODS = ("direct", "lcd", "rerank", "is", "smc")
PROPOSALS = ("mask", "awrs")
RESAMPLERS = ("multinomial", "stratified", "systematic", "residual")
STEPS = ("auto", "host", "device")
WEIGHTED = ("rerank", "is", "smc")


def live_share(log_w: np.ndarray, live: np.ndarray) -> float:
    """Σ_live wᵢ / Σ wᵢ (0 when every weight is zero)."""
    total = kernels.logsumexp(log_w)
    if total == NEG_INF or not live.any():
        return 0.0
    return math.exp(kernels.logsumexp(log_w[live]) - total)


def _validate(lm, prompt, constraint, critic, method, proposal, n_particles, ess_threshold,
              resampler, max_tokens, step) -> None:
    if not isinstance(lm, LanguageModel):
        raise TypeError(f"lm must be a smc LanguageModel (smc.load_model / smc.FunctionLM), "
                        f"got {type(lm).__name__}")
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    if proposal not in PROPOSALS:
        raise ValueError(f"unknown proposal {proposal!r}; allowed: {', '.join(PROPOSALS)}")
    if resampler not in RESAMPLERS:
        raise ValueError(f"unknown resampler {resampler!r}; allowed: {', '.join(RESAMPLERS)}")
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; allowed: {', '.join(STEPS)}")
    if isinstance(n_particles, bool) or not isinstance(n_particles, int | np.integer) \
            or n_particles < 1:
        raise ValueError(f"n_particles must be an integer >= 1, got {n_particles!r}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int | np.integer) \
            or max_tokens < 1:
        raise ValueError(f"max_tokens must be an integer >= 1, got {max_tokens!r}")
    if not (isinstance(ess_threshold, int | float) and 0.0 <= ess_threshold <= 1.0):
        raise ValueError(f"ess_threshold must be a number in [0, 1], got {ess_threshold!r}")
    for name, pot in (("constraint", constraint), ("critic", critic)):
        if pot is not None and not isinstance(pot, Potential):
            raise TypeError(f"{name} must be a potentials.Potential or None, "
                            f"got {type(pot).__name__}")


def generate(
    lm: LanguageModel,
    prompt: str,
    constraint: Potential | None = None,
    critic: Potential | None = None,
    method: str = "smc",
    proposal: str = "mask",
    n_particles: int = 32,
    ess_threshold: float = 0.5,
    resampler: str = "systematic",
    max_tokens: int = 128,
    seed: int | None = 0,
    progress: bool = False,
    step: str = "auto",
    keep_finished: bool = False,
    speculate: int = 0,
) -> Result:
    """Sample outputs of ``lm`` after ``prompt`` from p·constraint·critic (see module doc).

    ``step``: ``"host"``, ``"device"`` (``smc.device_step``; needs ``lm.start_device``, and
    ``proposal="awrs"`` with a constraint stays on the host) or ``"auto"`` (device for a
    model on CUDA, host otherwise).

    ``keep_finished`` (``smc``, host step): resample only the running particles, among
    themselves (ESS of their weights < τ·n_running), each offspring weighing their mean;
    finished particles keep their weights and are never replaced.  Still unbiased (the
    running particles' total weight is preserved in expectation), and a finished output
    is no longer traded for a running one that may never end within ``max_tokens``.  The
    live-share rule still resamples everything.

    ``speculate`` = k > 0 (host step, a model state with ``supports_chunks``): each row's
    forward also computes up to k draft positions ahead (``smc.drafts.PromptLookup``), and
    a particle keeps drawing, from the proposal at each position, while its draws equal
    the draft.  Every token is drawn from the same distribution as without drafts and a
    step's weight is the product of its tokens' factors, so the law is unchanged (a step
    may now add several tokens to a particle); the number of forwards drops by how often
    the draws follow the draft.
    """
    _validate(lm, prompt, constraint, critic, method, proposal, n_particles, ess_threshold,
              resampler, max_tokens, step)
    if isinstance(speculate, bool) or not isinstance(speculate, int | np.integer) \
            or speculate < 0:
        raise ValueError(f"speculate must be an integer >= 0, got {speculate!r}")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = int(n_particles)
    masked = method in ("lcd", "is", "smc") and constraint is not None
    run = Run(lm=lm, constraint=constraint, critic=critic, method=method, n=n,
              ess_threshold=float(ess_threshold), resampler=resampler,
              max_tokens=int(max_tokens), weighted=method in WEIGHTED, masked=masked,
              twisted=method in ("is", "smc") and critic is not None,
              keep_finished=bool(keep_finished) and method == "smc", speculate=int(speculate))
    from smc.device_step import use_device

    on_device = use_device(step, lm, masked, proposal, run.keep_finished or run.speculate > 0)
    prompt_ids = lm.encode(prompt)
    if lm.max_context is not None and len(prompt_ids) + max_tokens > lm.max_context:
        raise ValueError(
            f"prompt of {len(prompt_ids)} tokens + max_tokens={max_tokens} exceeds the model's "
            f"context of {lm.max_context} tokens"
        )
    check_fits(lm, n, len(prompt_ids), max_tokens, on_device)  # before the KV cache exists

    w0, c0 = 0.0, 0.0
    if method in ("is", "smc"):
        if constraint is not None:
            w0 = check_log_weight(constraint.prefix(""), f"{constraint!r}.prefix")
        if critic is not None:
            c0 = check_log_weight(critic.prefix(""), f"{critic!r}.prefix")
    pop = Population(n, w0 + c0, c0)
    if w0 + c0 == NEG_INF:
        for i in range(n):
            pop.kill(i, DEATH_NO_TOKEN if w0 == NEG_INF else DEATH_CRITIC)
    run.bar = _progress_bar(progress, max_tokens, method)
    if on_device:
        from smc.device_step import device_loop

        loop = device_loop(run, pop, prompt_ids, rng)
    else:
        if not masked:
            prop = LMProposal()
        elif proposal == "awrs":  # its own generator, seeded from ours: same seed, same output
            prop = AWRSProposal(lm, constraint, np.random.default_rng(rng.integers(2**63)),
                                estimate=method != "lcd")
        else:
            prop = MaskedProposal(lm, constraint)
        loop = _host_loop(run, pop, prop, rng, prompt_ids)
    run.bar.close()

    for i in np.flatnonzero(pop.live()):  # loop left early: nothing more can finish
        pop.kill(int(i), DEATH_LENGTH)
    particles = pop.particles()
    log_ml = loop.log_ml
    if run.weighted:
        log_ml += kernels.logsumexp(pop.log_w) - math.log(n)
    else:
        log_ml = float("nan")
    posterior = posterior_from(particles, run.weighted)
    deaths: dict[str, int] = {}
    for p in particles:
        if p.death is not None:
            deaths[p.death] = deaths.get(p.death, 0) + 1
    if not posterior:
        log_ml = NEG_INF
        why = "; ".join(f"{k} ({v} particle{'s' * (v > 1)})" for k, v in deaths.items())
        warnings.warn(f"every particle died, the posterior is empty: {why}", RuntimeWarning,
                      stacklevel=2)
    return Result(
        posterior=posterior, log_ml=float(log_ml), particles=particles,
        ess_trace=loop.ess_trace, method=method, n_particles=n,
        seconds=time.perf_counter() - started, tokens_generated=loop.tokens_generated,
        resampled_at=loop.resampled_at, log_weight_trace=loop.w_trace,
        forward_seconds=loop.forward_s, steps=loop.steps, deaths=deaths, timing=loop.timing,
    )


def _host_loop(run: Run, pop: Population, prop, rng: np.random.Generator,
               prompt_ids: list[int]) -> Loop:
    """The host step: log-probabilities as a float64 host array, one particle at a time."""
    lm, method, n = run.lm, run.method, run.n
    out = Loop()
    timing = out.timing
    t0 = time.perf_counter()
    state = dedup.start(lm, prompt_ids, n) if pop.live().any() else None
    out.forward_s += time.perf_counter() - t0
    drafts = None
    if run.speculate and state is not None and getattr(state, "supports_chunks", False):
        from smc.drafts import PromptLookup

        drafts = PromptLookup(prompt_ids, eos_ids=lm.eos_ids)
    chunks: list | None = None  # what each row's last forward was fed (speculative steps)
    step = 0
    for step in range(1, run.max_tokens + 1):
        t_step = time.perf_counter()
        live_mask = pop.live()
        live_rows = [k for k, i in enumerate(pop.rows) if live_mask[i]]
        if state is None or not live_rows:
            break
        timing["rows"].append(len(live_rows))
        if len(live_rows) != state.rows:
            state.select(np.asarray(live_rows, np.int64))
            pop.rows = pop.rows[live_rows]
            if chunks is not None:
                chunks = [chunks[r] for r in live_rows]
        uniforms = rng.random(len(pop.rows))
        proposal_s = 0.0
        kept = []  # per row: how many of its chunk's tokens stay in the model state
        for k, i in enumerate(pop.rows):
            chunk = chunks[k] if chunks is not None else None
            j = 0
            while True:  # position j of the row's chunk (j > 0: the draws so far = draft)
                logprobs = state.logprobs[k] if chunk is None else state.chunk_logprobs(k, j)
                t_prop = time.perf_counter()
                token, log_z = prop.step(logprobs, pop.text[i], pop.held[i],
                                         uniforms[k] if j == 0 else rng.random())
                proposal_s += time.perf_counter() - t_prop
                if token < 0:
                    pop.kill(i, DEATH_NO_TOKEN)
                    break
                out.tokens_generated += 1
                if method in ("is", "smc"):
                    pop.log_w[i] += log_z
                record_token(run, pop, i, token)
                if (chunk is None or j + 1 >= len(chunk) or token != chunk[j + 1]
                        or pop.finished[i] or pop.dead[i]
                        or len(pop.tokens[i]) >= run.max_tokens):
                    break
                j += 1
            kept.append(j + 1)
        if chunks is not None:
            state.accept(kept)
            chunks = None
        timing["proposal"].append(proposal_s)
        if step == run.max_tokens or drafts is not None:  # out of budget: can never end
            for i in np.flatnonzero(pop.live()):
                if len(pop.tokens[i]) >= run.max_tokens:
                    pop.kill(int(i), DEATH_LENGTH)
        ess = kernels.ess(pop.log_w) if run.weighted \
            else float(pop.live().sum() + pop.finished.sum())
        out.ess_trace.append(ess)
        out.w_trace.append(pop.log_w.tolist())
        if run.weighted and np.all(pop.log_w == NEG_INF):
            timing["step"].append(time.perf_counter() - t_step)
            timing["forward"].append(0.0)
            break
        ancestors = None
        live = pop.live()
        running = None  # (indices, log mean weight) when only the running ones resample
        resample_all = method == "smc" and live.any() and (  # the ESS rule, the live share
            (not run.keep_finished and ess < run.ess_threshold * n)
            or run.ess_threshold > 0 and live_share(pop.log_w, live) < LIVE_SHARE_FLOOR)
        if run.keep_finished and live.any() and not resample_all:
            ancestors, running = _resample_running(run, pop.log_w, live, rng)
            if ancestors is not None:
                out.resampled_at.append(step)
        elif resample_all:
            out.log_ml += kernels.logsumexp(pop.log_w) - math.log(n)
            ancestors = kernels.resample(pop.log_w, method=run.resampler, seed=rng)
            out.resampled_at.append(step)
        run.bar.update(1)
        run.bar.set_postfix(live=int(pop.live().sum()), ess=f"{ess:.1f}")
        if step == run.max_tokens:
            timing["step"].append(time.perf_counter() - t_step)
            timing["forward"].append(0.0)
            break
        # rows for the next forward: surviving live particles, in ancestor order
        row_of = {int(i): k for k, i in enumerate(pop.rows)}
        if ancestors is not None:
            live_before = pop.live()
            pop.take(ancestors)
            if running is None:
                pop.log_w[:] = np.where(pop.log_w == NEG_INF, NEG_INF, 0.0)
            else:  # finished particles keep their weights; offspring weigh the mean
                idx, log_mean = running
                pop.log_w[idx] = np.where(pop.log_w[idx] == NEG_INF, NEG_INF, log_mean)
            keep = [row_of[int(a)] for a in ancestors if live_before[a]]
            pop.rows = np.flatnonzero(pop.live())
        else:
            alive = pop.live()
            pop.rows = np.asarray([i for i in pop.rows if alive[i]], np.int64)
            keep = [row_of[int(i)] for i in pop.rows]
        if not keep:
            timing["step"].append(time.perf_counter() - t_step)
            timing["forward"].append(0.0)
            break
        if keep != list(range(state.rows)):
            state.select(np.asarray(keep, np.int64))
        last = np.asarray([pop.tokens[i][-1] for i in pop.rows], np.int64)
        t0 = time.perf_counter()
        if drafts is not None:  # each row: its last token, then a draft of what may follow
            chunks = [np.asarray([t, *drafts.draft(pop.tokens[i], min(
                run.speculate, run.max_tokens - len(pop.tokens[i]) - 1))], np.int64)
                for t, i in zip(last, pop.rows, strict=True)]
            state.advance_chunks(chunks)
        else:
            state.advance(last)
        out.forward_s += time.perf_counter() - t0
        timing["forward"].append(time.perf_counter() - t0)
        timing["step"].append(time.perf_counter() - t_step)
    out.steps = step
    return out


def _resample_running(run: Run, log_w: np.ndarray, live: np.ndarray,
                      rng: np.random.Generator) -> tuple[np.ndarray | None, tuple | None]:
    """``keep_finished``: ancestors that resample the running particles among themselves
    when their ESS < τ·(their number), and (their indices, log of their mean weight)."""
    idx = np.flatnonzero(live)
    lw = log_w[idx]
    if kernels.ess(lw) >= run.ess_threshold * len(idx):
        return None, None
    ancestors = np.arange(len(log_w))
    ancestors[idx] = idx[kernels.resample(lw, method=run.resampler, seed=rng)]
    return ancestors, (idx, kernels.logsumexp(lw) - math.log(len(idx)))


class _NoBar:
    def update(self, *_):
        pass

    def set_postfix(self, **_):
        pass

    def close(self):
        pass


def _progress_bar(enabled: bool, total: int, method: str):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{method} steps", unit="tok", leave=False)
