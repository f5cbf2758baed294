"""The plan critic: a plan prefix must be executable, a finished plan must reach the goal.

For a text x read by ``plan_text.read_plan_prefix`` into completed actions a₁…aₖ:

* ``prefix(x) = 0`` if a₁…aₖ are well-formed and applicable in turn from the initial
  state, x can still be read as a plan, and the action being typed on the last line
  (its name once a space follows it, its finished arguments, the prefix of the argument
  being typed) agrees with some action applicable after a₁…aₖ; else −inf.  Sound:
  every completion of x keeps a₁…aₖ and completes the last line into one action (or an
  unreadable line), so if none of them can work every completion fails.
* ``complete(x) = 0`` if x reads as a plan (``read_plan``) that is executable and whose
  final state satisfies the goal, else −inf.

States and their applicable actions are cached by the tuple of completed actions, so a
particle extending its prefix costs one action application.  ``evaluate_at`` fires at
every step by default (each check is a cache lookup and a scan of the applicable
actions), so SMC can resample away a particle as soon as it commits to an action that
cannot be executed; ``boundaries_only=True`` evaluates only at action ends (the text,
less trailing spaces, newlines and an opening ``(``, ends with ``)``).
"""

from __future__ import annotations

from potentials.base import NEG_INF, Potential
from potentials.pddl.plan_text import partial_action, read_plan, read_plan_prefix
from potentials.pddl.strips import GroundAction, Simulator, State

_FAILED = None


class PlanCritic(Potential):
    """Executability of plan prefixes and goal achievement of finished plans."""

    def __init__(self, sim: Simulator, max_cache: int = 200_000,
                 boundaries_only: bool = False) -> None:
        self.sim = sim
        self.max_cache = max_cache
        self.boundaries_only = boundaries_only
        self._states: dict[tuple[GroundAction, ...], State | None] = {(): sim.init}
        self._applicable: dict[State, list[GroundAction]] = {}

    def applicable(self, state: State) -> list[GroundAction]:
        """The ground actions applicable in ``state`` (cached)."""
        if state not in self._applicable:
            if len(self._applicable) > self.max_cache:
                self._applicable.clear()
            self._applicable[state] = [a for a, _ in self.sim.successors(state)]
        return self._applicable[state]

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
        state = self.state_after(actions) if viable else None
        if state is None:
            return NEG_INF
        typing = partial_action(text)
        if typing is not None:
            done, last = typing
            n = len(done)
            if not any(a[:n] == done and (last is None or (len(a) > n and a[n].startswith(last)))
                       for a in self.applicable(state)):
                return NEG_INF
        return 0.0

    def complete(self, text: str) -> float:
        plan = read_plan(text)
        if plan.error is not None:
            return NEG_INF
        state = self.state_after(plan.actions)
        return 0.0 if state is not None and self.sim.satisfies_goal(state) else NEG_INF

    def evaluate_at(self, text: str) -> bool:
        return not self.boundaries_only or text.rstrip(" \t\r\n(").endswith(")")

    def __repr__(self) -> str:
        return f"PlanCritic({self.sim.problem.name})"
