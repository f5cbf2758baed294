"""``DedupState``: rows with one history share an inner row, and every row's law is the
plain state's (random select / advance / chunk scripts, a FunctionLM and a tiny HF model)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smc
from smc.dedup import DedupState
from smc.dedup import start as dedup_start
from tests.tiny_hf import tiny_lm

V = 5


def _fn(ids):
    """A history-dependent law over 5 tokens (every prefix gives different numbers)."""
    h = hash(tuple(ids)) % 1000
    logits = np.sin(np.arange(V) * (h + 1) * 0.37) * 2.0
    return logits - np.logaddexp.reduce(logits)


def _function_lm():
    return smc.FunctionLM(["a", "b", "c", "d", "<eos>"], eos=4, next_logprobs=_fn)


script = st.lists(st.one_of(
    st.tuples(st.just("select"), st.lists(st.integers(0, 63), min_size=1, max_size=6)),
    st.tuples(st.just("advance"), st.lists(st.integers(0, 2), min_size=6, max_size=6)),
    st.tuples(st.just("chunks"), st.lists(st.lists(st.integers(0, 2), min_size=1, max_size=3),
                                          min_size=6, max_size=6),
              st.lists(st.integers(1, 3), min_size=6, max_size=6)),
), min_size=1, max_size=14)


def _run(lm, prompt_ids, n, ops, vocab):
    """Apply ``ops`` to a DedupState and to the plain state; compare after each."""
    plain, dedup = lm.start(prompt_ids, n), dedup_start(lm, prompt_ids, n)
    np.testing.assert_allclose(dedup.logprobs, plain.logprobs, atol=1e-5)
    for op in ops:
        rows = plain.rows
        if op[0] == "select":
            pick = np.asarray([r % rows for r in op[1]], np.int64)
            plain.select(pick)
            dedup.select(pick)
        elif op[0] == "advance":
            toks = np.asarray([vocab[t] for t in op[1][:rows]], np.int64)
            plain.advance(toks)
            dedup.advance(toks)
        else:
            chunks = [np.asarray([vocab[t] for t in c], np.int64) for c in op[1][:rows]]
            plain.advance_chunks(chunks)
            dedup.advance_chunks(chunks)
            for r, c in enumerate(chunks):
                for j in range(len(c)):
                    np.testing.assert_allclose(dedup.chunk_logprobs(r, j),
                                               plain.chunk_logprobs(r, j), atol=1e-5)
            keep = [min(m, len(c)) for m, c in zip(op[2][:rows], chunks, strict=False)]
            plain.accept(keep)
            dedup.accept(keep)
        assert dedup.rows == plain.rows and dedup.distinct <= dedup.rows
        if op[0] != "select":               # a forward leaves the distinct rows only
            assert dedup.inner.rows == dedup.distinct
        np.testing.assert_allclose(dedup.logprobs, plain.logprobs, atol=1e-5)
    return dedup


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 6), ops=script)
def test_every_row_has_the_plain_states_law_function_lm(n, ops):
    _run(_function_lm(), [], n, ops, vocab=[0, 1, 2])


@pytest.fixture(scope="module")
def hf():
    return tiny_lm(seed=3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 6), ops=script)
def test_every_row_has_the_plain_states_law_shared_prefix(hf, n, ops):
    _run(hf, hf.encode("1 + 2"), n, ops, vocab=hf.encode("3 * 4")[:3])


def test_copies_that_draw_the_same_token_share_one_forward_row():
    lm = _function_lm()
    d = dedup_start(lm, [], 6)
    assert d.inner.rows == 1 and d.distinct == 1
    d.advance(np.array([0, 0, 1, 1, 1, 2]))
    assert d.forwarded_rows == [3] and d.inner.rows == 3 and d.distinct == 3
    d.select(np.array([2, 3, 3, 0, 0, 0]))                # copies of two histories
    d.advance(np.array([1, 1, 1, 1, 1, 1]))
    assert d.forwarded_rows[-1] == 2                      # 6 rows, 2 distinct forwards
    d.advance_chunks([np.array([0, 1]), np.array([0, 1]), np.array([0, 2]), np.array([0]),
                      np.array([0]), np.array([0])])
    assert d.forwarded_rows[-1] == 3
    d.accept([1, 2, 1, 1, 1, 1])                          # rows 0 and 1 part
    # (row 2 now has row 0's history, but came from another chunk: it keeps its own row)
    assert d.inner.rows == 4 and d.distinct == 4
    assert d.map[0] != d.map[1] and d.map[3] == d.map[4] == d.map[5]


def test_bad_arguments():
    lm = _function_lm()
    d = dedup_start(lm, [], 3)
    with pytest.raises(ValueError):
        d.advance(np.array([0, 1]))
    with pytest.raises(ValueError):
        DedupState(lm.start([], 1), 2, rows=np.array([0, 1]))


def test_generate_forwards_distinct_histories_only(monkeypatch):
    """The host loop wraps the model's state: on a low-entropy model most particles are
    copies, and the forwards see fewer rows than there are particles."""
    seen = []
    real = DedupState.advance

    def spy(self, tokens):
        real(self, tokens)
        seen.append((len(tokens), self.forwarded_rows[-1]))

    monkeypatch.setattr(DedupState, "advance", spy)

    def peaked(ids):
        out = np.full(V, -9.0)
        out[len(ids) % 2 if len(ids) < 6 else 4] = 0.0
        return out - np.logaddexp.reduce(out)

    lm = smc.FunctionLM(["a", "b", "c", "d", "<eos>"], eos=4, next_logprobs=peaked)
    res = smc.generate(lm, "", method="smc", n_particles=8, max_tokens=10, seed=0)
    assert res.posterior and seen
    assert all(fwd <= rows for rows, fwd in seen)
    assert sum(fwd for _, fwd in seen) < sum(rows for rows, _ in seen)
