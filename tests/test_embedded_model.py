"""The embedded default model, offline: load (dequantize once, then cached), tokenize, generate."""

from __future__ import annotations

import json
import os
import time

import pytest

import grammars
import potentials
import smc
from smc.arithmetic import evaluate


@pytest.fixture(scope="module")
def lm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return smc.load_model()


def test_load_is_cached_and_fast_the_second_time(lm):
    t = time.perf_counter()
    again = smc.load_model()
    assert time.perf_counter() - t < 20
    assert again.vocab_size == lm.vocab_size == 49152
    assert lm.eos == lm.tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_token_bytes_roundtrip_real_tokenizer(lm):
    for text in ["(12 + 3) * 4", "héllo wörld 😀\n\tdef f(x):", '{"a": [1, 2.5e-3]}']:
        ids = lm.tokenizer.encode(text, add_special_tokens=False)
        assert b"".join(lm.vocab_bytes[i] for i in ids).decode() == text


def test_grammar_constrained_smc_on_the_embedded_model(lm):
    g = potentials.LarkGrammar(grammars.load("arith"))
    prompt = lm.chat("Write an arithmetic expression that equals 10. Answer with it only.")
    res = smc.generate(lm, prompt, constraint=g, method="smc", n_particles=4, max_tokens=12,
                       seed=0)
    assert res.posterior, res.deaths
    for text in res.posterior:
        assert g.complete(text) == 0.0 and evaluate(text) is not None or "/" in text
    assert abs(sum(res.posterior.values()) - 1) < 1e-9


def test_cli_json(capsys):
    from smc.cli import main

    assert main(["demo", "--particles", "3", "--max-tokens", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"best", "posterior", "log_ml", "ess_trace", "method", "n_particles", "seconds",
            "tokens_generated"} <= set(out)
    assert out["method"] == "smc" and out["n_particles"] == 3


def test_default_dtype_follows_the_hardware_and_the_override(monkeypatch):
    import torch

    import smc.models as models

    monkeypatch.delenv("SMC_DECODE_DTYPE", raising=False)
    assert models.default_dtype("cuda:0") == "bfloat16"
    expected = "bfloat16" if models.cpu_has_bf16() else "float32"
    assert models.default_dtype("cpu") == expected
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert models.default_dtype("cpu") == "float32"
    monkeypatch.setenv("SMC_DECODE_DTYPE", "float16")
    assert models.default_dtype("cpu") == "float16"


def test_bfloat16_and_float32_agree_on_the_next_token_law(lm):
    """The default CPU dtype may be bfloat16: its next-token law stays close to float32's."""
    import numpy as np

    other = "float32" if lm.model.dtype != __import__("torch").float32 else "bfloat16"
    lm2 = smc.load_model(dtype=other)
    ids = lm.encode(lm.chat("Write a SQL query that counts the rows of table t."))
    p = np.exp(lm.start(ids, 1).logprobs[0])
    q = np.exp(lm2.start(ids, 1).logprobs[0])
    assert 0.5 * np.abs(p - q).sum() < 0.1  # total variation between the two laws
    assert int(np.argmax(p)) == int(np.argmax(q))


def test_a_colliding_kernels_distribution_is_a_clear_error(monkeypatch):
    """transformers>=5.25 brings the PyPI package `kernels`; load_model names the fix."""
    from importlib import metadata

    import smc.models as models

    real = metadata.version
    monkeypatch.setattr(metadata, "version",
                        lambda name: "0.19.1" if name == "kernels" else real(name))
    with pytest.raises(RuntimeError, match=r"transformers<5\.25.*uninstall -y kernels"):
        models.load_model()
    monkeypatch.setattr(metadata, "version", real)
    models.check_no_kernels_collision()  # this environment has no such distribution
