"""One decoding step with the shared-prefix KV cache beside the transformers cache.

    python benchmarks/kv_cache.py [--prompt-tokens 350] [--particles 1 10 16] [--steps 40]
                                  [--json]

Both states of ``smc.hf_lm`` run the embedded model (its default dtype) on the same random
prompt and the same tokens, in one process, alternating per N: ``_HFState`` (the prompt's
cache repeated to N rows, the model's own forward) and ``shared_prefix.SharedPrefixState``
(the prompt stored once).  Every 5th step resamples (a sorted random ancestor vector), as
SMC does.  Prints median and p99 step times in ms and their ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def step_times(cls, lm, prompt: list[int], n: int, steps: int) -> list[float]:
    import time

    state = cls(lm, prompt, n)
    times = []
    for step in range(steps):
        toks = np.random.default_rng(step).integers(100, 1000, n)
        t0 = time.perf_counter()
        state.advance(toks)
        times.append((time.perf_counter() - t0) * 1e3)
        if step % 5 == 4:
            state.select(np.sort(np.random.default_rng(step).integers(0, n, n)))
    return times[2:]                                   # the first steps warm allocations


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompt-tokens", type=int, default=350)
    ap.add_argument("--particles", type=int, nargs="+", default=[1, 10, 16])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import smc
    from smc.hf_lm import _HFState
    from smc.shared_prefix import SharedPrefixState, supports

    lm = smc.load_model()
    if not supports(lm.model):
        print(f"{lm.name} is not a plain Llama decoder: no shared prefix", file=sys.stderr)
        return 2
    prompt = np.random.default_rng(0).integers(100, 1000, args.prompt_tokens).tolist()
    rows = []
    for n in args.particles:
        hf = step_times(_HFState, lm, prompt, n, args.steps)
        sp = step_times(SharedPrefixState, lm, prompt, n, args.steps)
        rows.append({"n": n, "transformers_median_ms": float(np.median(hf)),
                     "transformers_p99_ms": float(np.percentile(hf, 99)),
                     "shared_median_ms": float(np.median(sp)),
                     "shared_p99_ms": float(np.percentile(sp, 99)),
                     "ratio_median": float(np.median(hf) / np.median(sp))})
    meta = {"model": lm.name, "dtype": str(next(lm.model.parameters()).dtype),
            "prompt_tokens": args.prompt_tokens, "steps": args.steps}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}))
        return 0
    print(f"{meta['model']} ({meta['dtype']}), prompt {args.prompt_tokens} tokens, "
          f"{args.steps} steps per state (first 2 dropped), resampling every 5th")
    print("| N | transformers cache ms (median / p99) | shared prefix ms (median / p99) | "
          "transformers / shared |")
    print("|---:|---|---|---:|")
    for r in rows:
        print(f"| {r['n']} | {r['transformers_median_ms']:.1f} / {r['transformers_p99_ms']:.1f} "
              f"| {r['shared_median_ms']:.1f} / {r['shared_p99_ms']:.1f} "
              f"| {r['ratio_median']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
