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
