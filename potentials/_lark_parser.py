"""Character-level configurations of Lark's LALR(1) parser and contextual lexer.

A configuration is (parser stack, pending-lexeme state, lexer constraints).  Reading a
character c from a configuration either extends the pending lexeme, or first ends
it as a terminal t (fed to the parser: reduce*, shift) and starts a new lexeme with
c.  The set of configurations reached by a text x is non-empty iff x is a viable
prefix in this model, whose language contains Lark's (see ``_lark_lexer``).

Stacks are immutable, interned nodes (state, parent), so equal stacks are the same
object, configurations hash in O(1), and feeding a terminal is memoised per node.
"""

from __future__ import annotations

import re

from lark import Lark
from lark.indenter import Indenter
from lark.parsers.lalr_analysis import Shift

from potentials._lark_contexts import LexerContexts
from potentials._lark_indent import Indentation
from potentials._lark_lexer import Constraints, LexContext
from potentials._lark_munch import longest_match_safe
from potentials._lark_regex import DEAD, CharAutomaton

# (stack, lexeme state, constraint set, indentation state, newline width; see _lark_indent)
Config = tuple["StackNode", int, int, int, int]


class StackNode:
    """One LALR stack: ``state`` on top of ``parent``; children are interned.

    Memoised answers about a stack (``fed``, ``shifts``, ``ctx``) also record the
    lowest ``height`` (root = 0) whose state they read: any stack with the same
    states down to that height gets the same answer (see ``GrammarMask``).
    """

    __slots__ = ("state", "parent", "height", "kids", "fed", "fed_low", "ctx", "ctx_paren",
                 "ctx_low", "shifts")

    def __init__(self, state: int, parent: StackNode | None) -> None:
        self.state = state
        self.parent = parent
        self.height = 0 if parent is None else parent.height + 1
        self.kids: dict[int, StackNode] = {}
        # terminal -> stack after feeding it (or None), and the lowest height that read;
        # two dicts, not one of pairs: a dict of ints is never tracked by the collector
        self.fed: dict[int, StackNode | None] = {}
        self.fed_low: dict[int, int] = {}
        self.ctx: LexContext | None = None
        self.ctx_paren: LexContext | None = None  # inside brackets (indenting grammars)
        self.ctx_low = 0  # lowest height ``ctx`` read
        # accepted terminals of virtual stacks (this node + the states pushed above it),
        # with the lowest height read (pairs interned by the engine)
        self.shifts: dict[tuple[int, ...], tuple[frozenset[int], int]] = {}

    def states(self) -> list[int]:
        """The stack bottom-to-top (for tests and debugging)."""
        out, node = [], self
        while node is not None:
            out.append(node.state)
            node = node.parent
        return out[::-1]


