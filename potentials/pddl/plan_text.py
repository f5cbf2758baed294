"""The surface format of plans: one ground action per line, e.g. ::

    (unstack c a)
    (put-down c)
    (pick-up b)

``plan_grammar`` writes the Lark grammar of exactly this format specialised to a
problem: every action of the domain with the right number of arguments, each argument
an object of the parameter's type, one space between names, lines ended by ``\\n`` (an
optional final newline).  ``read_plan`` is the lenient reader shared by the critic and
the evaluator: blank lines, extra spaces/tabs, ``\\r`` and upper case are tolerated;
anything else on a line is an error naming the line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from potentials.pddl.strips import GroundAction, Simulator

_ACTION_LINE = re.compile(r"[ \t\r]*\([ \t]*([A-Za-z0-9_\-]+(?:[ \t]+[A-Za-z0-9_\-]+)*)[ \t]*\)"
                          r"[ \t\r]*\Z")
# a line that can still grow into an action line (or already is one)
_LINE_PREFIX = re.compile(r"[ \t\r]*(?:\([ \t]*(?:[A-Za-z0-9_\-]+(?:[ \t]+[A-Za-z0-9_\-]*)*)?"
                          r"[ \t]*(?:\)[ \t\r]*)?)?\Z")


@dataclass(frozen=True)
class ReadPlan:
    """Actions read from a text; ``error`` names the first line that is not an action."""

    actions: list[GroundAction]
    error: str | None = None


def read_line(line: str) -> GroundAction | None:
    """The action on one line, None if the line is not exactly one ``(name args...)``."""
    m = _ACTION_LINE.match(line)
    return tuple(m.group(1).lower().split()) if m else None


def read_plan(text: str) -> ReadPlan:
    """Every action of ``text`` (one per line, blank lines skipped)."""
    actions: list[GroundAction] = []
    for i, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        action = read_line(line)
        if action is None:
            return ReadPlan(actions, f"line {i} is not one action (name args...): {line!r}")
        actions.append(action)
    return ReadPlan(actions)


def read_plan_prefix(text: str) -> tuple[list[GroundAction], bool]:
    """The actions a plan prefix has completed, and whether the prefix can still be
    extended into a readable plan.  Completed means on a finished line, or on the last
    line when its closing parenthesis is typed (whatever follows can only be spaces or
    the newline, else the line is unreadable)."""
    lines = text.split("\n")
    actions: list[GroundAction] = []
    for line in lines[:-1]:
        if not line.strip():
            continue
        action = read_line(line)
        if action is None:
            return actions, False
        actions.append(action)
    last = lines[-1]
    if not _LINE_PREFIX.match(last):
        return actions, False
    action = read_line(last)
    if action is not None:
        actions.append(action)
    elif last.strip() and last.rstrip(" \t\r").endswith(")"):
        return actions, False                    # "()": closed without a name
    return actions, True


def partial_action(text: str) -> tuple[tuple[str, ...], str | None] | None:
    """The action being typed on the last line, if its ``)`` is not typed yet: the names
    finished so far (each followed by a space or tab) and the prefix of the name being
    typed (None right after a space).  None when no name is finished yet, the line is
    closed, or it cannot be read."""
    last = text.split("\n")[-1]
    if not _LINE_PREFIX.match(last) or ")" in last:
        return None
    body = last.lstrip(" \t\r")[1:]          # after "("
    words = body.split()
    if body[-1:] not in (" ", "\t"):
        if len(words) < 2:
            return None                         # the action name is still being typed
        return tuple(w.lower() for w in words[:-1]), words[-1].lower()
    return (tuple(w.lower() for w in words), None) if words else None


def _literal(s: str) -> str:
    return json.dumps(s)                         # a Lark string literal


def plan_grammar(sim: Simulator, allow_empty: bool | None = None) -> str:
    """The Lark grammar of plans for ``sim``'s problem (see module doc).  The empty plan
    is allowed when ``allow_empty`` (default: when the goal already holds initially)."""
    if allow_empty is None:
        allow_empty = sim.satisfies_goal(sim.init)
    rules: list[str] = []
    type_rule: dict[str, str] = {}
    alternatives = []
    for schema in sim.domain.actions.values():
        parts = [_literal("(" + schema.name)]
        usable = True
        for _, typ in schema.params:
            if typ not in type_rule:
                objs = sim.objects_of(typ)
                if not objs:
                    usable = False
                    break
                type_rule[typ] = f"obj_{len(type_rule)}"
                rules.append(f"{type_rule[typ]}: " + " | ".join(_literal(o) for o in objs)
                             + f"    // type {typ}")
            parts += ['" "', type_rule[typ]]
        if usable:
            alternatives.append(" ".join(parts + ['")"']))
    if not alternatives:
        raise ValueError(f"no action of {sim.domain.name} can be grounded over the objects "
                         f"of {sim.problem.name}")
    body = 'action ("\\n" action)* "\\n"?'
    head = [f"// plans for problem {sim.problem.name} of domain {sim.domain.name}",
            f"start: ({body})?" if allow_empty else f"start: {body}",
            "action: " + "\n    | ".join(alternatives)]
    return "\n".join(head + rules) + "\n"
