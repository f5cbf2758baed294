"""The pddl domain: PDDL parser, STRIPS simulator, optimal planner, plan grammar, plan
critic, evaluator and the domain wiring (API, tasks, CLI options, SMC with a FunctionLM)."""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math

import numpy as np
import pytest

import potentials
import smc
from potentials.pddl import (
    PDDLError,
    PlanCritic,
    Simulator,
    astar,
    bfs,
    format_action,
    is_blocks_world,
    load_domain,
    load_problem,
    parse_domain,
    parse_problem,
    plan_grammar,
    read_plan,
)
from potentials.pddl.planner import blocks_heuristic
from potentials.pddl.problems import FAMILIES, pddlgym_dir, problem_files, resolve
from smc.domains.pddl import DEFAULT_QUESTION, SMALL, PDDLDomain, optimal_table

if importlib.util.find_spec("pddlgym") is None:      # its files are read, never imported
    pytest.skip("the pddl domain reads pddlgym's problem files (pip install --no-deps "
                "pddlgym==0.0.7)", allow_module_level=True)

NEG_INF = float("-inf")


def sim_of(problem_id: str) -> Simulator:
    pf = resolve(problem_id)
    dom = load_domain(pf.domain)
    return Simulator(dom, load_problem(pf.problem, dom))


def tower_problem(blocks: str = "a b c") -> str:
    """Blocks on the table; goal: the first on the second on ... (a tower)."""
    names = blocks.split()
    init = " ".join(f"(clear {b}) (ontable {b})" for b in names)
    goal = " ".join(f"(on {x} {y})" for x, y in itertools.pairwise(names))
    return (f"(define (problem tower) (:domain blocks) (:objects {' '.join(names)} - block)"
            f" (:init {init} (handempty)) (:goal (and {goal})))")


@pytest.fixture(scope="module")
def four_op():
    return load_domain(pddlgym_dir() / "blocks_operator_actions.pddl")


# -- parser ------------------------------------------------------------------------------
def test_domain_parses_into_schemas(four_op):
    assert four_op.name == "blocks"
    assert set(four_op.actions) == {"pick-up", "put-down", "stack", "unstack"}
    assert four_op.predicates["on"] == ("block", "block")
    assert four_op.predicates["handempty"] == ()
    unstack = four_op.actions["unstack"]
    assert unstack.params == (("?x", "block"), ("?y", "block"))
    assert set(unstack.pre) == {("on", "?x", "?y"), ("clear", "?x"), ("handempty",)}
    assert ("holding", "?x") in unstack.add and ("on", "?x", "?y") in unstack.delete
    assert is_blocks_world(four_op)


def test_robot_variant_parses_and_is_recognised():
    dom = load_domain(pddlgym_dir() / "blocks.pddl")
    assert dom.types["robot"] == "object"
    assert dom.actions["stack"].params[-1] == ("?robot", "robot")
    assert ("stack", "?x", "?y") in dom.actions["stack"].pre      # pddlgym's action literal
    assert is_blocks_world(dom)


def test_all_220_problems_are_listed_and_a_sample_parses(four_op):
    files = problem_files()
    assert len(files) == 220 and len({f.id for f in files}) == 220
    assert {f.id.split("/")[0] for f in files} == set(FAMILIES)
    for pf in files[::11]:
        prob = load_problem(pf.problem, four_op)
        assert prob.goal and ("handempty",) in prob.init
        assert all(a[0] in four_op.predicates for a in prob.init)


