"""The ``smc-decode`` command line.

    smc-decode DOMAIN --question TEXT | --questions FILE.jsonl | --tasks N [...]
    smc-decode demo [--method smc] [--particles 16] [--json]
    smc-decode grammar --grammar arith|json|FILE.lark --prompt TEXT [--chat] [...]

DOMAIN is a plugin of the ``smc.domains`` entry-point group (shipped: sql,
python, smiles, pddl); ``smc-decode DOMAIN --help`` lists its options.

``--json`` prints one JSON object per run (best, posterior, log_ml, ess_trace,
method, n_particles, seconds, tokens_generated); otherwise a progress bar while
it works and a readable table at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEMO_TARGET = 24
DEMO_QUESTION = (
    "Write one arithmetic expression that equals 24, using only numbers, + - * / and "
    "parentheses. Answer with the expression only."
)


def _common(p: argparse.ArgumentParser) -> None:
    from smc.generate import METHODS, RESAMPLERS

    p.add_argument("--method", default="smc", choices=METHODS)
    p.add_argument("--particles", type=int, default=16, help="number of particles N")
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resampler", default="systematic", choices=RESAMPLERS)
    p.add_argument("--ess-threshold", type=float, default=0.5)
    p.add_argument("--model", default=None, help="HF model id or local path (default: embedded)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="PNG", help="write ESS and log-weight traces to a PNG")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smc-decode", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="arithmetic expressions that equal 24 (embedded model)")
    _common(demo)
    gram = sub.add_parser("grammar", help="sample from a Lark grammar")
    gram.add_argument("--grammar", required=True, help="shipped grammar name or a .lark file")
    gram.add_argument("--start", default="start")
    gram.add_argument("--prompt", required=True)
    gram.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template")
    _common(gram)
    from smc.domains import domain_class, names

    for name in names():
        if name in ("demo", "grammar"):
            continue
        try:
            summary = domain_class(name).description.split("\n")[0]
        except Exception as err:  # a broken third-party plugin must not break --help
            summary = f"(cannot load: {err})"
        sub.add_parser(name, help=summary, add_help=False)
    return parser


def _grammar_text(name: str) -> str:
    import grammars

    path = Path(name)
    if path.suffix == ".lark" or path.is_file():
        if not path.is_file():
            raise SystemExit(f"smc-decode: grammar file {name} does not exist")
        return path.read_text()
    try:
        return grammars.load(name)
    except ValueError as err:
        raise SystemExit(f"smc-decode: {err}") from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("demo", "grammar") and not argv[0].startswith("-"):
        from smc.domains import names

        if argv[0] in names():
            from smc import cli_domains

            return cli_domains.main(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    import potentials
    import smc
    from smc.arithmetic import ArithmeticTarget

    try:
        if args.command == "demo":
            constraint = potentials.LarkGrammar(_grammar_text("arith"))
            critic = ArithmeticTarget(DEMO_TARGET)
        else:
            constraint = potentials.LarkGrammar(_grammar_text(args.grammar), start=args.start)
            critic = None
    except potentials.GrammarError as err:
        print(f"smc-decode: bad grammar: {err}", file=sys.stderr)
        return 2
    if not args.json:
        print("loading model ...", file=sys.stderr)
    lm = smc.load_model(args.model, device=args.device)
    if args.command == "demo":
        prompt = lm.chat(DEMO_QUESTION)
    else:
        prompt = lm.chat(args.prompt) if args.chat else args.prompt
    try:
        res = smc.generate(
            lm, prompt, constraint=constraint, critic=critic, method=args.method,
            n_particles=args.particles, ess_threshold=args.ess_threshold,
            resampler=args.resampler, max_tokens=args.max_tokens, seed=args.seed,
            progress=not args.json,
        )
    except ValueError as err:
        print(f"smc-decode: {err}", file=sys.stderr)
        return 2
    if args.plot:
        from smc.plots import plot_traces

        plot_traces(res, args.plot)
    if args.json:
        print(json.dumps(res.to_json()))
    else:
        print(res.summary())
        if args.command == "demo" and res.best is not None:
            from smc.arithmetic import evaluate

            print(f"best: {res.best!r} = {evaluate(res.best)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
