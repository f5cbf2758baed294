"""Decoding steps of a Llama-architecture model with the prompt's KV cache shared by all rows.

The prompt runs once through the ``transformers`` model (batch 1); its keys and values
(per layer, ``(Hkv, P, D)``) are kept once, not repeated to N rows.  Only the part of a
prompt after its longest common prefix with a prompt the model ran before is run (kept
least-recently-used first out, ``SMC_DECODE_PROMPT_CACHE_MB``; the prompts of one domain and
database share their schema and examples); these caches and the fused weights are
rebuilt when a weight changes in place.  Each step computes, per layer, attention of
the N new queries over [prompt ; generated] as one softmax over two score blocks:

    a(q) = softmax([q·K_pᵀ, q·K_g(row)ᵀ]·s) · [V_p ; V_g(row)]

where the prompt block is one batched matmul for all rows (the N·g queries of a KV head
share K_p) and the generated block is per row.  Generated keys and values live in
preallocated buffers written in place (no concatenation per step), and ``select``
(resampling) gathers only the generated part.  The step calls the model's own modules
(norms, rotary embedding, activation) and its weights, with q/k/v and gate/up fused
into one matmul each and every matmul's weight prepacked for oneDNN where torch can
(``smc.packed_linear``); ``tests/test_shared_prefix.py`` checks it against the model's
own forward.

``supports(model)`` says whether a model has this shape (SmolLM2 does); others use the
``transformers`` cache (``hf_lm._HFState``).
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Sequence

import numpy as np

from smc.hf_lm import _HFState, run_prompt
from smc.packed_linear import PackedLinear
from smc.shared_prefix_chunks import ChunkSteps
from smc.shared_prefix_chunks import rms as _rms

_FUSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LAYER_PARTS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm",
                "post_attention_layernorm")


def supports(model) -> bool:
    """Whether ``model`` is a plain Llama decoder (full causal attention, SiLU-gated MLP)."""
    config = getattr(model, "config", None)
    inner = getattr(model, "model", None)
    if config is None or inner is None or getattr(config, "model_type", None) != "llama":
        return False
    if getattr(config, "sliding_window", None) or getattr(config, "pretraining_tp", 1) not in (
            None, 1):
        return False
    if not all(hasattr(inner, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
        return False
    if not hasattr(model, "lm_head") or not len(inner.layers):
        return False
    layer = inner.layers[0]
    for path in _LAYER_PARTS:
        obj = layer
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                return False
    return hasattr(layer.mlp, "act_fn")


class _Fused:
    """The step's linear maps of one model (built once, kept while it lives): q/k/v and
    gate/up fused into one matrix each, every matrix prepacked where torch can
    (``smc.packed_linear``)."""

    def __init__(self, model) -> None:
        import torch

        self.layers = []
        for layer in model.model.layers:
            att, mlp = layer.self_attn, layer.mlp
            qkv = [att.q_proj, att.k_proj, att.v_proj]
            gu = [mlp.gate_proj, mlp.up_proj]
            self.layers.append((
                _linear(torch.cat([m.weight for m in qkv]).contiguous(), _cat_bias(qkv),
                        owned=True),
                _linear(torch.cat([m.weight for m in gu]).contiguous(), _cat_bias(gu),
                        owned=True),
                _linear(att.o_proj.weight, att.o_proj.bias),
                _linear(mlp.down_proj.weight, mlp.down_proj.bias),
            ))
        head = model.lm_head
        self.lm_head = _linear(head.weight, getattr(head, "bias", None))
        self.norms = [((layer.input_layernorm.weight, _eps(layer.input_layernorm)),
                       (layer.post_attention_layernorm.weight,
                        _eps(layer.post_attention_layernorm)))
                      for layer in model.model.layers]
        config = model.config
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.intermediate = config.intermediate_size
        att = model.model.layers[0].self_attn
        self.scale = float(getattr(att, "scaling", self.head_dim ** -0.5))
        half = self.head_dim // 2
        self.rope_sign = torch.cat([-torch.ones(half), torch.ones(self.head_dim - half)]).to(
            att.q_proj.weight.device)
        from smc.scripted_step import ScriptedLayers

        self.scripted = ScriptedLayers.build(self, model)    # None: the Python loop runs


def _linear(weight, bias, owned: bool = False) -> PackedLinear:
    """A ``PackedLinear``; an ``owned`` weight (a concatenation made here) is dropped once
    packed, so the fused copies cost memory only where packing is not possible."""
    lin = PackedLinear(weight, bias)
    if owned and lin.is_packed:
        lin.weight = None
    return lin


def _eps(norm) -> float:
    eps = getattr(norm, "variance_epsilon", None)
    return float(eps if eps is not None else getattr(norm, "eps", 1e-6))


def _cat_bias(mods):
    import torch

    if all(m.bias is None for m in mods):
        return None
    return torch.cat([m.bias if m.bias is not None else
                      torch.zeros(m.weight.shape[0], dtype=m.weight.dtype,
                                  device=m.weight.device) for m in mods])


def weights_version(model) -> tuple:
    """A key that changes whenever a parameter of ``model`` is modified in place (torch's
    per-tensor version counters) or replaced (``model.to(...)``, new storage): cached
    weights and prompts are rebuilt then.  Writes through ``param.data`` bypass the
    version counter: call ``forget(model)`` after them."""
    params = list(model.parameters())
    return (sum(p._version for p in params), tuple(p.data_ptr() for p in params),
            params[0].dtype if params else None)


def forget(model) -> None:
    """Drop the fused weights and the cached prompts of ``model`` (after weights changed
    in a way ``weights_version`` cannot see, e.g. ``param.data.copy_(...)``, or to start
    from an empty prompt cache).  The environment switches read when the fused weights
    are built (``SMC_PACKED_LINEAR``, ``SMC_DECODE_SCRIPTED_STEP``) apply again after it."""
    _FUSED.pop(model, None)
    _PROMPTS.pop(model, None)


def forget_prompts(model) -> None:
    """Empty the prompt cache of ``model`` (the fused weights stay)."""
    _PROMPTS.pop(model, None)


def _fused(model) -> _Fused:
    got = _FUSED.get(model)
    version = weights_version(model)
    if got is None or got.version != version:
        got = _FUSED[model] = _Fused(model)
        got.version = version
    return got


def _layer_kv(cache, i: int):
    """Keys and values of layer ``i`` of a ``transformers`` cache (5.x layers or 4.x lists)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return layers[i].keys, layers[i].values
    return cache.key_cache[i], cache.value_cache[i]


