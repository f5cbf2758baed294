"""The ``sql`` domain: schema grammar, scope critic (soundness), read-only safety, evaluator."""

from __future__ import annotations

import argparse
import hashlib
import math
import shutil
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smc
import smc.domains
from potentials.base import NEG_INF
from potentials.sql_schema import connect_readonly, grammar_names, read_schema
from potentials.sql_scope import explain_ok
from smc.domains.sql import DATA, SHIPPED, QueryError, SQLDomain, run_query, same_result

SHOP = DATA / "shop.sqlite"


@pytest.fixture(scope="module")
def doms() -> dict[str, SQLDomain]:
    return {name: smc.domains.load("sql", db=name) for name in SHIPPED}


@pytest.fixture(scope="module")
def shop(doms) -> SQLDomain:
    return doms["shop"]


# Valid queries beyond the gold ones: aliases, CTEs, correlated and derived subqueries,
# compound selects, USING, table.*, output aliases used later.
EXTRA_SHOP = [
    "SELECT T1.name, count(*) AS T2 FROM customers AS T1 JOIN orders AS T2 ON T1.id = "
    "T2.customer_id GROUP BY T1.id ORDER BY T2 DESC",
    "select count(*) as price from orders order by price",
    "WITH T1 AS (SELECT customer_id, sum(total) AS T2 FROM orders GROUP BY customer_id) "
    "SELECT name, T2 FROM customers JOIN T1 ON customers.id = T1.customer_id",
    "SELECT name FROM customers WHERE EXISTS (SELECT 1 FROM orders WHERE orders.customer_id "
    "= customers.id)",
    "SELECT (SELECT count(*) FROM orders WHERE customer_id = customers.id) FROM customers",
    "SELECT T1.name FROM (SELECT name FROM products) AS T1",
    "SELECT name FROM customers UNION SELECT name FROM products ORDER BY name",
    "SELECT name FROM products WHERE id IN (SELECT products.id FROM order_items)",
    "SELECT customers.* FROM customers, orders WHERE customers.id = orders.customer_id;",
    "SELECT T1.name FROM customers T1 LEFT JOIN orders T2 ON T1.id = T2.customer_id "
    "WHERE T2.id IS NULL",
    "SELECT name FROM customers JOIN orders USING (id) WHERE total > 10 LIMIT 3",
    "SELECT CASE WHEN price > 10 THEN 'big' ELSE 'small' END T3, count(*) FROM products "
    "GROUP BY T3 HAVING count(*) > 1",
    "SELECT upper(name), round(avg(total), 2) FROM customers JOIN orders ON "
    "customers.id = orders.customer_id GROUP BY name",
]


def _golds(doms):
    return [(dom, t.gold) for dom in doms.values() for t in dom.tasks()]


# ---- data --------------------------------------------------------------------------------
def test_shipped_tasks(doms):
    every = SQLDomain.all_tasks()
    assert len({t.id for t in every}) == len(every)
    for name, dom in doms.items():
        tasks = dom.tasks()
        assert len(tasks) >= 30
        assert all(t.meta["db"] == name and t.gold for t in tasks)
        assert [t.id for t in every if t.meta["db"] == name] == [t.id for t in tasks]
        for t in tasks:                       # every gold runs and returns rows
            assert run_query(dom.con, t.gold)


def test_for_task_switches_database(shop, doms):
    school_task = doms["school"].tasks()[0]
    bound = shop.for_task(school_task)
    assert bound.db == "school" and "students" in bound.schema.tables
    assert shop.for_task(shop.tasks()[0]) is shop
    assert shop.for_task(shop.task("How many orders?")) is shop
    assert shop.evaluate(school_task.gold, school_task).correct


# ---- grammar -----------------------------------------------------------------------------
def test_grammar_accepts_every_gold_query(doms):
    for dom, gold in _golds(doms):
        assert dom.constraint.complete(gold) == 0.0, gold
    for q in EXTRA_SHOP:
        assert doms["shop"].constraint.complete(q) == 0.0, q


