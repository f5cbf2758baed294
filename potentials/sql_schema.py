"""An SQLite database's schema, read-only access to it, and the SELECT grammar specialised to it.

``schema_grammar(schema)`` is ``grammars/sql.lark`` with its one identifier rule
``name: IDENT | QUOTED_IDENT`` replaced by the alternatives of the live schema: every table
and column name, a fixed set of SQL function names and a fixed set of alias names (by
default ``T1``..``T4``).  Loaded with ``ignore_case=True`` (as SQLite, keywords and names
are case-insensitive), its language is the shipped SELECT language restricted to those
identifiers; whether each name is *in scope* is the critic's business (``sql_scope``).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import grammars
from potentials.lark_grammar import LarkGrammar

NAME_RULE = "name: IDENT | QUOTED_IDENT"
# SQLite core and aggregate functions offered to the model ("date", "datetime", "rtrim" ...
# are keywords of sql.lark and cannot be names: they are dropped by ``keywords`` below).
FUNCTIONS = ("count", "sum", "avg", "min", "max", "total", "abs", "round", "length", "lower",
             "upper", "coalesce", "ifnull", "nullif", "substr", "instr", "replace", "trim",
             "strftime", "julianday", "group_concat")
ALIASES = ("T1", "T2", "T3", "T4")
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEYWORD_DEF = re.compile(r'^([A-Z_]+): "([A-Z_]+)"$', re.M)
SQLITE_MAGIC = b"SQLite format 3\x00"


def keywords() -> frozenset[str]:
    """The keywords of ``grammars/sql.lark`` (lower case): they can never be names."""
    return frozenset(m.group(2).lower() for m in _KEYWORD_DEF.finditer(grammars.load("sql")))


@dataclass(frozen=True)
class Schema:
    """Tables of a database, each with its column names, all lower case, in schema order."""

    tables: dict[str, tuple[str, ...]]
    ddl: tuple[str, ...] = ()          # the CREATE TABLE statements as stored by SQLite
    # foreign keys: (table, column, referenced table, referenced column or None for its key)
    foreign_keys: tuple[tuple[str, str, str, str | None], ...] = ()

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(c for cols in self.tables.values() for c in cols)

    def listing(self) -> str:
        """A compact one-line-per-table listing: ``customers(id, name, city)``."""
        return "\n".join(f"{t}({', '.join(cols)})" for t, cols in self.tables.items())


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    """A connection that cannot change the file: opened with ``mode=ro``, ``query_only`` and
    an authorizer that allows only reading statements (no ATTACH, no writes, no PRAGMA but
    ``table_info`` and ``foreign_key_list``).

    ValueError (naming the path) when it is not an existing SQLite database file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"SQLite database {str(path)!r} does not exist or is not a file")
    with open(p, "rb") as f:
        if f.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise ValueError(f"{str(path)!r} is not an SQLite database (bad file header)")
    uri = p.resolve().as_uri().replace("file://", "file:", 1) + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True, check_same_thread=False)
        con.execute("PRAGMA query_only = ON")
        con.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000_000)
        con.set_authorizer(_select_only)
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as e:
        raise ValueError(f"{str(path)!r} cannot be opened as an SQLite database: {e}") from e
    return con


# Actions a read-only query may take (sqlite3 authorizer codes): read, select, call a
# function, a recursive CTE, and two PRAGMAs that read the schema.  Everything else
# (writes, ATTACH, other PRAGMAs, ...) is denied at prepare time, a second lock besides
# ``mode=ro`` and ``query_only``.
_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_READ, sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION,
                              getattr(sqlite3, "SQLITE_RECURSIVE", 33)})


_PRAGMAS = frozenset({"table_info", "foreign_key_list"})


def _select_only(action: int, arg1: str | None, arg2: str | None, db: str | None,
                 source: str | None) -> int:
    if action in _ALLOWED_ACTIONS or (action == sqlite3.SQLITE_PRAGMA and arg1 in _PRAGMAS):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def read_schema(con: sqlite3.Connection) -> Schema:
    """The tables (not SQLite's internal ones) and their columns; ValueError if there are none."""
    rows = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                       "AND name NOT LIKE 'sqlite_%' ORDER BY rowid").fetchall()
    if not rows:
        raise ValueError("the database has no tables")
    tables: dict[str, tuple[str, ...]] = {}
    fks: list[tuple[str, str, str, str | None]] = []
    for name, _ in rows:
        quoted = '"' + name.replace('"', '""') + '"'
        cols = con.execute(f"PRAGMA table_info({quoted})").fetchall()
        tables[name.lower()] = tuple(c[1].lower() for c in cols)
        for fk in con.execute(f"PRAGMA foreign_key_list({quoted})").fetchall():
            fks.append((name.lower(), fk[3].lower(), fk[2].lower(), fk[4] and fk[4].lower()))
    return Schema(tables, tuple(sql for _, sql in rows if sql), tuple(fks))


def grammar_names(schema: Schema, aliases: Iterable[str] = ALIASES,
                  functions: Iterable[str] = FUNCTIONS) -> tuple[list[str], list[str]]:
    """(names the grammar allows, schema names left out): tables, columns, functions and
    aliases, lower case, deduplicated; a name that is an SQL keyword of the grammar or not a
    plain identifier (it would need quoting) is left out."""
    reserved = keywords()
    allowed: list[str] = []
    left_out: list[str] = []
    schema_names = [*schema.tables, *(c for cols in schema.tables.values() for c in cols)]
    for name in [*schema_names, *functions, *aliases]:
        low = name.lower()
        if low in allowed:
            continue
        if low in reserved or not _PLAIN_NAME.match(low):
            if name in schema_names and low not in left_out:
                left_out.append(low)
            continue
        allowed.append(low)
    return allowed, left_out


def schema_grammar_text(schema: Schema, aliases: Iterable[str] = ALIASES,
                        functions: Iterable[str] = FUNCTIONS) -> str:
    """``grammars/sql.lark`` with its ``name`` rule listing only the allowed names."""
    text = grammars.load("sql")
    if text.count(f"\n{NAME_RULE}\n") != 1:
        raise RuntimeError(f"grammars/sql.lark no longer has the line {NAME_RULE!r}")
    names, _ = grammar_names(schema, aliases, functions)
    # longest first: the order Lark tries string terminals of equal priority does not
    # matter for the language, but it keeps the rule readable
    rule = "name: " + " | ".join(f'"{n}"' for n in sorted(names, key=lambda n: (-len(n), n)))
    return text.replace(f"\n{NAME_RULE}\n", f"\n{rule}\n")


def schema_grammar(schema: Schema, aliases: Iterable[str] = ALIASES,
                   functions: Iterable[str] = FUNCTIONS) -> LarkGrammar:
    """The boolean constraint: SQLite SELECT statements over ``schema``'s names only (one
    shared instance per grammar text: building one takes a fraction of a second)."""
    return _grammar(schema_grammar_text(schema, aliases, functions))


@lru_cache(maxsize=16)
def _grammar(text: str) -> LarkGrammar:
    return LarkGrammar(text, ignore_case=True)


__all__ = ["ALIASES", "FUNCTIONS", "Schema", "connect_readonly", "grammar_names", "keywords",
           "read_schema", "schema_grammar", "schema_grammar_text"]
