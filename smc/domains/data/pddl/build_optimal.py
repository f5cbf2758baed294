"""Write ``optimal.json``: the optimal plan length of each of the 220 pddlgym problems.

    python smc/domains/data/pddl/build_optimal.py [--seconds 60] [--nodes 300000]

A* with the admissible blocks-world heuristic (``potentials.pddl.planner``); where it
hits the node or time limit the length is recorded as null (and counted on stderr).
Each record also keeps the number of blocks, the A* expansions and the seconds taken.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from potentials.pddl.parser import load_domain, load_problem
from potentials.pddl.planner import astar
from potentials.pddl.problems import problem_files
from potentials.pddl.strips import Simulator

OUT = Path(__file__).resolve().parent / "optimal.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="A* time limit per problem")
    ap.add_argument("--nodes", type=int, default=300_000, help="A* expansion limit per problem")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    table: dict[str, dict] = {}
    domains: dict[Path, object] = {}
    started = time.perf_counter()
    for pf in problem_files():
        dom = domains.setdefault(pf.domain, load_domain(pf.domain))
        prob = load_problem(pf.problem, dom)  # type: ignore[arg-type]
        res = astar(Simulator(dom, prob), max_nodes=args.nodes,  # type: ignore[arg-type]
                    max_seconds=args.seconds)
        table[pf.id] = {
            "blocks": len(prob.objects),
            "optimal_length": None if res.plan is None else len(res.plan),
            "expanded": res.expanded,
            "seconds": round(res.seconds, 3),
            "limit_hit": res.limit_hit,
        }
        print(f"{pf.id}: {table[pf.id]}", file=sys.stderr, flush=True)
    unsolved = [k for k, v in table.items() if v["optimal_length"] is None]
    meta = {"planner": "A* (blocks-world admissible heuristic)", "seconds_limit": args.seconds,
            "nodes_limit": args.nodes, "unsolved": len(unsolved),
            "total_seconds": round(time.perf_counter() - started, 1)}
    args.out.write_text(json.dumps({"meta": meta, "problems": table}, indent=1) + "\n",
                        encoding="utf-8")
    print(f"wrote {args.out}: {len(table)} problems, {len(unsolved)} unsolved within the limits",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
