"""The engines of ``mask_bench.py`` behind one interface, each fed an equivalent grammar.

``compile()`` builds the grammar for the tokenizer (timed as the cold compile), ``reset()``
starts a document, ``mask()`` computes the mask of the current prefix (the timed call),
``allows(tid)`` reads it (``None`` = EOS), ``words()`` returns it as packed uint32 words
(bit j of word k = token 32k + j) and ``advance(tid)`` appends a token of the trace and
updates the engine's parser state (untimed for every engine: the peers' masks start from
a state their ``advance`` already moved, and so does ours).
"""

from __future__ import annotations

import math
import string
from pathlib import Path

import numpy as np

PEER_DIR = Path(__file__).resolve().parent / "peer_grammars"
INSTALL = {
    "llguidance": "pip install llguidance",
    "xgrammar": "pip install xgrammar",
    "outlines": "pip install outlines-core",
    "genlm": "pip install genlm-control",
}
MODULES = {"ours": "potentials", "llguidance": "llguidance", "xgrammar": "xgrammar",
           "outlines": "outlines_core", "genlm": "genlm.control"}


def _bit(words: np.ndarray, tid: int) -> bool:
    return bool((int(words[tid >> 5]) >> (tid & 31)) & 1)


class Engine:
    name = "?"
    grammar_note = ""

    def __init__(self, grammar: str, tok, vb: list, eos: int, docs: list[str]) -> None:
        self.grammar, self.tok, self.vb, self.eos, self.docs = grammar, tok, vb, eos, docs
        self.vocab_size = len(vb)
        self.n_words = (self.vocab_size + 31) // 32

    def allows(self, tid: int | None) -> bool:
        return _bit(self.words(), self.eos if tid is None else tid)


class Ours(Engine):
    name = "ours"

    def compile(self) -> None:
        import grammars
        import potentials
        from smc.token_bytes import vocab_bytes

        self.vb = vocab_bytes(self.tok, self.vocab_size)  # the tokenizer half of the compile
        opts = {"ignore_case": True} if self.grammar == "sql" else {}
        g = potentials.LarkGrammar(grammars.load(self.grammar), **opts)
        self.masker = g.token_masker(self.vb, [self.eos])
        self.grammar_note = f"grammars/{self.grammar}.lark"

    def reset(self) -> None:
        self.buf = b""
        self.text = ""

    def advance(self, tid: int) -> None:
        """The parser-state update, untimed like every peer's (llguidance
        ``consume_token``, xgrammar ``accept_token``, outlines ``advance``): the new
        text's configurations (``prefix`` computes and caches them)."""
        from smc.token_bytes import complete_utf8

        self.buf += self.vb[tid]
        self.text = complete_utf8(self.buf)[0]
        self.masker.grammar.prefix(self.text)

    def mask(self) -> None:
        self._bits = self.masker.bits(self.text)

    def words(self) -> np.ndarray:
        return self._bits


class LLGuidance(Engine):
    name = "llguidance"

    def compile(self) -> None:
        import llguidance
        import llguidance.hf

        if self.grammar == "json":
            import grammars

            src, self.grammar_note = grammars.load("json"), "grammars/json.lark unchanged"
        else:
            src = (PEER_DIR / "sql.llguidance.lark").read_text()
            self.grammar_note = "peer_grammars/sql.llguidance.lark"
        lt = llguidance.hf.from_tokenizer(self.tok, n_vocab=self.vocab_size, eos_token=self.eos)
        self.m = llguidance.LLMatcher(lt, llguidance.LLMatcher.grammar_from_lark(src),
                                      log_level=0)
        if self.m.is_error():
            raise RuntimeError(self.m.get_error())
        self.bm = np.zeros(self.n_words, np.int32)

    def reset(self) -> None:
        self.m.reset()

    def advance(self, tid: int) -> None:
        self.m.consume_token(tid)

    def mask(self) -> None:
        self.m.unsafe_compute_mask_ptr(self.bm.ctypes.data, self.bm.nbytes)

    def words(self) -> np.ndarray:
        return self.bm.view(np.uint32)


class XGrammar(Engine):
    name = "xgrammar"

    def compile(self) -> None:
        import xgrammar as xgr

        info = xgr.TokenizerInfo.from_huggingface(self.tok, vocab_size=self.vocab_size,
                                                  stop_token_ids=[self.eos])
        compiler = xgr.GrammarCompiler(info, cache_enabled=False)
        if self.grammar == "json":
            compiled = compiler.compile_builtin_json_grammar()
            self.grammar_note = "xgrammar builtin JSON grammar"
        else:
            src = (PEER_DIR / "sql.xgrammar.ebnf").read_text()
            compiled = compiler.compile_grammar(xgr.Grammar.from_ebnf(src))
            self.grammar_note = "peer_grammars/sql.xgrammar.ebnf"
        self.compiled = compiled
        self.m = xgr.GrammarMatcher(compiled)
        self.bm = xgr.allocate_token_bitmask(1, self.vocab_size)
        self.bm_np = self.bm.numpy()

    def reset(self) -> None:
        self.m.reset()

    def advance(self, tid: int) -> None:
        self.m.accept_token(tid)

    def mask(self) -> None:
        self.m.fill_next_token_bitmask(self.bm)

    def words(self) -> np.ndarray:
        return self.bm_np[0].view(np.uint32)


