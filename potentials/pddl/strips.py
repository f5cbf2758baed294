"""A STRIPS simulator: ground actions, applicability, successor states, plan execution.

A state is a frozenset of ground atoms.  Ground action a = schema(σ) is applicable in s
iff pre(a) ⊆ s and pre⁻(a) ∩ s = ∅; its successor is (s − del(a)) ∪ add(a) (PDDL's
delete-then-add order).  ``successors`` enumerates the applicable ground actions by
joining the schema's positive preconditions against the state (no full grounding), so
it stays fast on problems with a hundred objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from potentials.pddl.parser import ActionSchema, Atom, Problem, StripsDomain

State = frozenset[Atom]
GroundAction = tuple[str, ...]       # ("stack", "a", "b"): schema name then objects


def format_action(action: GroundAction) -> str:
    """``("stack", "a", "b")`` → ``"(stack a b)"``."""
    return "(" + " ".join(action) + ")"


@dataclass(frozen=True)
class Step:
    """The outcome of executing a plan: the last state reached, how many actions ran,
    and why execution stopped early (None when every action was applicable)."""

    state: State
    executed: int
    failure: str | None = None


class Simulator:
    """Executes ground actions of ``problem`` under ``domain``'s schemas."""

    def __init__(self, domain: StripsDomain, problem: Problem) -> None:
        self.domain, self.problem = domain, problem
        self.init: State = frozenset(problem.init)
        self._by_type: dict[str, list[str]] = defaultdict(list)
        for obj in problem.object_order or sorted(problem.objects):
            for typ in domain.types:
                if domain.is_subtype(problem.objects[obj], typ):
                    self._by_type[typ].append(obj)
        for c, typ in domain.constants.items():
            for t in domain.types:
                if domain.is_subtype(typ, t) and c not in self._by_type[t]:
                    self._by_type[t].append(c)

    # -- single actions ------------------------------------------------------------
    def objects_of(self, typ: str) -> list[str]:
        """Objects (and constants) of type ``typ`` or a subtype, in declaration order."""
        return list(self._by_type.get(typ, ()))

    def check(self, action: GroundAction) -> tuple[ActionSchema, dict[str, str]]:
        """The schema and binding of a well-formed ground action; ValueError saying what
        is wrong otherwise (unknown action or object, arity, type)."""
        if not action:
            raise ValueError("empty action")
        schema = self.domain.actions.get(action[0])
        if schema is None:
            raise ValueError(f"unknown action {action[0]!r}; known: "
                             f"{', '.join(sorted(self.domain.actions))}")
        args = action[1:]
        if len(args) != len(schema.params):
            raise ValueError(f"{format_action(action)}: {schema.name} takes "
                             f"{len(schema.params)} arguments, got {len(args)}")
        binding = {}
        for (var, typ), obj in zip(schema.params, args, strict=True):
            if obj not in self.problem.objects:
                raise ValueError(f"{format_action(action)}: unknown object {obj!r}")
            if not self.domain.is_subtype(self.problem.objects[obj], typ):
                raise ValueError(f"{format_action(action)}: {obj!r} is a "
                                 f"{self.problem.objects[obj]}, {var} needs a {typ}")
            binding[var] = obj
        return schema, binding

    @staticmethod
    def _ground(atom: Atom, binding: dict[str, str]) -> Atom:
        return (atom[0], *(binding.get(a, a) for a in atom[1:]))

    def unmet(self, state: State, action: GroundAction) -> list[str]:
        """The preconditions of ``action`` that fail in ``state`` (empty: applicable)."""
        schema, b = self.check(action)
        missing = [format_action(g) for g in (self._ground(p, b) for p in schema.pre)
                   if g not in state]
        missing += ["(not " + format_action(g) + ")"
                    for g in (self._ground(p, b) for p in schema.pre_neg) if g in state]
        return missing

    def apply(self, state: State, action: GroundAction) -> State:
        """The successor of ``state``; ValueError naming the unmet preconditions."""
        missing = self.unmet(state, action)
        if missing:
            raise ValueError(f"{format_action(action)} is not applicable: "
                             f"{' '.join(missing)} does not hold")
        return self._apply_unchecked(state, action)

    def _apply_unchecked(self, state: State, action: GroundAction) -> State:
        schema, b = self.check(action)
        dele = {self._ground(a, b) for a in schema.delete}
        add = {self._ground(a, b) for a in schema.add}
        return frozenset((state - dele) | add)

    # -- plans ---------------------------------------------------------------------
    def execute(self, plan: list[GroundAction], state: State | None = None) -> Step:
        """Run ``plan`` from ``state`` (default: the initial state) until an action fails."""
        s = self.init if state is None else state
        for i, action in enumerate(plan):
            try:
                s = self.apply(s, action)
            except ValueError as err:
                return Step(s, i, f"action {i + 1} {err}")
        return Step(s, len(plan))

    def satisfies_goal(self, state: State) -> bool:
        return all(g in state for g in self.problem.goal) and \
            not any(g in state for g in self.problem.goal_neg)

    # -- search support -------------------------------------------------------------
    def successors(self, state: State) -> Iterator[tuple[GroundAction, State]]:
        """Every applicable ground action and its successor, in a deterministic order."""
        index: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        for atom in state:
            index[atom[0]].append(atom[1:])
        for pred in index:
            index[pred].sort()
        for schema in self.domain.actions.values():
            for binding in self._bindings(schema, state, index):
                action = (schema.name, *(binding[v] for v, _ in schema.params))
                if any(self._ground(p, binding) in state for p in schema.pre_neg):
                    continue
                dele = {self._ground(a, binding) for a in schema.delete}
                add = {self._ground(a, binding) for a in schema.add}
                yield action, frozenset((state - dele) | add)

    def _bindings(self, schema: ActionSchema, state: State,
                  index: dict[str, list[tuple[str, ...]]]) -> Iterator[dict[str, str]]:
        """Bindings of the parameters under which every positive precondition holds."""
        types = dict(schema.params)
        pending = list(schema.pre)

        def extend(binding: dict[str, str], todo: list[Atom]) -> Iterator[dict[str, str]]:
            if not todo:
                free = [v for v, _ in schema.params if v not in binding]
                yield from self._free(binding, free, types)
                return
            # most-bound-first: the literal with the fewest unbound variables, then the
            # smallest predicate extension
            todo = sorted(todo, key=lambda a: (sum(x.startswith("?") and x not in binding
                                                   for x in a[1:]), len(index.get(a[0], ()))))
            atom, rest = todo[0], todo[1:]
            for args in index.get(atom[0], ()):
                new = dict(binding)
                ok = True
                for x, val in zip(atom[1:], args, strict=True):
                    if x.startswith("?"):
                        if new.setdefault(x, val) != val or \
                                not self.domain.is_subtype(self.problem.objects.get(val, ""),
                                                           types[x]):
                            ok = False
                            break
                    elif x != val:
                        ok = False
                        break
                if ok:
                    yield from extend(new, rest)

        yield from extend({}, pending)

    def _free(self, binding: dict[str, str], free: list[str],
              types: dict[str, str]) -> Iterator[dict[str, str]]:
        if not free:
            yield binding
            return
        for obj in self.objects_of(types[free[0]]):
            yield from self._free({**binding, free[0]: obj}, free[1:], types)
