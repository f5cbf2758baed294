"""Pure helpers of benchmarks/genlm_sql.py (no genlm-control needed)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from potentials.lark_grammar import LarkGrammar
from potentials.sql_schema import schema_grammar_text
from smc.domains.base import Task

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "genlm_sql.py"
_spec = importlib.util.spec_from_file_location("genlm_sql_bench", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _tasks(sizes: dict[str, int]) -> list[Task]:
    return [Task(f"{db}-{i:02d}", "q", None, {"db": db})
            for db, n in sizes.items() for i in range(1, n + 1)]


def test_select_tasks_round_robin_evenly_spaced():
    tasks = _tasks({"a": 30, "b": 30, "c": 30})
    ids = [t.id for t in bench.select_tasks(tasks, 7)]
    assert ids == ["a-01", "b-01", "c-01", "a-11", "b-16", "c-16", "a-21"]
    assert len({t.id for t in bench.select_tasks(tasks, 90)}) == 90


def test_select_tasks_small_database_gives_its_share_away():
    tasks = _tasks({"a": 1, "b": 10})
    picked = bench.select_tasks(tasks, 6)
    assert [t.id for t in picked].count("a-01") == 1 and len({t.id for t in picked}) == 6


@pytest.mark.parametrize("n", [0, 12])
def test_select_tasks_rejects_bad_counts(n):
    with pytest.raises(ValueError):
        bench.select_tasks(_tasks({"a": 5, "b": 6}), n)


def test_genlm_lark_translation():
    from smc.domains.sql import SQLDomain

    dom = SQLDomain("shop")
    text = schema_grammar_text(dom.schema, dom.aliases)
    out = bench.genlm_lark(text)
    assert 'SELECT: "SELECT"i' in out and '"customers"i' in out and 'WS?' in out
    assert '"customers" ' not in out.split("name: ", 1)[1].split("\n", 1)[0]
    # still a Lark grammar; case-sensitive here it accepts what ours does with ignore_case
    g = LarkGrammar(out)
    for q in ("select Name from CUSTOMERS", "SELECT count(*) FROM orders WHERE total > 1E3 ;\n"):
        assert g.complete(q) == 0 == dom.constraint.complete(q)
    with pytest.raises(RuntimeError):
        bench.genlm_lark(text.replace("\nname: ", "\nnames: "))


def test_last_boundary_and_decode_prefix():
    at = lambda s: s.endswith(" ")  # noqa: E731
    assert bench.last_boundary("SELECT a FROM", at) == "SELECT a "
    assert bench.last_boundary("SELECT", at) == ""
    assert bench.decode_prefix("é".encode()[:1]) == ""
    assert bench.decode_prefix(b"ab" + "é".encode()) == "abé"
    assert bench.decode_prefix(b"\xff") is None


def test_best_of_sums_weights_in_log_space():
    eos = object()
    ctxs = [[b"a", eos], [b"a", eos], [b"b", eos], [b"c"]]
    assert bench.best_of(ctxs, [-1000.0, -1000.0, -1000.5, 0.0], eos) == "a"
    assert bench.best_of([[b"c"]], [0.0], eos) is None


def test_summarize():
    def row(o, g, to=False):
        return {"ours": {"seconds": o, "valid": True, "correct": o < 2, "tokens": 10},
                "genlm": {"seconds": g, "valid": not to, "correct": False, "timed_out": to,
                          "tokens": 5}}
    s = bench.summarize([row(1.0, 10.0), row(2.0, 30.0, True), row(4.0, 20.0)])
    assert s["ratio_median"] == 10.0 and math.isclose(s["ratio_total"], 60 / 7)
    assert s["ours"]["accuracy"] == pytest.approx(1 / 3)
    assert s["genlm"]["validity"] == pytest.approx(2 / 3)
    assert s["genlm_timeouts"] == 1 and s["ratios_are_lower_bounds"] and s["ours_execute"] == 1.0
    assert s["ratio_tokens_per_s"] == pytest.approx((30 / 7) / (15 / 60))
