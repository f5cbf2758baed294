"""The SQL critic: names in scope on prefixes, ``EXPLAIN`` on complete queries.

For a complete query x, ``complete(x) = 0`` iff SQLite compiles it against the database
(``EXPLAIN x`` on a read-only connection), else −inf.

For a prefix, ``prefix(x) = −inf`` only when no completion can compile: some reference is
already *definitely* out of scope, else 0.  A query level (a SELECT core; subqueries are
levels of their own) is judged only once its FROM list is closed (a later clause keyword, a
closing parenthesis, a compound operator or ";"), and a name unresolved there is an error only
if every enclosing level's FROM list is closed as well (a subquery may use the outer tables).
Judged: a FROM table must be a schema table or a CTE named before it; ``q.col`` needs a
FROM source visible as ``q`` (its alias, else its table name) at its level or an enclosing
one, and ``col`` in that table; an unqualified ``col`` must be a column of some visible
table.  Left unjudged (0), so the bound stays sound: words the grammar allows as aliases (an
output alias may be used anywhere), columns of levels that read a subquery or CTE (their
columns are not computed here), ORDER BY after a compound SELECT, parenthesised joins, the
last word of the text (it may still grow), ambiguity.  Results are cached per text.

Also judged, on every token including the last (``_tokenizer_dead``), two places where the
grammar's lexer splits what SQLite's tokenizer reads as one token: a number run into a
letter or "_" ("10LIMIT", "1x": SQLite's tokenizer calls the whole run illegal; "0x…"
hex is left alone), and the word after COLLATE when no collation (NOCASE, BINARY, RTRIM)
starts with it ("COLLATE NOCASELIMIT10" is one unknown collation name to SQLite, though the
grammar reads NOCASE LIMIT 10).  A later character cannot undo either.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from potentials.base import NEG_INF, Potential
from potentials.sql_schema import Schema, keywords

_TOKEN = re.compile(r"""\s+|(?P<str>'(?:[^']|'')*'?)|(?P<qid>"(?:[^"]|"")*"?|`(?:[^`]|``)*`?)
    |(?P<num>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]*)?)
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>\|\||<<|>>|<=|>=|==|!=|<>|.)""", re.X | re.S)
_CLAUSES = {"where", "group", "having", "order", "limit"}
_COMPOUND = {"union", "intersect", "except"}
# keywords after which a word is a new operand, never an alias of the previous operand
_OPERAND_END_KW = {"end", "null", "true", "false", "current_date", "current_time",
                   "current_timestamp", "asc", "desc"}


@dataclass
class _Source:
    qualifier: str                   # the name the source is visible as (alias or table)
    columns: frozenset[str] | None   # None: unknown (a subquery or a CTE)


@dataclass
class _Level:
    parent: _Level | None
    clause: str = "select"
    from_state: str = ""             # expect | after | after_as | on | using
    from_closed: bool = False
    opaque: bool = False             # a level whose scope is not modelled (parenthesised join)
    compound: bool = False
    depth: int = 0                   # open plain parentheses inside this level
    sources: list[_Source] = field(default_factory=list)
    refs: list[tuple[str | None, str]] = field(default_factory=list)
    bad: bool = False                # a definite error already found (a FROM table)


_COLLATIONS = ("nocase", "binary", "rtrim")


def _tokenizer_dead(text: str) -> bool:
    """Whether SQLite's tokenizer rejects every completion of ``text`` (see module doc)."""
    toks = [m for m in _TOKEN.finditer(text) if m.lastgroup is not None]
    for j, m in enumerate(toks):
        nxt = toks[j + 1] if j + 1 < len(toks) else None
        if m.lastgroup == "num" and nxt is not None and nxt.lastgroup == "word" \
                and nxt.start() == m.end() and not (m.group() == "0" and nxt.group()[0] in "xX"):
            return True
        if m.lastgroup == "word" and m.group().lower() == "collate" and nxt is not None \
                and nxt.lastgroup == "word":
            word = nxt.group().lower()
            growing = nxt.end() == len(text)
            if not any(c.startswith(word) if growing else c == word for c in _COLLATIONS):
                return True
    return False


