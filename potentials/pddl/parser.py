"""A PDDL reader for the typed STRIPS subset (blocks world and its kin).

S-expressions → ``StripsDomain`` (types, constants, predicates, action schemas with
parameters, positive/negative preconditions, add/delete effects) and ``Problem``
(objects, initial atoms, goal literals).  Names are case-insensitive (lower-cased);
``;`` starts a comment.  Anything outside the subset (``or``, ``forall``, ``when``,
numeric fluents ...) and any malformed text raises ``PDDLError`` naming the file, line
and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

Atom = tuple[str, ...]          # ("on", "a", "b"): predicate then arguments
_TOKEN = re.compile(r"\s+|;[^\n]*|\(|\)|[^\s();]+")
_NAME = re.compile(r"\??[a-z0-9][a-z0-9_\-]*\Z")


class PDDLError(ValueError):
    """Text that is not PDDL of the supported subset; says where (file, line, column)."""

    def __init__(self, message: str, source: str = "<string>", line: int | None = None,
                 column: int | None = None) -> None:
        self.source, self.line, self.column = source, line, column
        where = f"{source}:{line}:{column}" if line is not None else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Sym:
    """A name of the S-expression with its position (1-based line and column)."""

    text: str
    line: int
    column: int


@dataclass
class SExpr:
    """A parenthesised list with the position of its opening parenthesis."""

    items: list[SExpr | Sym]
    line: int
    column: int


@dataclass(frozen=True)
class ActionSchema:
    """A lifted action: ``params`` are (name, type) pairs; atoms mention ``?params`` or
    constants.  Preconditions are positive (``pre``) and negative (``pre_neg``) literals."""

    name: str
    params: tuple[tuple[str, str], ...]
    pre: tuple[Atom, ...]
    pre_neg: tuple[Atom, ...]
    add: tuple[Atom, ...]
    delete: tuple[Atom, ...]


@dataclass
class StripsDomain:
    name: str
    types: dict[str, str | None]                   # type -> parent type (None at the root)
    constants: dict[str, str]                      # constant -> type
    predicates: dict[str, tuple[str, ...]]         # predicate -> argument types
    actions: dict[str, ActionSchema]
    source: str = "<string>"

    def is_subtype(self, sub: str, sup: str) -> bool:
        seen = set()
        while sub is not None and sub not in seen:
            if sub == sup:
                return True
            seen.add(sub)
            sub = self.types.get(sub)
        return sup == "object"


@dataclass
class Problem:
    name: str
    domain_name: str
    objects: dict[str, str]                        # object -> type (constants included)
    init: frozenset[Atom]
    goal: tuple[Atom, ...]                         # positive goal literals
    goal_neg: tuple[Atom, ...] = ()                # negative goal literals
    source: str = "<string>"
    object_order: list[str] = field(default_factory=list)


# -- S-expressions ---------------------------------------------------------------------
def read_sexpr(text: str, source: str = "<string>") -> SExpr:
    """The single top-level list of ``text``; PDDLError with the position otherwise."""
    stack: list[SExpr] = []
    top: SExpr | None = None
    line, col = 1, 1
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok == "(":
            node = SExpr([], line, col)
            if stack:
                stack[-1].items.append(node)
            elif top is not None:
                raise PDDLError("text after the end of the definition", source, line, col)
            stack.append(node)
        elif tok == ")":
            if not stack:
                raise PDDLError("unbalanced ')'", source, line, col)
            done = stack.pop()
            if not stack:
                top = done
        elif not tok[0].isspace() and tok[0] != ";":
            if not stack:
                raise PDDLError(f"unexpected {tok!r} outside parentheses", source, line, col)
            stack[-1].items.append(Sym(tok.lower(), line, col))
        newlines = tok.count("\n")
        line, col = (line + newlines, len(tok) - tok.rfind("\n")) if newlines \
            else (line, col + len(tok))
    if stack:
        s = stack[-1]
        raise PDDLError("unclosed '(' (end of file reached)", source, s.line, s.column)
    if top is None:
        raise PDDLError("empty file: expected (define ...)", source, 1, 1)
    return top


class _Reader:
    """Helpers that check shapes and raise PDDLError at the offending node."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str, node: SExpr | Sym) -> PDDLError:
        return PDDLError(message, self.source, node.line, node.column)

    def name(self, node: SExpr | Sym, what: str) -> str:
        if not isinstance(node, Sym) or not _NAME.match(node.text):
            raise self.fail(f"expected {what}", node)
        return node.text

    def head(self, node: SExpr | Sym, what: str) -> tuple[str, list[SExpr | Sym]]:
        if not isinstance(node, SExpr) or not node.items:
            raise self.fail(f"expected {what}", node)
        return self.name(node.items[0], what), node.items[1:]

    def typed_list(self, items: list[SExpr | Sym], variables: bool) -> list[tuple[str, str]]:
        """``a b - t c`` → [(a, t), (b, t), (c, object)]."""
        out: list[tuple[str, str]] = []
        pending: list[str] = []
        i = 0
        while i < len(items):
            node = items[i]
            if isinstance(node, Sym) and node.text == "-":
                if not pending or i + 1 >= len(items):
                    raise self.fail("'-' must follow names and precede a type", node)
                typ = self.name(items[i + 1], "a type name")
                out += [(p, typ) for p in pending]
                pending = []
                i += 2
                continue
            word = self.name(node, "a variable" if variables else "a name")
            if variables != word.startswith("?"):
                raise self.fail(f"expected a {'variable (?x)' if variables else 'name'}, "
                                f"got {word!r}", node)
            pending.append(word)
            i += 1
        return out + [(p, "object") for p in pending]

    def atom(self, node: SExpr | Sym, preds: dict[str, tuple[str, ...]] | None,
             names: set[str] | None) -> Atom:
        pred, args = self.head(node, "an atom (predicate args...)")
        if pred in ("and", "not", "or", "imply", "exists", "forall", "when", "="):
            raise self.fail(f"'{pred}' is not allowed here (STRIPS subset)", node)
        words = tuple(self.name(a, "an argument name") for a in args)
        if preds is not None:
            if pred not in preds:
                raise self.fail(f"unknown predicate {pred!r}", node)
            if len(words) != len(preds[pred]):
                raise self.fail(f"predicate {pred!r} takes {len(preds[pred])} arguments, "
                                f"got {len(words)}", node)
        if names is not None:
            for a, w in zip(args, words, strict=True):
                if w not in names:
                    raise self.fail(f"unknown {'parameter' if w.startswith('?') else 'object'} "
                                    f"{w!r}", a)
        return (pred, *words)

    def literals(self, node: SExpr | Sym, preds, names, negatives: str
                 ) -> tuple[list[Atom], list[Atom]]:
        """A conjunction of literals → (positive atoms, negated atoms)."""
        pos: list[Atom] = []
        neg: list[Atom] = []
        head, rest = self.head(node, "a literal or (and ...)")
        parts = rest if head == "and" else [node]
        for part in parts:
            h, inner = self.head(part, "a literal")
            if h == "not":
                if len(inner) != 1:
                    raise self.fail("(not ...) takes exactly one atom", part)
                if negatives == "forbid":
                    raise self.fail("negative literals are not allowed here", part)
                neg.append(self.atom(inner[0], preds, names))
            elif h == "and":
                p2, n2 = self.literals(part, preds, names, negatives)
                pos += p2
                neg += n2
            else:
                pos.append(self.atom(part, preds, names))
        return pos, neg


