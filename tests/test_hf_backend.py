"""The transformers backend: token bytes, batched steps, KV-cache reordering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import smc
from smc.token_bytes import byte_level_decoder, complete_utf8, vocab_bytes
from tests.tiny_hf import tiny_lm, tiny_tokenizer


def full_logprobs(lm, ids):
    """log p(· | ids) recomputed from scratch, no cache."""
    with torch.inference_mode():
        out = lm.model(input_ids=torch.tensor([ids]), use_cache=False)
    return torch.log_softmax(out.logits[0, -1].float(), -1).numpy()


def test_vocab_bytes_roundtrip_tokenizer():
    tok = tiny_tokenizer()
    table = vocab_bytes(tok)
    assert table[tok.eos_token_id] is None and table[tok.bos_token_id] is None
    for text in ["héllo wörld", "数学 € (12 + 3)", "def f(x):\n    return x"]:
        ids = tok.encode(text, add_special_tokens=False)
        assert b"".join(table[i] for i in ids).decode("utf-8") == text


def test_vocab_bytes_fast_path_equals_the_tokenizer_s_own_conversion():
    """Pieces read straight from the backend equal ``convert_ids_to_tokens``'s (the path of
    a tokenizer whose backend has no ``id_to_token``), for sizes below, at and above the
    vocabulary."""
    tok = tiny_tokenizer()

    class Backend:  # the backend's decoder, without id_to_token
        decoder = tok.backend_tokenizer.decoder

    class Slow:  # the same tokenizer whose pieces come from convert_ids_to_tokens
        backend_tokenizer = Backend()

        def __getattr__(self, name):
            return getattr(tok, name)

        def __len__(self):
            return len(tok)

    for size in (len(tok) - 5, len(tok), len(tok) + 7):
        assert vocab_bytes(tok, size) == vocab_bytes(Slow(), size)


def test_a_special_token_missing_from_the_vocabulary_is_ignored():
    """A pad token set to a string the vocabulary lacks (no unk token) has id None in
    ``all_special_ids``: the table is the same as without it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(["hello world, héllo wörld\n"] * 10, trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=backend)
    before = vocab_bytes(tok, len(tok) + 3)
    tok.pad_token = "<pad>"
    assert None in tok.all_special_ids
    assert vocab_bytes(tok, len(tok) + 3) == before


def test_byte_level_pieces_translate_to_bytes_or_stay_literal_text():
    from smc.token_bytes import _byte_level

    got = _byte_level(["Ġa", "Ā", "ĊĠĠ", "a b", "数", "Ã©", None])
    # a raw space or a character outside the stand-in alphabet: the piece is literal text
    assert got == [b" a", b"\x00", b"\n  ", b"a b", "数".encode(), "é".encode(), None]


def test_sentencepiece_style_vocabulary_spaces_bytes_special_and_added():
    from tokenizers import AddedToken, Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1, "<0x0A>": 2, "<0xC3>": 3, "\u2581the": 4, "cat": 5,
             "\u2581": 6, "<0x41>": 7}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    backend.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                         decoders.Fuse()])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>")
    tok.add_tokens([AddedToken("<tab>", special=False)])
    table = vocab_bytes(tok, len(tok) + 2)
    assert table[:8] == [None, None, b"\n", b"\xc3", b" the", b"cat", b" ", b"A"]
    assert table[8] == b"<tab>" and table[9:] == [None, None]


def test_byte_level_table_is_a_bijection():
    table = byte_level_decoder()
    assert len(table) == 256 and sorted(table.values()) == list(range(256))


@pytest.mark.parametrize(
    "data, text, held",
    [(b"ab", "ab", 0), ("é".encode()[:1], "", 1), ("a€".encode()[:3], "a", 2),
     ("😀".encode()[:3], "", 3), (b"a\xffb", "a\ufffdb", 0)],
)
def test_complete_utf8(data, text, held):
    assert complete_utf8(data) == (text, held)


def test_logits_after_reorder_equal_recomputed():
    lm = tiny_lm()
    prompt = lm.encode("1 + 2")
    state = lm.start(prompt, 4)
    np.testing.assert_allclose(state.logprobs[0], full_logprobs(lm, prompt), atol=1e-5)
    rng = np.random.default_rng(0)
    seqs = [list(prompt) for _ in range(4)]
    for step in range(5):
        tokens = rng.integers(3, lm.vocab_size, size=state.rows)
        state.advance(tokens)
        seqs = [s + [int(t)] for s, t in zip(seqs, tokens, strict=True)]
        if step == 1:  # resample: duplicate, drop and reorder rows
            rows = np.array([2, 0, 2, 3, 1])
            state.select(rows)
            seqs = [list(seqs[r]) for r in rows]
        if step == 3:  # a particle finishes: its row is dropped
            state.select(np.array([0, 1, 3, 4]))
            seqs = [seqs[r] for r in (0, 1, 3, 4)]
        for r, s in enumerate(seqs):
            np.testing.assert_allclose(state.logprobs[r], full_logprobs(lm, s), atol=1e-4)


def test_generate_runs_every_method_on_a_transformer():
    lm = tiny_lm()
    from potentials import FunctionPotential

    digits = FunctionPotential(
        lambda t: 0.0 if all(c in "0123456789+ " for c in t) else float("-inf"),
        lambda t: 0.0 if t and all(c in "0123456789+ " for c in t) else float("-inf"),
        name="Digits",
    )
    for method in smc.METHODS:
        res = smc.generate(lm, "1 + 2", constraint=digits, method=method, n_particles=8,
                           max_tokens=8, seed=0)
        assert len(res.particles) == 8 and len(res.ess_trace) >= 1
        if method in ("lcd", "is", "smc"):
            assert all(set(p.text) <= set("0123456789+ ") for p in res.particles)


def test_context_overflow_is_a_clear_error():
    lm = tiny_lm(max_positions=16)
    with pytest.raises(ValueError, match="context of 16 tokens"):
        smc.generate(lm, "(12 + 34) * 56 - 7 / 8 + 90 " * 3, method="direct", max_tokens=4)
    with pytest.raises(ValueError, match="context"):
        smc.generate(lm, "1 + 2", method="direct", max_tokens=64)
