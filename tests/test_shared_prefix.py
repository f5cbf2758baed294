"""The shared-prefix decoding step against the model's own forward (transformers cache)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smc
from smc.hf_lm import _HFState
from smc.shared_prefix import SharedPrefixState, supports
from tests.tiny_hf import tiny_lm, tiny_model


@pytest.fixture(scope="module")
def lm():
    return tiny_lm()


ops = st.lists(st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 2**31 - 1)),
    st.tuples(st.just("select"), st.lists(st.integers(0, 63), min_size=1, max_size=7)),
), min_size=1, max_size=24)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 5), script=ops, prompt=st.sampled_from(["1", "1 + 2 * (3", "def f(x):"]))
def test_log_probs_equal_the_models_own_forward(lm, n, script, prompt):
    """Random advance / select (resampling with repeats, deaths, growth past the buffer's
    first capacity): every row's next-token law equals the transformers path's."""
    ids = lm.encode(prompt)
    ref, fast = _HFState(lm, ids, n), SharedPrefixState(lm, ids, n)
    np.testing.assert_allclose(fast.logprobs, ref.logprobs, atol=1e-5)
    _same_after_each_op(ref, fast, script, lm.vocab_size, atol=1e-5)


def _same_after_each_op(ref, other, script, vocab_size: int, atol: float) -> None:
    """Run an advance/select ``script`` on both states; equal log-probabilities after each."""
    for op, arg in script:
        if op == "advance":
            toks = np.random.default_rng(arg).integers(0, vocab_size, ref.rows)
            ref.advance(toks)
            other.advance(toks)
        else:
            rows = np.array([r % ref.rows for r in arg] if ref.rows else [], np.int64)
            ref.select(rows)
            other.select(rows)
        assert other.rows == ref.rows
        np.testing.assert_allclose(other.logprobs, ref.logprobs, rtol=0, atol=atol)


def test_many_steps_past_several_capacity_doublings(lm):
    ids = lm.encode("1 + 2")
    ref, fast = _HFState(lm, ids, 3), SharedPrefixState(lm, ids, 3)
    rng = np.random.default_rng(0)
    for step in range(70):
        toks = rng.integers(0, lm.vocab_size, 3)
        ref.advance(toks)
        fast.advance(toks)
        if step % 11 == 10:
            rows = rng.integers(0, 3, 3)
            ref.select(rows)
            fast.select(rows)
    assert fast.capacity >= 70 and fast.gen == 70
    np.testing.assert_allclose(fast.logprobs, ref.logprobs, atol=1e-5)


def test_start_picks_the_shared_prefix_for_llama_and_can_be_switched_off(lm, monkeypatch):
    assert supports(lm.model) and lm.shares_prefix
    assert isinstance(lm.start(lm.encode("1"), 2), SharedPrefixState)
    monkeypatch.setenv("SMC_DECODE_SHARED_PREFIX", "0")
    assert not lm.shares_prefix
    assert isinstance(lm.start(lm.encode("1"), 2), _HFState)


def test_other_architectures_use_the_transformers_cache():
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.tiny_hf import tiny_tokenizer

    tok = tiny_tokenizer()
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2,
                                      n_positions=64, eos_token_id=tok.eos_token_id))
    assert not supports(gpt2)
    glm = smc.HFLanguageModel(gpt2.eval(), tok, name="tiny-gpt2")
    assert isinstance(glm.start(glm.encode("1"), 2), _HFState)
    model, _ = tiny_model()
    model.config.sliding_window = 8                   # a windowed Llama is not ours either
    assert not supports(model)


def test_generate_is_the_same_either_way(lm, monkeypatch):
    """Same seed, same law: the same particles whichever state runs the model."""
    kwargs = dict(method="smc", n_particles=6, max_tokens=12, seed=3)
    fast = smc.generate(lm, "1 + 2", **kwargs)
    monkeypatch.setenv("SMC_DECODE_SHARED_PREFIX", "0")
    ref = smc.generate(lm, "1 + 2", **kwargs)
    assert [p.text for p in fast.particles] == [p.text for p in ref.particles]
    np.testing.assert_allclose([p.log_weight for p in fast.particles],
                               [p.log_weight for p in ref.particles], atol=1e-4)


def test_every_row_dropped(lm):
    state = SharedPrefixState(lm, lm.encode("1"), 2)
    state.advance(np.array([3, 4]))
    state.select(np.array([], np.int64))
    state.advance(np.array([], np.int64))
    assert state.rows == 0 and state.logprobs.shape == (0, lm.vocab_size)


def test_a_prompt_reuses_the_cache_of_the_common_prefix_with_the_last_one():
    import torch

    import smc.shared_prefix as sp

    lm = tiny_lm(seed=5)
    base = "def f(x):\n    return x + 1\n" * 3
    first, second = lm.encode(base + "1 + 2"), lm.encode(base + "(3 - 4)")
    common = sp._common_length(first, second)
    assert 5 < common < len(second)
    SharedPrefixState(lm, first, 2)
    calls = []
    forward = lm.model.forward
    lm.model.forward = lambda *a, **k: calls.append(k["input_ids"].shape[1]) or forward(*a, **k)
    try:
        fast = SharedPrefixState(lm, second, 2)          # runs only the new suffix
        again = SharedPrefixState(lm, second, 2)         # the same prompt: no forward at all
    finally:
        del lm.model.forward
    assert calls == [len(second) - common]
    ref = _HFState(lm, second, 2)
    for state in (fast, again):
        np.testing.assert_allclose(state.logprobs, ref.logprobs, atol=1e-5)
    toks = np.array([7, 9])
    fast.advance(toks)
    ref.advance(toks)
    np.testing.assert_allclose(fast.logprobs, ref.logprobs, atol=1e-5)
    with torch.no_grad():                                # a weight changes in place
        lm.model.model.layers[0].self_attn.q_proj.weight.mul_(1.5)
    changed, ref = SharedPrefixState(lm, second, 1), _HFState(lm, second, 1)
    np.testing.assert_allclose(changed.logprobs, ref.logprobs, atol=1e-5)
    changed.advance(np.array([3]))
    ref.advance(np.array([3]))
    np.testing.assert_allclose(changed.logprobs, ref.logprobs, atol=1e-5)


def _forward_lengths(lm, prompts: list[list[int]]) -> list[int]:
    """Start a state on each prompt in turn (checked against the transformers path); the
    input lengths of the forwards the shared-prefix states ran."""
    calls: list[int] = []
    forward = lm.model.forward
    lm.model.forward = lambda *a, **k: calls.append(k["input_ids"].shape[1]) or forward(*a, **k)
    ours: list[int] = []
    try:
        for ids in prompts:
            before = len(calls)
            state = SharedPrefixState(lm, ids, 2)
            ours += calls[before:]
            ref = _HFState(lm, ids, 2)
            np.testing.assert_allclose(state.logprobs, ref.logprobs, atol=1e-5)
            state.advance(np.array([5, 8]))
            ref.advance(np.array([5, 8]))
            np.testing.assert_allclose(state.logprobs, ref.logprobs, atol=1e-5)
    finally:
        del lm.model.forward
    return ours


def test_interleaved_prompts_each_reuse_their_own_longest_prefix(monkeypatch):
    """Questions on two databases in turn (a, b, a, b): each prompt runs only its part after
    the longest prefix shared with *any* cached prompt, least recently used dropped first."""
    import smc.shared_prefix as sp

    lm = tiny_lm(seed=8)
    a, b = "def f(x):\n    return x + 1\n" * 3, "class A:\n    y = [1, 2, 3]\n" * 3
    prompts = [lm.encode(a + "1 + 2"), lm.encode(b + "(3 - 4)"),
               lm.encode(a + "5 * 6"), lm.encode(b + "7 // 8")]
    lengths = _forward_lengths(lm, prompts)
    share_a = sp._common_length(prompts[0], prompts[2])
    share_b = sp._common_length(prompts[1], prompts[3])
    assert share_a > 20 and share_b > 20
    assert lengths == [len(prompts[0]), len(prompts[1]) - sp._common_length(prompts[0],
                       prompts[1]), len(prompts[2]) - share_a, len(prompts[3]) - share_b]
    assert [p.ids for p in sp._PROMPTS[lm.model]] == [tuple(prompts[i]) for i in (3, 2, 1, 0)]

    sp.forget(lm.model)                              # no budget: only the prompt in use
    monkeypatch.setenv("SMC_DECODE_PROMPT_CACHE_MB", "0")
    lengths = _forward_lengths(lm, prompts)
    assert lengths[2] == len(prompts[2]) - sp._common_length(prompts[1], prompts[2])
    assert len(sp._PROMPTS[lm.model]) == 1


def test_a_prompt_that_prefixes_another_is_still_a_hit(monkeypatch):
    """Prompts A and B = A + more, in turn: A asked for again is its own entry (no forward,
    no second copy), whichever of the two was used last."""
    import smc.shared_prefix as sp

    lm = tiny_lm(seed=11)
    a = lm.encode("def f(x):\n    return x + 1\n" * 2)
    b = a + lm.encode("1 + 2")
    lengths = _forward_lengths(lm, [a, b, a, b, a])
    assert lengths == [len(a), len(b) - len(a)]      # the later A and B: no forward at all
    assert [p.ids for p in sp._PROMPTS[lm.model]] == [tuple(a), tuple(b)]


def test_a_bad_prompt_cache_budget_is_a_clear_error(monkeypatch):
    import smc.shared_prefix as sp

    for bad in ("lots", "-1", "nan", "inf"):
        monkeypatch.setenv("SMC_DECODE_PROMPT_CACHE_MB", bad)
        with pytest.raises(ValueError, match="SMC_DECODE_PROMPT_CACHE_MB"):
            sp.prompt_cache_bytes()
    monkeypatch.setenv("SMC_DECODE_PROMPT_CACHE_MB", "0.5")
    assert sp.prompt_cache_bytes() == 2**19


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 4), script=ops)
def test_the_scripted_layers_equal_the_python_loop(n, script):
    """The TorchScript step (``smc.scripted_step``) runs the same kernels in the same order
    as the Python loop: the same log-probabilities after random advance/select scripts."""
    import smc.shared_prefix as sp

    lm = tiny_lm(seed=9)
    ids = lm.encode("def f(x):")
    states = []
    for flag in ("1", "0"):
        sp.forget(lm.model)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SMC_DECODE_SCRIPTED_STEP", flag)
            state = SharedPrefixState(lm, ids, n)
        assert (state.fused.scripted is not None) == (flag == "1")
        states.append(state)
    scripted, python = states
    _same_after_each_op(python, scripted, script, lm.vocab_size, atol=1e-9)


def test_no_scripted_step_without_silu_or_packing(monkeypatch):
    import smc.shared_prefix as sp
    from smc.scripted_step import ScriptedLayers

    lm = tiny_lm(seed=10)
    fused = sp._fused(lm.model)
    assert ScriptedLayers.build(fused, lm.model) is not None
    monkeypatch.setattr(lm.model.config, "hidden_act", "gelu")
    assert ScriptedLayers.build(fused, lm.model) is None
    monkeypatch.setattr(lm.model.config, "hidden_act", "silu")
    monkeypatch.setattr(fused.layers[0][2], "packed", None)
    assert ScriptedLayers.build(fused, lm.model) is None


def test_a_model_moved_to_another_dtype_rebuilds_its_caches():
    import torch

    lm = tiny_lm(seed=6)
    ids = lm.encode("1 + 2")
    SharedPrefixState(lm, ids, 2).advance(np.array([3, 4]))
    lm.model.to(torch.float64)
    fast, ref = SharedPrefixState(lm, ids, 2), _HFState(lm, ids, 2)
    fast.advance(np.array([3, 4]))
    ref.advance(np.array([3, 4]))
    np.testing.assert_allclose(fast.logprobs, ref.logprobs, atol=1e-8)


def test_forget_after_writes_through_data():
    import torch

    import smc.shared_prefix as sp

    lm = tiny_lm(seed=7)
    ids = lm.encode("1 + 2")
    SharedPrefixState(lm, ids, 1)
    with torch.no_grad():
        lm.model.model.layers[0].self_attn.q_proj.weight.data.mul_(2.0)   # no version bump
    sp.forget(lm.model)
    fast, ref = SharedPrefixState(lm, ids, 1), _HFState(lm, ids, 1)
    fast.advance(np.array([3]))
    ref.advance(np.array([3]))
    np.testing.assert_allclose(fast.logprobs, ref.logprobs, atol=1e-5)


def _reference(lm, ids: list[int]) -> np.ndarray:
    """log p(· | ids) from the model's own forward over the whole sequence (no cache)."""
    import torch

    with torch.inference_mode():
        logits = lm.model(input_ids=torch.as_tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits.float(), -1).numpy().astype(np.float64)[: lm.vocab_size]