def _sections(r: _Reader, root: SExpr, kind: str) -> tuple[str, list[SExpr]]:
    head, rest = r.head(root, "(define ...)")
    if head != "define" or not rest:
        raise r.fail("expected (define (" + kind + " NAME) ...)", root)
    k, name_items = r.head(rest[0], f"({kind} NAME)")
    if k != kind or len(name_items) != 1:
        raise r.fail(f"expected ({kind} NAME), this file defines {k!r}", rest[0])
    for sec in rest[1:]:
        if not isinstance(sec, SExpr) or not sec.items or not isinstance(sec.items[0], Sym) \
                or not sec.items[0].text.startswith(":"):
            raise r.fail("expected a section such as (:objects ...)", sec)
    return r.name(name_items[0], f"the {kind} name"), list(rest[1:])  # type: ignore[arg-type]


def parse_domain(text: str, source: str = "<string>") -> StripsDomain:
    """The STRIPS domain defined by ``text``."""
    r = _Reader(source)
    name, sections = _sections(r, read_sexpr(text, source), "domain")
    dom = StripsDomain(name, {"object": None}, {}, {}, {}, source)
    for sec in sections:
        key, items = sec.items[0].text, sec.items[1:]  # type: ignore[union-attr]
        if key == ":requirements":
            for it in items:
                req = it.text if isinstance(it, Sym) else ""
                if req not in (":strips", ":typing", ":negative-preconditions"):
                    raise r.fail(f"unsupported requirement {req or it!r}", it)
        elif key == ":types":
            for t, parent in r.typed_list(items, variables=False):
                dom.types[t] = parent if t != parent else None
        elif key == ":constants":
            dom.constants.update(r.typed_list(items, variables=False))
        elif key == ":predicates":
            for p in items:
                pred, args = r.head(p, "a predicate declaration")
                dom.predicates[pred] = tuple(t for _, t in r.typed_list(args, variables=True))
        elif key == ":action":
            act = _action(r, sec, dom)
            if act.name in dom.actions:
                raise r.fail(f"action {act.name!r} defined twice", sec)
            dom.actions[act.name] = act
        else:
            raise r.fail(f"unsupported domain section {key!r}", sec)
    for typ in [*dom.types.values(), *dom.constants.values()]:
        if typ is not None and typ not in dom.types:
            raise PDDLError(f"undeclared type {typ!r}", source)
    if not dom.actions:
        raise PDDLError("the domain defines no action", source)
    return dom