class _Scan:
    """One left-to-right pass over the complete tokens of a prefix, building query levels."""

    def __init__(self, schema: Schema, keywords_: frozenset[str]) -> None:
        self.schema, self.kw = schema, keywords_
        self.ctes: set[str] = set()
        self.aliases: set[str] = set()             # output aliases defined anywhere
        self.levels: list[_Level] = []

    def tokens(self, text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        end = 0
        for m in _TOKEN.finditer(text):
            end = m.end()
            kind = m.lastgroup
            if kind is None:
                continue
            out.append((kind, m.group().lower() if kind == "word" else m.group()))
        # the last token may still grow when nothing follows it
        if out and end == len(text) and text and not text[-1].isspace():
            last_kind, last = out[-1]
            if last_kind in ("word", "num", "str", "qid") or last in "<>=!|":
                out.pop()
        return out

    def new_level(self, parent: _Level | None) -> _Level:
        level = _Level(parent)
        self.levels.append(level)
        return level

    def run(self, text: str) -> None:
        toks = self.tokens(text)
        level = self.new_level(None)
        stack: list[tuple[_Level, bool]] = []     # (level to return to, is a FROM subquery)
        prev_kind, prev = "", ""
        i = 0
        while i < len(toks):
            kind, tok = toks[i]
            nxt = toks[i + 1][1] if i + 1 < len(toks) else None
            if kind == "word" and tok in self.kw:
                level = self.keyword(level, tok)
            elif tok == "(":
                if nxt in ("select", "with"):
                    from_sub = level.clause == "from" and level.from_state == "expect"
                    stack.append((level, from_sub))
                    level = self.new_level(level)
                else:
                    if level.clause == "from" and level.from_state == "expect":
                        level.opaque = True       # a parenthesised join: not modelled
                    level.depth += 1
            elif tok == ")":
                if level.depth > 0:
                    level.depth -= 1
                    if level.from_state == "using" and level.depth == 0:
                        level.from_state = "after"
                elif stack:
                    level.from_closed = True
                    level, from_sub = stack.pop()
                    if from_sub:
                        level.sources.append(_Source("", None))
                        level.from_state = "after"
            elif tok == ";":
                for lv in self.levels:
                    lv.from_closed = True
            elif kind == "word":
                if nxt == "." and i + 2 >= len(toks):
                    break                         # "q." with the column still to come
                if nxt == ".":
                    col_kind, col = toks[i + 2]
                    level.refs.append((tok, col if col_kind == "word" else "*"))
                    kind, tok = col_kind, col
                    i += 2
                else:
                    self.word(level, tok, prev_kind, prev, nxt)
            elif tok == "," and level.clause == "from" and level.depth == 0:
                level.from_state = "expect"
            prev_kind, prev = kind, tok
            i += 1

    def keyword(self, level: _Level, tok: str) -> _Level:
        if level.depth > 0:
            return level
        if tok in ("select", "with"):
            level.clause = tok
        elif tok == "from":
            level.clause, level.from_state = "from", "expect"
        elif tok in _CLAUSES:
            level.clause = "compound_order" if tok == "order" and level.compound else tok
            level.from_closed = True
        elif tok in _COMPOUND:
            level.from_closed = True
            sibling = self.new_level(level.parent)
            sibling.compound = True
            return sibling
        elif level.clause == "from":
            if tok == "join":
                level.from_state = "expect"
            elif tok == "as" and level.from_state == "after":
                level.from_state = "after_as"
            elif tok in ("on", "using"):
                level.from_state = tok
        return level

    def word(self, level: _Level, tok: str, prev_kind: str, prev: str, nxt: str | None) -> None:
        """A name not followed by "." (a table, an alias, a CTE, a function or a column)."""
        if level.clause == "with":
            if level.depth == 0 and prev != "as":
                self.ctes.add(tok)                 # WITH [RECURSIVE] name [(cols)] AS (...)
            return
        if level.clause == "from" and level.depth == 0 and level.from_state not in ("on", "using"):
            if level.from_state == "expect":
                if tok in self.schema.tables:
                    level.sources.append(_Source(tok, frozenset(self.schema.tables[tok])))
                elif tok in self.ctes:
                    level.sources.append(_Source(tok, None))
                else:
                    level.bad = True               # not a table nor a CTE named before
                level.from_state = "after"
            elif level.from_state in ("after", "after_as") and level.sources:
                level.sources[-1].qualifier = tok
                level.from_state = "aliased"
            return
        if level.from_state == "using" and level.depth > 0 or nxt == "(":
            return                                 # USING (col, ...) / a function name
        if prev == "as" or (prev_kind in ("word", "num", "str")
                            and (prev not in self.kw or prev in _OPERAND_END_KW)) \
                or (prev == ")" and level.clause in ("select", "order")):
            self.aliases.add(tok)                  # an output alias (with or without AS)
            return
        level.refs.append((None, tok))


class SQLScope(Potential):
    """Critic for one database: prefix = names in scope (sound), complete = ``EXPLAIN`` compiles."""

    def __init__(self, schema: Schema, connect: Callable[[], sqlite3.Connection],
                 aliases: Iterable[str] = (), cache_size: int = 100_000) -> None:
        self.schema = schema
        self._connect = connect
        self._con: sqlite3.Connection | None = None
        self.aliases = frozenset(a.lower() for a in aliases)
        self._kw = keywords()
        self._cache: dict[str, float] = {}
        self._complete_cache: dict[str, float] = {}
        self.cache_size = cache_size

    # -- boundary schedule ---------------------------------------------------------
    def evaluate_at(self, text: str) -> bool:
        """After every token (any non-empty text).  The scan judges every word but a last
        one that may still grow, so this is sound anywhere, and it must run at every
        token: byte-level BPE tokens start with the delimiter (" IS"), so a text rarely
        *ends* at a word boundary, and a schedule waiting for one let a whole population
        copy a wrong column name for a dozen tokens before judging it.  A scan of a
        100-character query takes ≈30 µs and is cached per text."""
        return bool(text)

    # -- prefix: scope -------------------------------------------------------------
    def prefix(self, text: str) -> float:
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        if _tokenizer_dead(text):
            value = NEG_INF
        else:
            scan = _Scan(self.schema, self._kw)
            scan.run(text)
            defined = self.aliases | scan.aliases
            value = NEG_INF if any(self._level_bad(lv, defined) for lv in scan.levels) else 0.0
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[text] = value
        return value

    def _level_bad(self, level: _Level, aliases: set[str] | frozenset[str]) -> bool:
        """Whether ``level`` holds a reference that no completion can bring into scope."""
        if level.bad:
            return True
        chain = []
        lv: _Level | None = level
        while lv is not None:
            chain.append(lv)
            lv = lv.parent
        if any(lv.opaque for lv in chain) or level.clause == "compound_order":
            return False
        all_closed = all(lv.from_closed for lv in chain)
        sources = [s for lv in chain for s in lv.sources]
        unknown = any(s.columns is None for s in sources)
        for qual, col in level.refs:
            if qual is None:
                if col in aliases or not all_closed or unknown:
                    continue
                if not any(col in s.columns for s in sources if s.columns is not None):
                    return True
            else:
                matches = [s for s in sources if s.qualifier == qual]
                if not matches:
                    if all_closed:
                        return True
                    continue
                if col != "*" and all_closed and all(
                        s.columns is not None and col not in s.columns for s in matches):
                    return True
        return False

    # -- complete: SQLite compiles it ----------------------------------------------
    def complete(self, text: str) -> float:
        hit = self._complete_cache.get(text)
        if hit is not None:
            return hit
        value = 0.0 if explain_ok(self.connection, text) else NEG_INF
        if len(self._complete_cache) >= self.cache_size:
            self._complete_cache.clear()
        self._complete_cache[text] = value
        return value

    @property
    def connection(self) -> sqlite3.Connection:
        if self._con is None:
            self._con = self._connect()
        return self._con

    def __repr__(self) -> str:
        return f"SQLScope(tables={list(self.schema.tables)})"


_SELECT_START = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*(?:select|with)\b", re.I | re.S)


def is_select(query: str) -> bool:
    """Whether ``query`` starts (after blanks, comments and "(") with SELECT or WITH."""
    return _SELECT_START.match(query) is not None


def explain_ok(con: sqlite3.Connection, query: str) -> bool:
    """Whether ``query`` is one SELECT statement that SQLite compiles against ``con``."""
    q = query.strip()
    if not is_select(q):
        return False
    try:
        con.execute("EXPLAIN " + q).fetchall()
    except (sqlite3.Error, sqlite3.Warning, ValueError):
        return False
    return True


__all__ = ["SQLScope", "explain_ok", "is_select"]