def test_grammar_rejects_unknown_names(shop):
    g = shop.constraint
    for bad in ["SELECT foo", "SELECT name FROM userz", "SELECT nme FROM customers",
                "SELECT title FROM books", "SELECT name FROM customers AS zz",
                "SELECT \"name\" FROM customers"]:
        assert g.prefix(bad) == NEG_INF, bad
    assert g.prefix("select NAME from CUSTOM") == 0.0         # case-insensitive, open word
    assert g.complete("select count(*) from customers as t1") == 0.0


def test_grammar_names():
    schema = read_schema(connect_readonly(SHOP))
    names, left_out = grammar_names(schema, aliases=("T1", "x"))
    assert {"customers", "order_items", "unit_price", "count", "t1", "x"} <= set(names)
    assert left_out == [] and len(names) == len(set(names))


# ---- critic ------------------------------------------------------------------------------
def test_critic_sound_on_every_prefix_of_valid_queries(doms):
    queries = _golds(doms) + [(doms["shop"], q) for q in EXTRA_SHOP]
    for dom, q in queries:
        assert explain_ok(dom.con, q) and dom.critic.complete(q) == 0.0, q
        for k in range(len(q) + 1):
            assert dom.critic.prefix(q[:k]) == 0.0, (q, q[:k])


OUT_OF_SCOPE = [
    "SELECT name FROM orders WHERE ",                      # orders has no name
    "SELECT T1.name FROM customers AS T2 WHERE ",          # T1 is not defined
    "SELECT customers.name FROM customers AS T1 WHERE ",   # aliased: customers is hidden
    "SELECT customers.price FROM customers WHERE ",        # price is not a customers column
    "SELECT name FROM price ",                             # price is not a table
    "SELECT name FROM customersorders ",                   # run-on names
    "SELECT name FROM customers WHERE id IN (SELECT total FROM products) ",
    "SELECT name FROM customers WHERE id IN (SELECT T1.id FROM products)",
    "SELECT count(*) FROM orders GROUP BY city ",
    "SELECT total FROM orders UNION SELECT total FROM products WHERE ",
    "SELECT T2.name FROM customers T1 JOIN orders T2 ON T1.id = T2.customer_id ORDER BY ",
    "select c.name from customers o;",
]


def test_critic_rejects_out_of_scope_names(shop):
    for bad in OUT_OF_SCOPE:
        assert shop.critic.prefix(bad) == NEG_INF, bad
        # the shortest completion does not compile either
        done = bad + ("1" if bad.rstrip().endswith(("WHERE", "BY")) else "")
        assert not explain_ok(shop.con, done), done
        for extension in (" LIMIT 1", " x", "1)"):
            assert shop.critic.prefix(bad + extension) == NEG_INF


def test_critic_waits_for_the_from_clause(shop):
    c = shop.critic
    # undecidable yet: FROM not written, still open, or an outer FROM still open
    for open_ in ["SELECT price ", "SELECT price FROM ", "SELECT price FROM customers ",
                  "SELECT price FROM customers, ", "SELECT price FROM customers JOIN ",
                  "SELECT (SELECT price FROM customers) ", "SELECT T1.name FROM ",
                  "SELECT name FROM customers WHERE id IN (SELECT customers.x",
                  "SELECT name FROM customers WHERE id IN (SELECT pri"]:
        assert c.prefix(open_) == 0.0, open_
    assert c.prefix("SELECT (SELECT price FROM customers) FROM products ") == 0.0
    assert c.prefix("SELECT (SELECT price FROM customers) FROM products WHERE ") == 0.0
    assert c.prefix("SELECT (SELECT price FROM customers) FROM orders WHERE ") == NEG_INF


def test_critic_complete_is_explain(shop):
    c = shop.critic
    assert c.complete("SELECT name FROM customers") == 0.0
    assert c.complete("SELECT name FROM customers;") == 0.0
    assert c.complete("SELECT name FROM customers WHERE") == NEG_INF
    assert c.complete("SELECT nope FROM customers") == NEG_INF
    assert c.complete("SELECT id FROM customers, orders") == NEG_INF     # ambiguous column
    assert c.complete("SELECT 1; DROP TABLE customers") == NEG_INF
    assert c.complete("") == NEG_INF