@pytest.mark.parametrize("text, line, column, words", [
    ("(define (domain d)\n  (:predicates (p ?x)\n", 2, 3, "unclosed"),
    ("(define (domain d))\n)", 2, 1, "unbalanced"),
    ("(define (domain d) (:predicates (p ?x))\n (:action a :parameters (?x)\n"
     "   :precondition (or (p ?x)) :effect (p ?x)))", 3, 18, "'or'"),
    ("(define (domain d) (:predicates (p ?x))\n (:action a :parameters (?x)\n"
     "   :precondition (q ?x) :effect (p ?x)))", 3, 18, "unknown predicate"),
    ("(define (domain d) (:predicates (p ?x))\n (:action a :parameters (?x)\n"
     "   :effect (p ?y)))", 3, 15, "unknown parameter '?y'"),
    ("(define (domain d) (:functions (f)))", 1, 20, "unsupported domain section"),
])
def test_malformed_domain_names_file_line_and_column(text, line, column, words):
    with pytest.raises(PDDLError) as err:
        parse_domain(text, "bad.pddl")
    assert (err.value.line, err.value.column) == (line, column)
    assert str(err.value).startswith(f"bad.pddl:{line}:{column}: ") and words in str(err.value)


def test_malformed_problem_errors(four_op):
    ok = tower_problem()
    assert parse_problem(ok, four_op).goal == (("on", "a", "b"), ("on", "b", "c"))
    for bad, words in [(ok.replace("(on a b)", "(on a z)"), "unknown object 'z'"),
                       (ok.replace("(on a b)", "(on a)"), "takes 2 arguments"),
                       (ok.replace("(:domain blocks)", "(:domain other)"), "domain 'other'"),
                       (ok.replace("(:goal", "(:gaol"), "unsupported problem section")]:
        with pytest.raises(PDDLError, match=words):
            parse_problem(bad, four_op, "p.pddl")
    with pytest.raises(PDDLError, match=r"p.pddl:1:\d+: .*'-'"):
        parse_problem(ok.replace("a b c - block", "a b c -"), four_op, "p.pddl")


# -- simulator ---------------------------------------------------------------------------
def test_simulator_runs_a_known_plan_to_the_goal(four_op):
    sim = Simulator(four_op, parse_problem(tower_problem(), four_op))
    plan = [("pick-up", "b"), ("stack", "b", "c"), ("pick-up", "a"), ("stack", "a", "b")]
    step = sim.execute(plan)
    assert step.failure is None and step.executed == 4 and sim.satisfies_goal(step.state)
    assert not sim.satisfies_goal(sim.execute(plan[:3]).state)
    assert ("holding", "a") in sim.execute(plan[:3]).state


def test_simulator_rejects_inapplicable_and_malformed_actions(four_op):
    sim = Simulator(four_op, parse_problem(tower_problem(), four_op))
    assert sim.unmet(sim.init, ("stack", "a", "b")) == ["(holding a)", "(handfull)"]
    step = sim.execute([("pick-up", "a"), ("pick-up", "b")])
    assert step.executed == 1 and "action 2 (pick-up b) is not applicable" in step.failure
    assert "(handempty)" in step.failure
    for action, words in [(("fly", "a"), "unknown action"), (("pick-up", "z"), "unknown object"),
                          (("stack", "a"), "takes 2 arguments")]:
        with pytest.raises(ValueError, match=words):
            sim.apply(sim.init, action)


def test_successors_are_exactly_the_applicable_ground_actions(four_op):
    sim = sim_of("blocks_operator_actions/problem1")
    state = sim.init
    for _ in range(6):
        objs = sim.objects_of("block")
        ground = [(a.name, *args) for a in four_op.actions.values()
                  for args in itertools.product(objs, repeat=len(a.params))]
        expected = {(g, sim.apply(state, g)) for g in ground if not sim.unmet(state, g)}
        got = list(sim.successors(state))
        assert set(got) == expected and len(got) == len(expected)
        state = sorted(got)[0][1]


# -- planner -----------------------------------------------------------------------------
SMALL_IDS = ["generated_blocks/problem19", "generated_blocks/problem24",
             "generated_blocks/problem26", "blocks_operator_actions/problem1",
             "blocks_operator_actions_test/problem1", "blocks_operator_actions_test/problem5",
             "generated_blocks/problem0", "generated_blocks_test/problem45"]


