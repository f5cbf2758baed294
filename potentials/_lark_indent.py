"""Python-style indentation (Lark's ``Indenter`` post-lexer) for character-level configurations.

Lark's indenter turns each ``_NEWLINE`` token into ``_NEWLINE`` followed by ``_INDENT``
(width > top of the indentation stack) or as many ``_DEDENT`` as it takes to return to
an enclosing width (a width between two levels is an error); inside brackets it drops
``_NEWLINE`` altogether; at the end of the text it closes every open level with
``_DEDENT``.  The width of a newline token is ``count(' ') + tab_len·count('\\t')`` of
its text after the last ``\\n``.

Here that state is part of every configuration: ``ind`` interns (bracket depth,
indentation levels) and ``col`` is the width of the pending lexeme so far (−1 when
the pending lexeme can no longer be a newline token, so the width does not split
otherwise equal configurations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lark.indenter import Indenter

if TYPE_CHECKING:
    from potentials._lark_parser import ParserEngine, StackNode


class GrammarIndenter(Indenter):
    """Lark's indenter with the names the shipped Python grammar uses."""

    NL_type = "_NEWLINE"
    OPEN_PAREN_types = ["LPAR", "LSQB", "LBRACE"]
    CLOSE_PAREN_types = ["RPAR", "RSQB", "RBRACE"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8


def wants_indenter(grammar_text: str) -> bool:
    """A grammar that declares ``_INDENT`` and ``_DEDENT`` gets Python-style indentation."""
    declared = [line.split()[1:] for line in grammar_text.splitlines()
                if line.strip().startswith("%declare")]
    names = {n for line in declared for n in line}
    return {"_INDENT", "_DEDENT"} <= names


class Indentation:
    """Bracket depth and indentation levels, interned as small ints, and their transitions."""

    def __init__(self, engine: ParserEngine, indenter: Indenter) -> None:
        index = engine.index
        self.nl = index[indenter.NL_type]
        self.indent = index[indenter.INDENT_type]
        self.dedent = index[indenter.DEDENT_type]
        self.opens = frozenset(index[n] for n in indenter.OPEN_PAREN_types if n in index)
        self.closes = frozenset(index[n] for n in indenter.CLOSE_PAREN_types if n in index)
        self.tab_len = indenter.tab_len
        self.states: list[tuple[int, tuple[int, ...]]] = []
        self._ids: dict[tuple[int, tuple[int, ...]], int] = {}
        self.initial = self.intern(0, (0,))
        self._fed: dict[tuple[StackNode, int, int, int], tuple[StackNode, int] | None] = {}

    def intern(self, paren: int, levels: tuple[int, ...]) -> int:
        key = (paren, levels)
        got = self._ids.get(key)
        if got is None:
            got = self._ids[key] = len(self.states)
            self.states.append(key)
        return got

    def in_paren(self, ind: int) -> bool:
        return self.states[ind][0] > 0

    def width(self, col: int, ch: str) -> int:
        """Width after reading ``ch`` into a lexeme that may still be a newline token."""
        if ch == "\n":
            return 0
        if ch == " ":
            return col + 1
        if ch == "\t":
            return col + self.tab_len
        return col

    def feed(self, engine: ParserEngine, node: StackNode, ind: int, term: int,
             col: int) -> tuple[StackNode, int] | None:
        """(stack, ind) after the lexer emits ``term`` (its width ``col``), or None."""
        key = (node, ind, term, col if term == self.nl else -1)
        if key in self._fed:
            return self._fed[key]
        paren, levels = self.states[ind]
        out: tuple[StackNode, int] | None = None
        if term == self.nl:
            if paren > 0:
                out = (node, ind)
            else:
                out = self._newline(engine, node, levels, col)
        else:
            node2 = engine.feed(node, term)
            if node2 is not None:
                if term in self.opens:
                    out = (node2, self.intern(paren + 1, levels))
                elif term in self.closes:
                    out = (node2, self.intern(paren - 1, levels)) if paren > 0 else None
                else:
                    out = (node2, ind)
        self._fed[key] = out
        return out

    def _newline(self, engine: ParserEngine, node: StackNode, levels: tuple[int, ...],
                 col: int) -> tuple[StackNode, int] | None:
        cur: StackNode | None = engine.feed(node, self.nl)
        if cur is None:
            return None
        if col > levels[-1]:
            cur = engine.feed(cur, self.indent)
            levels = (*levels, col)
        else:
            while cur is not None and col < levels[-1]:
                levels = levels[:-1]
                cur = engine.feed(cur, self.dedent)
            if cur is None or col != levels[-1]:
                return None
        return None if cur is None else (cur, self.intern(0, levels))

    def at_end(self, engine: ParserEngine, node: StackNode, ind: int) -> StackNode | None:
        """The stack after the ``_DEDENT``s that close every open level at the end."""
        cur: StackNode | None = node
        for _ in range(len(self.states[ind][1]) - 1):
            if cur is None:
                return None
            cur = engine.feed(cur, self.dedent)
        return cur

    def reset(self) -> None:
        """Forget transitions that refer to interned stacks (the engine dropped them)."""
        self._fed.clear()
