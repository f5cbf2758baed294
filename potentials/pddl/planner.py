"""Optimal (shortest) plans: A* with an admissible heuristic, and plain BFS as a check.

Every action costs 1.  ``astar`` returns a shortest plan when it finishes within its
node/time limits (A* with an admissible h, ties broken towards deeper nodes), else a
``PlanResult`` with ``plan=None`` and ``limit_hit=True``.  ``None`` with no limit hit
means the goal is unreachable.

Heuristics (both admissible):
* generic: ⌈unsatisfied goal literals / k⌉, k = the most goal literals one action can
  change (an action changes at most k of them);
* blocks world (``blocks_heuristic``): used when the domain's dynamics restricted to
  on/ontable/clear/holding are exactly the 4-operator blocks world and the initial
  state is a consistent tower configuration.  A block must move when its position
  differs from its goal position, when something it must be cleared for (goal ``clear``)
  sits on it, or when it is above a block that must move.  Each action moves one block;
  a block not in hand needs a pick (unstack/pick-up) and, unless the goal holds it, a
  put (stack/put-down); a block in hand needs a put.  A block held but not required to
  move must be put down (and picked up again if the goal holds it) before any other
  block can be picked.  At most one block ends in hand, so when the goal holds none (and
  does not ask for an empty hand) one moving block without a goal position may skip its
  put.  The sum of these counts is a lower bound on the plan length.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from potentials.pddl.parser import StripsDomain
from potentials.pddl.strips import GroundAction, Simulator, State

Heuristic = Callable[[State], int]
_HAND, _TABLE = "<hand>", "<table>"


@dataclass(frozen=True)
class PlanResult:
    plan: list[GroundAction] | None
    expanded: int
    seconds: float
    limit_hit: bool = False


# -- blocks-world recognition ----------------------------------------------------------
_CANON = {  # (pre, add, delete) over on/ontable/clear/holding, params numbered
    frozenset({("clear", 0), ("ontable", 0)}): (frozenset({("holding", 0)}),
                                                 frozenset({("ontable", 0), ("clear", 0)})),
    frozenset({("holding", 0)}): (frozenset({("clear", 0), ("ontable", 0)}),
                                  frozenset({("holding", 0)})),
    frozenset({("holding", 0), ("clear", 1)}): (frozenset({("on", 0, 1), ("clear", 0)}),
                                                frozenset({("holding", 0), ("clear", 1)})),
    frozenset({("on", 0, 1), ("clear", 0)}): (frozenset({("holding", 0), ("clear", 1)}),
                                              frozenset({("on", 0, 1), ("clear", 0)})),
}
_BW = ("on", "ontable", "clear", "holding")


def _canonical(schema) -> set[tuple[frozenset, frozenset, frozenset]]:
    """The schema's (pre, add, delete) over the blocks predicates under every numbering
    of its parameters (empty if a constant or a negative blocks precondition is involved)."""
    atoms = [a for a in (*schema.pre, *schema.add, *schema.delete) if a[0] in _BW]
    if any(a[0] in _BW for a in schema.pre_neg) or \
            not all(x.startswith("?") for a in atoms for x in a[1:]):
        return set()
    variables = sorted({x for a in atoms for x in a[1:]})
    if len(variables) > 3:
        return set()
    forms = set()
    for perm in itertools.permutations(range(len(variables))):
        num = dict(zip(variables, perm, strict=True))

        def conv(group, num=num):
            return frozenset((a[0], *(num[x] for x in a[1:])) for a in group if a[0] in _BW)

        forms.add((conv(schema.pre), conv(schema.add), conv(schema.delete)))
    return forms


def is_blocks_world(domain: StripsDomain) -> bool:
    """Whether the domain's on/ontable/clear/holding dynamics are the 4-operator blocks
    world (other predicates, e.g. handempty or pddlgym's action literals, only add
    preconditions, which cannot make plans shorter)."""
    if any(p not in domain.predicates for p in _BW):
        return False
    seen = set()
    for schema in domain.actions.values():
        match = [pre for pre, add, dele in _canonical(schema) if _CANON.get(pre) == (add, dele)]
        if not match:
            return False
        seen.add(match[0])
    return len(seen) == len(_CANON)


def _positions(state: State) -> dict[str, str] | None:
    """block → what it is on (a block, table or hand); None if the state is not a
    consistent blocks configuration."""
    pos: dict[str, str] = {}
    clear: set[str] = set()
    for a in state:
        if a[0] in ("on", "ontable", "holding"):
            if a[1] in pos:
                return None
            pos[a[1]] = a[2] if a[0] == "on" else (_TABLE if a[0] == "ontable" else _HAND)
        elif a[0] == "clear":
            clear.add(a[1])
    held = [b for b, p in pos.items() if p == _HAND]
    below = [p for p in pos.values() if p not in (_TABLE, _HAND)]
    if len(held) > 1 or len(below) != len(set(below)) or not set(below) <= set(pos):
        return None
    if any((b in clear) != (b not in below and pos[b] != _HAND) for b in pos) \
            or not clear <= set(pos):
        return None
    seen: set[str] = set()
    for b in pos:                        # no cycles of on
        chain: set[str] = set()
        while b in pos and pos[b] not in (_TABLE, _HAND) and b not in seen:
            if b in chain:
                return None
            chain.add(b)
            b = pos[b]
        seen |= chain
    return pos


def blocks_heuristic(sim: Simulator) -> Heuristic | None:
    """The blocks-world lower bound for ``sim``'s problem, or None where it is not sound."""
    if not is_blocks_world(sim.domain) or _positions(sim.init) is None:
        return None
    goal_pos: dict[str, str] = {}
    for g in sim.problem.goal:
        if g[0] in ("on", "ontable", "holding"):
            where = g[2] if g[0] == "on" else (_TABLE if g[0] == "ontable" else _HAND)
            if goal_pos.setdefault(g[1], where) != where:
                return lambda s: 10**9 // 2      # contradictory goal: unreachable
    goal_clear = [g[1] for g in sim.problem.goal if g[0] == "clear"]
    # at most one block ends in hand: if the goal holds none and asks no empty hand, one
    # moving block without a goal position may skip its put
    may_end_held = _HAND not in goal_pos.values() and not any(
        g[0] in ("handempty",) for g in sim.problem.goal)

    def h(state: State) -> int:
        pos = _positions(state)
        if pos is None:  # cannot happen from a consistent start; stay admissible
            return 0
        on_top = {p: b for b, p in pos.items() if p not in (_TABLE, _HAND)}
        must = {b for b, where in goal_pos.items() if pos.get(b) != where}
        must |= {on_top[c] for c in goal_clear if c in on_top}
        frontier = list(must)
        while frontier:                      # everything above a moving block moves
            b = frontier.pop()
            if b in on_top and on_top[b] not in must:
                must.add(on_top[b])
                frontier.append(on_top[b])
        cost = 0
        for b in must:
            if pos.get(b) == _HAND:
                cost += 1
            else:
                cost += 1 if goal_pos.get(b) == _HAND else 2
        if may_end_held and any(b not in goal_pos and pos.get(b) != _HAND for b in must):
            cost -= 1
        held = [b for b, p in pos.items() if p == _HAND and b not in must]
        if held and any(pos.get(b) != _HAND for b in must):
            cost += 2 if goal_pos.get(held[0]) == _HAND else 1
        return cost

    return h