@pytest.mark.parametrize("problem_id", SMALL_IDS)
def test_astar_is_optimal_against_brute_force_bfs(problem_id):
    sim = sim_of(problem_id)
    a, b = astar(sim), bfs(sim)
    assert a.plan is not None and b.plan is not None
    assert len(a.plan) == len(b.plan)
    step = sim.execute(a.plan)
    assert step.failure is None and sim.satisfies_goal(step.state)
    # the heuristic is a lower bound all along the optimal plan
    h = blocks_heuristic(sim)
    state = sim.init
    for i, action in enumerate(a.plan):
        assert h(state) <= len(a.plan) - i
        state = sim.apply(state, action)
    assert h(state) == 0


def test_heuristic_is_admissible_on_every_reachable_state():
    sim = sim_of("blocks_operator_actions_test/problem1")        # goal: (holding a)
    h = blocks_heuristic(sim)
    states, frontier = {sim.init}, [sim.init]
    while frontier:
        frontier = [t for s in frontier for _, t in sim.successors(s) if t not in states]
        states |= set(frontier)
    for s in states:
        true = len(bfs(Simulator(sim.domain, _with_init(sim.problem, s))).plan)
        assert h(s) <= true


def _with_init(problem, state):
    from dataclasses import replace
    return replace(problem, init=frozenset(state))


def test_planner_reports_its_limit_and_unreachable_goals(four_op):
    sim = sim_of("blocks_medium/problem0")
    res = astar(sim, max_nodes=3)
    assert res.plan is None and res.limit_hit
    text = tower_problem().replace("(on a b) (on b c)", "(on a b) (on b a)")
    res = astar(Simulator(four_op, parse_problem(text, four_op)), max_nodes=100_000)
    assert res.plan is None and not res.limit_hit


def test_shipped_optimal_table_matches_the_planner_on_the_small_subset():
    table = optimal_table()
    assert len(table) == 220
    for task in PDDLDomain().tasks()[:SMALL]:
        res = astar(sim_of(task.id))
        assert table[task.id]["optimal_length"] == len(res.plan) == task.gold


# -- grammar and critic ------------------------------------------------------------------
@pytest.fixture(scope="module")
def medium():
    sim = sim_of("generated_blocks/problem15")
    plan = astar(sim).plan
    return sim, plan, potentials.LarkGrammar(plan_grammar(sim))


def test_grammar_accepts_planner_plans_and_rejects_unknown_objects(medium):
    sim, plan, g = medium
    text = "\n".join(format_action(a) for a in plan)
    assert g.complete(text) == 0.0 and g.complete(text + "\n") == 0.0
    bad_obj = sim.objects_of("block")[0] + "x"
    for bad in [f"(pick-up {bad_obj})", "(pick-up)", "(stack b0)", "(fly b0)",
                "(pick-up  b0)", "(pick-up b0)\n\n(put-down b0)", "(PICK-UP b0)"]:
        assert g.complete(bad) == NEG_INF, bad
    assert g.prefix(f"(pick-up {bad_obj}") == NEG_INF
    assert g.complete("") == NEG_INF                 # the goal does not hold initially


def test_critic_never_rejects_a_prefix_of_an_optimal_plan(medium):
    sim, plan, _ = medium
    critic = PlanCritic(sim)
    text = "\n".join(format_action(a) for a in plan) + "\n"
    boundaries = 0
    for i in range(len(text) + 1):
        assert critic.prefix(text[:i]) == 0.0
        boundaries += critic.evaluate_at(text[:i])
    assert boundaries >= len(plan)
    assert critic.complete(text) == 0.0 and critic.complete(text.rstrip()) == 0.0
    assert critic.complete("\n".join(format_action(a) for a in plan[:-1])) == NEG_INF


