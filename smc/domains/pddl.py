"""The ``pddl`` domain: robot plans for blocks-world PDDL problems.

    dom = smc.domains.load("pddl", problem="generated_blocks/problem13")   # or a .pddl path
    res = smc.generate(lm, dom.prompt("", lm), constraint=dom.constraint, critic=dom.critic)
    dom.evaluate(res.best, dom.task(""))

* constraint: a Lark grammar generated for the problem — one ground action per line,
  ``(stack b1 b0)``, over the domain's actions and the problem's objects of the right types;
* critic: the STRIPS simulator run on the plan prefix at every action boundary (an
  inapplicable action → −inf), and at EOS the goal must hold;
* tasks: the 220 blocks-world problems of pddlgym 0.0.7, ordered by number of blocks
  (then id), so ``tasks()[:20]`` — the 20 smallest, 2 to 4 blocks — is the CPU benchmark
  subset (``SMALL``);
* evaluation: valid = the plan reads and every action is applicable, correct = the goal
  holds at the end, details = plan length, optimal length (A*, shipped in
  ``data/pddl/optimal.json``), their ratio and the first failure.

The question is an extra instruction appended to the problem statement; empty means
``DEFAULT_QUESTION``.  The problem comes from ``problem=`` (CLI ``--problem``), from the
task (``for_task``), or from a JSONL line's ``"problem"`` field.
"""

from __future__ import annotations

import argparse
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from potentials.lark_grammar import LarkGrammar
from potentials.pddl.critic import PlanCritic
from potentials.pddl.parser import Problem, StripsDomain, load_domain, load_problem
from potentials.pddl.plan_text import plan_grammar, read_plan
from potentials.pddl.planner import astar
from potentials.pddl.problems import ProblemFile, problem_files, resolve
from potentials.pddl.strips import Simulator, format_action
from smc.domains.base import Domain, Evaluation, Task

OPTIMAL_JSON = Path(__file__).resolve().parent / "data" / "pddl" / "optimal.json"
DEFAULT_QUESTION = "Write a plan that reaches the goal."
SMALL = 20                      # tasks()[:SMALL]: the CPU benchmark subset
EXAMPLES = ("generated_blocks/problem26", "generated_blocks/problem14",
            "generated_blocks_test/problem41")
PLAN_SECONDS = 10.0             # A* budget for the optimal length of a problem off the table


@lru_cache(maxsize=1)
def optimal_table() -> dict[str, dict[str, Any]]:
    """The shipped table ``id -> {blocks, optimal_length (None: A* limit), ...}``."""
    if not OPTIMAL_JSON.is_file():
        raise ValueError(f"{OPTIMAL_JSON} is missing; rebuild it with "
                         f"python smc/domains/data/pddl/build_optimal.py")
    return json.loads(OPTIMAL_JSON.read_text(encoding="utf-8"))["problems"]


@lru_cache(maxsize=8)
def _domain_file(path: str) -> StripsDomain:
    return load_domain(path)


@lru_cache(maxsize=64)
def _bound(problem: str, domain: str) -> tuple[Problem, Simulator, str]:
    """(problem, simulator, plan grammar text) of a problem file, cached."""
    dom = _domain_file(domain)
    prob = load_problem(problem, dom)
    sim = Simulator(dom, prob)
    return prob, sim, plan_grammar(sim)


@lru_cache(maxsize=64)
def optimal_length(problem_id: str, problem: str, domain: str) -> int | None:
    """The optimal plan length: from the shipped table for the 220 problems, else by A*
    within ``PLAN_SECONDS`` (None if it hits the limit or the goal is unreachable)."""
    row = optimal_table().get(problem_id)
    if row is not None and Path(problem).resolve() == _shipped_path(problem_id):
        return row["optimal_length"]
    res = astar(_bound(problem, domain)[1], max_seconds=PLAN_SECONDS)
    return None if res.plan is None else len(res.plan)


def _shipped_path(problem_id: str) -> Path | None:
    for pf in problem_files():
        if pf.id == problem_id:
            return pf.problem.resolve()
    return None


def _atoms(atoms, dom: StripsDomain) -> str:
    order = {p: i for i, p in enumerate(dom.predicates)}
    return " ".join(format_action(a) for a in sorted(atoms, key=lambda a: (order[a[0]], a)))


