"""The plan critic: a plan prefix must be executable, a finished plan must reach the goal.

For a text x read by ``plan_text.read_plan_prefix`` into completed actions a₁…aₖ:

* ``prefix(x) = 0`` if a₁…aₖ are well-formed and applicable in turn from the initial
  state (and x can still be read as a plan), else −inf.  Sound: every completion of x
  keeps a₁…aₖ, so once an action fails every completion fails.
* ``complete(x) = 0`` if x reads as a plan (``read_plan``) that is executable and whose
  final state satisfies the goal, else −inf.

States are cached by the tuple of completed actions, so a particle extending its prefix
costs one action application.  ``evaluate_at`` fires at action boundaries: when the text,
less trailing spaces, newlines and an opening ``(``, ends with ``)``.
"""

from __future__ import annotations

from potentials.base import NEG_INF, Potential
from potentials.pddl.plan_text import read_plan, read_plan_prefix
from potentials.pddl.strips import GroundAction, Simulator, State

_FAILED = None


class PlanCritic(Potential):
    """Executability of plan prefixes and goal achievement of finished plans."""

    def __init__(self, sim: Simulator, max_cache: int = 200_000) -> None:
        self.sim = sim
        self.max_cache = max_cache
        self._states: dict[tuple[GroundAction, ...], State | None] = {(): sim.init}

    def state_after(self, actions: list[GroundAction] | tuple[GroundAction, ...]
                    ) -> State | None:
        """The state after executing ``actions`` from the initial state, None if one of
        them is malformed or inapplicable (cached per prefix)."""
        key = tuple(actions)
        if key in self._states:
            return self._states[key]
        # longest cached prefix, then apply the rest one by one, caching each
        k = len(key) - 1
        while key[:k] not in self._states:
            k -= 1
        state = self._states[key[:k]]
        if len(self._states) > self.max_cache:
            self._states = {(): self.sim.init}
        for i in range(k, len(key)):
            if state is not None:
                try:
                    state = self.sim.apply(state, key[i])
                except ValueError:
                    state = _FAILED
            self._states[key[: i + 1]] = state
        return state

    def prefix(self, text: str) -> float:
        actions, viable = read_plan_prefix(text)
        if not viable or self.state_after(actions) is None:
            return NEG_INF
        return 0.0

    def complete(self, text: str) -> float:
        plan = read_plan(text)
        if plan.error is not None:
            return NEG_INF
        state = self.state_after(plan.actions)
        return 0.0 if state is not None and self.sim.satisfies_goal(state) else NEG_INF

    def evaluate_at(self, text: str) -> bool:
        return text.rstrip(" \t\r\n(").endswith(")")

    def __repr__(self) -> str:
        return f"PlanCritic({self.sim.problem.name})"