def test_critic_rejects_an_inapplicable_action_and_every_extension(medium):
    sim, plan, _ = medium
    critic = PlanCritic(sim)
    first = format_action(plan[0])
    after_first = sim.apply(sim.init, plan[0])
    wrong = next(a for a, _ in _all_ground(sim) if sim.unmet(after_first, a))
    bad = f"{first}\n{format_action(wrong)}"
    assert critic.prefix(f"{first}\n(") == 0.0
    assert critic.evaluate_at(bad)
    for tail in ["", "\n", "\n(pick-up b0)", " \n"]:
        assert critic.prefix(bad + tail) == NEG_INF
        assert critic.complete(bad + tail) == NEG_INF
    assert critic.prefix(first + ")") == NEG_INF              # unreadable line
    assert critic.complete("Sure! Here is the plan:\n" + first) == NEG_INF


def test_critic_checks_the_action_being_typed(medium):
    sim, plan, _ = medium
    critic = PlanCritic(sim)
    applicable = [a for a, _ in sim.successors(sim.init)]
    names = {a[0] for a in applicable}
    blocked = next(a.name for a in sim.domain.actions.values() if a.name not in names)
    assert critic.prefix(f"({blocked} ") == NEG_INF          # e.g. stack with an empty hand
    assert critic.prefix(f"({blocked}") == 0.0              # the name may still grow
    first = applicable[0]
    assert critic.prefix(f"({first[0]} ") == 0.0
    assert critic.prefix(f"({first[0]} {first[1][:1]}") == 0.0
    wrong = next(o for o in sim.objects_of("block")
                 if not any(a[:2] == (first[0], o) for a in applicable))
    assert critic.prefix(f"({first[0]} {wrong} ") == NEG_INF
    assert critic.prefix(f"({first[0]} {first[1]} {first[1]} {first[1]} ") == NEG_INF
    lazy = PlanCritic(sim, boundaries_only=True)
    assert not lazy.evaluate_at(f"({first[0]} ") and lazy.evaluate_at(f"({first[0]})\n(")
    assert critic.evaluate_at(f"({first[0]} ")


def _all_ground(sim):
    objs = sim.objects_of("block")
    for a in sim.domain.actions.values():
        for args in itertools.product(objs, repeat=len(a.params)):
            yield (a.name, *args), None


def test_critic_prefix_is_an_upper_bound_over_random_completions(medium):
    """prefix(x) = −inf ⇒ complete(x·y) = −inf, over random texts built from action lines."""
    sim, plan, _ = medium
    critic = PlanCritic(sim)
    lines = [format_action(a) for a, _ in _all_ground(sim)]
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 6))
        text = "\n".join(lines[int(i)] for i in rng.integers(0, len(lines), n))
        for cut in range(0, len(text) + 1, 3):
            if critic.prefix(text[:cut]) == NEG_INF:
                assert critic.complete(text) == NEG_INF
                assert critic.prefix(text) == NEG_INF


# -- evaluator ---------------------------------------------------------------------------
def test_evaluator_scores_plans():
    dom = smc.domains.load("pddl", problem="generated_blocks/problem26")
    task = dom.task("")
    opt = task.gold
    assert opt == 4 and task.question == DEFAULT_QUESTION
    plan = "\n".join(format_action(a) for a in astar(dom.sim).plan)
    ev = dom.evaluate(plan, task)
    assert (ev.valid, ev.correct, ev.score) == (True, True, 1.0)
    assert ev.details == {"length": 4, "optimal_length": 4, "ratio": 1.0, "first_failure": None}
    longer = "(pick-up b2)\n(put-down b2)\n" + plan
    assert dom.evaluate(f"```\n{longer}\n```", task).details["ratio"] == 1.5
    ev = dom.evaluate("(unstack b0 b1)\n(stack b0 b1)\n(pick-up b1)", task)
    assert (ev.valid, ev.correct) == (False, False)
    assert ev.details["first_failure"]["index"] == 3
    assert ev.details["first_failure"]["action"] == "(pick-up b1)"
    ev = dom.evaluate("(unstack b0 b1)", task)
    assert (ev.valid, ev.correct, ev.score) == (True, False, 0.0)
    ev = dom.evaluate("First, unstack b0.\n(unstack b0 b1)", task)
    assert not ev.valid and "line 1" in ev.details["first_failure"]["reason"]
    assert not dom.evaluate(None, task).valid