class _Prompt:
    """A prompt run through a model: its ids, KV cache (float32) and last logits."""

    def __init__(self, ids: tuple[int, ...], prefix: list, logits, version: tuple) -> None:
        self.ids, self.prefix, self.logits, self.version = ids, prefix, logits, version
        self.nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size()
                          for k, v in prefix)


_PROMPTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # model -> [_Prompt], MRU first


def prompt_cache_bytes() -> int:
    """The most bytes of prompt KV caches kept per model (``SMC_DECODE_PROMPT_CACHE_MB``, default
    256; 0 keeps only the prompt in use)."""
    raw = os.environ.get("SMC_DECODE_PROMPT_CACHE_MB", "256")
    try:
        mib = float(raw)
    except ValueError:
        mib = math.nan
    if not math.isfinite(mib) or mib < 0:
        raise ValueError(f"SMC_DECODE_PROMPT_CACHE_MB must be a number of MiB >= 0, got {raw!r}")
    return int(mib * 2**20)


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _remember(model, entry: _Prompt, cached: list[_Prompt]) -> None:
    """Put ``entry`` first; drop copies of its prompt and the least recently used beyond
    the byte budget (the entry itself always stays, so a prompt asked for again is a hit;
    states keep their own references, so dropping an entry never affects one)."""
    kept, used, budget = [entry], entry.nbytes, prompt_cache_bytes()
    for old in cached:
        if old is not entry and old.ids != entry.ids and used + old.nbytes <= budget:
            kept.append(old)
            used += old.nbytes
    _PROMPTS[model] = kept


