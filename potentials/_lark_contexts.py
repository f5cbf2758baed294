"""The lexer contexts of one Lark LALR grammar: which terminals Lark's contextual lexer
tries in a parser state, and which of them the parser can take there.

Lark builds one lexer per parser state; many are equal (same terminals in the same
order, same embedded keywords and re-typings), so they are numbered by content
(``lexer_no``). A context is such a lexer plus the set of *useful* terminals (those the
parser accepts on the current stack, and the ignored ones); contexts are shared by every
stack with the same lexer and accepted set, and their pair-set steps by the whole
grammar (``SharedSteps``). A *wide* context makes every terminal useful: one per lexer,
the shape that ``_mask_lexer`` tabulates once for all its contexts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from potentials._lark_lexer import LexContext, SharedSteps
from potentials._lark_regex import CharAutomaton

# Lark's lexer in a parser state: (terminal order, embedded keywords, re-typings)
LexerInfo = tuple[list[int], list[int], dict[int, list[int]]]


class LexerContexts:
    """Lark's per-state lexers (``lexer``: its ContextualLexer) as shared LexContexts."""

    def __init__(self, lexer, index: dict[str, int], autos: Sequence[CharAutomaton]) -> None:
        self._lexer = lexer
        self._index = index
        self._autos = autos
        self._all = frozenset(range(len(autos)))
        self._info: dict[int, LexerInfo] = {}
        self._keys: dict[int, tuple] = {}  # parser state -> lexer key
        self._nos: dict[int, int] = {}  # parser state -> lexer number
        self._key_nos: dict[tuple, int] = {}
        self._contexts: dict[tuple[tuple, frozenset[int]], LexContext] = {}
        self._by_accepted: dict[tuple[int, frozenset[int], bool], LexContext] = {}
        self._wide: dict[tuple, LexContext] = {}
        self.steps = SharedSteps()  # pair-set steps shared by the contexts

    def info(self, state: int) -> LexerInfo:
        """Lark's lexer in parser state ``state``: (order, embedded keywords, unless)."""
        info = self._info.get(state)
        if info is None:
            index = self._index
            basic = self._lexer.lexers[state]
            order = [index[t.name] for t in basic.scanner.terminals]
            in_order = set(order)
            embedded = [index[t.name] for t in basic.terminals if index[t.name] not in in_order]
            unless: dict[int, list[int]] = {}
            for name, callback in basic.callback.items():
                inner = getattr(callback, "scanner", None)
                if inner is not None:
                    unless[index[name]] = [index[t.name] for t in inner.terminals]
            info = self._info[state] = (order, embedded, unless)
        return info

    def key(self, state: int) -> tuple:
        """What Lark's lexer in ``state`` is made of (equal keys lex alike)."""
        key = self._keys.get(state)
        if key is None:
            order, embedded, unless = self.info(state)
            key = self._keys[state] = (tuple(order), tuple(embedded),
                                       tuple(sorted((t, tuple(v)) for t, v in unless.items())))
        return key

    def lexer_no(self, state: int) -> int:
        """A number for Lark's lexer in ``state`` (equal lexers, equal numbers)."""
        got = self._nos.get(state)
        if got is None:
            got = self._nos[state] = self._key_nos.setdefault(self.key(state),
                                                              len(self._key_nos))
        return got

    def for_accepted(self, state: int, accepted: frozenset[int], in_paren: bool,
                     extra: frozenset[int]) -> LexContext:
        """The context of ``state``'s lexer where the parser accepts ``accepted`` (an
        interned set: the key hashes in O(1)); ``extra`` is added to the useful set."""
        by_key = (self.lexer_no(state), accepted, in_paren)
        ctx = self._by_accepted.get(by_key)
        if ctx is None:
            ctx = self._by_accepted[by_key] = self.context(state, accepted | extra)
        return ctx

    def context(self, state: int, useful: frozenset[int]) -> LexContext:
        """The lexer context of Lark's lexer in ``state`` for the ``useful`` terminals."""
        key = (self.key(state), useful)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = LexContext(self._autos, *self.info(state), useful,
                                                   self.steps)
            ctx.lexer_key = key[0]
        return ctx

    def wide(self, ctx: LexContext) -> LexContext:
        """``ctx``'s lexer with every terminal useful: one per lexer, shared by its contexts."""
        return self._wide.get(ctx.lexer_key) or self._new_wide(ctx.lexer_key, ctx.lexer)

    def all_wide(self, states: Iterable[int]) -> list[LexContext]:
        """The wide context of the lexer of every parser state in ``states``."""
        for state in states:
            key = self.key(state)
            if key not in self._wide:
                self._new_wide(key, self.info(state))
        return list(self._wide.values())

    def _new_wide(self, key: tuple, info: LexerInfo) -> LexContext:
        wide = self._wide[key] = LexContext(self._autos, *info, self._all, self.steps)
        wide.lexer_key = key
        return wide