chunk_ops = st.lists(st.one_of(
    st.tuples(st.just("chunks"), st.integers(0, 2**31 - 1)),
    st.tuples(st.just("advance"), st.integers(0, 2**31 - 1)),
    st.tuples(st.just("select"), st.lists(st.integers(0, 63), min_size=1, max_size=6)),
), min_size=1, max_size=10)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 4), script=chunk_ops, prompt=st.sampled_from(["1", "def f(x):"]))
def test_chunks_of_different_lengths_equal_the_models_own_forward(lm, n, script, prompt):
    """Rows fed chunks of 1–5 tokens in one forward, keeping a random number of them
    (``accept``), mixed with one-token advances and resampling: the law after every chunk
    position, and after what each row kept, equals the model's forward over that row's
    whole sequence."""
    ids = lm.encode(prompt)
    state = SharedPrefixState(lm, ids, n)
    seqs: list[list[int]] = [[] for _ in range(n)]
    for op, arg in script:
        rng = np.random.default_rng(arg)
        if op == "chunks":
            chunks = [rng.integers(0, lm.vocab_size, rng.integers(1, 6)) for _ in seqs]
            state.advance_chunks(chunks)
            keep = []
            for r, c in enumerate(chunks):
                for j in range(len(c)):
                    np.testing.assert_allclose(
                        state.chunk_logprobs(r, j), _reference(lm, ids + seqs[r] + list(c[:j + 1])),
                        atol=1e-4)
                keep.append(int(rng.integers(1, len(c) + 1)))
                seqs[r] += [int(t) for t in c[: keep[-1]]]
            state.accept(keep)
        elif op == "advance":
            toks = rng.integers(0, lm.vocab_size, len(seqs))
            state.advance(toks)
            seqs = [s + [int(t)] for s, t in zip(seqs, toks, strict=True)]
        else:
            rows = [r % len(seqs) for r in arg]
            state.select(np.array(rows, np.int64))
            seqs = [list(seqs[r]) for r in rows]
        for r, s in enumerate(seqs):
            np.testing.assert_allclose(state.logprobs[r], _reference(lm, ids + s), atol=1e-4)


def test_accept_checks_its_lengths(lm):
    state = SharedPrefixState(lm, lm.encode("1"), 2)
    with pytest.raises(ValueError, match="accept"):
        state.accept([1, 1])  # no chunk yet
    state.advance_chunks([np.array([3, 4]), np.array([5])])
    with pytest.raises(ValueError, match="accept"):
        state.accept([1, 2])  # row 1's chunk has one token
    with pytest.raises(ValueError, match="at least one"):
        state.advance_chunks([np.array([3]), np.array([], np.int64)])


def test_forget_prompts_keeps_the_fused_weights():
    import smc.shared_prefix as sp

    lm = tiny_lm(seed=12)
    ids = lm.encode("1 + 2")
    SharedPrefixState(lm, ids, 1)
    fused = sp._fused(lm.model)
    sp.forget_prompts(lm.model)
    assert lm.model not in sp._PROMPTS and sp._fused(lm.model) is fused
    assert _forward_lengths(lm, [ids]) == [len(ids)]     # the whole prompt runs again
