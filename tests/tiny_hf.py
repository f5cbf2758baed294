"""A tiny random-weight transformers model and byte-level BPE tokenizer, built offline."""

from __future__ import annotations

from functools import lru_cache

CORPUS = [
    "1 + 2 * (3 - 4) / 5",
    "(12 + 34) * 56 - 7 / 8 + 90",
    "hello world, héllo wörld, 数学 and € signs",
    '{"a": [1, 2, {"b": null}], "c": true}',
    "def f(x):\n    return x + 1\n",
] * 20


@lru_cache(maxsize=1)
def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<eos>", "<bos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", bos_token="<bos>")


def tiny_model(seed: int = 0, max_positions: int = 256, layers: int = 2):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    return model, tokenizer


def tiny_lm(seed: int = 0, max_positions: int = 256):
    from smc import HFLanguageModel

    model, tokenizer = tiny_model(seed, max_positions)
    return HFLanguageModel(model, tokenizer, name="tiny-llama")