def _action(r: _Reader, sec: SExpr, dom: StripsDomain) -> ActionSchema:
    items = sec.items[1:]
    if not items:
        raise r.fail("(:action NAME ...) needs a name", sec)
    name = r.name(items[0], "an action name")
    fields: dict[str, SExpr | Sym] = {}
    rest = items[1:]
    if len(rest) % 2:
        raise r.fail(f"action {name!r}: expected :key value pairs", sec)
    for k, v in zip(rest[::2], rest[1::2], strict=True):
        key = k.text if isinstance(k, Sym) else ""
        if key not in (":parameters", ":precondition", ":effect"):
            raise r.fail(f"action {name!r}: unsupported key {key or k!r}", k)
        fields[key] = v
    params_node = fields.get(":parameters")
    if params_node is not None and not isinstance(params_node, SExpr):
        raise r.fail("expected a parameter list", params_node)
    params = tuple(r.typed_list(params_node.items, variables=True)) if params_node else ()
    for _, t in params:
        if t not in dom.types:
            raise r.fail(f"action {name!r}: undeclared type {t!r}", params_node)  # type: ignore
    names = {p for p, _ in params} | set(dom.constants)
    pre: tuple[list[Atom], list[Atom]] = ([], [])
    if ":precondition" in fields:
        node = fields[":precondition"]
        if not (isinstance(node, SExpr) and not node.items):     # "()" = no precondition
            pre = r.literals(node, dom.predicates, names, "allow")
    if ":effect" not in fields:
        raise r.fail(f"action {name!r} has no :effect", sec)
    add, delete = r.literals(fields[":effect"], dom.predicates, names, "allow")
    return ActionSchema(name, params, tuple(pre[0]), tuple(pre[1]), tuple(add), tuple(delete))


def parse_problem(text: str, domain: StripsDomain, source: str = "<string>") -> Problem:
    """The problem defined by ``text``, checked against ``domain`` (names, arities, types)."""
    r = _Reader(source)
    name, sections = _sections(r, read_sexpr(text, source), "problem")
    objects: dict[str, str] = dict(domain.constants)
    order: list[str] = []
    init: list[Atom] = []
    goal: tuple[list[Atom], list[Atom]] | None = None
    dom_name = None
    for sec in sections:
        key, items = sec.items[0].text, sec.items[1:]  # type: ignore[union-attr]
        if key == ":domain":
            if len(items) != 1:
                raise r.fail("expected (:domain NAME)", sec)
            dom_name = r.name(items[0], "a domain name")
            if dom_name != domain.name:
                raise r.fail(f"problem is for domain {dom_name!r}, not {domain.name!r} "
                             f"({domain.source})", sec)
        elif key == ":objects":
            for obj, typ in r.typed_list(items, variables=False):
                if typ not in domain.types:
                    raise r.fail(f"object {obj!r} has undeclared type {typ!r}", sec)
                if obj in objects and obj not in domain.constants:
                    raise r.fail(f"object {obj!r} declared twice", sec)
                objects[obj] = typ
                order.append(obj)
        elif key == ":init":
            for it in items:
                init.append(r.atom(it, domain.predicates, set(objects)))
        elif key == ":goal":
            if len(items) != 1:
                raise r.fail("expected (:goal FORMULA)", sec)
            goal = r.literals(items[0], domain.predicates, set(objects), "allow")
        else:
            raise r.fail(f"unsupported problem section {key!r}", sec)
    if dom_name is None:
        raise PDDLError("missing (:domain NAME)", source)
    if goal is None:
        raise PDDLError("missing (:goal ...)", source)
    return Problem(name, dom_name, objects, frozenset(init), tuple(goal[0]), tuple(goal[1]),
                   source, order)


def load_domain(path: str | Path) -> StripsDomain:
    p = Path(path)
    return parse_domain(p.read_text(encoding="utf-8"), str(p))


def load_problem(path: str | Path, domain: StripsDomain) -> Problem:
    p = Path(path)
    return parse_problem(p.read_text(encoding="utf-8"), domain, str(p))