def test_critic_evaluates_after_every_token_and_judges_all_but_the_last_word(shop):
    c = shop.critic
    assert c.evaluate_at("SELECT name ") and c.evaluate_at("SELECT nam")
    assert not c.evaluate_at("")
    # BPE tokens carry their leading space: the bad column is judged once a next word
    # starts, although the text does not end at a word boundary
    assert c.prefix("SELECT name FROM customers WHERE nope") == 0.0      # may still grow
    assert c.prefix("SELECT name FROM customers WHERE nope IS") == NEG_INF


TOKENIZER_DEAD = [
    "SELECT name FROM products GROUP BY category COLLATE NOCASELIMIT1",   # one collation name
    "SELECT name FROM products ORDER BY name COLLATE binaryx",
    "SELECT name FROM products ORDER BY name COLLATE nocase_ ",
    "SELECT name FROM customers LIMIT 10LIMIT",                         # a number run into a word
    "SELECT 1x",
    "SELECT name FROM customers WHERE id = 3AND",
    "SELECT name FROM customers WHERE id = 3.5e2_",
]
TOKENIZER_ALIVE = [
    "SELECT 0x1F", "SELECT 0x", "SELECT 1e5", "SELECT 1.5e", "SELECT 1 x", "SELECT 10",
    "SELECT name FROM customers ORDER BY name COLLATE NOC",
    "SELECT name FROM customers ORDER BY name COLLATE nocase",
    "SELECT name FROM customers ORDER BY name COLLATE RTRIM LIMIT 1",
    "SELECT name FROM customers ORDER BY name COLLATE ",
]


def test_critic_rejects_what_sqlites_tokenizer_reads_as_one_bad_token(shop):
    """Where the grammar's lexer splits one SQLite token (a number run into a word, a
    collation name run into the next keyword), no completion compiles: −inf at once,
    also while the last word still grows, and on every extension."""
    c = shop.critic
    for bad in TOKENIZER_DEAD:
        assert c.prefix(bad) == NEG_INF, bad
        for extension in ("", " ", "1", "x", " LIMIT 1", " FROM customers", ";"):
            assert not explain_ok(shop.con, bad + extension), bad + extension
            assert c.prefix(bad + extension) == NEG_INF, bad + extension
    for ok in TOKENIZER_ALIVE:
        assert c.prefix(ok) == 0.0, ok
    assert explain_ok(shop.con, "SELECT 0x1F") and explain_ok(shop.con, "SELECT 1.5e3")


COLUMNS = {t: list(cols) for t, cols in read_schema(connect_readonly(SHOP)).tables.items()}


@st.composite
def _queries(draw):
    """Random SELECT queries over the shop schema, about half of them invalid."""
    t1, t2 = draw(st.sampled_from(list(COLUMNS))), draw(st.sampled_from(list(COLUMNS)))
    every = [c for cols in COLUMNS.values() for c in cols]
    alias = draw(st.booleans())
    q1, q2 = ("T1", "T2") if alias else (t1, t2)
    src = f"{t1} AS T1" if alias else t1
    join = draw(st.booleans()) and t1 != t2
    if join:
        src += f" JOIN {t2}{' AS T2' if alias else ''} ON {q1}.id = {q2}.id"
    col = draw(st.sampled_from(every))
    qual = draw(st.sampled_from([None, q1, q2, "T3"]))
    ref = f"{qual}.{col}" if qual else col
    where = draw(st.sampled_from(["", f" WHERE {ref} IS NOT NULL",
                                  f" WHERE id IN (SELECT {col} FROM {t2})"]))
    tail = draw(st.sampled_from(["", f" GROUP BY {ref}", f" ORDER BY {ref} DESC LIMIT 2"]))
    return f"SELECT {ref}, count(*) FROM {src}{where}{tail}"


@settings(max_examples=300, deadline=None)
@given(query=_queries())
def test_critic_is_a_prefix_upper_bound(shop, query):
    c = shop.critic
    ok = explain_ok(shop.con, query)
    assert (c.complete(query) == 0.0) == ok
    values = [c.prefix(query[:k]) for k in range(len(query) + 1)]
    if ok:
        assert all(v == 0.0 for v in values), query
    first_dead = next((k for k, v in enumerate(values) if v == NEG_INF), None)
    if first_dead is not None:                 # once −inf, −inf on every extension
        assert all(v == NEG_INF for v in values[first_dead:]), query


