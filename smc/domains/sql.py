"""The ``sql`` domain: text-to-SQL on an SQLite database, scored by execution accuracy.

    dom = smc.domains.load("sql", db="shop")           # a shipped database, or a path
    task = dom.tasks()[0]
    res = smc.generate(lm, dom.prompt(task.question, lm), constraint=dom.constraint,
                       critic=dom.critic, method="smc", n_particles=10)
    dom.evaluate(res.best, task)

Target π(x) ∝ p(x | schema, question) · G(x) · S(x): G is the SELECT grammar whose names are
the database's tables and columns (plus SQL functions and the aliases ``T1``..``T4``), S the
scope critic (names in scope on prefixes, ``EXPLAIN`` compiles at the end).  The database is
only ever opened read-only.  ``evaluate`` runs the output and the gold query (with a time
limit) and compares their results as multisets of rows, as lists when the gold query has
ORDER BY, allowing the output's columns in any order.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import time
from collections import Counter
from itertools import permutations
from pathlib import Path
from typing import Any, ClassVar

from potentials.sql_schema import ALIASES, Schema, connect_readonly, read_schema, schema_grammar
from potentials.sql_scope import SQLScope, is_select
from smc.domains.base import Domain, Evaluation, Task

DATA = Path(__file__).resolve().parent / "data" / "sql"
SHIPPED = ("shop", "school", "library")     # the first is the default database
_ORDER_BY = re.compile(r"\border\s+by\b", re.I)
_LABEL = re.compile(r"^\s*(?:sql|sqlite|query)\s*:\s*", re.I)


class QueryError(Exception):
    """A query that failed, timed out or returned too many rows."""


def resolve_db(db: str | Path | None) -> tuple[str, Path]:
    """(label, path) of ``db``: a file path, or a shipped database's short name (``shop``, or
    ``shop.sqlite`` when no such file is in the working directory); None means the first
    shipped database.  ValueError if it does not exist."""
    if db is None:
        db = SHIPPED[0]
    if isinstance(db, str) and db in SHIPPED:
        return db, DATA / f"{db}.sqlite"
    path = Path(db)
    if not path.is_file() and path.parent == Path(".") and path.stem in SHIPPED \
            and path.suffix == ".sqlite":
        return path.stem, DATA / path.name     # "shop.sqlite", as in the design's examples
    if not path.is_file():
        raise ValueError(f"SQLite database {str(db)!r} does not exist (give a path or one of "
                         f"the shipped databases: {', '.join(SHIPPED)})")
    return str(db), path


def run_query(con: sqlite3.Connection, query: str, timeout: float = 2.0,
              max_rows: int = 100_000) -> list[tuple]:
    """Rows of ``query`` on ``con``; QueryError if it is not a SELECT, fails, runs longer than
    ``timeout`` seconds (SQLite's progress handler interrupts it) or returns more than
    ``max_rows`` rows."""
    if not is_select(query):
        raise QueryError("not a SELECT statement")
    deadline = time.monotonic() + timeout
    con.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    try:
        cur = con.execute(query)
        rows = cur.fetchmany(max_rows + 1)
    except sqlite3.OperationalError as e:
        if "interrupted" in str(e):
            raise QueryError(f"timed out after {timeout} s") from e
        raise QueryError(str(e)) from e
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as e:
        raise QueryError(str(e)) from e
    finally:
        con.set_progress_handler(None, 0)
    if len(rows) > max_rows:
        raise QueryError(f"more than {max_rows} rows")
    return rows


def _norm(row: tuple) -> tuple:
    return tuple(round(v, 6) if isinstance(v, float) else v for v in row)


def same_result(rows: list[tuple], gold: list[tuple], ordered: bool) -> bool:
    """Whether ``rows`` equal ``gold``: as lists if ``ordered`` else as multisets, with the
    columns of ``rows`` in some order (floats compared to 6 decimals)."""
    if len(rows) != len(gold):
        return False
    gold_n = [_norm(r) for r in gold]
    width = len(gold_n[0]) if gold_n else None
    if rows and len(rows[0]) != width:
        return False
    if not rows:
        return True
    target = gold_n if ordered else Counter(gold_n)
    for perm in permutations(range(width)) if width <= 5 else [tuple(range(width))]:
        mine = [_norm(tuple(r[j] for j in perm)) for r in rows]
        if (mine if ordered else Counter(mine)) == target:
            return True
    return False


def read_tasks(path: Path, db: str) -> list[Task]:
    """Tasks of a JSONL file of ``{"id", "question", "gold"}`` objects, bound to ``db``."""
    tasks = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            tasks.append(Task(str(row["id"]), row["question"], row.get("gold"), {"db": db}))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{lineno}: not a task object ({e})") from e
    return tasks


class _ListDBs(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        for name in SHIPPED:
            tables = read_schema(connect_readonly(DATA / f"{name}.sqlite")).tables
            print(f"{name:8s} {DATA / (name + '.sqlite')}  tables: {', '.join(tables)}")
        parser.exit()


class SQLDomain(Domain):
    """Text-to-SQL on one SQLite database (read-only); see the module docstring."""

    name: ClassVar[str] = "sql"
    description: ClassVar[str] = ("text-to-SQL: one SQLite SELECT query over a database's "
                                  "schema, scored by execution accuracy")
    max_tokens: ClassVar[int] = 96
    # No speculative drafts by default: over 3 seeds x 10 questions, speculate=3 cut the
    # forwards by 17-21% on both machines measured, but saved 11% of the time on a Xeon
    # (bfloat16, AMX: extra rows nearly free) and cost 8% on an AMD EPYC (float32, AVX2:
    # each drafted row costs compute).  README, genlm-control section.
    smc_options: ClassVar[dict] = {}
    system: ClassVar[str | None] = ("You are an SQLite expert. Answer the question with one "
                                    "SQLite SELECT query and nothing else.")
    _cache: ClassVar[dict[tuple, SQLDomain]] = {}

    def __init__(self, db: str | Path | None = None, aliases: tuple[str, ...] = ALIASES,
                 timeout: float = 2.0) -> None:
        self.db, self.path = resolve_db(db)
        self.con = connect_readonly(self.path)
        try:
            self.schema: Schema = read_schema(self.con)
        except ValueError as e:
            raise ValueError(f"{str(self.path)!r}: {e}") from e
        self.aliases = tuple(aliases)
        self.timeout = float(timeout)
        self.constraint = schema_grammar(self.schema, self.aliases)
        self.critic = SQLScope(self.schema, lambda: connect_readonly(self.path), self.aliases)
        self._examples: list[tuple[str, str]] | None = None

    # -- prompts ---------------------------------------------------------------
    def instruction(self, question: str) -> str:
        """One user turn: the schema, the few-shot examples and the question."""
        shots = "\n\n".join(f"Question: {q}\nSQL: {s}" for q, s in self.examples())
        return (f"SQLite database schema:\n{self.schema_text()}\n\n{shots}\n\n"
                f"Question: {question.strip()}\nSQL:")

    def prompt(self, question: str, lm: Any = None) -> str:
        """With a chat model: the schema in the system turn and each few-shot example as a
        user/assistant exchange before the question (small models follow that far better
        than examples inside one turn); otherwise ``instruction`` as plain text."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"{self.name}: the question is empty")
        tok = getattr(lm, "tokenizer", None)
        if tok is None or not getattr(tok, "chat_template", None):
            return super().prompt(question, lm)
        messages = [{"role": "system",
                     "content": f"{self.system}\n\nSQLite database schema:\n{self.schema_text()}"}]
        for q, sql in self.examples():
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": sql}]
        messages.append({"role": "user", "content": question.strip()})
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def schema_text(self) -> str:
        """The CREATE TABLE statements of the database, one per line."""
        return "\n".join(" ".join(ddl.split()) + ";" for ddl in self.schema.ddl) or \
            self.schema.listing()

    def examples(self) -> list[tuple[str, str]]:
        """Few-shot (question, SQL) pairs made from the schema and its first rows: a count,
        a superlative, a filter and (with a foreign key) a join with GROUP BY; never a shipped
        task's gold query."""
        if self._examples is None:
            golds = {" ".join(t.gold.lower().split()) for t in self.tasks() if t.gold}
            kinds: dict[str, tuple[str, str]] = {}
            for kind, q, s in self._candidate_examples():
                if kind not in kinds and " ".join(s.lower().split()) not in golds:
                    kinds[kind] = (q, s)
            self._examples = list(kinds.values())
        return self._examples

    def _candidate_examples(self) -> list[tuple[str, str, str]]:
        tables = list(self.schema.tables)
        out: list[tuple[str, str, str]] = []
        for t in reversed(tables):
            out.append(("count", f"How many {t} are there?", f"SELECT count(*) FROM {t}"))
        for t in tables:
            cols = self.schema.tables[t]
            try:
                row = run_query(self.con, f"SELECT * FROM {t} LIMIT 1", self.timeout)
            except QueryError:
                continue
            values = row[0] if row else ()
            texts = [(c, v) for c, v in zip(cols, values, strict=False) if isinstance(v, str)]
            numbers = [c for c, v in zip(cols, values, strict=False)
                       if isinstance(v, (int, float)) and c != "id" and not c.endswith("_id")]
            if texts and numbers:
                out.append(("top", f"Which of the {t} has the highest {numbers[-1]}?",
                            f"SELECT {texts[0][0]} FROM {t} ORDER BY {numbers[-1]} DESC LIMIT 1"))
            if len(texts) >= 2:
                (show, _), (col, value) = texts[0], texts[-1]
                lit = "'" + value.replace("'", "''") + "'"
                out.append(("filter", f"List the {show} of the {t} whose {col} is {value}.",
                            f"SELECT {show} FROM {t} WHERE {col} = {lit}"))
        for child, col, parent, pcol in self.schema.foreign_keys:
            if parent not in self.schema.tables:
                continue
            pcol = pcol or "id"
            label = next((c for c in self.schema.tables[parent] if c != pcol), pcol)
            one = parent[:-1] if parent.endswith("s") else parent
            out.append(("join", f"For each {one}, how many "
                        f"{child} rows refer to it? Show its {label} and the count.",
                        f"SELECT {parent}.{label}, count(*) FROM {parent} JOIN {child} "
                        f"ON {parent}.{pcol} = {child}.{col} GROUP BY {parent}.{pcol}"))
        return out

    # -- tasks -----------------------------------------------------------------
    def tasks(self) -> list[Task]:
        """The questions of ``<db>.jsonl`` beside the database file (none if there is none)."""
        path = self.path.with_suffix(".jsonl")
        return read_tasks(path, self.db) if path.is_file() else []

    @classmethod
    def all_tasks(cls) -> list[Task]:
        """The questions of every shipped database (each task's ``meta["db"]`` names it)."""
        return [t for name in SHIPPED for t in read_tasks(DATA / f"{name}.jsonl", name)]

    def task(self, question: str, **fields: Any) -> Task:
        db = fields.pop("db", None)
        t = super().task(question, **fields)
        return Task(t.id, t.question, t.gold, {**t.meta, "db": db or self.db})

    def for_task(self, task: Task) -> SQLDomain:
        """This domain, or the one of the database ``task.meta["db"]`` names (cached)."""
        db = task.meta.get("db")
        if db is None or db == self.db or resolve_db(db)[1].resolve() == self.path.resolve():
            return self
        key = (str(resolve_db(db)[1].resolve()), self.aliases, self.timeout)
        if key not in SQLDomain._cache:
            SQLDomain._cache[key] = SQLDomain(db, self.aliases, self.timeout)
        return SQLDomain._cache[key]

    # -- scoring ---------------------------------------------------------------
    def evaluate(self, output: str | None, task: Task) -> Evaluation:
        """Execution accuracy: ``valid`` = the output runs, ``correct`` = same result as gold."""
        dom = self.for_task(task)
        query = self.clean(output)
        details: dict[str, Any] = {"db": dom.db, "query": query}
        if query is None:
            return Evaluation(False, False, 0.0, {**details, "error": "no output"})
        query = _LABEL.sub("", query)
        details["query"] = query
        try:
            rows = run_query(dom.con, query, dom.timeout)
        except QueryError as e:
            return Evaluation(False, False, 0.0, {**details, "error": str(e)})
        details["rows"] = len(rows)
        if not task.gold:
            return Evaluation(True, False, 0.0, {**details, "error": "the task has no gold query"})
        try:
            gold = run_query(dom.con, task.gold, dom.timeout)
        except QueryError as e:
            raise ValueError(f"task {task.id}: the gold query fails: {e}") from e
        ordered = bool(_ORDER_BY.search(task.gold))
        correct = same_result(rows, gold, ordered)
        details.update(gold_rows=len(gold), ordered=ordered)
        return Evaluation(True, correct, float(correct), details)

    # -- command line ------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--db", default=None, metavar="NAME_OR_PATH",
                            help=f"SQLite database: a path or a shipped one ({', '.join(SHIPPED)});"
                                 f" default {SHIPPED[0]}")
        parser.add_argument("--list-dbs", nargs=0, action=_ListDBs,
                            help="print the shipped databases and exit")

    @classmethod
    def options_from(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {"db": getattr(args, "db", None)}

    def __repr__(self) -> str:
        return f"SQLDomain(db={self.db!r})"
