"""The smiles domain: the partial-SMILES critic is sound (never kills a prefix of a molecule
RDKit accepts) and kills provably dead prefixes; complete() is RDKit's verdict; prompts,
tasks, evaluation, set metrics and CLI options; an end-to-end run on a FunctionLM."""

from __future__ import annotations

import argparse
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("rdkit")
from rdkit import Chem  # noqa: E402

import smc  # noqa: E402
import smc.domains  # noqa: E402
from potentials.base import NEG_INF  # noqa: E402
from potentials.smiles_critic import SmilesValidity, max_valence, quiet, sanitises  # noqa: E402
from smc.domains.smiles import SmilesDomain, read_pool  # noqa: E402

CRITIC = SmilesValidity()
POOL = read_pool("moses")
NCI = read_pool("nci")

TRICKY = [
    "c1ccccc1", "[NH4+]", "[NH4+].[Cl-]", "C/C=C/C", "F/C=C\\F", "C[C@@H](N)C(=O)O",
    "N[C@@H](Cc1ccccc1)C(=O)O", "C%10CCCCC%10", "C%12CC%12C1CC1", "C1CC1.C1CC1",
    "CN(=O)=O", "O=n1ccccc1", "[O-][n+]1ccccc1", "CN=N#N", "CN=[N+]=[N-]", "OCl(=O)(=O)=O",
    "O=I(=O)O", "C(C)(C)(C)(C)[Fe]", "CN(C)(C)[Pt]", "[Fe+3]", "[Cu+2].[O-]S(=O)(=O)[O-]",
    "[2H]O[2H]", "[13CH4]", "[CH3:1]C(=O)[OH:2]", "C=1CCCCC=1", "C1CCCC=1", "C-1CCCC=1",
    "C:1:C:C:C:C:C:1", "c1cc[nH]c1", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "[se]1cccc1",
    "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O", "[C-]#[O+]", "O=C=O", "C$C", "*C(=O)O",
    "BrC(Cl)(I)F", "CC(C)(C)C", "S(=O)(=O)(O)O", "CS(C)(=O)=O", "P(=O)(O)(O)O", "[H][H]",
    "[H]C([H])([H])[H]", "C1.C1", "c1ccc2c(c1)cccc2", "C[N+](C)(C)C", "[O-]C(=O)C",
]

# (text, length of the shortest dead prefix): RDKit rejects every completion from there.
DEAD = [
    ("C(C)(C)(C)(C)C", 14),       # carbon with five bonds to carbons
    ("CO(C)C", 6),                # oxygen with three bonds
    ("C=O=C", 5),                 # O with two double bonds (a pending bond counts 0: metal?)
    ("[NH4+]C", 7),               # N+ already has four bonds to H
    ("[CH4]C", 6),
    ("C11", 3),                   # a ring bond on one atom
    ("C1C1", 4),                  # a ring bond doubling a chain bond
    ("C12CC12", 7),               # two ring bonds between the same atoms
    ("FC(F)(F)(F)F", 12),
    ("CF(C)", 4),
    ("C[N+](C)(C)(C)C", 15),
    ("O(C)(C)[H]", 10),
    ("C#C#C", 5),
]


def prefixes_alive(text: str) -> list[str]:
    return [text[:k] for k in range(len(text) + 1) if CRITIC.prefix(text[:k]) != 0.0]


def test_pools_load_and_sanitise():
    assert len(POOL) == 2000 and len(NCI) > 4800
    assert all(sanitises(s) for s in POOL[:50])


@pytest.mark.parametrize("smiles", TRICKY)
def test_tricky_molecules_keep_every_prefix(smiles):
    with quiet():
        assert Chem.MolFromSmiles(smiles) is not None, smiles
    assert CRITIC.complete(smiles) == 0.0
    assert not prefixes_alive(smiles), (smiles, prefixes_alive(smiles)[:1])


def test_every_prefix_of_pool_molecules_is_alive():
    for smiles in POOL[:400] + NCI[:400]:
        assert not prefixes_alive(smiles), (smiles, CRITIC.explain(prefixes_alive(smiles)[0]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(POOL + NCI))
def test_sampled_molecules_keep_every_prefix(smiles):
    assert not prefixes_alive(smiles)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="CNOSFPcno()[]=#123+-H.@%0", min_size=1, max_size=14))
def test_any_string_rdkit_accepts_has_no_dead_prefix(text):
    """Soundness beyond the pools: random strings; where RDKit sanitises the string (the
    complete verdict), no prefix may be dead; and complete() is exactly RDKit's verdict."""
    with quiet():
        ok = Chem.MolFromSmiles(text) is not None
    assert (CRITIC.complete(text) == 0.0) == ok
    if ok:
        assert not prefixes_alive(text), (text, CRITIC.explain(prefixes_alive(text)[0]))