# ---- read-only safety ----------------------------------------------------------------------
def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_database_is_never_modified(tmp_path):
    db = tmp_path / "copy.sqlite"
    shutil.copy(SHOP, db)
    before = _digest(db)
    dom = SQLDomain(str(db))
    task = dom.task("How many customers?", gold="SELECT count(*) FROM customers")
    attacks = ["DROP TABLE customers", "DELETE FROM orders", "UPDATE products SET price = 0",
               "INSERT INTO customers (id, name) VALUES (999, 'x')",
               "CREATE TABLE t (a)", "PRAGMA query_only = OFF", "PRAGMA journal_mode = WAL",
               f"ATTACH DATABASE '{tmp_path / 'new.sqlite'}' AS x",
               "SELECT 1; DROP TABLE customers", "VACUUM", "REINDEX",
               f"VACUUM INTO '{tmp_path / 'dump.sqlite'}'",
               "WITH T1 AS (SELECT 1) DELETE FROM orders"]
    for q in attacks:
        ev = dom.evaluate(q, task)
        assert not ev.valid and not ev.correct, q
        assert dom.critic.complete(q) == NEG_INF, q
        with pytest.raises(QueryError):
            run_query(dom.con, q)
        try:                                   # even the raw connection cannot write
            dom.con.execute(q).fetchall()
        except sqlite3.Error:
            pass
    assert _digest(db) == before
    assert not (tmp_path / "new.sqlite").exists() and not (tmp_path / "dump.sqlite").exists()
    assert dom.evaluate("SELECT count(*) FROM customers", task).correct


def test_bad_database_paths(tmp_path):
    with pytest.raises(ValueError, match="nowhere.sqlite"):
        smc.domains.load("sql", db=str(tmp_path / "nowhere.sqlite"))
    text = tmp_path / "notes.sqlite"
    text.write_text("this is not a database\n" * 10)
    with pytest.raises(ValueError, match="notes.sqlite.*not an SQLite"):
        SQLDomain(str(text))
    with pytest.raises(ValueError, match="does not exist"):
        SQLDomain(str(tmp_path))                # a directory
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("CREATE TABLE t (a)").connection.execute("DROP TABLE t")
    with pytest.raises(ValueError, match="no tables"):
        SQLDomain(str(empty))


def test_default_database_is_the_first_shipped():
    assert SQLDomain.__init__.__defaults__[0] is None
    assert smc.domains.load("sql").db == SHIPPED[0]
    assert smc.domains.load("sql", db="school.sqlite").path == DATA / "school.sqlite"


# ---- evaluator -----------------------------------------------------------------------------
def test_evaluator_execution_accuracy(shop):
    t = shop.task("Customers per country", gold="SELECT country, count(*) FROM customers "
                  "GROUP BY country")
    for same in ["SELECT country, count(id) FROM customers GROUP BY country",
                 "SELECT count(*), country FROM customers GROUP BY country",          # permuted
                 "select country, count(*) from customers group by 1 order by 2 desc",
                 "```sql\nSELECT country, count(*) FROM customers GROUP BY country\n```",
                 "SQL: SELECT country, count(*) FROM customers GROUP BY country;"]:
        ev = shop.evaluate(same, t)
        assert ev.valid and ev.correct and ev.score == 1.0, (same, ev)
    for other in ["SELECT city, count(*) FROM customers GROUP BY city",
                  "SELECT country FROM customers GROUP BY country",
                  "SELECT country, count(*), 1 FROM customers GROUP BY country"]:
        ev = shop.evaluate(other, t)
        assert ev.valid and not ev.correct and ev.score == 0.0, other
    for broken in [None, "", "SELECT nope FROM customers", "hello"]:
        ev = shop.evaluate(broken, t)
        assert not ev.valid and not ev.correct and ev.score == 0.0


def test_evaluator_order_sensitivity(shop):
    ordered = shop.task("q", gold="SELECT name FROM products ORDER BY price DESC")
    unordered = shop.task("q", gold="SELECT name FROM products")
    asc = "SELECT name FROM products ORDER BY price ASC"
    assert not shop.evaluate(asc, ordered).correct
    assert shop.evaluate("SELECT name FROM products ORDER BY price DESC", ordered).correct
    assert shop.evaluate(asc, unordered).correct
    assert not shop.evaluate("SELECT DISTINCT category FROM products", unordered).correct


