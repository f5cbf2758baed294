"""Step time and tokens/s of an SMC step versus particle count and model size.

    python benchmarks/scaling.py [--sizes 100m 1b 3b] [--particles 1 4 16 64 256]
           [--steps 6] [--device cpu|cuda] [--constraint none|json-awrs|json-mask] [--json]

Models are random-init Llama-style configs of about 100M, 1B and 3B parameters (weights never
travel, speed does not need them) with the embedded SmolLM2 tokenizer (49,152 tokens); fp32 on
the CPU, bf16 on CUDA.  For each (size, N) it times, after a warm-up step:

* ``forward``: a plain batched decode step of N rows (``BatchState.advance``), median over steps;
* ``smc``: a full ``smc.generate`` step (forward, sampling, weights, ESS, resampling,
  bookkeeping), median over steps, with no constraint or with the JSON grammar through AWRS
  or exact masks (``--constraint``);

and prints ms per step, tokens/s (N / step time), the ratio smc/forward and the KV cache bytes
per particle per token.  Pairs that would not fit in memory are skipped and say so.  On the
2-core CPU the larger models are slow: the default grid limits N per size (see ``GRID``).
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


def time_smc(lm, n: int, steps: int, constraint: str) -> list[float]:
    """Seconds per ``smc.generate`` step (the first, warm-up step dropped)."""
    import grammars
    import potentials
    import smc

    pot = None if constraint == "none" else potentials.LarkGrammar(grammars.load("json"))
    proposal = "awrs" if constraint == "json-awrs" else "mask"
    with warnings.catch_warnings():  # random models rarely say EOS: "every particle died"
        warnings.simplefilter("ignore", RuntimeWarning)
        res = smc.generate(lm, PROMPT, constraint=pot, method="smc", proposal=proposal,
                           n_particles=n, max_tokens=steps + 1, seed=0)
    return res.timing["step"][1:]


def _sync(lm) -> None:
    if str(lm.device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run(args: argparse.Namespace) -> dict:
    from transformers import AutoTokenizer

    import smc.memory
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
            step = statistics.median(time_smc(lm, n, args.steps, args.constraint))
            rows.append({
                "size": size, "params": params, "particles": n, "forward_ms": fwd * 1e3,
                "smc_ms": step * 1e3, "ratio": step / fwd, "tokens_per_s": n / step,
                "kv_bytes_per_token": lm.kv_bytes_per_token,
            })
            if not args.json:
                r = rows[-1]
                print(f"{size:5} N={n:<4} forward {r['forward_ms']:9.1f} ms  smc "
                      f"{r['smc_ms']:9.1f} ms  x{r['ratio']:.2f}  {r['tokens_per_s']:8.1f} tok/s",
                      file=sys.stderr, flush=True)
        del lm
    import torch

    return {"device": args.device, "threads": torch.get_num_threads(),
            "constraint": args.constraint, "steps": args.steps, "rows": rows}


def print_table(report: dict) -> None:
    print(f"device={report['device']} threads={report['threads']} "
          f"constraint={report['constraint']} steps={report['steps']} (medians)")
    head = (f"{'model':6} {'params':>7} {'N':>4} {'forward ms':>11} {'smc step ms':>12} "
            f"{'ratio':>6} {'tokens/s':>9} {'KV B/tok':>9}")
    print(head)
    print("-" * len(head))
    for r in report["rows"]:
        if "skipped" in r:
            print(f"{r['size']:6} {'':>7} {r['particles']:>4}  {r['skipped']}")
            continue
        print(f"{r['size']:6} {r['params'] / 1e9:>6.2f}B {r['particles']:>4} "
              f"{r['forward_ms']:>11.1f} {r['smc_ms']:>12.1f} {r['ratio']:>6.2f} "
              f"{r['tokens_per_s']:>9.1f} {r['kv_bytes_per_token']:>9}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--particles", nargs="+", type=int, default=None,
                   help="particle counts (default: GRID per size)")
    p.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    p.add_argument("--device", default="cpu")
    p.add_argument("--constraint", default="none", choices=("none", "json-awrs", "json-mask"))
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
