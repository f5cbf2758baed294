"""Adaptive weighted rejection sampling (AWRS) proposal, after Lipkin et al. (2025).

Same contract as ``MaskedProposal``: draw v ~ q(v | x) = p(v | x)·c(v | x) / Zₜ and return
with it an estimate of Zₜ = Σᵥ p(v | x)·c(v | x), but score *only the tokens it draws*
instead of the whole vocabulary.  c(v | x) = exp(prefix(x·v) − prefix(x)), EOS uses
``complete``; it must lie in [0, 1] (a boolean constraint, or a ``prefix`` that bounds its
extensions — anything larger raises).  Each token is scored at most once per context.

The sampler is an exponential race.  Every token v fires at the times of a Poisson
process of rate p(v); a firing is accepted with probability c(v), and a token found to
have c(v) = 0 leaves the pool (its later firings cannot be accepted, so dropping them
changes nothing else).  Simulated event by event, this is: draw v ∝ p over the pool
(adaptive rejection sampling without replacement of dead tokens), flip a c(v)-coin.

* Token law.  Accepted firings form a Poisson process of rate Zₜ whose marks are i.i.d.
  ∝ p·c, independent of its times and of all rejected firings (thinning and superposition
  of independent Poisson processes).  The first acceptance is therefore an exact draw
  from q — this is what ``lcd`` uses, exactly, for boolean and fractional c alike.
* Weight.  The k-th acceptance (k = ``n_accept`` ≥ 2) comes at Tₖ ~ Gamma(k, Zₜ), and
  E[(k−1)/Tₖ] = Zₜ.  Instead of simulating clocks we Rao–Blackwellise them: given the
  sequence of N draws, Tₖ is a sum of independent Exp(Mᵢ) holding times, Mᵢ the pool's
  mass before draw i, so  Ẑ = (k−1)·E[1/Tₖ | draws] = (k−1)·∫₀^∞ Πᵢ Mᵢ/(Mᵢ+s) ds.
  Since Tₖ is independent of the first mark v, E[Ẑ·1{v}] = (k−1)·E[1/Tₖ]·q(v) = p(v)·c(v):
  (v, Ẑ) is properly weighted, so ``is``/``smc`` stay exact.  Ẑ ≤ Σᵥ p(v), so its
  variance is finite; where c ≡ 1 (nothing to reject) Ẑ = Zₜ exactly.

Switching to the exact mask.  The race may stop at a stopping time J and finish
analytically once c is known for every token: the first accepted mark (if not drawn
yet) is drawn from q, and by memorylessness the remaining k − a acceptances take
Gamma(k − a, Zₜ) with Zₜ = Σᵥ p(v)·c(v) now known, so E[1/Tₖ | draws up to J] is the
same integral with k − a extra holding times of rate Zₜ.  J = 0 when the constraint's
compiled token mask (a ``LarkGrammar``) already holds the mask of x; otherwise J is
the ``switch_after``-th rejection, and c comes from that mask, or — inside a held-back
UTF-8 character, where only continuation bytes can survive — from a walk of the byte
trie below the held bytes.  Marks stay independent of times, so (v, Ẑ) is still
properly weighted; with J = 0 it is the exact mask (Ẑ = Zₜ).  Rejection-heavy
contexts (a model that wants text the grammar forbids) thus cost one mask instead
of thousands of draws, and repeated contexts cost a lookup.

The second phase (after the returned token) mostly re-draws tokens already scored, so it
costs few extra constraint calls.  Worst case (little allowed mass) every token is scored
once, without the prefix sharing of the mask's trie walk.  A token is scored on its whole
text only, which agrees with the trie (that also prunes on the token's own prefixes) for
any potential whose −inf is final, as ``potentials.base`` requires.  All-dead contexts
(Zₜ = 0) empty the pool and return (−1, −inf), like ``MaskedProposal``.  Randomness comes
from the proposal's own generator (seeded by the engine), not the engine's one uniform.
"""

from __future__ import annotations

import math

import numpy as np

from potentials.base import NEG_INF, Potential, check_log_weight
from smc.lm import LanguageModel
from smc.proposal import draw, exp_cumsum
from smc.token_bytes import complete_utf8

_TOLERANCE = 1e-9  # log c above this is an error (c > 1), up to it it is rounding
_STEP = 0.25  # trapezoid step in log s: error ~ exp(-2π²/step), far below float precision


