"""LALR(1) parse tables by DeRemer and Pennello's relations, computed on integers.

Lark's own analysis (``lark.parsers.lalr_analysis``) builds its tables over Python
objects (items are ``RulePtr`` objects hashed through their rules): 0.8 s of the 1.1 s it
takes to build the shipped Python grammar's parser. Here items, states and terminal sets
are ints (terminal sets are bit masks). With ``x = (p, A)`` a goto of state p on
nonterminal A, (p, A) includes (p', B) iff B → β A γ, γ ⇒* ε and p' —β→ p:

    Read(x)   = DR(x) ∪ ⋃ {Read(y)   : x reads y}
    Follow(x) = Read(x) ∪ ⋃ {Follow(y) : x includes y}
    LA(q, A → ω) = ⋃ {Follow(p, A) : (q, A → ω) lookback (p, A)}

These are the canonical LR(1) lookaheads merged by core. Lark's can be a superset (its
``includes`` also walks kernel items of A, and its ``digraph`` lets a cycle of the reads
relation share one growing set); on every shipped grammar the two tables are equal
action by action (tests/test_lalr_tables.py, which also checks the LR(1) equality on
random grammars).

Conflicts are resolved as Lark resolves them (shift over reduce, logged at debug level
with Lark's wording; reduce/reduce by rule priority, else Lark's GrammarError), so Lark
and ``_lark_build`` read the result unchanged. ``LalrParser`` plugs it into Lark.
"""

from __future__ import annotations

from collections.abc import Sequence

from lark import logger
from lark.common import ParserConf
from lark.exceptions import GrammarError
from lark.grammar import NonTerminal, Rule, Symbol, Terminal
from lark.parsers.lalr_analysis import IntParseTable, Reduce, Shift
from lark.parsers.lalr_parser import LALR_Parser, _Parser


class LalrParser(LALR_Parser):
    """Lark's LALR parser with its table from ``parse_table`` (``_plugins`` entry
    ``"LALR_Parser"``); ``debug=True`` keeps Lark's own analysis and its verbose reports."""

    def __init__(self, parser_conf: ParserConf, debug: bool = False, strict: bool = False):
        if debug:
            super().__init__(parser_conf, debug=debug, strict=strict)
            return
        self._parse_table = parse_table(parser_conf.rules, parser_conf.start, strict)
        self.parser_conf = parser_conf
        self.parser = _Parser(self._parse_table, parser_conf.callbacks, debug)


def _check(rules: Sequence[Rule]) -> None:
    """Lark's checks (same messages): no rule twice, no undefined rule used."""
    if len(rules) != len(set(rules)):
        seen: set[Rule] = set()
        twice = [r for r in rules if r in seen or seen.add(r)]  # type: ignore[func-returns-value]
        names = ", ".join(str(r) for r in dict.fromkeys(twice))
        raise GrammarError(f"Rules defined twice: {names}")
    defined = {r.origin for r in rules}
    for r in rules:
        for sym in r.expansion:
            if not (sym.is_term or sym in defined):
                raise GrammarError(f"Using an undefined rule: {sym}")


class _Grammar:
    """Symbols, rules and LR(0) items as ints. Item ``base[r] + k``: rule r, dot before
    its k-th symbol; ``after[i]`` the symbol after the dot (-1 at the end)."""

    def __init__(self, rules: Sequence[Rule], extra: Sequence[Symbol] = ()) -> None:
        self.symbols: list[Symbol] = []
        ids: dict[tuple[bool, str], int] = {}

        def sid(sym: Symbol) -> int:
            key = (sym.is_term, sym.name)
            got = ids.get(key)
            if got is None:
                got = ids[key] = len(self.symbols)
                self.symbols.append(sym)
            return got

        self.ids = ids
        self.origin = [sid(r.origin) for r in rules]
        self.rhs = [tuple(sid(s) for s in r.expansion) for r in rules]
        for sym in extra:
            sid(sym)
        self.is_term = [s.is_term for s in self.symbols]
        n_sym = len(self.symbols)
        self.by_origin: list[list[int]] = [[] for _ in range(n_sym)]
        for r, o in enumerate(self.origin):
            self.by_origin[o].append(r)
        self.base, self.item_rule, self.after = [], [], []
        for r, rhs in enumerate(self.rhs):
            self.base.append(len(self.after))
            self.item_rule += [r] * (len(rhs) + 1)
            self.after += [*rhs, -1]
        self.nullable = self._nullable()
        # smallest k with rhs[k:] all nullable: a symbol at i >= k - 1 ends its rule's
        # expansion up to a nullable tail
        self.tail = []
        for rhs in self.rhs:
            k = len(rhs)
            while k and self.nullable[rhs[k - 1]]:
                k -= 1
            self.tail.append(k)
        self.reach = [self._reach(n) if not self.is_term[n] else () for n in range(n_sym)]
        # (first symbol, item after it) of each nonempty rule of a nonterminal
        self.firsts = [[(self.rhs[r][0], self.base[r] + 1) for r in self.by_origin[n]
                        if self.rhs[r]] for n in range(n_sym)]

    def _nullable(self) -> list[bool]:
        nullable = [False] * len(self.symbols)
        changed = True
        while changed:
            changed = False
            for o, rhs in zip(self.origin, self.rhs, strict=True):
                if not nullable[o] and all(nullable[s] for s in rhs):
                    nullable[o] = changed = True
        return nullable

    def _reach(self, n: int) -> tuple[int, ...]:
        """Nonterminals whose rules the LR(0) closure of an item before ``n`` adds: n and,
        transitively, the first symbol of their rules where it is a nonterminal."""
        seen, todo = {n: None}, [n]
        while todo:
            for r in self.by_origin[todo.pop()]:
                rhs = self.rhs[r]
                if rhs and not self.is_term[rhs[0]] and rhs[0] not in seen:
                    seen[rhs[0]] = None
                    todo.append(rhs[0])
        return tuple(seen)