def _prefill(lm, ids: list[int]):
    """Per-layer prompt keys and values ``(Hkv, P, D)`` (float32) and the last logits.

    The model's forward runs only the part after the longest prefix shared with a prompt
    this model ran before (least recently used first out, ``prompt_cache_bytes`` in all):
    prompts of one domain and database share their schema and examples, so a stream of
    questions costs one long prefill per database.  The shared prefix's cache is reused,
    in the model's dtype it came from.
    """
    model = lm.model
    version = weights_version(model)
    cached = [p for p in _PROMPTS.get(model, ()) if p.version == version]
    best, reuse = None, 0
    for entry in cached:
        common = _common_length(entry.ids, ids)
        if common > reuse or (common == reuse == len(entry.ids) and best is not None):
            best, reuse = entry, common             # ties: the exact prompt itself wins
    if best is not None and reuse == len(ids) == len(best.ids):
        _remember(model, best, cached)
        return best.prefix, best.logits
    reuse = min(reuse, len(ids) - 1)              # at least one token for the logits
    dtype = next(model.parameters()).dtype
    past = None
    if reuse > 0:
        from transformers import DynamicCache

        past = DynamicCache()
        for i, (k, v) in enumerate(best.prefix):
            past.update(k[None, :, :reuse].to(dtype), v[None, :, :reuse].to(dtype), i)
    out = run_prompt(lm, ids[reuse:], past)
    cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
    prefix = []
    for i in range(len(model.model.layers)):
        k, v = _layer_kv(cache, i)                  # (1, Hkv, P, D), the whole prompt
        prefix.append((k[0].float().contiguous(), v[0].float().contiguous()))
    logits = out.logits[:, -1, :].detach()
    _remember(model, _Prompt(tuple(ids), prefix, logits, version), cached)
    return prefix, logits