@pytest.mark.parametrize("text, dead_at", DEAD)
def test_dead_prefixes(text, dead_at):
    with quiet():
        assert Chem.MolFromSmiles(text) is None
    assert CRITIC.prefix(text[:dead_at - 1]) == 0.0, CRITIC.explain(text[:dead_at - 1])
    assert CRITIC.prefix(text[:dead_at]) == NEG_INF
    assert CRITIC.explain(text[:dead_at])
    for extra in ("", "C", ")C", "1", "[Fe]"):     # once dead, dead for every extension
        assert CRITIC.prefix(text[:dead_at] + extra) == NEG_INF


def test_complete_is_rdkit_and_strict_about_whitespace():
    for text, ok in [("CCO", True), ("c1ccccc1", True), ("c1cccc1", False), ("C1CC", False),
                     ("C(", False), ("", False), ("CCO x", False), (" CCO", False),
                     ("n1cccc1", False), ("c", False)]:
        assert (CRITIC.complete(text) == 0.0) is ok, text
    # judged only at the end: an open ring, a non-kekulisable or acyclic aromatic prefix
    for text in ("C1CC", "c1cccc", "cc", "C(", "[Fe", "C%1", "C="):
        assert CRITIC.prefix(text) == 0.0, text


def test_unknown_text_is_not_claimed_dead():
    for text in ("hello", "C C", "C)", "[Xx]"):
        assert CRITIC.prefix(text) == 0.0   # the grammar's business, not the critic's


def test_max_valence_probe_is_monotone_and_matches_rdkit():
    assert max_valence("C", 0) == 4 and max_valence("O", 0) == 2 and max_valence("F", 0) == 1
    assert max_valence("N", 1) == 4 and max_valence("N", 0) == 5   # nitro clean-up rescue
    for element, charge in [("C", 0), ("C", -1), ("O", 1), ("S", 0), ("P", 0), ("H", 0)]:
        limit = max_valence(element, charge)
        sign = "" if charge == 0 else ("+" if charge > 0 else "-") + str(abs(charge))
        with quiet():
            ok = [Chem.MolFromSmiles(f"[{element}{sign}]" + "(C)" * k) is not None
                  for k in range(limit + 3)]
        assert ok == [True] * (limit + 1) + [False] * 2, (element, charge, ok)


def test_evaluate_at_skips_inside_brackets_and_cache_is_bounded():
    assert CRITIC.evaluate_at("CC") and CRITIC.evaluate_at("C[NH4+]")
    assert not CRITIC.evaluate_at("C[NH")
    small = SmilesValidity(cache_size=2)
    for text in ("C", "CC", "CCC", "CCCC"):
        small.prefix(text)
    assert len(small._prefix) == 2
    with pytest.raises(ValueError):
        SmilesValidity(cache_size=0)


# -- the domain ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dom():
    return smc.domains.load("smiles")


def test_load_tasks_and_prompt(dom):
    assert isinstance(dom, SmilesDomain) and dom.critic is not None and dom.constraint
    tasks = dom.tasks()
    assert len(tasks) == 30 and len({t.id for t in tasks}) == 30
    assert [t.meta["examples"] for t in tasks] == [
        t.meta["examples"] for t in SmilesDomain().tasks()]          # seeded, reproducible
    assert len({tuple(t.meta["examples"]) for t in tasks}) == 30
    theme_tasks = [t for t in tasks if t.meta["theme"]]
    assert len({t.meta["theme"] for t in theme_tasks}) >= 2
    for t in theme_tasks:   # every example really has the named group
        assert t.meta["theme"] in t.question
    t = tasks[0]
    assert all(len(t.meta["examples"]) == 5 and s in POOL for s in t.meta["examples"])
    text = dom.for_task(t).prompt(t.question)
    assert all(s in text for s in t.meta["examples"]) and t.question in text
    assert dom.examples is None     # for_task binds a copy


def test_free_question_gets_seeded_examples(dom):
    t = dom.task("a small aromatic amine")
    assert t.meta["examples"] == dom.examples_for("a small aromatic amine")
    assert t.meta["examples"] != dom.examples_for("a macrocycle")
    assert all(s in dom.prompt("a small aromatic amine") for s in t.meta["examples"])
    own = dom.task("like these", examples=["CCO", "CCN"], id="q1")
    assert own.id == "q1" and "CCN" in dom.for_task(own).prompt("like these")
    with pytest.raises(ValueError):
        dom.task("x", examples="CCO")
    with pytest.raises(ValueError):
        dom.task("   ")