def generic_heuristic(sim: Simulator) -> Heuristic:
    """⌈unsatisfied goal literals / k⌉ (k: most goal literals one action changes)."""
    goal_preds = {g[0] for g in sim.problem.goal} | {g[0] for g in sim.problem.goal_neg}
    k = max(1, max(sum(a[0] in goal_preds for a in (*s.add, *s.delete))
                   for s in sim.domain.actions.values()))

    def h(state: State) -> int:
        unmet = sum(g not in state for g in sim.problem.goal) + \
            sum(g in state for g in sim.problem.goal_neg)
        return -(-unmet // k)

    return h


def astar(sim: Simulator, max_nodes: int = 200_000, max_seconds: float = 60.0,
          heuristic: Heuristic | None = None) -> PlanResult:
    """A shortest plan by A* (see module doc)."""
    started = time.perf_counter()
    h = heuristic or blocks_heuristic(sim) or generic_heuristic(sim)
    start = sim.init
    tie = itertools.count()
    g_best = {start: 0}
    parent: dict[State, tuple[State, GroundAction] | None] = {start: None}
    heap = [(h(start), 0, next(tie), start)]
    expanded = 0
    while heap:
        f, neg_g, _, s = heapq.heappop(heap)
        g = -neg_g
        if g > g_best[s]:
            continue
        if sim.satisfies_goal(s):
            plan = []
            while parent[s] is not None:
                s, a = parent[s]  # type: ignore[misc]
                plan.append(a)
            return PlanResult(plan[::-1], expanded, time.perf_counter() - started)
        expanded += 1
        if expanded > max_nodes or time.perf_counter() - started > max_seconds:
            return PlanResult(None, expanded, time.perf_counter() - started, limit_hit=True)
        for action, t in sim.successors(s):
            if g + 1 < g_best.get(t, 1 << 60):
                g_best[t] = g + 1
                parent[t] = (s, action)
                heapq.heappush(heap, (g + 1 + h(t), -(g + 1), next(tie), t))
    return PlanResult(None, expanded, time.perf_counter() - started)


def bfs(sim: Simulator, max_nodes: int = 1_000_000) -> PlanResult:
    """A shortest plan by breadth-first search (no heuristic): the brute-force check."""
    started = time.perf_counter()
    parent: dict[State, tuple[State, GroundAction] | None] = {sim.init: None}
    queue = deque([sim.init])
    expanded = 0
    while queue:
        s = queue.popleft()
        if sim.satisfies_goal(s):
            plan = []
            while parent[s] is not None:
                s, a = parent[s]  # type: ignore[misc]
                plan.append(a)
            return PlanResult(plan[::-1], expanded, time.perf_counter() - started)
        expanded += 1
        if expanded > max_nodes:
            return PlanResult(None, expanded, time.perf_counter() - started, limit_hit=True)
        for action, t in sim.successors(s):
            if t not in parent:
                parent[t] = (s, action)
                queue.append(t)
    return PlanResult(None, expanded, time.perf_counter() - started)