def json_regex(depth: int) -> str:
    """grammars/json.lark as a regex, containers unrolled to ``depth`` levels of nesting."""
    ws = r"[ \t\r\n]*"
    string_ = r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"'
    number = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
    scalar = f"(?:{string_}|{number}|true|false|null)"
    value = scalar
    for _ in range(depth):
        pair = f"{string_}{ws}:{ws}{value}"
        obj = rf"\{{{ws}(?:{pair}(?:{ws},{ws}{pair})*{ws})?\}}"
        arr = rf"\[{ws}(?:{value}(?:{ws},{ws}{value})*{ws})?\]"
        value = f"(?:{scalar}|{obj}|{arr})"
    return f"{ws}{value}{ws}"


class Outlines(Engine):
    name = "outlines"

    def compile(self) -> None:
        import outlines_core as oc

        if self.grammar != "json":
            raise NotImplementedError("n/a: outlines-core takes regular languages only "
                                      "(regex / JSON schema); SQL needs a CFG")
        from mask_traces import MAX_DEPTH

        from smc.token_bytes import vocab_bytes

        self.vb = vocab_bytes(self.tok, self.vocab_size)
        table: dict[bytes, list[int]] = {}
        for tid, data in enumerate(self.vb):
            if data is not None and tid != self.eos:
                table.setdefault(data, []).append(tid)
        self.index = oc.Index(json_regex(MAX_DEPTH), oc.Vocabulary(self.eos, table))
        self.guide = oc.Guide(self.index)
        self.bm = np.zeros(self.n_words, np.int32)
        self.grammar_note = f"regex of grammars/json.lark, nesting unrolled to {MAX_DEPTH}"

    def reset(self) -> None:
        self.guide.reset()

    def advance(self, tid: int) -> None:
        self.guide.advance(tid, return_tokens=False)

    def mask(self) -> None:
        self.guide.write_mask_into(self.bm.ctypes.data, self.n_words, 4)

    def words(self) -> np.ndarray:
        return self.bm.view(np.uint32)


class GenLM(Engine):
    """genlm-control's ``BoolCFG`` (pure-Python Earley over bytes), token masks by
    ``Coerced.sparse_logw_next``: genlm-control's own walk of the vocabulary trie, enabled by
    the chart hooks ``_consume`` / ``_advance`` that BoolCFG 0.4.1 lacks (``_TrieBoolCFG``).
    Its dense fallback (one Earley prefix per token) took 2-135 s per SmolLM2 mask here."""

    name = "genlm"

    def compile(self) -> None:
        from genlm.control.potential.coerce import Coerced

        import grammars
        from smc.token_bytes import vocab_bytes

        self.vb = vocab_bytes(self.tok, self.vocab_size)
        if self.grammar == "json":
            src, self.grammar_note = grammars.load("json"), "grammars/json.lark unchanged"
        else:
            src = (PEER_DIR / "sql.genlm.lark").read_text()
            self.grammar_note = "peer_grammars/sql.genlm.lark"
        # negated classes range over a finite charset: printable ASCII + the traces' others
        extra = {c for d in self.docs for c in d if c not in string.printable}
        self.grammar_note += f"; charset printable ASCII + {len(extra)} chars of the traces"
        cfg = _trie_bool_cfg().from_lark(src, charset=set(string.printable) | extra)
        owners: dict[bytes, list[int]] = {}  # genlm wants distinct byte strings
        for t, b in enumerate(self.vb):
            if b is not None and t != self.eos:
                owners.setdefault(b, []).append(t)
        self.owners = list(owners.values())
        self.coerced = Coerced(cfg, list(owners), f=b"".join, prune=False, homomorphic=True)
        _ = self.coerced._sym_trie  # build the trie now (part of the compile)
        self.cfg = cfg

    def reset(self) -> None:
        self.cfg.model.clear_cache()
        self.ctx: list[bytes] = []

    def advance(self, tid: int) -> None:
        self.ctx.append(self.vb[tid])
        self.cfg.model.chart(b"".join(self.ctx))  # extend the cached chart one step at a time

    def mask(self) -> None:
        import asyncio

        got = asyncio.run(self.coerced.sparse_logw_next(self.ctx))
        if got is None:
            raise RuntimeError("genlm: the sparse walk is unavailable here")
        idx, _, eos_w = got
        bits = np.zeros(self.n_words * 32, np.bool_)
        bits[[t for i in idx for t in self.owners[i]]] = True
        bits[self.eos] = eos_w > -math.inf
        self._words = np.packbits(bits, bitorder="little").view(np.uint32)

    def words(self) -> np.ndarray:
        return self._words


def _trie_bool_cfg():
    from genlm.control import BoolCFG
    from genlm.control.constant import EOS

    class _TrieBoolCFG(BoolCFG):
        """BoolCFG plus the chart hooks of ``Coerced.sparse_logw_next``; a chart is the Earley
        column list of the prefix grammar, alive while its last column completes the start."""

        def _live(self, col) -> bool:
            v = col.c_chart.get((0, self.model.cfg.S))
            return v is not None and bool(v.score)

        def _consume(self, syms):
            return self.model.chart(bytes(syms))

        def prefix_logw(self, chart) -> float:
            return 0.0 if len(chart) == 1 or self._live(chart[-1]) else -math.inf

        def complete_logw(self, chart) -> float:
            return 0.0 if self._live(self.model.next_column(chart, EOS)) else -math.inf

        def _advance(self, chart, sym):
            col = self.model.next_column(chart, sym)
            return chart + [col] if self._live(col) else None

    return _TrieBoolCFG


ENGINES = {"ours": Ours, "llguidance": LLGuidance, "xgrammar": XGrammar, "outlines": Outlines,
           "genlm": GenLM}