# -- wiring ------------------------------------------------------------------------------
def test_tasks_are_sorted_by_size_and_bind_their_problem():
    dom = smc.domains.load("pddl")
    assert dom.constraint is None and dom.critic is None
    tasks = dom.tasks()
    assert len(tasks) == 220
    sizes = [t.meta["blocks"] for t in tasks]
    assert sizes == sorted(sizes) and max(sizes[:SMALL]) <= 4
    bound = dom.for_task(tasks[5])
    assert isinstance(bound.constraint, potentials.LarkGrammar)
    assert isinstance(bound.critic, PlanCritic)
    assert bound.problem_file.id == tasks[5].id and bound.for_task(tasks[5]) is bound
    with pytest.raises(ValueError, match="no problem given"):
        dom.prompt("go")
    with pytest.raises(ValueError, match="unknown pddl problem"):
        smc.domains.load("pddl", problem="nope/problem1")
    with pytest.raises(ValueError, match="does not exist"):
        smc.domains.load("pddl", problem="/tmp/definitely-missing.pddl")


def test_prompt_shows_actions_examples_problem_and_question():
    dom = smc.domains.load("pddl", problem="generated_blocks/problem26")
    text = dom.prompt("Be brief.")
    assert "(unstack ?x ?y): needs" in text and "Example 2." in text
    assert "generated_blocks/problem26" not in text
    assert text.count("Plan:") == 2 and text.rstrip().endswith("Be brief.")
    assert "Goal: (on b0 b2) (on b1 b0) (ontable b2)" in text
    assert dom.prompt("").rstrip().endswith(DEFAULT_QUESTION)


def test_cli_options_and_tasks_from_jsonl_fields(tmp_path):
    parser = argparse.ArgumentParser()
    PDDLDomain.add_arguments(parser)
    args = parser.parse_args(["--problem", "generated_blocks/problem26"])
    dom = PDDLDomain(**PDDLDomain.options_from(args))
    assert dom.task("x").id == "generated_blocks/problem26"
    other = dom.task("y", problem="generated_blocks/problem14", id="row1")
    assert other.id == "row1" and other.meta["problem_id"] == "generated_blocks/problem14"
    assert dom.for_task(other).problem_file.id == "generated_blocks/problem14"
    # a problem file outside pddlgym, with its domain given explicitly
    (tmp_path / "p.pddl").write_text(tower_problem("x y"))
    own = PDDLDomain(tmp_path / "p.pddl", pddlgym_dir() / "blocks_operator_actions.pddl")
    assert own.task("").gold == 2
    with pytest.raises(ValueError, match="domain file"):
        PDDLDomain(tmp_path / "p.pddl")


def test_smc_with_a_function_lm_returns_only_plans_that_reach_the_goal():
    """A uniform LM over whole action lines: every posterior plan must reach the goal."""
    dom = smc.domains.load("pddl", problem="generated_blocks/problem19")     # 2 blocks
    lines = [format_action(a) + "\n" for a, _ in _all_ground(dom.sim)]
    vocab = lines + ["<eos>"]
    eos = len(vocab) - 1
    lm = smc.FunctionLM(vocab, eos, lambda ids: np.full(len(vocab), -math.log(len(vocab))))
    task = dom.task("")
    res = smc.generate(lm, "", constraint=dom.constraint, critic=dom.critic, method="smc",
                       n_particles=32, max_tokens=6, seed=1)
    assert res.posterior and math.isclose(sum(res.posterior.values()), 1.0)
    for plan in res.posterior:
        assert dom.evaluate(plan, task).correct
    direct = smc.generate(lm, "", method="lcd", constraint=dom.constraint, n_particles=32,
                          max_tokens=6, seed=1)
    assert any(not dom.evaluate(p, task).correct for p in direct.posterior)
    assert read_plan(res.best).error is None