def log_inverse_time(log_rates: np.ndarray) -> float:
    """log E[1/T] for T = Σᵢ Hᵢ, Hᵢ ~ Exp(rate Mᵢ) independent; = log ∫₀^∞ Πᵢ Mᵢ/(Mᵢ+s) ds.

    Needs at least two terms (one alone gives an infinite mean).  Computed on s = eʸ with
    the trapezoid rule, exponentially accurate for this integrand (analytic in a strip).
    """
    levels, counts = np.unique(np.asarray(log_rates, np.float64), return_counts=True)
    n = int(counts.sum())
    if n < 2:
        raise ValueError("E[1/T] needs at least two holding times")
    if levels.size == 1:  # T ~ Gamma(n, M): E[1/T] = M/(n−1)
        return float(levels[0]) - math.log(n - 1)
    lo, hi = float(levels[0]), float(levels[-1])
    # below y = lo − 40 the integrand is < eʸ; above hi the bound below makes it < e^(lo−40)
    y = np.arange(lo - 40.0, hi + (hi - lo + 40.0) / (n - 1) + _STEP, _STEP)
    lv = levels[:, None]
    log_f = y + (counts[:, None] * (lv - np.logaddexp(lv, y[None, :]))).sum(axis=0)
    m = float(log_f.max())
    return m + math.log(float(np.exp(log_f - m).sum()) * _STEP)


class _Pool:
    """Tokens not yet ruled out, drawn ∝ p by inverse CDF.

    Removed tokens stay in the cumulative sums and are re-drawn away (sampling the
    restriction of p), until they hold half the mass: then the sums are rebuilt, so a
    draw costs O(log V) plus at most two tries on average.
    """

    def __init__(self, logprobs: np.ndarray, rng: np.random.Generator) -> None:
        self.logprobs = np.asarray(logprobs, np.float64)
        self.rng = rng
        self.alive = self.logprobs > NEG_INF
        self._rebuild()

    def _rebuild(self) -> None:
        lp = np.where(self.alive, self.logprobs, NEG_INF)
        self.shift = float(lp.max()) if lp.size else NEG_INF
        self.removed = 0.0
        if self.shift == NEG_INF:
            self.cdf, self.total = np.zeros(0), 0.0
            return
        self.cdf = exp_cumsum(lp, self.shift)
        self.total = float(self.cdf[-1])

    @property
    def log_mass(self) -> float:
        """log of Σ p over the pool (−inf when empty)."""
        if self.total <= 0.0:
            return NEG_INF
        return self.shift + math.log(self.total - self.removed)

    def draw(self) -> int:
        cdf, last = self.cdf, self.cdf.size - 1
        while True:
            i = min(int(np.searchsorted(cdf, self.rng.random() * self.total, side="right")), last)
            if self.alive[i] and cdf[i] > (cdf[i - 1] if i else 0.0):
                return i

    def remove(self, v: int) -> None:
        self.alive[v] = False
        self.removed += math.exp(self.logprobs[v] - self.shift)
        if self.removed > 0.5 * self.total:
            self._rebuild()


class _Context:
    """Constraint values scored so far for one particle context (text, held bytes)."""

    __slots__ = ("base", "log_c")

    def __init__(self, base: float) -> None:
        self.base = base
        self.log_c: dict[int, float] = {}