def test_evaluate(dom):
    t = dom.task("anything", examples=["CCO", "c1ccccc1"])
    ev = dom.evaluate("OCC", t)
    assert ev.valid and ev.correct and not ev.details["novel"] and ev.details["similarity"] == 1
    assert ev.details["canonical"] == "CCO" and math.isclose(ev.score, ev.details["qed"])
    ev = dom.evaluate("```smiles\nCC(=O)Oc1ccccc1C(=O)O\n```", t)
    assert ev.valid and ev.details["novel"] and 0.5 < ev.score < 0.6   # aspirin QED 0.55
    for bad in (None, "", "C1CC", "c1cccc1", "CCO is ethanol"):
        ev = dom.evaluate(bad, t)
        assert not ev.valid and not ev.correct and ev.score == 0.0 and ev.details["reason"]


def test_summarise():
    s = SmilesDomain.summarise(["CCO", "OCC", "C1CC", None, "c1ccccc1"], examples=["CCO"])
    assert (s["n"], s["valid"], s["unique"]) == (5, 3, 2)
    assert math.isclose(s["validity"], 0.6) and math.isclose(s["uniqueness"], 2 / 3)
    assert math.isclose(s["novelty"], 1 / 3) and 0 < s["mean_qed"] < 1
    empty = SmilesDomain.summarise([None, "C("])
    assert empty["validity"] == empty["uniqueness"] == empty["mean_qed"] == 0.0


def test_options_and_bad_input(tmp_path):
    p = argparse.ArgumentParser()
    SmilesDomain.add_arguments(p)
    args = p.parse_args(["--shots", "3", "--pool", "nci", "--pool-seed", "7", "--n-tasks", "4",
                         "--no-critic"])
    opts = SmilesDomain.options_from(args)
    assert opts == {"shots": 3, "pool": "nci", "pool_seed": 7, "n_tasks": 4, "critic": False}
    d = SmilesDomain(**opts)
    assert d.critic is None and len(d.tasks()) == 4
    assert all(len(t.meta["examples"]) == 3 for t in d.tasks())
    smi = tmp_path / "mine.smi"
    smi.write_text("# a comment\nCCO ethanol\nC1CC broken\nc1ccccc1\nCCN\nCCO\n")
    assert read_pool(smi) == ["CCO", "c1ccccc1", "CCN"]
    csv = tmp_path / "mine.csv"
    csv.write_text("id,smiles\n1,CCO\n2,CCC\n")
    assert read_pool(csv) == ["CCO", "CCC"]
    (tmp_path / "bad.csv").write_text("id,name\n1,x\n")
    for kwargs in ({"shots": 0}, {"shots": 21}, {"n_tasks": 0}, {"pool": "nowhere"},
                   {"pool": str(tmp_path / "bad.csv")}, {"pool": str(smi), "shots": 3}):
        with pytest.raises(ValueError):
            SmilesDomain(**kwargs)


def test_end_to_end_on_a_function_lm(dom):
    """smc with the domain's grammar and critic on a uniform character LM: every output with
    posterior mass is a molecule RDKit sanitises, and particles the critic killed were dead."""
    vocab = ["C", "N", "O", "(", ")", "1", "=", "#", "c", "<eos>"]
    eos = len(vocab) - 1

    def next_logprobs(ids):
        lp = np.full(len(vocab), -np.log(len(vocab)))
        lp[eos] = np.log(0.3) if len(ids) >= 2 else -np.inf
        rest = np.log((0.7 if len(ids) >= 2 else 1.0) / (len(vocab) - 1))
        lp[:eos] = rest
        return lp

    lm = smc.FunctionLM(vocab, eos, next_logprobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = smc.generate(lm, "", constraint=dom.constraint, critic=dom.critic, method="smc",
                           n_particles=32, max_tokens=10, seed=3)
    assert res.posterior and math.isclose(sum(res.posterior.values()), 1.0)
    assert all(sanitises(x) for x in res.posterior)
    for p in res.particles:
        if p.death == "the critic rejected a prefix":
            with quiet():
                assert CRITIC.explain(p.text)


def test_answer_line_may_end_with_its_newline():
    import smc

    dom = smc.domains.load("smiles")
    assert dom.constraint.complete("CCO\n") == 0.0
    assert dom.constraint.prefix("CCO\nC") == float("-inf")
    assert dom.critic.prefix("CCO\n") == 0.0 and dom.critic.complete("CCO\n") == 0.0
    assert dom.critic.complete("C1CC\n") == float("-inf")
    assert dom.evaluate("CCO\n", dom.tasks()[0]).valid