class SharedPrefixState(ChunkSteps, _HFState):
    """Rows of one prompt continued in parallel; the prompt's KV cache is stored once
    (``_HFState``'s bookkeeping, its own cache and forward).

    Rows may also advance by *chunks* of different lengths in one forward
    (``advance_chunks``: speculative drafts, see ``smc.drafts``); each row then keeps its
    own number of generated positions (``glen``), and a query at chunk position j of
    row r attends to the prompt and to that row's generated positions ≤ glen[r] + j.
    """

    def __init__(self, lm, prompt_ids: Sequence[int], n: int) -> None:
        self.lm = lm
        self.model = lm.model
        self.fused = _fused(self.model)
        self.prompt_length = len(prompt_ids)
        self.length = self.prompt_length
        self.prefix, row = _prefill(lm, list(prompt_ids))
        self.n = n
        self.gen = 0                                 # most generated positions of a row
        self.glen = np.zeros(n, np.int64)            # generated positions of each row
        self.chunk_logits = None                     # (n, K, V) after advance_chunks
        self.capacity = 0
        self.buffers: list = []                      # per layer (K, V): (n, Hkv, cap, D)
        self.logprobs = np.repeat(self._to_logprobs(row), n, axis=0)

    def _grow(self, need: int) -> None:
        """Room for at least ``need`` generated positions per row (capacity doubles)."""
        import torch

        if need <= self.capacity:
            return
        cap = max(need, 2 * self.capacity, 16)
        f, new = self.fused, []
        for i, (k_p, _) in enumerate(self.prefix):
            shape = (self.n, f.kv_heads, cap, f.head_dim)
            # zeros, not empty: a masked score weighs an unwritten value by 0, and 0·NaN = NaN
            k = torch.zeros(shape, dtype=k_p.dtype, device=k_p.device)
            v = torch.zeros(shape, dtype=k_p.dtype, device=k_p.device)
            if self.gen:
                k0, v0 = self.buffers[i]
                k[:, :, : self.gen].copy_(k0[:, :, : self.gen])
                v[:, :, : self.gen].copy_(v0[:, :, : self.gen])
            new.append((k, v))
        self.buffers, self.capacity = new, cap

    def select(self, rows: np.ndarray) -> None:
        import torch

        rows = np.asarray(rows, dtype=np.int64)
        self.logprobs = self.logprobs[rows]
        if self.chunk_logits is not None:  # a chunk not accepted yet: its rows follow
            self.chunk_logits = self.chunk_logits[torch.as_tensor(rows,
                                                                  device=self.lm.device)]
            self._chunk_lens = self._chunk_lens[rows]
            self._chunk_lp = {}
        self.glen = self.glen[rows]
        self.gen = int(self.glen.max()) if len(rows) else 0
        self.length = self.prompt_length + self.gen
        self.n = len(rows)
        if not self.buffers:
            return
        if not len(rows):
            self.buffers, self.capacity = [], 0
            return
        idx = torch.as_tensor(rows, device=self.lm.device)
        self.buffers = [(k.index_select(0, idx), v.index_select(0, idx))
                        for k, v in self.buffers]

    def _forward(self, tokens: np.ndarray):
        import torch

        if len(tokens) != self.n:
            raise ValueError(f"advance got {len(tokens)} tokens for {self.n} rows")
        if self.n and (self.glen != self.gen).any():  # ragged rows: the chunk step, K = 1
            logits = self._chunk_forward([np.asarray([t]) for t in tokens])[:, 0]
            self.glen += 1
            self.gen += 1
            return logits
        self._grow(self.gen + 1)
        ids = torch.as_tensor(tokens, device=self.lm.device)
        with torch.inference_mode(), torch.profiler.record_function("smc.forward"):
            logits = self._step(ids)
        self.gen += 1
        self.glen += 1
        return logits

    # -- the step ----------------------------------------------------------------------
    def _step(self, ids):
        """Logits (n, V) after one new token per row (see the module doc)."""
        import torch

        inner, f = self.model.model, self.fused
        n, hq, hkv, d = len(ids), f.heads, f.kv_heads, f.head_dim
        g, t, half = hq // hkv, self.gen, f.head_dim // 2
        h = inner.embed_tokens(ids).unsqueeze(1)                   # (n, 1, hidden)
        pos = torch.full((1, 1), self.prompt_length + t, dtype=torch.long, device=ids.device)
        cos, sin = inner.rotary_emb(h, pos)                          # (1, 1, D)
        cos = cos.view(1, 1, d).float()
        # rotate_half(x) * sin == roll(x, D/2) * (sin with its first half negated)
        sin = sin.view(1, 1, d).float() * f.rope_sign
        if f.scripted is not None:                                   # the same loop, compiled
            h = f.scripted(h[:, 0], cos, sin, t, self.prefix, self.buffers, f)
            return f.lm_head(inner.norm(h))
        plen = self.prefix[0][0].shape[1]
        for layer, (lin_qkv, lin_gu, lin_o, lin_down), (k_p, v_p), (k_g, v_g), norms in zip(
                inner.layers, f.layers, self.prefix, self.buffers, f.norms, strict=True):
            act = layer.mlp.act_fn
            qkv = lin_qkv(_rms(h, norms[0]).view(n, -1))
            qk = qkv[:, : (hq + hkv) * d].view(n, hq + hkv, d).float()
            qk = qk * cos + torch.roll(qk, half, -1) * sin           # rotary, q and k at once
            k_g[:, :, t].copy_(qk[:, hq:])
            v_g[:, :, t].copy_(qkv[:, (hq + hkv) * d:].view(n, hkv, d))
            qh = qk[:, :hq].reshape(n, hkv, g, d)
            qp = qh.permute(1, 0, 2, 3).reshape(hkv, n * g, d)
            s_p = torch.bmm(qp, k_p.transpose(1, 2))                # (hkv, n*g, P)
            s_p = s_p.view(hkv, n, g, plen).permute(1, 0, 2, 3)      # (n, hkv, g, P)
            s_g = torch.matmul(qh, k_g[:, :, : t + 1].transpose(2, 3))   # (n, hkv, g, t+1)
            p = torch.softmax(torch.cat([s_p, s_g], dim=-1) * f.scale, dim=-1)
            p_p = p[..., :plen].permute(1, 0, 2, 3).reshape(hkv, n * g, plen)
            o = torch.bmm(p_p, v_p).view(hkv, n, g, d).permute(1, 0, 2, 3)
            o = o + torch.matmul(p[..., plen:], v_g[:, :, : t + 1])   # (n, hkv, g, D)
            h = h + lin_o(o.reshape(n, 1, hq * d).to(h.dtype))
            gu = lin_gu(_rms(h, norms[1]))
            gu = act(gu[..., : f.intermediate]) * gu[..., f.intermediate:]
            h = h + lin_down(gu)
        h = inner.norm(h)
        return f.lm_head(h[:, -1, :])