class _Automaton:
    """The LR(0) automaton: per state its kernel items, the nonterminals its closure
    expands (all their rules at dot 0) and its transitions ``symbol -> state``."""

    def __init__(self, g: _Grammar, roots: list[int]) -> None:
        self.kernels: list[tuple[int, ...]] = []
        self.expands: list[frozenset[int]] = []
        self.trans: list[dict[int, int]] = []
        states: dict[frozenset[int], int] = {}
        self.starts = [self._add(g, (g.base[r],)) for r in roots]
        s = 0
        while s < len(self.kernels):
            groups: dict[int, list[int]] = {}
            for item in self.kernels[s]:
                if g.after[item] >= 0:
                    groups.setdefault(g.after[item], []).append(item + 1)
            for n in self.expands[s]:
                for sym, item in g.firsts[n]:
                    groups.setdefault(sym, []).append(item)
            trans = self.trans[s]
            for sym, items in groups.items():
                key = frozenset(items)
                got = states.get(key)
                if got is None:
                    got = states[key] = self._add(g, tuple(items))
                trans[sym] = got
            s += 1

    def _add(self, g: _Grammar, kernel: tuple[int, ...]) -> int:
        expands: set[int] = set()
        for item in kernel:
            sym = g.after[item]
            if sym >= 0 and not g.is_term[sym]:
                expands.update(g.reach[sym])
        self.kernels.append(kernel)
        self.expands.append(frozenset(expands))
        self.trans.append({})
        return len(self.kernels) - 1


def _digraph(relation: list[list[int]], base: list[int]) -> list[int]:
    """F(x) = base(x) | OR {F(y) : y in relation[x]} for every x (bit masks), by
    DeRemer and Pennello's traversal, iteratively; a strongly connected set shares F."""
    n = len(base)
    f = list(base)
    depth = [0] * n  # 0 unvisited, -1 done, else the stack height when first reached
    stack: list[int] = []
    for x0 in range(n):
        if depth[x0]:
            continue
        stack.append(x0)
        depth[x0] = len(stack)
        work = [[x0, 0, len(stack)]]
        while work:
            top = work[-1]
            x, i = top[0], top[1]
            edges = relation[x]
            if i < len(edges):
                top[1] = i + 1
                y = edges[i]
                if depth[y] == 0:
                    stack.append(y)
                    depth[y] = len(stack)
                    work.append([y, 0, len(stack)])
                    continue
            else:
                work.pop()
                if depth[x] == top[2]:
                    fx = f[x]
                    while True:
                        z = stack.pop()
                        depth[z] = -1
                        f[z] = fx
                        if z == x:
                            break
                if not work:
                    break
                y, x = x, work[-1][0]
            if 0 < depth[y] < depth[x]:
                depth[x] = depth[y]
            f[x] |= f[y]
    return f


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _lookaheads(g: _Grammar, a: _Automaton, roots: list[int]) -> list[dict[int, int]]:
    """Per state: rule -> bit mask of the terminals on which it reduces there."""
    gotos: dict[tuple[int, int], int] = {}  # (state, nonterminal) -> x
    for p, trans in enumerate(a.trans):
        for sym in trans:
            if not g.is_term[sym]:
                gotos[(p, sym)] = len(gotos)
    term_bits = [sum(1 << sym for sym in trans if g.is_term[sym]) for trans in a.trans]
    direct = [0] * len(gotos)
    reads: list[list[int]] = [[] for _ in gotos]
    includes: list[list[int]] = [[] for _ in gotos]
    lookback: list[list[tuple[int, int]]] = [[] for _ in gotos]
    for (p, nt), x in gotos.items():
        q = a.trans[p][nt]
        direct[x] = term_bits[q]
        reads[x] = [gotos[(q, c)] for c in a.trans[q] if g.nullable[c]]
    end = 1 << g.ids[(True, "$END")]
    for start, r in zip(a.starts, roots, strict=True):
        direct[gotos[(start, g.rhs[r][0])]] |= end
    for (p, nt), x in gotos.items():
        # each rule nt -> ω (at dot 0 in p's closure, as p has a goto on nt): walk ω from p
        for r in g.by_origin[nt]:
            rhs, tail = g.rhs[r], g.tail[r]
            state = p
            for i, sym in enumerate(rhs):
                if i + 1 >= tail and not g.is_term[sym]:
                    includes[gotos[(state, sym)]].append(x)
                state = a.trans[state][sym]
            lookback[x].append((state, r))
    follow = _digraph(includes, _digraph(reads, direct))
    la: list[dict[int, int]] = [{} for _ in a.trans]
    for x, pairs in enumerate(lookback):
        for q, r in pairs:
            la[q][r] = la[q].get(r, 0) | follow[x]
    return la


