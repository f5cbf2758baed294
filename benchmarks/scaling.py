"""Step time and tokens/s of an SMC step versus particle count and model size.

    python benchmarks/scaling.py [--sizes 100m 1b 3b] [--particles 1 4 16 64 256]
           [--steps 6] [--device cpu|cuda] [--constraint none|json-awrs|json-mask]
           [--step auto|host|device ...] [--profile] [--trace DIR] [--json]

Models are random-init Llama-style configs of about 100M, 1B and 3B parameters (weights never
travel, speed does not need them) with the embedded SmolLM2 tokenizer (49,152 tokens); fp32 on
the CPU, bf16 on CUDA.  For each (size, N) it times, after a warm-up step:

* ``forward``: a plain batched decode step of N rows (``BatchState.advance``), median over steps;
* ``smc``: a full ``smc.generate`` step (forward, sampling, weights, ESS, resampling,
  bookkeeping), median over steps (neither the warm-up step nor the last, forward-less one),
  with no constraint or with the JSON grammar through AWRS or exact masks (``--constraint``);

and prints ms per step, tokens/s (N / step time), the ratio smc/forward and the KV cache bytes
per particle per token.  Pairs that would not fit in memory are skipped and say so.  On the
2-core CPU the larger models are slow: the default grid limits N per size (see ``GRID``).

``--step`` picks the step path of ``smc.generate`` (``smc.device_step``): ``auto`` (the
default: the device path on CUDA, the host path on the CPU), ``host`` or ``device``; give
several to put them side by side (one row each).

Host round trips.  ``--profile`` runs ``smc.generate`` under ``torch.profiler`` twice, with
``--steps`` + 2 and 2 tokens, and prints per step (the difference of the two runs over the
difference of their step counts, so the prompt forward and the final read-back cancel) the
counts of the events that move data to the host or wait for the device:

* ``smc.fetch``: the device path's one packed copy (a ``record_function`` range);
* ``aten::item`` / ``aten::_local_scalar_dense``: scalar reads (a sync each on CUDA);
* ``aten::_to_copy``: tensor copies, host↔device or dtype (on the CPU only dtype casts exist,
  so this counts host-side equivalents, not transfers);
  ops inside the model's call (a ``smc.forward`` range) are counted apart as ``[model]``;
* on CUDA also ``cudaMemcpyAsync``, ``cudaStreamSynchronize``, ``cudaDeviceSynchronize`` (runtime
  calls) and the ``Memcpy DtoH`` / ``Memcpy HtoD`` device activities.

The host path copies the N×V log-probabilities down every step (one ``Memcpy DtoH`` of
4·N·V bytes); the device path copies (1 + N + rows)·8 bytes.  ``--trace DIR`` also writes a
Chrome trace of the longer run per (size, N, step) (open in chrome://tracing or Perfetto);
by hand::

    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        smc.generate(lm, prompt, n_particles=64, max_tokens=8, step="device")
    prof.export_chrome_trace("smc.json")
    print(prof.key_averages().table(sort_by="count", row_limit=30))
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# hidden, layers, heads, kv_heads, intermediate  (vocab 49,152, tied embeddings)
CONFIGS = {
    "100m": (768, 12, 12, 4, 2048),
    "1b": (2048, 16, 32, 8, 8192),
    "3b": (3072, 28, 24, 8, 8192),
}
# default particle counts per size on the CPU (all of --particles on CUDA)
GRID = {"100m": (1, 4, 16, 64, 256), "1b": (1, 4, 16, 64), "3b": (1, 4, 16)}
PROMPT = "Write a JSON object describing a cat with a name and an age:"


def build_lm(size: str, device: str, tokenizer):
    """A random-init model of ``size`` wrapped as an ``HFLanguageModel`` (weights ~ N(0, 0.02))."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers < 5
        from transformers.modeling_utils import no_init_weights

    from smc import HFLanguageModel

    hidden, layers, heads, kv_heads, inter = CONFIGS[size]
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, intermediate_size=inter,
        max_position_embeddings=2048, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
    )
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    with no_init_weights():
        model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    model = model.to(device=device, dtype=dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    return HFLanguageModel(model, tokenizer, name=f"random-{size}"), params


def time_forward(lm, n: int, steps: int) -> list[float]:
    """Seconds per plain batched decode step of ``n`` rows (after one warm-up step)."""
    import numpy as np

    state = lm.start(lm.encode(PROMPT), n)
    tokens = np.full(n, 11, dtype=np.int64)
    out = []
    for k in range(steps + 1):
        _sync(lm)
        t0 = time.perf_counter()
        state.advance(tokens)
        _sync(lm)
        if k:
            out.append(time.perf_counter() - t0)
    return out


_GRAMMAR: dict[str, object] = {}


def run_smc(lm, n: int, tokens: int, constraint: str, step: str):
    """One ``smc.generate`` run of ``tokens`` steps (the JSON grammar compiled once)."""
    import grammars
    import potentials
    import smc

    if constraint != "none" and "json" not in _GRAMMAR:
        _GRAMMAR["json"] = potentials.LarkGrammar(grammars.load("json"))
    pot = None if constraint == "none" else _GRAMMAR["json"]
    proposal = "awrs" if constraint == "json-awrs" else "mask"
    with warnings.catch_warnings():  # random models rarely say EOS: "every particle died"
        warnings.simplefilter("ignore", RuntimeWarning)
        return smc.generate(lm, PROMPT, constraint=pot, method="smc", proposal=proposal,
                            n_particles=n, max_tokens=tokens, seed=0, step=step)


def time_smc(lm, n: int, steps: int, constraint: str, step: str = "auto") -> list[float]:
    """Seconds per ``smc.generate`` step: the first (warm-up) and the last (it runs no forward)
    steps dropped."""
    got = run_smc(lm, n, steps + 2, constraint, step).timing["step"][1:-1]
    return got or [float("nan")]  # every particle finished or died within two steps


WATCH = ("smc.fetch", "aten::item", "aten::_local_scalar_dense", "aten::_to_copy",
         "cudaMemcpyAsync", "cudaStreamSynchronize", "cudaDeviceSynchronize")


def _counts(prof) -> dict[str, int]:
    """Watched events by name; CPU ops inside a ``smc.forward`` range (the model's own call)
    are counted apart, as ``name [model]``."""
    events = prof.events()
    forwards = sorted((e.time_range.start, e.time_range.end) for e in events
                      if e.name == "smc.forward")
    out: dict[str, int] = {}
    for e in events:
        name = e.name
        if name.startswith("Memcpy DtoH"):
            name = "Memcpy DtoH"
        elif name.startswith("Memcpy HtoD"):
            name = "Memcpy HtoD"
        elif name not in WATCH:
            continue
        t = e.time_range.start
        if name.startswith("aten::") and any(a <= t <= b for a, b in forwards):
            name += " [model]"
        out[name] = out.get(name, 0) + 1
    return out


def profile_steps(lm, n: int, steps: int, constraint: str, step: str,
                  trace: str | None = None) -> dict[str, float]:
    """Per-step counts of host-transfer and sync events (see the module doc, Host round trips)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU]
    if str(lm.device).startswith("cuda"):
        acts.append(ProfilerActivity.CUDA)
    got = []
    for tokens in (2, steps + 2):
        _sync(lm)
        with profile(activities=acts) as prof:
            res = run_smc(lm, n, tokens, constraint, step)
            _sync(lm)
        got.append((res.steps, _counts(prof)))
    if trace:
        Path(trace).mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(Path(trace) / f"{lm.name}-N{n}-{step}.json"))
    (s1, c1), (s2, c2) = got
    span = max(s2 - s1, 1)
    return {k: (c2.get(k, 0) - c1.get(k, 0)) / span for k in sorted(set(c1) | set(c2))}


def _sync(lm) -> None:
    if str(lm.device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run(args: argparse.Namespace) -> dict:
    from transformers import AutoTokenizer

    import smc.memory
    from smc.device_step import use_device
    from smc.models import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir(), local_files_only=True)
    rows = []
    for size in args.sizes:
        lm, params = build_lm(size, args.device, tokenizer)
        grid = args.particles if args.particles else GRID[size]
        for n in grid:
            est = smc.memory.estimate(lm, n, len(lm.encode(PROMPT)), args.steps + 2)
            if est is not None and not est.fits():
                rows.append({"size": size, "particles": n, "skipped": "does not fit"})
                continue
            fwd = statistics.median(time_forward(lm, n, args.steps))
            for path in args.step:
                resolved = "device" if use_device(path, lm, args.constraint != "none",
                                                  "awrs" if "awrs" in args.constraint
                                                  else "mask") else "host"
                step = statistics.median(time_smc(lm, n, args.steps, args.constraint, path))
                rows.append({
                    "size": size, "params": params, "particles": n, "step": resolved,
                    "forward_ms": fwd * 1e3, "smc_ms": step * 1e3, "ratio": step / fwd,
                    "tokens_per_s": n / step, "kv_bytes_per_token": lm.kv_bytes_per_token,
                })
                if args.profile:
                    rows[-1]["per_step_events"] = profile_steps(
                        lm, n, args.steps, args.constraint, path, args.trace)
                if not args.json:
                    r = rows[-1]
                    print(f"{size:5} N={n:<4} {resolved:6} forward {r['forward_ms']:9.1f} ms  "
                          f"smc {r['smc_ms']:9.1f} ms  x{r['ratio']:.2f}  "
                          f"{r['tokens_per_s']:8.1f} tok/s", file=sys.stderr, flush=True)
        del lm
    import torch

    return {"device": args.device, "threads": torch.get_num_threads(),
            "constraint": args.constraint, "steps": args.steps, "step": args.step, "rows": rows}


def print_table(report: dict) -> None:
    print(f"device={report['device']} threads={report['threads']} "
          f"constraint={report['constraint']} steps={report['steps']} (medians)")
    head = (f"{'model':6} {'params':>7} {'N':>4} {'step':>6} {'forward ms':>11} "
            f"{'smc step ms':>12} {'ratio':>6} {'tokens/s':>9} {'KV B/tok':>9}")
    print(head)
    print("-" * len(head))
    for r in report["rows"]:
        if "skipped" in r:
            print(f"{r['size']:6} {'':>7} {r['particles']:>4}  {r['skipped']}")
            continue
        print(f"{r['size']:6} {r['params'] / 1e9:>6.2f}B {r['particles']:>4} {r['step']:>6} "
              f"{r['forward_ms']:>11.1f} {r['smc_ms']:>12.1f} {r['ratio']:>6.2f} "
              f"{r['tokens_per_s']:>9.1f} {r['kv_bytes_per_token']:>9}")
    profiled = [r for r in report["rows"] if "per_step_events" in r]
    if profiled:
        names = sorted({k for r in profiled for k in r["per_step_events"]})
        print("\nevents per step (torch.profiler; difference of two run lengths)")
        print(f"{'model':6} {'N':>4} {'step':>6}  " + "  ".join(names))
        for r in profiled:
            ev = r["per_step_events"]
            print(f"{r['size']:6} {r['particles']:>4} {r['step']:>6}  " + "  ".join(
                f"{ev.get(k, 0.0):>{len(k)}.1f}" for k in names))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--particles", nargs="+", type=int, default=None,
                   help="particle counts (default: GRID per size)")
    p.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    p.add_argument("--device", default="cpu")
    p.add_argument("--constraint", default="none", choices=("none", "json-awrs", "json-mask"))
    p.add_argument("--step", nargs="+", default=["auto"], choices=("auto", "host", "device"),
                   help="step path(s) of smc.generate (auto: device on CUDA, host on the CPU)")
    p.add_argument("--profile", action="store_true",
                   help="count host-transfer / sync events per step with torch.profiler")
    p.add_argument("--trace", default=None, help="with --profile: write Chrome traces here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    report = run(args)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
