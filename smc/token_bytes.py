"""The byte string each token id stands for, read from a Hugging Face tokenizer.

Potentials see text, the model sees token ids; the engine joins the two through
``bytes(token)``.  Byte-level BPE (GPT-2 family, SmolLM2) maps each byte to a
printable stand-in character; SentencePiece-style vocabularies (Gemma, Llama-2)
write spaces as ``▁`` and odd bytes as ``<0xNN>``.  Special and added control
tokens have no text and map to ``None``: a constraint never allows them.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def byte_level_decoder() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode``: stand-in character -> byte value."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _decoder_kinds(tokenizer) -> set[str]:
    """Types of the fast tokenizer's decoder pipeline, e.g. {'ByteLevel'} (read from the
    decoder's own state: serialising the whole tokenizer costs seconds on 262k vocabularies)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return set()
    decoder = getattr(backend, "decoder", None)
    if decoder is None:
        return set()
    try:
        spec = json.loads(decoder.__getstate__())
    except (AttributeError, TypeError, ValueError):
        spec = json.loads(backend.to_str()).get("decoder") or {}
    kinds = {spec.get("type", "")}
    for sub in spec.get("decoders", []) or []:
        kinds.add(sub.get("type", ""))
    return kinds


@lru_cache(maxsize=1)
def _byte_level_translation() -> dict[int, int]:
    """``str.translate`` table: stand-in character -> the character of its byte (≤ U+00FF);
    every other character below U+0100 -> U+0100, so encoding the result as Latin-1 fails
    exactly where a character has no byte."""
    table = {ord(c): b for c, b in byte_level_decoder().items()}
    return {**dict.fromkeys(range(256), 256), **table}


def vocab_bytes(tokenizer, vocab_size: int | None = None) -> list[bytes | None]:
    """One entry per token id: its bytes, or ``None`` for special/unused ids."""
    size = vocab_size if vocab_size is not None else len(tokenizer)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    special |= {i for i, t in added.items() if getattr(t, "special", True)}
    n = min(size, len(tokenizer))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if hasattr(backend, "id_to_token"):  # a fast tokenizer: what convert_ids_to_tokens
        pieces = list(map(backend.id_to_token, range(n)))  # calls, without its Python loop
    else:
        pieces = tokenizer.convert_ids_to_tokens(list(range(n)))
    if "ByteLevel" in _decoder_kinds(tokenizer):
        out = _byte_level(pieces)
    else:  # SentencePiece style: "▁" for a space, "<0xNN>" for a lone byte
        out = [None if p is None else p.replace("\u2581", " ").encode("utf-8") for p in pieces]
        for i, piece in enumerate(pieces):
            if piece is not None and piece.startswith("<0x"):
                m = _BYTE_FALLBACK.match(piece)
                if m:
                    out[i] = bytes([int(m.group(1), 16)])
    for i in added:  # a non-special added token is literal text
        if isinstance(i, int) and 0 <= i < len(out) and pieces[i] is not None:
            out[i] = pieces[i].encode("utf-8")
    for i in special:  # (a special token missing from the vocabulary has id None)
        if isinstance(i, int) and 0 <= i < len(out):
            out[i] = None
    out.extend([None] * (size - len(out)))
    return out


def _byte_level(pieces: list[str | None]) -> list[bytes | None]:
    """Bytes of byte-level BPE pieces; a piece with a character outside the stand-in
    alphabet is taken as literal UTF-8 text."""
    table = _byte_level_translation()
    out: list[bytes | None] = []
    for piece in pieces:
        if piece is None:
            out.append(None)
            continue
        try:
            out.append(piece.translate(table).encode("latin-1"))
        except UnicodeEncodeError:
            out.append(piece.encode("utf-8"))
    return out


def complete_utf8(data: bytes) -> tuple[str, int]:
    """Decode the longest prefix of ``data`` that ends on a character boundary.

    Returns the text and the number of trailing bytes held back (0–3) because
    they begin a multi-byte character that is not finished yet.  Bytes that can
    never become valid UTF-8 decode to U+FFFD, as Python's ``errors='replace'``.
    """
    try:
        return data.decode("utf-8"), 0
    except UnicodeDecodeError as err:
        if err.reason == "unexpected end of data" and err.end == len(data):
            return data[: err.start].decode("utf-8", errors="replace"), len(data) - err.start
        # An invalid byte somewhere: replace it, but keep a held-back tail if any.
        for held in (1, 2, 3):
            if len(data) > held:
                head = data[:-held]
                try:
                    data[-held:].decode("utf-8")
                except UnicodeDecodeError as tail_err:
                    if tail_err.reason == "unexpected end of data":
                        return head.decode("utf-8", errors="replace"), held
        return data.decode("utf-8", errors="replace"), 0