def _analyse(rules: list[Rule], starts: list[str]):
    """(grammar, LR(0) automaton, per-state reduce lookaheads, rules by id, root rule ids)."""
    _check(rules + [Rule(NonTerminal("$root_" + s), [NonTerminal(s), Terminal("$END")])
                    for s in starts])
    everything = list(rules) + [Rule(NonTerminal("$root_" + s), [NonTerminal(s)]) for s in starts]
    g = _Grammar(everything, extra=[Terminal("$END")])
    roots = list(range(len(rules), len(everything)))
    a = _Automaton(g, roots)
    return g, a, _lookaheads(g, a, roots), everything, roots


def reduce_lookaheads(rules: list[Rule], starts: list[str]
                      ) -> list[tuple[frozenset[tuple[Rule, int]], dict[Rule, frozenset[str]]]]:
    """Per LR(0) state: its closure items (rule, dot) and, for each rule reduced there,
    the terminals of its LALR(1) lookahead (before any conflict is resolved)."""
    g, a, la, everything, _ = _analyse(rules, list(dict.fromkeys(starts)))
    out = []
    for s, kernel in enumerate(a.kernels):
        items = {(everything[g.item_rule[i]], i - g.base[g.item_rule[i]]) for i in kernel}
        items |= {(everything[r], 0) for n in a.expands[s] for r in g.by_origin[n]}
        out.append((frozenset(items), {everything[r]: frozenset(g.symbols[t].name for t in _bits(m))
                                       for r, m in la[s].items()}))
    return out


def parse_table(rules: list[Rule], starts: list[str], strict: bool = False) -> IntParseTable:
    """Lark's ``IntParseTable`` of ``rules``: per state, terminal or nonterminal name ->
    ``(Shift, state)`` or ``(Reduce, rule)``; GrammarError as Lark raises it."""
    starts = list(dict.fromkeys(starts))  # Lark keys its start states by name
    g, a, la, everything, root_ids = _analyse(rules, starts)
    states: dict[int, dict[str, tuple]] = {}
    collisions = []
    for s, trans in enumerate(a.trans):
        actions: dict[str, tuple] = {g.symbols[sym].name: (Shift, t) for sym, t in trans.items()}
        by_terminal: dict[int, list[Rule]] = {}
        for r, mask in la[s].items():
            for t in _bits(mask):
                by_terminal.setdefault(t, []).append(everything[r])
        for t, candidates in by_terminal.items():
            term = g.symbols[t]
            if len(candidates) > 1:
                ranked = sorted(candidates, key=lambda r: r.options.priority or 0, reverse=True)
                first, second = (r.options.priority or 0 for r in ranked[:2])
                if first <= second:
                    collisions.append((term, candidates))
                    continue
                candidates = ranked[:1]
            rule = candidates[0]
            if term.name in actions:
                if strict:
                    raise GrammarError(f"Shift/Reduce conflict for terminal {term.name}. "
                                       f"[strict-mode]\n * {rule}\n")
                logger.debug("Shift/Reduce conflict for terminal %s: (resolving as shift)",
                             term.name)
                logger.debug(" * %s", rule)
            else:
                actions[term.name] = (Reduce, rule)
        states[s] = actions
    if collisions:
        raise GrammarError("\n\n".join(
            f"Reduce/Reduce collision in {term} between the following rules: "
            + "".join("\n\t- " + str(r) for r in candidates)
            for term, candidates in collisions))
    return IntParseTable(states, dict(zip(starts, a.starts, strict=True)),
                         {s: a.trans[p][g.rhs[r][0]]
                          for s, p, r in zip(starts, a.starts, root_ids, strict=True)})
