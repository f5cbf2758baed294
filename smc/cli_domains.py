"""``smc-decode DOMAIN ...``: run a domain plugin on questions from the command line.

    smc-decode sql --db shop --question "How many orders?" [--method smc] [--particles 16]
               [--max-tokens 96] [--seed 0] [--model PATH_OR_ID] [--json]
    smc-decode sql --db shop --questions tasks.jsonl --json   # one JSON object per input line
    smc-decode sql --db shop --tasks 5                         # the domain's own first 5 tasks
    smc-decode pddl --problem generated_blocks/problem13       # no question: the domain's own

Each question becomes a ``Task``; the domain bound to it (``for_task``) gives the
prompt, the constraint and the critic; ``evaluate`` scores the best output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from smc.domains import Domain, Task, domain_class


def build_parser(name: str) -> argparse.ArgumentParser:
    """The argument parser of domain ``name``: the common options and the domain's own."""
    from smc.generate import METHODS, PROPOSALS, RESAMPLERS, STEPS

    cls = domain_class(name)
    p = argparse.ArgumentParser(prog=f"smc-decode {name}", description=cls.description or None)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--question", help="one question (free text)")
    src.add_argument("--questions", metavar="FILE.jsonl",
                     help='one JSON object per line: {"question": ..., "id"?, "gold"?, ...}')
    src.add_argument("--task", metavar="ID", action="append",
                     help="a task of the domain's own set, by id (repeatable)")
    src.add_argument("--tasks", metavar="N", type=int,
                     help="the first N tasks of the domain's own set (0: all)")
    src.add_argument("--list-tasks", action="store_true", help="print the task ids and exit")
    p.add_argument("--method", default="smc", choices=METHODS)
    p.add_argument("--proposal", default="mask", choices=PROPOSALS)
    p.add_argument("--particles", type=int, default=16, help="number of particles N")
    p.add_argument("--max-tokens", type=int, default=None,
                   help=f"token budget per output (default: the domain's, {cls.max_tokens})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resampler", default="systematic", choices=RESAMPLERS)
    p.add_argument("--ess-threshold", type=float, default=0.5)
    p.add_argument("--model", default=None, help="HF model id or local path (default: embedded)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="model dtype (default: bfloat16 on CUDA and bf16-capable CPUs)")
    p.add_argument("--step", default="auto", choices=STEPS,
                   help="auto: on the device when the model is on CUDA; host; device")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 is far faster on a busy CPU)")
    p.add_argument("--json", action="store_true", help="print one JSON object per question")
    cls.add_arguments(p)
    return p


def _read_questions(dom: Domain, path: str) -> list[Task]:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"questions file {path} does not exist")
    tasks = []
    for lineno, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}:{lineno}: not JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(row, dict) or "question" not in row:
            raise ValueError(f'{path}:{lineno}: expected an object with a "question" field')
        row = dict(row)
        row.setdefault("id", f"{file.stem}:{lineno}")
        try:
            tasks.append(dom.task(row.pop("question"), **row))
        except ValueError as err:
            raise ValueError(f"{path}:{lineno}: {err}") from None
    if not tasks:
        raise ValueError(f"questions file {path} has no questions")
    return tasks


def select_tasks(dom: Domain, args: argparse.Namespace) -> list[Task]:
    """The tasks the arguments ask for (a question, a JSONL file, ids or the first N)."""
    if args.question is not None:
        return [dom.task(args.question)]
    if args.questions is None and not args.task and args.tasks is None:
        return [dom.task("")]  # the domain decides (pddl: its default request; else an error)
    if args.questions is not None:
        return _read_questions(dom, args.questions)
    own = dom.tasks()
    if args.task:
        by_id = {t.id: t for t in own}
        missing = [i for i in args.task if i not in by_id]
        if missing:
            sample = ", ".join(list(by_id)[:5])
            raise ValueError(f"unknown task id(s) {', '.join(missing)}; e.g. {sample}")
        return [by_id[i] for i in args.task]
    if args.tasks is not None and args.tasks < 0:
        raise ValueError(f"--tasks must be >= 0, got {args.tasks}")
    if not own:
        raise ValueError(f"domain {dom.name!r} ships no tasks; pass --question or --questions")
    return own if not args.tasks else own[: args.tasks]


def run_task(lm: Any, dom: Domain, task: Task, args: argparse.Namespace,
             progress: bool) -> dict[str, Any]:
    """Generate for one task and score the best output: a JSON-ready record."""
    from smc.domains.runner import solve

    solved = solve(lm, dom, task, method=args.method, proposal=args.proposal,
                   n_particles=args.particles, ess_threshold=args.ess_threshold,
                   resampler=args.resampler, max_tokens=args.max_tokens, seed=args.seed,
                   progress=progress, step=args.step)
    return {**solved.to_json(), "_result": solved.result}


def _print_record(record: dict[str, Any]) -> None:
    res = record.pop("_result")
    print(f"\n== {record['id']}: {record['question']}")
    print(res.summary())
    ev = record["evaluation"]
    print(f"evaluation: valid={ev['valid']} correct={ev['correct']} score={ev['score']:.3f}"
          + (f"  {json.dumps(ev['details'], default=str)}" if ev["details"] else ""))


def main(name: str, argv: list[str]) -> int:
    """Entry of ``smc-decode NAME ...``; returns the exit status (2 on bad input)."""
    args = build_parser(name).parse_args(argv)
    cls = domain_class(name)
    try:
        dom = cls(**cls.options_from(args))
        if args.list_tasks:
            for t in dom.tasks():
                print(f"{t.id}\t{t.question[:100]}")
            return 0
        tasks = select_tasks(dom, args)
    except (ValueError, OSError) as err:
        print(f"smc-decode {name}: {err}", file=sys.stderr)
        return 2
    import smc

    if args.threads is not None:
        if args.threads < 1:
            print(f"smc-decode {name}: --threads must be >= 1", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(args.threads)
    if not args.json:
        print(f"loading model ... ({len(tasks)} question{'s' * (len(tasks) != 1)})",
              file=sys.stderr)
    lm = smc.load_model(args.model, device=args.device, dtype=args.dtype)
    outer = None
    if not args.json and len(tasks) > 1:
        from tqdm.auto import tqdm

        outer = tqdm(total=len(tasks), desc=name, unit="question")
    records = []
    for task in tasks:
        try:
            record = run_task(lm, dom, task, args, progress=not args.json and outer is None)
        except ValueError as err:
            print(f"smc-decode {name}: {task.id}: {err}", file=sys.stderr)
            return 2
        if args.json:
            record.pop("_result")
            print(json.dumps(record, default=str), flush=True)
        else:
            records.append(record)
        if outer is not None:
            outer.update(1)
    if outer is not None:
        outer.close()
    for record in records:
        _print_record(record)
    if len(records) > 1:
        n = len(records)
        valid = sum(r["evaluation"]["valid"] for r in records)
        correct = sum(r["evaluation"]["correct"] for r in records)
        print(f"\n{n} questions: valid {valid}/{n}, correct {correct}/{n}")
    return 0
