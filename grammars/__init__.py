"""Bundled Lark grammars: ``load(name)`` returns the text of ``grammars/<name>.lark``."""

from __future__ import annotations

from pathlib import Path

_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    """Names of the bundled grammars (file stems), sorted."""
    return sorted(p.stem for p in _DIR.glob("*.lark"))


def path(name: str) -> Path:
    """Path of the bundled grammar ``name``; ValueError listing the names if unknown."""
    stem = name[:-5] if name.endswith(".lark") else name
    file = _DIR / f"{stem}.lark"
    if "/" in stem or "\\" in stem or not stem or not file.is_file():
        raise ValueError(f"unknown grammar {name!r}; available: {', '.join(names())}")
    return file


def load(name: str) -> str:
    """Text of the bundled grammar ``name`` (e.g. ``"json"``, ``"arith"``)."""
    return path(name).read_text(encoding="utf-8")


__all__ = ["load", "names", "path"]