class ParserEngine:
    """Advances sets of configurations of one Lark LALR grammar, character by character."""

    def __init__(self, lark: Lark, g_regex_flags: int = 0,
                 indenter: Indenter | None = None) -> None:
        conf = lark.parse_interactive("").parser_state.parse_conf
        # state -> symbol -> (-1, next state) for a shift (a goto on a rule is one), or
        # (symbols popped, goto symbol) for a reduction; plain-str symbols: Lark's are Token
        # objects whose __eq__ is slow in dict lookups
        self._table = {state: {str(name): (-1, arg) if kind is Shift
                               else (len(arg.expansion), str(arg.origin.name))
                               for name, (kind, arg) in actions.items()}
                       for state, actions in conf.states.items()}
        self._start_state = conf.start_state
        self.end_state = conf.end_state
        lexer = lark.parser.lexer
        self._lexer = lexer if hasattr(lexer, "lexers") else lexer.lexer  # behind a post-lexer
        terminals = list(lark.terminals)
        self.names = [t.name for t in terminals]
        # terminals only a post-lexer emits (%declare): parser symbols without an automaton
        self.names += [indenter.INDENT_type, indenter.DEDENT_type] if indenter else []
        self.index = {name: i for i, name in enumerate(self.names)}
        self.autos = [CharAutomaton(t.pattern.to_regexp(), g_regex_flags) for t in terminals]
        for t, auto in zip(terminals, self.autos, strict=True):  # see _lark_munch
            auto.longest = auto.exact and longest_match_safe(t.pattern.to_regexp(), g_regex_flags)
        self.ignore = frozenset(self.index[n] for n in lark.lexer_conf.ignore if n in self.index)
        self.constraints = Constraints(self.autos)
        self._by_action: dict[int, tuple[frozenset[int], list]] = {}
        # (accepted terminals, height) answers of ``_accepts``, interned: few are distinct,
        # and a fresh one per virtual stack would be a long-lived object for the collector
        self._pairs: dict[tuple[frozenset[int], int], tuple[frozenset[int], int]] = {}
        self.lexers = LexerContexts(self._lexer, self.index, self.autos)
        self.indentation = Indentation(self, indenter) if indenter else None
        self.initial_ind = self.indentation.initial if indenter else 0
        # inside brackets the post-lexer drops newlines: always useful there (``context``)
        self._paren_useful = self.ignore | {self.indentation.nl} if indenter else self.ignore
        self._nl_alive: dict[tuple[LexContext, int], bool] = {}
        self._ends: dict[tuple[StackNode, int], bool] = {}  # accepts_end, memoised
        self._units: dict[tuple[int, int, str], int] = {}  # see _unit_chain
        self.node_count = 0
        self.root = self.reset_stacks()

    @property
    def exact_terminals(self) -> bool:
        """Whether every terminal's automaton is exact (no widened regex construct)."""
        return all(a.exact for a in self.autos)

    def reset_stacks(self) -> StackNode:
        """Forget every interned stack (bounds memory); returns the new root."""
        self.node_count = 1
        self.root = StackNode(self._start_state, None)
        self._ends = {}
        if getattr(self, "indentation", None) is not None:
            self.indentation.reset()
        return self.root

    # ---- parser ----------------------------------------------------------------------
    def _push(self, node: StackNode, state: int) -> StackNode:
        kid = node.kids.get(state)
        if kid is None:
            kid = node.kids[state] = StackNode(state, node)
            self.node_count += 1
        return kid

    def feed(self, node: StackNode, term: int) -> StackNode | None:
        """The stack after shifting terminal ``term`` (with its reductions), or None."""
        if term in node.fed:
            return node.fed[term]
        return self._feed(node, term)[0]

    def feed_low(self, node: StackNode, term: int) -> tuple[StackNode | None, int]:
        """``feed`` and the lowest stack height it read."""
        low = node.fed_low.get(term)
        return (node.fed[term], low) if low is not None else self._feed(node, term)

    def _feed(self, node: StackNode, term: int) -> tuple[StackNode | None, int]:
        name, table, cur = self.names[term], self._table, node
        out: StackNode | None = None
        low = node.height
        while True:
            action = table[cur.state].get(name)
            if action is None:
                break
            popped, arg = action
            if popped < 0:                                   # shift
                out = self._push(cur, arg)
                break
            if popped == 1:  # a chain of unit reductions, in one step (see _unit_chain)
                cur = cur.parent
                top = self._unit_chain(cur.state, table[cur.state][arg][1], name)
            else:
                for _ in range(popped):
                    cur = cur.parent
                top = table[cur.state][arg][1]
            if cur.height < low:
                low = cur.height
            cur = self._push(cur, top)
        node.fed[term] = out
        node.fed_low[term] = low
        return out, low

    def _unit_chain(self, below: int, top: int, name: str) -> int:
        """The top state after the unit reductions (one symbol popped, one goto pushed)
        that ``name`` triggers from ``top`` on ``below``: each leaves ``below`` in place,
        so the chain depends on these two states only (e.g. the 13 precedence levels an
        SQL expression climbs before a comma).  Memoised; none of its states is interned.
        """
        key = (below, top, name)
        got = self._units.get(key)
        if got is None:
            table, got = self._table, top
            while True:
                action = table[got].get(name)
                if action is None or action[0] != 1:
                    break
                got = table[below][action[1]][1]
            self._units[key] = got
        return got

    def _actions(self, state: int) -> tuple[frozenset[int], list[tuple[int, str, frozenset[int]]]]:
        """State ``state``'s terminals that shift, and its reductions as (length, goto
        symbol, terminals that reduce by it)."""
        got = self._by_action.get(state)
        if got is None:
            index, shifts, groups = self.index, [], {}
            for name, (popped, arg) in self._table[state].items():
                if name not in index:
                    continue
                if popped < 0:
                    shifts.append(index[name])
                else:
                    groups.setdefault((popped, arg), []).append(index[name])
            got = self._by_action[state] = (
                frozenset(shifts), [(k, a, frozenset(t)) for (k, a), t in groups.items()])
        return got

    def accepts(self, node: StackNode) -> frozenset[int]:
        """Terminals the parser accepts exactly in stack ``node`` (not just the top state).

        A terminal that reduces is accepted iff the stack after that reduction accepts
        it (LALR lookaheads over-approximate: the stack decides).  Reductions are
        simulated on virtual stacks (an interned base node + the states pushed above
        it, nothing interned) whose accepted sets are memoised on the base node, so a
        reduction that pops into an ancestor reuses what its siblings computed there.
        """
        return self._accepts(node, ())[0]

    def _accepts(self, base: StackNode, above: tuple[int, ...]) -> tuple[frozenset[int], int]:
        """(accepted terminals, lowest height read) of the virtual stack base + above."""
        got = base.shifts.get(above)
        if got is not None:
            return got
        shifts, reductions = self._actions(above[-1] if above else base.state)
        out, low = shifts, base.height
        for k, origin, terms in reductions:
            drop = min(k, len(above))
            rest = above[: len(above) - drop]
            root = base
            for _ in range(k - drop):
                root = root.parent
            goto = self._table[rest[-1] if rest else root.state][origin][1]
            ok, low2 = self._accepts(root, (*rest, goto))
            if low2 < low:
                low = low2
            ok = terms & ok
            if ok:
                out = out | ok
        got = (out, low)
        base.shifts[above] = got = self._pairs.setdefault(got, got)
        return got

    # ---- lexer (contexts: ``_lark_contexts``) ---------------------------------------------
    def context(self, node: StackNode, in_paren: bool = False) -> LexContext:
        """The lexer context of stack ``node`` (memoised on the node).

        Inside brackets an indenting grammar's newline token is always useful: the
        post-lexer drops it before the parser sees it.
        """
        ctx = node.ctx_paren if in_paren else node.ctx
        if ctx is None:
            accepted, node.ctx_low = self._accepts(node, ())
            extra = self._paren_useful if in_paren else self.ignore
            ctx = self.lexers.for_accepted(node.state, accepted, in_paren, extra)
            if in_paren:
                node.ctx_paren = ctx
            else:
                node.ctx = ctx
        return ctx

    def wide_context(self, ctx: LexContext) -> LexContext:
        """``ctx``'s lexer with every terminal useful (``LexerContexts.wide``)."""
        return self.lexers.wide(ctx)

    def wide_contexts(self) -> list[LexContext]:
        """The wide context of every parser state's lexer."""
        return self.lexers.all_wide(self._table)

    def context_at(self, node: StackNode, ind: int) -> LexContext:
        """The lexer context of a configuration's stack and indentation state."""
        if self.indentation is not None and self.indentation.in_paren(ind):
            return node.ctx_paren or self.context(node, True)
        return node.ctx or self.context(node)

    def emit(self, node: StackNode, ind: int, term: int,
             col: int) -> tuple[StackNode, int] | None:
        """(stack, ind) after the lexer emits ``term`` (newline width ``col``), or None."""
        if term in self.ignore:
            return node, ind
        if self.indentation is not None:
            return self.indentation.feed(self, node, ind, term, col)
        node2 = self.feed(node, term)
        return None if node2 is None else (node2, ind)

    def width(self, ctx: LexContext, lid: int, col: int, ch: str) -> int:
        """The newline width after ``ch`` took the pending lexeme to ``lid`` (−1: untracked)."""
        if self.indentation is None:
            return -1
        key = (ctx, lid)
        alive = self._nl_alive.get(key)
        if alive is None:
            nl = self.indentation.nl
            alive = self._nl_alive[key] = any(t == nl for t, _d in ctx._states[lid])
        return self.indentation.width(col, ch) if alive else -1

    def accepts_end(self, node: StackNode, ind: int) -> bool:
        """Whether the parser accepts the end of the text on ``node`` (after final dedents)."""
        if self.indentation is not None:
            node = self.indentation.at_end(self, node, ind)
            if node is None:
                return False
        states = node.states()
        table = self._table
        while True:
            action = table[states[-1]].get("$END")
            if action is None or action[0] < 0:
                return False
            popped, goto = action
            if popped:
                del states[-popped:]
            states.append(table[states[-1]][goto][1])
            if states[-1] == self.end_state:
                return True

    @property
    def ends_exactly(self) -> bool:
        """Whether ``can_end`` equals Lark's verdict on a whole text.

        True when every terminal is exact and ``re.match`` takes its longest run
        (``_lark_munch``) and there is no indentation post-lexer: then the lexer
        constraints leave exactly Lark's reading of each lexeme, so a configuration
        that can end is Lark's own parse reaching $END (the parser part is exact)."""
        return self.indentation is None and all(a.exact and a.longest for a in self.autos)

    def can_end(self, configs: frozenset[Config]) -> bool:
        """Whether some configuration ends here: its pending lexeme is empty or closes as
        a terminal the parser takes, and the parser then accepts $END.  A necessary
        condition for Lark accepting the text; an exact one when ``ends_exactly``."""
        ends = self._ends
        for stack, lid, _cid, ind, col in configs:
            ctx = self.context_at(stack, ind)
            if lid == ctx.init:
                got = ends.get((stack, ind))
                if got is None:
                    got = ends[(stack, ind)] = self.accepts_end(stack, ind)
                if got:
                    return True
            for term, _extra in ctx.closes(lid):
                emitted = self.emit(stack, ind, term, col)
                if emitted is None:
                    continue
                got = ends.get(emitted)
                if got is None:
                    got = ends[emitted] = self.accepts_end(*emitted)
                if got:
                    return True
        return False

    # ---- configurations --------------------------------------------------------------
    def initial(self) -> frozenset[Config]:
        """Configurations of the empty text."""
        ctx = self.context(self.root)
        col = -1 if self.indentation is None else 0
        return (frozenset() if ctx.init == DEAD
                else frozenset({(self.root, ctx.init, 0, self.initial_ind, col)}))

    def advance(self, configs: frozenset[Config], ch: str) -> frozenset[Config]:
        """Configurations after reading ``ch`` (a new set; inputs are never mutated)."""
        out: set[Config] = set()
        cons = self.constraints
        indenting = self.indentation is not None
        for node, lid, cid, ind, col in configs:
            cid_next = cons.step(cid, ch)
            if cid_next < 0:
                continue
            ctx = self.context_at(node, ind) if indenting else node.ctx or self.context(node)
            lid_next = ctx.step(lid, ch)
            if lid_next != DEAD:
                col_next = self.width(ctx, lid_next, col, ch) if indenting else -1
                out.add((node, lid_next, cid_next, ind, col_next))
            for term, extra in ctx.closes(lid):
                emitted = self.emit(node, ind, term, col)
                if emitted is None:
                    continue
                node2, ind2 = emitted
                ctx2 = self.context_at(node2, ind2) if indenting else node2.ctx or self.context(
                    node2)
                if ctx2.init == DEAD:
                    continue
                lid2 = ctx2.step(ctx2.init, ch)
                if lid2 == DEAD:
                    continue
                cid2 = cons.step(cons.merge(cid, extra), ch) if extra else cid_next
                if cid2 >= 0:
                    col2 = self.width(ctx2, lid2, 0, ch) if indenting else -1
                    out.add((node2, lid2, cid2, ind2, col2))
        return frozenset(out)

    def run(self, text: str, configs: frozenset[Config] | None = None) -> frozenset[Config]:
        """Configurations after reading ``text`` from ``configs`` (default: the start)."""
        configs = self.initial() if configs is None else configs
        for ch in text:
            if not configs:
                break
            configs = self.advance(configs, ch)
        return configs


def compile_flags(ignore_case: bool) -> int:
    """Lark's ``g_regex_flags`` for the options of ``LarkGrammar``."""
    return re.IGNORECASE if ignore_case else 0
