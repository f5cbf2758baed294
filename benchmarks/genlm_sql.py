"""Our SMC next to genlm-control's (the AWRS paper's own library) on the same SQL questions.

Both libraries run in one process on each question, one after the other, with the same model
object (the embedded SmolLM2-135M-Instruct in ``smc.load_model``'s default dtype, CPU), the
same prompt token ids (our SQL domain's chat prompt encoded by our tokenizer), the same EOS
token, the same grammar, the same critic, particle count, ESS threshold (0.5), resampler
(systematic) and token budget:

* ours: ``smc.domains.runner.solve(lm, dom, task, method="smc", n_particles=N)`` (exact
  token masks of the schema grammar, the scope critic twisting at clause boundaries);
* genlm-control: ``AWRS(PromptedLLM(AsyncTransformer(model, tokenizer), prompt_ids,
  eos_byte_strings), BoolCFG.from_lark(grammar).coerce(llm, f=b"".join)).smc(...)`` with the
  same critic wrapped as a genlm ``Potential`` (``--no-critic`` drops it on both sides).

Grammar: genlm-grammar's Lark import takes no ignore-case flag and has no lexer, so the
domain's schema-specialised ``grammars/sql.lark`` is translated (``genlm_lark``): keywords and
schema names become case-insensitive literals (``"SELECT"i``), IDENT/NUMBER spell out both
cases, ``start`` may end in whitespace (Lark's ``%ignore`` allows it; genlm's conversion only
puts ignored text *before* terminals).  Everything else is verbatim; before timing, every
selected question's gold query (as written and lower-cased) is checked to be accepted by both.
Critic: genlm twists by ``critic.prefix`` at every step; the wrapper returns our critic's
prefix of the longest character prefix at which ``critic.evaluate_at`` holds (ours evaluates
at token ends where it holds), ``complete`` at EOS: the same target, a near-identical schedule.

Both sides first run the first question untimed (8 / 4 tokens) to warm up.  Timed: ours
``Result.seconds`` (``smc.generate`` including the prompt's forward: the part after the
longest prefix shared with a prompt run before, which our model keeps, see
``--prompt-cache-mb``; the questions of one database share their schema prompt; the cache
is emptied after the warm-up, so each database's first question runs its whole prompt); genlm the
prompt's KV caching (``AsyncTransformer.cache_kv``, without which every step re-reads the
whole prompt) plus ``sampler.smc``.  Grammar compiles are done once per database, outside the
timing, on both sides.  A genlm question running past ``--genlm-timeout`` seconds (default 300)
is cancelled and counted as a failure at the timeout's seconds (ratios then are lower bounds,
shown "≥").  Both ``best`` outputs are scored by the domain's evaluator (execution accuracy);
genlm's best is the decoded string of largest total weight among its finished particles (its
``decoded_posterior``'s mode, summed in log space).

Questions (``--questions N``, default 10): the three shipped databases in turn (shop, school,
library), evenly spaced positions within each database's question list (``select_tasks``); the
default 10 are shop-01, school-01, library-01, shop-09, school-11, library-11, shop-18,
school-22, library-22, shop-26.

Setup (the peers' venv; see benchmarks/mask_bench.py for the other peers):

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install torch==2.13.0           # the local CPU wheel, first
    .venv-bench/bin/pip install -e .                    # smc, potentials, grammars
    .venv-bench/bin/pip install genlm-control           # pure Python + genlm-backend/-grammar

Run:

    .venv-bench/bin/python benchmarks/genlm_sql.py [--questions 10] [--particles 10]
        [--max-tokens 96] [--genlm-timeout 300] [--no-critic] [--seed 0] [--threads N]
        [--speculate K] [--prompt-cache-mb MB] [--json] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NEG_INF = float("-inf")
_KEYWORD = re.compile(r'^([A-Z_]+): "([A-Z_]+)"$', re.M)
_NAME_RULE = re.compile(r"^name: .*$", re.M)
_NAME_LITERAL = re.compile(r'"([A-Za-z0-9_]+)"')
_REWRITES = (  # (ours, genlm's): the spelled-out cases of ignore_case=True, trailing blanks
    ("IDENT: /[a-z_][a-z0-9_]*/", "IDENT: /[a-zA-Z_][a-zA-Z0-9_]*/"),
    ("(?:e[+-]?[0-9]+)?/", "(?:[eE][+-]?[0-9]+)?/"),
    ('start: select_stmt ";"?\n', 'start: select_stmt ";"? WS?\n'),
)
INSTALL = "python3 -m venv .venv-bench && .venv-bench/bin/pip install genlm-control (see --help)"


# -- pure helpers ------------------------------------------------------------------------
def select_tasks(tasks: list[Any], n: int) -> list[Any]:
    """``n`` tasks taken from each database in turn (first-seen database order), at evenly
    spaced positions ``floor(j * len / k)`` of that database's list (``k`` = its share)."""
    if n < 1:
        raise ValueError(f"--questions must be >= 1, got {n}")
    if n > len(tasks):
        raise ValueError(f"--questions {n}: only {len(tasks)} questions are shipped")
    by_db: dict[str, list[Any]] = {}
    for t in tasks:
        by_db.setdefault(t.meta.get("db", ""), []).append(t)
    dbs = list(by_db)
    share = {db: n // len(dbs) + (i < n % len(dbs)) for i, db in enumerate(dbs)}
    while any(share[db] > len(by_db[db]) for db in dbs):  # a small database gives its excess
        over = next(db for db in dbs if share[db] > len(by_db[db]))
        extra, share[over] = share[over] - len(by_db[over]), len(by_db[over])
        for db in dbs:
            take = min(extra, len(by_db[db]) - share[db])
            share[db], extra = share[db] + take, extra - take
    picked = {db: [by_db[db][j * len(by_db[db]) // share[db]] for j in range(share[db])]
              for db in dbs}
    return [picked[db][j] for j in range(max(share.values())) for db in dbs
            if j < len(picked[db])]


def genlm_lark(text: str) -> str:
    """Our schema grammar (loaded by us with ``ignore_case=True``) as a grammar for genlm's
    ``BoolCFG.from_lark``: case-insensitive keyword and name literals, both-case regexes and
    optional trailing whitespace.  RuntimeError if ``text`` no longer has the expected shape."""
    out, n_kw = _KEYWORD.subn(r'\1: "\2"i', text)
    names = _NAME_RULE.findall(out)
    if n_kw < 10 or len(names) != 1:
        raise RuntimeError(f"unexpected SQL grammar: {n_kw} keyword terminals, "
                           f"{len(names)} 'name:' rules")
    out = out.replace(names[0], _NAME_LITERAL.sub(r'"\1"i', names[0]))
    for ours, theirs in _REWRITES:
        if out.count(ours) != 1:
            raise RuntimeError(f"unexpected SQL grammar: {ours!r} occurs {out.count(ours)} times")
        out = out.replace(ours, theirs)
    return out


def last_boundary(text: str, evaluate_at: Any) -> str:
    """The longest prefix of ``text`` (``text`` included) where ``evaluate_at`` holds, or ""."""
    for k in range(len(text), 0, -1):
        if evaluate_at(text[:k]):
            return text[:k]
    return ""


def decode_prefix(data: bytes) -> str | None:
    """``data`` as text, a trailing incomplete UTF-8 character dropped; None if invalid."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.reason == "unexpected end of data" and e.end == len(data):
            return data[:e.start].decode("utf-8", errors="strict")
        return None


def best_of(contexts: list[list[Any]], log_weights: list[float], eos: Any) -> str | None:
    """The decoded text of largest total weight among finished, UTF-8 contexts (None if none)."""
    total: dict[str, float] = {}
    for ctx, w in zip(contexts, log_weights, strict=True):
        if not ctx or ctx[-1] is not eos or w == NEG_INF or math.isnan(w):
            continue
        try:
            text = b"".join(ctx[:-1]).decode("utf-8")
        except UnicodeDecodeError:
            continue
        total[text] = float(np.logaddexp(total.get(text, NEG_INF), w))
    return max(total, key=total.__getitem__) if total else None


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians, p90s, speed ratios genlm/ours (per-question median, totals), accuracies."""
    if not rows:
        raise ValueError("no rows to summarize")
    ours = [r["ours"]["seconds"] for r in rows]
    theirs = [r["genlm"]["seconds"] for r in rows]
    n = len(rows)

    def side(key: str, secs: list[float]) -> dict[str, Any]:
        return {"median_s": statistics.median(secs), "p90_s": percentile(secs, 90),
                "total_s": sum(secs),
                "tokens_per_s": sum(r[key]["tokens"] for r in rows) / sum(secs),
                "accuracy": sum(r[key]["correct"] for r in rows) / n,
                "validity": sum(r[key]["valid"] for r in rows) / n}

    timeouts = sum(r["genlm"]["timed_out"] for r in rows)
    return {"questions": n, "ours": side("ours", ours), "genlm": side("genlm", theirs),
            "ratio_median": statistics.median(t / o for t, o in zip(theirs, ours, strict=True)),
            "ratio_total": sum(theirs) / sum(ours),
            "ratio_tokens_per_s": (sum(r["ours"]["tokens"] for r in rows) / sum(ours))
            / max(sum(r["genlm"]["tokens"] for r in rows) / sum(theirs), 1e-12),
            "genlm_timeouts": timeouts, "ratios_are_lower_bounds": timeouts > 0,
            "ours_execute": sum(r["ours"]["valid"] for r in rows) / n}


# -- genlm-control's side ------------------------------------------------------------------
class GenLM:
    """genlm-control's SMC over our model object: AsyncTransformer + PromptedLLM, BoolCFG
    conditions (one per database), AWRS token sampler, our critic wrapped as a Potential."""

    def __init__(self, lm: Any, critic: bool, seed: int) -> None:
        from genlm.backend.llm import AsyncTransformer
        from genlm.control import AWRS, PromptedLLM

        self.lm, self.use_critic, self.seed = lm, critic, seed
        self.alm = AsyncTransformer(lm.model, lm.tokenizer)
        self.eos_bytes = [self.alm.byte_vocab[i].byte_string for i in sorted(lm.eos_ids)]
        self.base = PromptedLLM(self.alm, eos_byte_strings=self.eos_bytes)
        self._conditions: dict[str, Any] = {}
        self._critics: dict[str, Any] = {}
        self.compile_s: dict[str, float] = {}
        self.tokens = 0

        outer = self

        class CountingAWRS(AWRS):  # counts sampled tokens (progress of a timed-out run)
            async def sample(self, context, draw=None, verbosity=0):  # noqa: ANN001
                outer.tokens += 1
                return await super().sample(context, draw=draw, verbosity=verbosity)

        self._awrs = CountingAWRS

    def condition(self, bound: Any) -> Any:
        """The domain's schema grammar as genlm's BoolCFG, coerced to the LLM's tokens."""
        if bound.db not in self._conditions:
            import string

            from genlm.control import BoolCFG

            from potentials.sql_schema import schema_grammar_text

            t0 = time.perf_counter()
            # negated classes ([^']) range over a finite charset: printable ASCII plus every
            # other character of the database's questions, gold queries and schema
            texts = [bound.schema_text()] + [t.question + (t.gold or "") for t in bound.tasks()]
            charset = set(string.printable) | {c for s in texts for c in s}
            cfg = BoolCFG.from_lark(genlm_lark(schema_grammar_text(bound.schema, bound.aliases)),
                                    charset=charset)
            self._conditions[bound.db] = cfg.coerce(self.base, f=b"".join)
            self.compile_s[bound.db] = time.perf_counter() - t0
        return self._conditions[bound.db]

    def critic(self, bound: Any) -> Any:
        """Our critic (a ``potentials.Potential`` over text) as a genlm Potential over bytes."""
        if bound.critic is None:
            return None
        if bound.db not in self._critics:
            self._critics[bound.db] = wrap_critic(bound.critic).coerce(self.base, f=b"".join)
        return self._critics[bound.db]

    def accepts(self, bound: Any, query: str) -> bool:
        cond = self.condition(bound).potential
        return asyncio.run(cond.complete(list(query.encode()))) == 0

    def solve(self, bound: Any, prompt_ids: list[int], n_particles: int, max_tokens: int,
              timeout: float) -> dict[str, Any]:
        """One question: {"best", "seconds", "timed_out", "tokens"}."""
        import torch
        from genlm.control import EOS, PromptedLLM

        np.random.seed(self.seed)  # genlm's resamplers draw from numpy's global generator
        torch.manual_seed(self.seed)
        llm = PromptedLLM(self.alm, prompt_ids=prompt_ids, token_maps=self.base.token_maps)
        sampler = self._awrs(llm, self.condition(bound), seed=self.seed)
        critic = self.critic(bound) if self.use_critic else None
        self.tokens = 0
        self.alm.clear_cache()

        async def run() -> Any:
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda _loop, _ctx: None)  # futures a timeout orphans
            self.alm.cache_kv(prompt_ids)
            return await asyncio.wait_for(sampler.smc(
                n_particles=n_particles, ess_threshold=0.5, max_tokens=max_tokens,
                critic=critic, resampling_method="systematic"), timeout)

        t0 = time.perf_counter()
        try:
            seqs = asyncio.run(run())
        except TimeoutError:
            seqs = None
        seconds = time.perf_counter() - t0
        self.alm.reset_async_queries()
        self.alm.clear_cache()
        best = None if seqs is None else best_of(seqs.contexts, list(seqs.log_weights), EOS)
        return {"best": best, "seconds": seconds if seqs is not None else max(seconds, timeout),
                "timed_out": seqs is None, "tokens": self.tokens}


def wrap_critic(critic: Any) -> Any:
    """``critic`` as a genlm Potential over bytes (0..255): ``prefix`` is our prefix of the
    longest character prefix where ``critic.evaluate_at`` holds (a boundary schedule, as
    ours), ``complete`` our complete; bytes that are not UTF-8 text score −inf."""
    from genlm.control import Potential

    class TextCritic(Potential):
        def __init__(self) -> None:
            super().__init__(list(range(256)))

        async def prefix(self, context: Any) -> float:
            text = decode_prefix(bytes(context))
            if text is None:
                return NEG_INF
            return critic.prefix(last_boundary(text, critic.evaluate_at))

        async def complete(self, context: Any) -> float:
            try:
                text = bytes(context).decode("utf-8")
            except UnicodeDecodeError:
                return NEG_INF
            return critic.complete(text)

    return TextCritic()


# -- the run ---------------------------------------------------------------------------------
def solve_ours(lm: Any, dom: Any, task: Any, n_particles: int, max_tokens: int, seed: int,
               critic: bool, speculate: int | None = None) -> Any:
    """Our ``smc`` on ``task``: ``runner.solve`` (the domain's smc options), or with the
    critic left out (``speculate``: prompt-lookup draft tokens per forward; None = the
    domain's choice, 0 = off)."""
    import smc
    from smc.domains.runner import solve

    b = dom.for_task(task)
    options = dict(b.smc_options)
    if speculate is not None:
        options["speculate"] = speculate
    if critic:
        return solve(lm, dom, task, method="smc", n_particles=n_particles,
                     max_tokens=max_tokens, seed=seed, **options).result
    return smc.generate(lm, b.prompt(task.question, lm), constraint=b.constraint, critic=None,
                        method="smc", n_particles=n_particles, max_tokens=max_tokens, seed=seed,
                        **options)


def scored(bound: Any, task: Any, best: str | None) -> dict[str, Any]:
    ev = bound.evaluate(best, task)
    return {"best": best, "valid": ev.valid, "correct": ev.correct}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm.auto import tqdm

    import smc
    import smc.domains

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    lm = smc.load_model()
    dom = smc.domains.load("sql")
    tasks = select_tasks(type(dom).all_tasks(), args.questions)
    genlm = GenLM(lm, critic=not args.no_critic, seed=args.seed)
    bounds = {t.id: dom.for_task(t) for t in tasks}
    mismatch = []
    for t in tasks:  # grammar faithfulness: each gold, as written and lower-cased
        b = bounds[t.id]
        for q in (t.gold, t.gold.lower()):
            ours_ok = b.constraint.complete(q) == 0
            if ours_ok != genlm.accepts(b, q):
                mismatch.append({"id": t.id, "query": q, "ours": ours_ok, "genlm": not ours_ok})
    warm = tasks[0]  # untimed warm-up of both sides (Numba, torch, grammar caches)
    solve_ours(lm, dom, warm, args.particles, 8, args.seed, not args.no_critic)
    genlm.solve(bounds[warm.id], lm.encode(bounds[warm.id].prompt(warm.question, lm)),
                args.particles, 4, args.genlm_timeout)
    from smc.shared_prefix import forget_prompts

    forget_prompts(lm.model)  # timing starts with no cached prompt, as genlm's does
    rows = []
    bar = tqdm(tasks, desc="questions", unit="q", disable=args.json)
    for t in bar:
        b = bounds[t.id]
        max_tokens = args.max_tokens or b.max_tokens
        ours = solve_ours(lm, dom, t, args.particles, max_tokens, args.seed, not args.no_critic,
                          args.speculate)
        prompt_ids = lm.encode(b.prompt(t.question, lm))
        g = genlm.solve(b, prompt_ids, args.particles, max_tokens, args.genlm_timeout)
        row = {"id": t.id, "db": b.db, "question": t.question, "gold": t.gold,
               "ours": {**scored(b, t, ours.best), "seconds": ours.seconds,
                        "tokens": ours.tokens_generated},
               "genlm": {**scored(b, t, g["best"]), "seconds": g["seconds"],
                         "timed_out": g["timed_out"], "tokens": g["tokens"]}}
        rows.append(row)
        bar.set_postfix(ours=f"{row['ours']['seconds']:.1f}s",
                        genlm=f"{row['genlm']['seconds']:.0f}s")
    return {"config": {"questions": [t.id for t in tasks], "particles": args.particles,
                       "max_tokens": args.max_tokens or dom.max_tokens, "seed": args.seed,
                       "critic": not args.no_critic, "genlm_timeout_s": args.genlm_timeout,
                       "model": lm.name, "genlm_compile_s": genlm.compile_s,
                       "torch_threads": __import__("torch").get_num_threads(),
                       "prompt_cache_mib": __import__("smc.shared_prefix").shared_prefix
                       .prompt_cache_bytes() / 2**20},
            "grammar_mismatches": mismatch, "rows": rows, "summary": summarize(rows)}


# -- printing ----------------------------------------------------------------------------------
def _mark(side: dict[str, Any]) -> str:
    if side.get("timed_out"):
        return "timeout"
    return ("correct" if side["correct"] else "valid") if side["valid"] else "invalid"


def report(out: dict[str, Any]) -> str:
    """The per-question table and the summary as text."""
    cfg, s = out["config"], out["summary"]
    lines = [f"SQL, {cfg['model']}, {cfg['particles']} particles, max_tokens {cfg['max_tokens']}, "
             f"{cfg['torch_threads']} torch threads, "
             f"critic {'on' if cfg['critic'] else 'off'} on both sides, genlm timeout "
             f"{cfg['genlm_timeout_s']:.0f} s, seed {cfg['seed']}",
             "genlm BoolCFG compile (untimed): "
             + ", ".join(f"{db} {sec:.1f} s" for db, sec in cfg["genlm_compile_s"].items()), ""]
    head = f"{'question':12s} {'ours s':>7s} {'ours':>8s} {'genlm s':>8s} {'genlm':>8s} " \
           f"{'ratio':>7s} {'tok ours/genlm':>15s}"
    lines += [head, "-" * len(head)]
    for r in out["rows"]:
        o, g = r["ours"], r["genlm"]
        ge = "≥" if g["timed_out"] else ""
        g_s, ratio = f"{ge}{g['seconds']:.1f}", f"{ge}{g['seconds'] / o['seconds']:.1f}"
        lines.append(f"{r['id']:12s} {o['seconds']:7.1f} {_mark(o):>8s} {g_s:>8s} "
                     f"{_mark(g):>8s} {ratio:>7s} {o['tokens']:>7d}/{g['tokens']:<7d}")
    ge = "≥" if s["ratios_are_lower_bounds"] else ""
    so, sg = s["ours"], s["genlm"]
    lines += ["", f"{'':22s}{'ours':>10s}{'genlm':>10s}",
              f"{'median s/question':22s}{so['median_s']:10.1f}{sg['median_s']:10.1f}",
              f"{'p90 s/question':22s}{so['p90_s']:10.1f}{sg['p90_s']:10.1f}",
              f"{'total s':22s}{so['total_s']:10.1f}{sg['total_s']:10.1f}",
              f"{'accuracy':22s}{so['accuracy']:10.0%}{sg['accuracy']:10.0%}",
              f"{'validity (executes)':22s}{so['validity']:10.0%}{sg['validity']:10.0%}",
              f"{'tokens/s':22s}{so['tokens_per_s']:10.1f}{sg['tokens_per_s']:10.1f}", "",
              "speed ratio genlm/ours: median of per-question ratios "
              f"{ge}{s['ratio_median']:.1f}x, ratio of totals {ge}{s['ratio_total']:.1f}x; "
              f"throughput (tokens/s) ours/genlm {s['ratio_tokens_per_s']:.1f}x",
              f"our smc outputs that execute: {s['ours_execute']:.0%} "
              f"({round(s['ours_execute'] * s['questions'])}/{s['questions']})"]
    if s["genlm_timeouts"]:
        lines.append(f"genlm timed out on {s['genlm_timeouts']}/{s['questions']} questions "
                     f"(counted as failures at {cfg['genlm_timeout_s']:.0f} s: "
                     "ratios are lower bounds)")
    if out["grammar_mismatches"]:
        lines.append(f"WARNING: the two grammars disagree on {len(out['grammar_mismatches'])} gold "
                     f"queries: {out['grammar_mismatches']}")
    else:
        lines.append("grammar check: both grammars accept every selected gold query "
                     "(as written and lower-cased)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=10, help="how many (default 10)")
    ap.add_argument("--particles", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=None,
                    help="token budget (default: the domain's, 96)")
    ap.add_argument("--genlm-timeout", type=float, default=300.0,
                    help="seconds per genlm question before it counts as failed (default 300)")
    ap.add_argument("--no-critic", action="store_true", help="drop the critic on both sides")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speculate", type=int, default=None,
                    help="our side: prompt-lookup draft tokens per forward (default: the "
                         "SQL domain's, none)")
    ap.add_argument("--prompt-cache-mb", type=float, default=None,
                    help="our side: MiB of earlier prompts' KV caches kept for reuse "
                         "(SMC_DECODE_PROMPT_CACHE_MB; default 256; 0 = only the prompt in "
                         "use, so each question reuses only what it shares with the last)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads for both sides (default: torch's)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", type=Path, default=None,
                    help="also write the JSON object (with every output) to this file")
    args = ap.parse_args(argv)
    if args.particles < 1 or (args.max_tokens is not None and args.max_tokens < 1) \
            or args.genlm_timeout <= 0:
        ap.error("--particles and --max-tokens must be >= 1, --genlm-timeout > 0")
    try:
        import genlm.control  # noqa: F401
    except ImportError:
        print(f"genlm-control is not installed in this Python: {INSTALL}", file=sys.stderr)
        return 2
    if args.prompt_cache_mb is not None:
        os.environ["SMC_DECODE_PROMPT_CACHE_MB"] = str(args.prompt_cache_mb)
    out = run(args)
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out) if args.json else report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
