"""Host bookkeeping shared by the host step (``smc.generate``) and the device step.

A particle that draws token v gets v appended to its ids and bytes (text grows only by whole
UTF-8 characters); at EOS its weight is closed — rerank: + log Φ(x) (constraint × critic
``complete``); is/smc with a critic: + complete(x) − prefix_last(x) — and where the critic is
evaluated its twist prefix(x′) − prefix_last is added.  Both step paths call ``record_token``,
so they weight particles identically; the host path adds to ``pop.log_w`` directly, the device
path uses ``pop.log_w`` as the per-step accumulator of these increments (see device_step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from potentials.base import NEG_INF, Potential, check_log_weight
from smc.lm import LanguageModel
from smc.population import Population

DEATH_NO_TOKEN = "the constraint allows no token"
DEATH_CRITIC = "the critic rejected a prefix"
DEATH_END = "the output was rejected at EOS"
DEATH_LENGTH = "max_tokens reached before EOS"

# smc also resamples when the live particles hold less than this share of the total weight
LIVE_SHARE_FLOOR = 1e-4


@dataclass
class Run:
    """The settings of one ``generate`` call that every step needs."""

    lm: LanguageModel
    constraint: Potential | None
    critic: Potential | None
    method: str
    n: int
    ess_threshold: float
    resampler: str
    max_tokens: int
    weighted: bool
    masked: bool
    twisted: bool
    keep_finished: bool = False
    speculate: int = 0  # draft tokens per row and forward (host step; 0: off)
    bar: object = None


@dataclass
class Loop:
    """What a step loop hands back to ``generate`` (final log-weights are in the population)."""

    log_ml: float = 0.0  # Σ over finished resampling epochs of log mean w (last epoch excluded)
    ess_trace: list[float] = field(default_factory=list)
    w_trace: list[list[float]] = field(default_factory=list)
    resampled_at: list[int] = field(default_factory=list)
    forward_s: float = 0.0
    tokens_generated: int = 0
    steps: int = 0
    timing: dict[str, list[float]] = field(
        default_factory=lambda: {"step": [], "forward": [], "rows": [], "proposal": []}
    )


def record_token(run: Run, pop: Population, i: int, token: int) -> None:
    """Particle i drew ``token`` (≥ 0): append it, close at EOS, add the critic's twist."""
    lm = run.lm
    if token in lm.eos_ids:
        pop.tokens[i].append(token)
        pop.finished[i] = True
        close(run, pop, i)
        return
    changed = pop.append(i, token, lm.vocab_bytes[token])
    critic = run.critic
    if run.twisted and changed and critic.evaluate_at(pop.text[i]):
        v = check_log_weight(critic.prefix(pop.text[i]), f"{critic!r}.prefix")
        if v == NEG_INF:
            pop.kill(i, DEATH_CRITIC)
        else:
            pop.log_w[i] += v - pop.critic_last[i]
            pop.critic_last[i] = v


def close(run: Run, pop: Population, i: int) -> None:
    """Weight of a particle that just emitted EOS."""
    text = pop.text[i]
    method, constraint, critic = run.method, run.constraint, run.critic
    if pop.held[i]:
        if method != "direct" and (constraint is not None or critic is not None):
            pop.kill(i, DEATH_END)
        return
    if method == "rerank":
        total = 0.0
        for pot in (constraint, critic):
            if pot is not None and total != NEG_INF:
                total += check_log_weight(pot.complete(text), f"{pot!r}.complete")
        if total == NEG_INF:
            pop.kill(i, DEATH_END)
        else:
            pop.log_w[i] += total
    elif run.twisted:
        v = check_log_weight(critic.complete(text), f"{critic!r}.complete")
        if v == NEG_INF:
            pop.kill(i, DEATH_END)
        else:
            pop.log_w[i] += v - pop.critic_last[i]