def describe(prob: Problem, dom: StripsDomain) -> str:
    """Objects, initial state and goal of a problem, as PDDL atoms on three lines."""
    goal = _atoms(prob.goal, dom)
    if prob.goal_neg:
        goal += " " + " ".join(f"(not {format_action(a)})" for a in prob.goal_neg)
    objs = prob.object_order or sorted(prob.objects)
    return (f"Objects: {' '.join(objs)}\nInitial state: {_atoms(prob.init, dom)}\n"
            f"Goal: {goal}")


def describe_actions(dom: StripsDomain) -> str:
    """One line per action schema: its preconditions and effects."""
    lines = []
    for a in dom.actions.values():
        head = format_action((a.name, *(v for v, _ in a.params)))
        pre = " ".join(format_action(p) for p in a.pre) or "nothing"
        pre += "".join(f" (not {format_action(p)})" for p in a.pre_neg)
        lines.append(f"{head}: needs {pre}; makes true "
                     f"{' '.join(format_action(p) for p in a.add) or 'nothing'}; makes false "
                     f"{' '.join(format_action(p) for p in a.delete) or 'nothing'}.")
    return "\n".join(lines)


class PDDLDomain(Domain):
    """Blocks-world plans for a PDDL problem (see the module doc)."""

    name: ClassVar[str] = "pddl"
    description: ClassVar[str] = (
        "Blocks-world robot plans (PDDL): a grammar of the problem's ground actions, a STRIPS "
        "simulator critic, 220 pddlgym problems scored against optimal plan lengths.")
    max_tokens: ClassVar[int] = 128
    system: ClassVar[str | None] = (
        "You are a robot planner. You answer with a plan: one PDDL action per line, "
        "and nothing else.")

    def __init__(self, problem: str | Path | None = None, domain: str | Path | None = None
                 ) -> None:
        self.problem_file: ProblemFile | None = None
        self.constraint = None
        self.critic = None
        if problem is None:
            if domain is not None:
                raise ValueError("pddl: domain= needs problem= as well")
            return
        pf = resolve(problem)
        if domain is not None:
            if not Path(domain).is_file():
                raise ValueError(f"pddl: domain file {domain} does not exist")
            pf = ProblemFile(pf.id, pf.problem, Path(domain))
        elif not pf.domain.is_file():
            raise ValueError(f"pddl: no domain file {pf.domain} next to {pf.problem}; "
                             f"pass domain=PATH")
        self.problem_file = pf
        self.pddl_domain = _domain_file(str(pf.domain))
        self.pddl_problem, self.sim, self.grammar_text = _bound(str(pf.problem), str(pf.domain))
        self.constraint = LarkGrammar(self.grammar_text)
        self.critic = PlanCritic(self.sim)
        opt = self.optimal_length()
        # ~9 tokens per action line (SmolLM2): room for plans twice the optimal length
        self.max_tokens = int(min(512, 18 * opt + 24 if opt is not None
                                  else 32 * len(self.pddl_problem.objects)))

    # -- problem ---------------------------------------------------------------------
    def _need_problem(self) -> ProblemFile:
        if self.problem_file is None:
            raise ValueError("pddl: no problem given; pass problem=ID_OR_PATH (CLI --problem) "
                             "or bind a task with for_task")
        return self.problem_file

    def optimal_length(self) -> int | None:
        pf = self._need_problem()
        return optimal_length(pf.id, str(pf.problem), str(pf.domain))

    # -- prompts -----------------------------------------------------------------------
    def instruction(self, question: str) -> str:
        pf = self._need_problem()
        dom = self.pddl_domain
        parts = [f"Blocks world (PDDL domain {dom.name}). The actions:",
                 describe_actions(dom),
                 "Write the plan as one action per line, such as (pick-up a), with no other "
                 "text.", ""]
        shots = [e for e in EXAMPLES if e != pf.id][:2]
        for k, ex in enumerate(shots, 1):
            ex_pf = resolve(ex)
            prob, sim, _ = _bound(str(ex_pf.problem), str(ex_pf.domain))
            plan = astar(sim).plan
            assert plan is not None, f"example {ex} has no plan"
            parts += [f"Example {k}.", describe(prob, sim.domain), "Plan:",
                      *(format_action(a) for a in plan), ""]
        parts += ["Now this problem.", describe(self.pddl_problem, dom),
                  (question or "").strip() or DEFAULT_QUESTION]
        return "\n".join(parts)

    def prompt(self, question: str, lm: Any = None) -> str:
        """As ``Domain.prompt``, but an empty question means ``DEFAULT_QUESTION``."""
        if not isinstance(question, str):
            raise ValueError(f"pddl: the question must be a str, got {type(question).__name__}")
        return super().prompt(question.strip() or DEFAULT_QUESTION, lm)

    # -- tasks -------------------------------------------------------------------------
    def _task_for(self, pf: ProblemFile, question: str, task_id: str | None = None,
                  **meta: Any) -> Task:
        return Task(task_id or pf.id, question.strip() or DEFAULT_QUESTION,
                    meta.pop("gold", None),
                    {"problem": str(pf.problem), "domain": str(pf.domain), "problem_id": pf.id,
                     **meta})

    def tasks(self) -> list[Task]:
        """The 220 pddlgym problems, smallest first (blocks, then id); gold = optimal length
        (None where A* hit its limit); ``tasks()[:SMALL]`` is the CPU benchmark subset."""
        table = optimal_table()
        out = []
        for pf in problem_files():
            row = table.get(pf.id)
            if row is None:
                raise ValueError(f"{OPTIMAL_JSON} has no row for {pf.id}; rebuild it")
            out.append(self._task_for(pf, DEFAULT_QUESTION, gold=row["optimal_length"],
                                      blocks=row["blocks"]))
        return sorted(out, key=lambda t: (t.meta["blocks"], t.id))

    def task(self, question: str, **fields: Any) -> Task:
        """A task on ``fields["problem"]`` (id or path; ``fields["domain"]`` optional) or
        on the bound problem; the question is an extra instruction (may be empty)."""
        if not isinstance(question, str):
            raise ValueError(f"pddl: the question must be a str, got {type(question).__name__}")
        if "problem" in fields:
            bound = PDDLDomain(fields.pop("problem"), fields.pop("domain", None))
        else:
            if "domain" in fields:
                raise ValueError("pddl: a task's domain field needs a problem field")
            bound = self
        pf = bound._need_problem()
        gold = fields.pop("gold", None)
        if gold is None:
            gold = bound.optimal_length()
        task_id = fields.pop("id", None)
        return self._task_for(pf, question, None if task_id is None else str(task_id),
                              gold=gold, blocks=len(bound.pddl_problem.objects), **fields)

    def for_task(self, task: Task) -> PDDLDomain:
        problem = task.meta.get("problem")
        if problem is None:
            return self if self.problem_file is not None else PDDLDomain(task.id)
        if self.problem_file is not None and str(self.problem_file.problem) == problem \
                and str(self.problem_file.domain) == task.meta.get("domain"):
            return self
        return PDDLDomain(problem, task.meta.get("domain"))

    # -- scoring -----------------------------------------------------------------------
    def evaluate(self, output: str | None, task: Task) -> Evaluation:
        """valid: every line is an action and each is applicable in turn; correct: the goal
        holds after the plan; details: length, optimal_length, ratio, first_failure."""
        bound = self.for_task(task)
        optimal = task.gold if task.gold is not None else bound.optimal_length()
        details: dict[str, Any] = {"length": None, "optimal_length": optimal, "ratio": None,
                                   "first_failure": None}
        text = self.clean(output)
        if text is None:
            details["first_failure"] = {"index": None, "reason": "no output"}
            return Evaluation(False, False, 0.0, details)
        plan = read_plan(text)
        details["length"] = len(plan.actions)
        if plan.error is not None:
            details["first_failure"] = {"index": len(plan.actions) + 1, "reason": plan.error}
            return Evaluation(False, False, 0.0, details)
        step = bound.sim.execute(plan.actions)
        if step.failure is not None:
            details["first_failure"] = {"index": step.executed + 1,
                                        "action": format_action(plan.actions[step.executed]),
                                        "reason": step.failure}
            return Evaluation(False, False, 0.0, details)
        correct = bound.sim.satisfies_goal(step.state)
        if not correct:
            details["first_failure"] = {"index": None, "reason": "the goal does not hold "
                                        "after the last action"}
        elif optimal is not None:
            details["ratio"] = 1.0 if optimal == 0 else len(plan.actions) / optimal
        return Evaluation(True, correct, 1.0 if correct else 0.0, details)

    # -- command line --------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--problem", metavar="PATH_OR_ID",
                            help="a PDDL problem file or a shipped id such as "
                                 "generated_blocks/problem13 (see --list-tasks)")
        parser.add_argument("--domain", metavar="PATH", default=None,
                            help="the PDDL domain file (default: pddlgym's for the problem)")

    @classmethod
    def options_from(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {"problem": getattr(args, "problem", None), "domain": getattr(args, "domain", None)}

    def __repr__(self) -> str:
        pf = self.problem_file
        return f"PDDLDomain(problem={pf.id!r})" if pf else "PDDLDomain()"
