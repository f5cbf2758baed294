"""The device-resident SMC step: one small device-to-host copy per step.

Per step t, on the model's device (tensors; ``smc.device_kernels``):

  1. l ← l + δ_{t−1}               host increments of the previous step's tokens, uploaded
  2. s = log p(· | x) + log c(· | x)  c from packed bitmask rows built on the host, uploaded
  3. v ~ exp(s)/Zₜ, l_row ← l_row + log Zₜ  (is/smc; a row with Zₜ = 0 draws −1 and dies)
  4. ESS = (Σw)²/Σw²; resample ⇔ any live ∧ (ESS < τ·N ∨ (τ > 0 ∧ live share of Σw <
     ``generate.LIVE_SHARE_FLOOR``)) (a tensor, no branch on the host);
     ancestors a drawn unconditionally, identity where not resampling; log Ẑ += log mean w
     and l ← 0 (−inf stays) where resampling
  5. one copy to the host: int64 [flag, a₁…a_N, v₁…v_R] (``fetch``; smc) or [v₁…v_R]

then on the host: append the tokens to the texts, EOS closing weights and critic twists
(``bookkeeping.record_token``) summed into δ_t, apply the ancestors to the host records, and
advance the model on the surviving rows (``select`` with an uploaded row index, tokens gathered
on the device).  Host-to-device uploads (masks, δ, row indices) are pinned and non-blocking
on CUDA: no round trip.  At the end one more copy reads back l, log Ẑ and the traces.

Exactness.  δ_t — the critic's twist prefix(x′) − prefix(x), the EOS ``complete`` weights and
the deaths the host finds — needs the tokens on the host, so it enters the weights at the start
of step t + 1, after step t's resampling decision (a child inherits its ancestor's δ).  The
intermediate targets shift by one step; the product of increments still telescopes to
p(x)Φ(x)/q(x), so Ẑ stays unbiased and the weighted outputs converge to π, as on the host path
(without resampling — is, rerank — the final weights are the host path's exactly).

Masks.  A boolean constraint with a ``token_masker`` (a ``LarkGrammar``) gives packed uint32
rows (``GrammarMask.bits``); a row holding incomplete UTF-8 bytes gets its bits from the trie
walk (``MaskedProposal.log_mask``).  Any other constraint uploads dense log c rows (R×V
float64 per step).  ``proposal="awrs"`` (rejection sampling token by token) runs on the host
path only; ``use_device`` refuses it for ``step="device"``.

Traces.  ``ess_trace`` and ``log_weight_trace`` are the device values of step 4 (before δ_t),
read back at the end.  ``timing``: on CUDA the forward only launches, so its wait shows up in
the next step's "proposal" (which ends with the fetch); "step" is wall time per step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

import kernels
from potentials.base import NEG_INF
from smc import device_kernels as dk
from smc.bookkeeping import DEATH_LENGTH, DEATH_NO_TOKEN, LIVE_SHARE_FLOOR, Loop, Run, record_token
from smc.lm import LanguageModel
from smc.population import Population
from smc.proposal import MaskedProposal


def use_device(step: str, lm: LanguageModel, masked: bool, proposal: str,
               keep_finished: bool = False) -> bool:
    """Whether ``generate`` takes the device path: ``"device"`` (or ValueError if it cannot),
    ``"host"``, or ``"auto"`` = a model on CUDA that has a device state, no AWRS proposal
    and no ``keep_finished`` (resampling a subset is host-only)."""
    awrs = masked and proposal == "awrs"
    if step == "device":
        if not lm.supports_device_step:
            raise ValueError(f"step='device': {type(lm).__name__} has no start_device")
        if awrs:
            raise ValueError("step='device' does not run proposal='awrs'; use proposal='mask' "
                             "or step='host'")
        if keep_finished:
            raise ValueError("step='device' does not run keep_finished=True; use step='host'")
        return True
    return (step == "auto" and lm.on_cuda and lm.supports_device_step and not awrs
            and not keep_finished)


def fetch(packed: torch.Tensor) -> np.ndarray:
    """The step's one device-to-host copy (on CUDA, the step's only synchronisation); a
    ``smc.fetch`` range in a ``torch.profiler`` trace."""
    with torch.profiler.record_function("smc.fetch"):
        return packed.to("cpu").numpy()


def upload(values: np.ndarray, device: torch.device) -> torch.Tensor:
    """A copy of host ``values`` on ``device``: pinned and non-blocking on CUDA (no sync)."""
    host = torch.from_numpy(np.array(values, copy=True))
    if device.type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host if device.type == "cpu" else host.to(device)


def apply_bits(scores: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """In place, scores[r, t] = −inf unless bit t % 32 of words[r, t // 32] is set.

    CUDA: the Triton kernel ``kernels.apply_token_bitmask``; elsewhere an unpack in torch.
    """
    if scores.device.type == "cuda":
        return kernels.apply_token_bitmask(scores, words, backend="triton")
    shifts = torch.arange(32, dtype=torch.int32, device=scores.device)
    bits = (words.unsqueeze(-1) >> shifts) & 1
    allowed = bits.flatten(-2)[:, : scores.shape[-1]].bool()
    return scores.masked_fill_(~allowed, NEG_INF)


class DeviceMasks:
    """log c(· | x) for the rows of a step, built on the host, applied on the device."""

    def __init__(self, lm: LanguageModel, constraint) -> None:
        self.prop = MaskedProposal(lm, constraint)
        self.masker = self.prop.masker
        self.vocab = lm.vocab_size
        self.words = (self.vocab + 31) // 32

    def _held_bits(self, text: str, held: bytes) -> np.ndarray:
        ids, logc = self.prop.log_mask(text, held)
        if np.any(logc[np.isfinite(logc)] != 0.0):
            raise ValueError("a constraint with a token_masker must be boolean (log c ∈ {0, -inf})")
        allowed = np.zeros(self.vocab, bool)
        allowed[ids[np.isfinite(logc)]] = True
        return kernels.pack_bitmask(allowed).view(np.uint32)

    def scores(self, logprobs: torch.Tensor, texts: Sequence[str],
               helds: Sequence[bytes]) -> torch.Tensor:
        """log p + log c for each row (a new tensor; −inf where c = 0)."""
        rows = len(texts)
        if self.masker is not None:
            bits = np.empty((rows, self.words), np.uint32)
            for k, (text, held) in enumerate(zip(texts, helds, strict=True)):
                bits[k] = self._held_bits(text, held) if held else self.masker.bits(text)
            words = upload(bits.view(np.int32), logprobs.device)
            return apply_bits(logprobs.clone(), words)
        bias = np.full((rows, self.vocab), NEG_INF)
        for k, (text, held) in enumerate(zip(texts, helds, strict=True)):
            ids, logc = self.prop.log_mask(text, held)
            bias[k, ids] = logc
        return logprobs + upload(bias, logprobs.device)


def device_loop(run: Run, pop: Population, prompt_ids: list[int],
                rng: np.random.Generator) -> Loop:
    """The step loop of ``generate`` on the device (see the module doc)."""
    lm, method, n = run.lm, run.method, run.n
    out = Loop()
    if not pop.live().any():
        return out
    t0 = time.perf_counter()
    state = lm.start_device(prompt_ids, n)
    out.forward_s += time.perf_counter() - t0
    dev = state.device
    gen, gen_resample = torch.Generator(device=dev), torch.Generator(device=dev)
    gen.manual_seed(int(rng.integers(2**63)))  # token draws
    gen_resample.manual_seed(int(rng.integers(2**63)))  # its own stream: τ = 0 is exactly IS
    masks = DeviceMasks(lm, run.constraint) if run.masked else None
    resampling = method == "smc"
    log_w = upload(pop.log_w, dev)
    pop.log_w[:] = 0.0  # from here on: δ, the host's increments not yet sent
    log_ml = torch.zeros((), dtype=torch.float64, device=dev)
    ess_buf = torch.zeros(run.max_tokens, dtype=torch.float64, device=dev)
    w_buf = torch.zeros(run.max_tokens, n, dtype=torch.float64, device=dev)
    eos = torch.as_tensor(sorted(lm.eos_ids), dtype=torch.int64, device=dev)
    identity = torch.arange(n, device=dev)
    rows_dev = identity
    threshold = run.ess_threshold * n
    step = 0
    for step in range(1, run.max_tokens + 1):
        t_step = time.perf_counter()
        rows = state.rows
        out.timing["rows"].append(rows)
        if np.any(pop.log_w != 0.0):
            log_w = log_w + upload(pop.log_w, dev)
            pop.log_w[:] = 0.0
        t_prop = time.perf_counter()
        scores = state.logprobs
        if masks is not None:
            scores = masks.scores(scores, [pop.text[i] for i in pop.rows],
                                  [pop.held[i] for i in pop.rows])
        u = torch.rand(rows, generator=gen, dtype=torch.float64, device=dev)
        tok, log_z = dk.draw_tokens(scores, u)
        if method not in ("is", "smc"):
            log_z = torch.where(tok < 0, NEG_INF, torch.zeros_like(log_z))
        log_w = log_w.index_add(0, rows_dev, log_z)
        going = (tok >= 0) & ~(tok.view(-1, 1) == eos).any(dim=1)
        live = torch.zeros(n, dtype=torch.bool, device=dev).scatter(0, rows_dev, going)
        if step == run.max_tokens:  # unfinished particles die
            log_w = torch.where(live, NEG_INF, log_w)
            live = torch.zeros_like(live)
        packed = tok
        w_buf[step - 1] = log_w
        if run.weighted:
            ess = dk.ess(log_w)
            ess_buf[step - 1] = ess
        if resampling:
            do = live.any() & (ess < threshold)
            if threshold > 0:  # the live particles hold next to no weight: end them
                live_lse = dk.logsumexp(torch.where(live, log_w, NEG_INF))
                share = live_lse - dk.logsumexp(log_w)
                do = do | (live.any() & (share < math.log(LIVE_SHARE_FLOOR)))
            ancestors = dk.resample(log_w, run.resampler,
                                    dk.draw_randomness(run.resampler, n, gen_resample, dev))
            ancestors = torch.where(do, ancestors, identity)
            log_ml = log_ml + torch.where(do, dk.logsumexp(log_w) - math.log(n), 0.0)
            dead = log_w.index_select(0, ancestors) == NEG_INF
            reset = torch.zeros_like(log_w).masked_fill_(dead, NEG_INF)
            log_w = torch.where(do, reset, log_w)
            packed = torch.cat([do.to(torch.int64).view(1), ancestors, tok])
        host = fetch(packed)
        out.timing["proposal"].append(time.perf_counter() - t_prop)

        tokens = host[1 + n:] if resampling else host
        for k, i in enumerate(pop.rows):
            token = int(tokens[k])
            if token < 0:
                pop.kill(i, DEATH_NO_TOKEN)
                continue
            out.tokens_generated += 1
            record_token(run, pop, i, token)
        if step == run.max_tokens:
            for i in np.flatnonzero(pop.live()):
                pop.kill(int(i), DEATH_LENGTH)
        if not run.weighted:
            out.ess_trace.append(float(pop.live().sum() + pop.finished.sum()))
        old_rows = pop.rows
        row_of = {int(i): k for k, i in enumerate(old_rows)}
        if resampling and host[0]:
            ancestors_host = host[1:1 + n]
            live_before = pop.live()
            pop.take(ancestors_host)
            out.resampled_at.append(step)
            keep = [row_of[int(a)] for a in ancestors_host if live_before[a]]
            pop.rows = np.flatnonzero(pop.live())
        else:
            alive = pop.live()
            pop.rows = np.asarray([i for i in pop.rows if alive[i]], np.int64)
            keep = [row_of[int(i)] for i in pop.rows]
        run.bar.update(1)
        run.bar.set_postfix(live=len(pop.rows))
        if step == run.max_tokens or not keep:
            out.timing["forward"].append(0.0)
            out.timing["step"].append(time.perf_counter() - t_step)
            break
        if keep != list(range(rows)) or not np.array_equal(pop.rows, old_rows):
            index = upload(np.concatenate([np.asarray(keep, np.int64), pop.rows]), dev)
            keep_dev, rows_dev = index[: len(keep)], index[len(keep):]
            state.select(keep_dev)
            tok = tok.index_select(0, keep_dev)
        t0 = time.perf_counter()
        state.advance(tok)
        out.forward_s += time.perf_counter() - t0
        out.timing["forward"].append(time.perf_counter() - t0)
        out.timing["step"].append(time.perf_counter() - t_step)
    out.steps = step
    _finish(run, pop, out, log_w, log_ml, ess_buf, w_buf, step)
    return out


def _finish(run: Run, pop: Population, out: Loop, log_w: torch.Tensor, log_ml: torch.Tensor,
            ess_buf: torch.Tensor, w_buf: torch.Tensor, steps: int) -> None:
    """Read back (one copy, after the loop) l, log Ẑ and the traces; add the pending δ."""
    n = run.n
    flat: Any = torch.cat([log_ml.view(1), log_w.to(torch.float64), ess_buf[:steps],
                           w_buf[:steps].reshape(-1)])
    host = flat.to("cpu").numpy()
    out.log_ml = float(host[0])
    pop.log_w = host[1:1 + n] + pop.log_w
    pop.log_w[pop.dead] = NEG_INF
    out.w_trace = host[1 + n + steps:].reshape(steps, n).tolist()
    if run.weighted:
        out.ess_trace = host[1 + n:1 + n + steps].tolist()
