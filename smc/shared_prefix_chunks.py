"""Chunks of draft tokens (``speculate``) for ``SharedPrefixState``: several positions per
row in one forward, rows of different lengths.

A query at chunk position j of row r attends to the prompt and to that row's generated
positions ≤ glen[r] + j (the module doc of ``smc.shared_prefix``: the same two score
blocks, the generated one masked causally per row).  The weight matmuls and the prompt
block run on the real chunk tokens only (packed); ``accept`` keeps each row's first
tokens and the log-probabilities after them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class ChunkSteps:
    """The chunk methods of ``SharedPrefixState`` (a mixin: it uses the state's model,
    fused weights, prompt cache, buffers and per-row lengths)."""

    supports_chunks = True

    def advance_chunks(self, chunks: Sequence[np.ndarray]) -> None:
        """Feed row k the tokens ``chunks[k]`` (at least one each) in one forward.

        Logits after every chunk position are kept (``chunk_logprobs``) until ``accept``
        says how many of each chunk's tokens stay in the row."""
        if len(chunks) != self.n:
            raise ValueError(f"advance_chunks got {len(chunks)} chunks for {self.n} rows")
        if any(len(c) < 1 for c in chunks):
            raise ValueError("every chunk needs at least one token")
        if not self.n:
            self.chunk_logits = None
            return
        self.lm.check_length(self.prompt_length + self.gen + max(len(c) for c in chunks))
        self.chunk_logits = self._chunk_forward(chunks)
        self._chunk_lens = np.asarray([len(c) for c in chunks], np.int64)
        self._chunk_lp: dict[tuple[int, int], np.ndarray] = {}  # (row, j) -> log-probs read

    def chunk_logprobs(self, row: int, j: int) -> np.ndarray:
        """log p(· | row's text + its chunk's first j + 1 tokens), float64 (V,)."""
        if self.chunk_logits is None or not 0 <= j < self._chunk_lens[row]:
            raise IndexError(f"no chunk position {j} for row {row}")
        got = self._chunk_lp.get((row, j))
        if got is None:
            got = self._chunk_lp[(row, j)] = self._to_logprobs(self.chunk_logits[row, j][None])[0]
        return got

    def accept(self, lengths: Sequence[int]) -> None:
        """Row k keeps the first ``lengths[k]`` (≥ 1) tokens of its last chunk."""
        lengths = np.asarray(lengths, np.int64)
        if self.chunk_logits is None or len(lengths) != self.n or (lengths < 1).any() \
                or (lengths > self._chunk_lens).any():
            raise ValueError("accept needs one length in [1, chunk length] per row, after "
                             "advance_chunks")
        missing = [k for k, m in enumerate(lengths) if (k, int(m) - 1) not in self._chunk_lp]
        if missing:  # one batched log-softmax for the rows whose position was not read
            import torch

            idx = torch.as_tensor(missing, device=self.lm.device)
            pos = torch.as_tensor(lengths[missing] - 1, device=self.lm.device)
            for k, row in zip(missing, self._to_logprobs(self.chunk_logits[idx, pos]),
                              strict=True):
                self._chunk_lp[(k, int(lengths[k]) - 1)] = row
        self.logprobs = np.stack([self._chunk_lp[(k, int(m) - 1)]
                                  for k, m in enumerate(lengths)])
        self._chunk_lp = {}
        self.glen = self.glen + lengths
        self.gen = int(self.glen.max())
        self.length = self.prompt_length + self.gen
        self.chunk_logits = None

    def _chunk_forward(self, chunks: Sequence[np.ndarray]):
        """Logits (n, K, V) of the padded chunks; their keys and values are written at
        each row's next positions (padding included: it lies past what ``accept`` keeps
        and is overwritten before any query can see it)."""
        import torch

        k_max = max(len(c) for c in chunks)
        self._grow(self.gen + k_max)
        ids = np.zeros((self.n, k_max), np.int64)
        for r, c in enumerate(chunks):
            ids[r, : len(c)] = c
        ids_t = torch.as_tensor(ids, device=self.lm.device)
        with torch.inference_mode(), torch.profiler.record_function("smc.forward"):
            return self._step_chunks(ids_t, [len(c) for c in chunks])

    def _step_chunks(self, ids, lens):
        """Logits (n, K, V) after each position of a (n, K) chunk of new tokens per row
        (row r's first ``lens[r]`` are real), row r's first at generated position glen[r]:
        the module doc's two score blocks, the generated one masked causally per row.
        The weight matmuls and the prompt block run on the real tokens only (packed); the
        short generated block runs on the padded (n, K) layout."""
        import torch

        inner, f = self.model.model, self.fused
        n, k = ids.shape
        hq, hkv, d = f.heads, f.kv_heads, f.head_dim
        g, half = hq // hkv, f.head_dim // 2
        device = ids.device
        lens_t = torch.as_tensor(lens, device=device)
        offs = torch.arange(k, device=device)
        real = offs[None, :] < lens_t[:, None]                         # (n, K)
        rows, cols = real.nonzero(as_tuple=True)                      # packed order
        glen = torch.as_tensor(self.glen, device=device)
        wpos = glen[:, None] + offs[None, :]                          # (n, K) positions
        wpos_p = wpos[rows, cols]
        h = inner.embed_tokens(ids[rows, cols])                       # (T, hidden)
        cos, sin = inner.rotary_emb(h[None], (self.prompt_length + wpos_p)[None])
        cos = cos[0].float().unsqueeze(1)                              # (T, 1, D)
        sin = (sin[0].float() * f.rope_sign).unsqueeze(1)
        t = int(self.glen.max()) + k                                  # generated span read
        seen = torch.arange(t, device=device)[None, None, :] <= wpos[:, :, None]  # (n, K, t)
        bias = torch.zeros(seen.shape, dtype=torch.float32, device=device).masked_fill(
            ~seen, float("-inf"))[:, None, :, None, :]                # (n, 1, K, 1, t)
        plen = self.prefix[0][0].shape[1]
        total = len(rows)
        for layer, (lin_qkv, lin_gu, lin_o, lin_down), (k_p, v_p), (k_g, v_g), norms in zip(
                inner.layers, f.layers, self.prefix, self.buffers, f.norms, strict=True):
            act = layer.mlp.act_fn
            qkv = lin_qkv(rms(h, norms[0]))                               # (T, ·)
            qk = qkv[:, : (hq + hkv) * d].view(total, hq + hkv, d).float()
            qk = qk * cos + torch.roll(qk, half, -1) * sin
            k_g[rows, :, wpos_p] = qk[:, hq:].to(k_g.dtype)               # (T, Hkv, D)
            v_g[rows, :, wpos_p] = qkv[:, (hq + hkv) * d:].view(total, hkv, d).to(v_g.dtype)
            q = qk[:, :hq].reshape(total, hkv, g, d)                    # packed queries
            # prompt block on the real queries only (the prompt is the same for every row)
            s_p = torch.bmm(q.permute(1, 0, 2, 3).reshape(hkv, total * g, d),
                            k_p.transpose(1, 2)).view(hkv, total, g, plen).permute(1, 0, 2, 3)
            # generated block per row, on the padded (n, K) layout (a short span; with one
            # token per row the packed layout is the padded one)
            if k == 1:
                s_g = torch.matmul(q, k_g[:, :, :t].transpose(2, 3)) + bias[:, :, 0]
            else:
                q_pad = q.new_zeros((n, k, hkv, g, d))
                q_pad[rows, cols] = q
                q_pad = q_pad.permute(0, 2, 1, 3, 4).reshape(n, hkv, k * g, d)
                s_g = torch.matmul(q_pad, k_g[:, :, :t].transpose(2, 3)).view(n, hkv, k, g, t)
                s_g = (s_g + bias).permute(0, 2, 1, 3, 4)[rows, cols]      # (T, Hkv, g, t)
            p = torch.softmax(torch.cat([s_p, s_g], dim=-1) * f.scale, dim=-1)
            o = torch.bmm(p[..., :plen].permute(1, 0, 2, 3).reshape(hkv, total * g, plen), v_p)
            o = o.view(hkv, total, g, d).permute(1, 0, 2, 3)                # (T, Hkv, g, D)
            if k == 1:
                o = o + torch.matmul(p[..., plen:], v_g[:, :, :t])
            else:
                p_pad = p.new_zeros((n, k, hkv, g, t))
                p_pad[rows, cols] = p[..., plen:]
                o_g = torch.matmul(p_pad.permute(0, 2, 1, 3, 4).reshape(n, hkv, k * g, t),
                                   v_g[:, :, :t]).view(n, hkv, k, g, d)
                o = o + o_g.permute(0, 2, 1, 3, 4)[rows, cols]
            o = o.reshape(total, hq * d)
            h = h + lin_o(o.to(h.dtype))
            gu = lin_gu(rms(h, norms[1]))
            gu = act(gu[..., : f.intermediate]) * gu[..., f.intermediate:]
            h = h + lin_down(gu)
        logits = f.lm_head(inner.norm(h))                              # (T, V)
        out = logits.new_zeros((n, k, logits.shape[-1]))
        out[rows, cols] = logits
        return out


def rms(x, norm):
    """``LlamaRMSNorm``: w · (x / sqrt(mean(x²) + eps)), computed in float32."""
    import torch.nn.functional as F

    weight, eps = norm
    return weight * F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)
