"""PDDL (typed STRIPS) for plan generation: parser, simulator, optimal planner, plan
grammar and plan critic.  See ``smc.domains.pddl`` for the domain plugin."""

from potentials.pddl.critic import PlanCritic
from potentials.pddl.parser import (
    ActionSchema,
    PDDLError,
    Problem,
    StripsDomain,
    load_domain,
    load_problem,
    parse_domain,
    parse_problem,
)
from potentials.pddl.plan_text import plan_grammar, read_plan, read_plan_prefix
from potentials.pddl.planner import PlanResult, astar, bfs, is_blocks_world
from potentials.pddl.strips import Simulator, format_action

__all__ = ["ActionSchema", "PDDLError", "PlanCritic", "PlanResult", "Problem", "Simulator",
           "StripsDomain", "astar", "bfs", "format_action", "is_blocks_world", "load_domain",
           "load_problem", "parse_domain", "parse_problem", "plan_grammar", "read_plan",
           "read_plan_prefix"]