def test_evaluator_time_limit(tmp_path):
    dom = SQLDomain("shop", timeout=0.2)
    runaway = ("WITH RECURSIVE T1(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM T1) "
               "SELECT count(*) FROM T1")
    ev = dom.evaluate(runaway, dom.task("q", gold="SELECT 1"))
    assert not ev.valid and "timed out" in ev.details["error"]
    assert run_query(dom.con, "SELECT count(*) FROM customers") == [(40,)]   # still usable


def test_same_result():
    assert same_result([(1, "a"), (2, "b")], [("b", 2), ("a", 1)], ordered=False)
    assert not same_result([(1, "a"), (2, "b")], [("b", 2), ("a", 1)], ordered=True)
    assert same_result([(1.0000001,)], [(1.0,)], ordered=True)
    assert not same_result([(1,), (1,)], [(1,)], ordered=False)      # multisets
    assert same_result([], [], ordered=False)


def test_gold_that_fails_is_an_error(shop):
    with pytest.raises(ValueError, match="gold query fails"):
        shop.evaluate("SELECT 1", shop.task("q", gold="SELECT nope FROM customers"))
    assert not shop.evaluate("SELECT 1", shop.task("q")).correct   # no gold: valid only


# ---- prompt and command line ---------------------------------------------------------------
def test_prompt_has_schema_examples_and_question(doms):
    for dom in doms.values():
        text = dom.prompt("How many widgets?")
        assert "CREATE TABLE" in text and text.rstrip().endswith("How many widgets?\nSQL:")
        golds = {" ".join(t.gold.lower().split()) for t in dom.tasks()}
        for _, sql in dom.examples():
            assert explain_ok(dom.con, sql) and dom.constraint.complete(sql) == 0.0
            assert " ".join(sql.lower().split()) not in golds       # no gold leaks
    with pytest.raises(ValueError):
        doms["shop"].prompt("  ")


def test_command_line_options(capsys):
    p = argparse.ArgumentParser()
    SQLDomain.add_arguments(p)
    assert SQLDomain.options_from(p.parse_args(["--db", "school"])) == {"db": "school"}
    assert SQLDomain.options_from(p.parse_args([])) == {"db": None}
    with pytest.raises(SystemExit) as exit_:
        p.parse_args(["--list-dbs"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SHIPPED) and "enrollments" in out


# ---- end to end ------------------------------------------------------------------------------
def test_generate_end_to_end_with_a_function_lm(shop):
    """A uniform word-level LM: SMC under the schema grammar and the scope critic returns only
    queries that compile, with weights normalised."""
    vocab = ["SELECT", " name", " price", " total", " count(*)", " FROM", " customers",
             " products", " orders", " WHERE", " >", " 10", ",", ";", "<eos>"]
    eos = len(vocab) - 1
    lm = smc.FunctionLM(vocab, eos, lambda ids: np.full(len(vocab), -math.log(len(vocab))))
    res = smc.generate(lm, "", constraint=shop.constraint, critic=shop.critic, method="smc",
                       n_particles=40, max_tokens=10, seed=1)
    assert res.posterior and math.isclose(sum(res.posterior.values()), 1.0)
    task = shop.task("anything", gold="SELECT 1")
    for text in res.posterior:
        assert shop.critic.complete(text) == 0.0 and shop.evaluate(text, task).valid, text
    lcd = smc.generate(lm, "", constraint=shop.constraint, method="lcd", n_particles=40,
                       max_tokens=10, seed=1)
    assert any(shop.critic.complete(p.text) == NEG_INF for p in lcd.particles if p.finished)


def test_embedded_model_answers_a_question(shop):
    """The one real-model run: SMC's answer on a shipped question executes."""
    lm = smc.load_model()
    task = next(t for t in SQLDomain.all_tasks() if t.id == "school-02")   # teachers' names
    dom = shop.for_task(task)
    res = smc.generate(lm, dom.prompt(task.question, lm), constraint=dom.constraint,
                       critic=dom.critic, method="smc", n_particles=10, max_tokens=64, seed=0)
    assert res.best is not None
    assert all(dom.evaluate(q, task).valid for q in res.posterior)