class AWRSProposal:
    """Locally constrained proposal by adaptive weighted rejection sampling (module doc).

    ``estimate=False`` (``lcd``) stops at the first acceptance, an exact draw from q, and
    returns NaN for the unused weight.  ``n_accept`` = k ≥ 2 acceptances feed the estimate:
    a larger k lowers its variance at the cost of more draws.  ``calls`` counts the
    constraint evaluations made.  ``switch_after`` (None: never) is the number of
    rejections after which a constraint with a token mask finishes the race on its
    exact mask (module doc); ``switches`` counts the races finished that way.
    """

    def __init__(
        self,
        lm: LanguageModel,
        constraint: Potential,
        rng: np.random.Generator,
        estimate: bool = True,
        n_accept: int = 2,
        cache_size: int = 4096,
        switch_after: int | None = 16,
    ) -> None:
        if n_accept < 2:
            raise ValueError(f"n_accept must be >= 2 (the estimate needs two acceptances), "
                             f"got {n_accept}")
        self.lm = lm
        self.constraint = constraint
        self.rng = rng
        self.estimate = estimate
        self.n_accept = int(n_accept)
        self.cache_size = cache_size
        self.calls = 0
        self.switches = 0
        self.switch_after = switch_after
        self._masker = None if switch_after is None else False  # False: not looked up yet
        self._cache: dict[tuple[str, bytes], _Context] = {}

    @property
    def masker(self):
        """The constraint's compiled token mask (built on first need), or None."""
        if self._masker is False:
            self._masker = self.constraint.token_masker(self.lm.vocab_bytes, self.lm.eos_ids)
        return self._masker

    def _exact_mask(self, text: str, held: bytes, base: float):
        """(ids, log c) of every token with c(v | x) > 0 (log c None: all 0), or None where
        that is not cheap."""
        if not held:
            masker = self.masker
            if masker is None:
                return None
            return masker.token_ids(text), None  # boolean: log c = 0 on the mask
        from smc.proposal import _byte_trie

        ids, vals = _byte_trie(self.lm).walk(self.constraint, text, held)  # EOS: never
        self.calls += ids.size
        return ids, vals - base

    def _finish_on_mask(self, logprobs: np.ndarray, mask, first: int, accepted: int,
                        log_masses: list[float]) -> tuple[int, float]:
        """Finish the race on the exact mask (ids, log c or None for c = 1 on the mask)
        (module doc, "Switching")."""
        self.switches += 1
        ids, log_c = mask
        scores = logprobs[ids] if log_c is None else logprobs[ids] + log_c
        top = float(scores.max()) if ids.size else NEG_INF
        if top == NEG_INF:
            return -1, NEG_INF
        if first < 0:
            k, log_z = draw(scores, self.rng.random())
            first = int(ids[k])
            if not self.estimate:
                return first, math.nan
        else:
            log_z = top + math.log(float(exp_cumsum(scores, top)[-1]))
        rates = np.concatenate([np.asarray(log_masses, np.float64),
                                np.full(self.n_accept - accepted, log_z)])
        return first, math.log(self.n_accept - 1) + log_inverse_time(rates)

    def _context(self, text: str, held: bytes) -> _Context:
        key = (text, held)
        ctx = self._cache.get(key)
        if ctx is None:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self.calls += 1
            base = (self.constraint.prefix_held(text, held) if held
                    else self.constraint.prefix(text))
            ctx = _Context(check_log_weight(base, f"{self.constraint!r}.prefix"))
            self._cache[key] = ctx
        return ctx

    def _log_c(self, ctx: _Context, text: str, held: bytes, v: int) -> float:
        """log c(v | x) for one token, scored once per context."""
        hit = ctx.log_c.get(v)
        if hit is not None:
            return hit
        data = self.lm.vocab_bytes[v]
        if v in self.lm.eos_ids:
            if held:  # EOS inside an unfinished character
                value = NEG_INF
            else:
                self.calls += 1
                value = check_log_weight(self.constraint.complete(text),
                                         f"{self.constraint!r}.complete")
        elif data is None:  # special tokens are never text
            value = NEG_INF
        else:
            joined = held + data
            tail, n_held = complete_utf8(joined)
            still = joined[len(joined) - n_held:] if n_held else b""
            if still and (tail or still != held):  # ends inside a character: can one follow?
                self.calls += 1
                value = check_log_weight(self.constraint.prefix_held(text + tail, still),
                                         f"{self.constraint!r}.prefix_held")
            elif tail:
                self.calls += 1
                value = check_log_weight(self.constraint.prefix(text + tail),
                                         f"{self.constraint!r}.prefix")
            else:  # the held bytes did not change: neither does the value
                value = ctx.base
        log_c = value - ctx.base if value != NEG_INF else NEG_INF
        if log_c > _TOLERANCE:
            raise ValueError(
                f"proposal='awrs' needs c(v | x) <= 1, but {self.constraint!r} gives "
                f"log c = {log_c:.3g} for token {v} after {text!r}: its prefix must bound the "
                "prefix/complete values of every extension; use proposal='mask'"
            )
        ctx.log_c[v] = log_c = min(log_c, 0.0)
        return log_c

    def step(self, logprobs: np.ndarray, text: str, held: bytes, u: float) -> tuple[int, float]:
        """Draw v ~ q(· | x); return (v, log Ẑₜ) with E[Ẑₜ·1{v}] = p(v)·c(v).

        ``u`` (the engine's uniform) is not used: the draws come from ``self.rng``.
        No allowed token: (-1, -inf).
        """
        ctx = self._context(text, held)
        if ctx.base == NEG_INF:
            return -1, NEG_INF
        masker = self.masker if not held else None
        if masker is not None and masker.cached_bits(text) is not None:
            # J = 0: the exact mask, for the price of a lookup
            return self._finish_on_mask(logprobs, self._exact_mask(text, held, ctx.base), -1,
                                        0, [])
        switch = self.switch_after is not None and (masker is not None or held)
        pool = _Pool(logprobs, self.rng)
        log_masses: list[float] = []
        first, accepted, rejected = -1, 0, 0
        while accepted < self.n_accept:
            if switch and rejected >= self.switch_after:
                return self._finish_on_mask(logprobs, self._exact_mask(text, held, ctx.base),
                                            first, accepted, log_masses)
            log_mass = pool.log_mass
            if log_mass == NEG_INF:  # every token ruled out: Zₜ = 0 (only before acceptance)
                return -1, NEG_INF
            v = pool.draw()
            log_masses.append(log_mass)
            log_c = self._log_c(ctx, text, held, v)
            if log_c == NEG_INF:
                pool.remove(v)
                rejected += 1
                continue
            if log_c < 0.0 and self.rng.random() >= math.exp(log_c):
                continue  # a fractional c: rejected this time, may be accepted later
            accepted += 1
            if accepted == 1:
                first = v
                if not self.estimate:
                    return first, math.nan
        return first, math.log(self.n_accept - 1) + log_inverse_time(np.asarray(log_masses))
