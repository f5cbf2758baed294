"""What ``runner.solve`` passes to ``smc.generate`` (the call is stopped before it runs)."""

from __future__ import annotations

from typing import Any

import pytest

import smc


def generate_kwargs(monkeypatch, lm, dom, task, runs: list[tuple[str, dict]]) -> list[dict]:
    """The keyword arguments ``smc.generate`` receives for each (method, extra options)."""
    from smc.domains.runner import solve

    seen: list[dict[str, Any]] = []

    class Stop(Exception):
        pass

    def fake_generate(*args, **kwargs):
        seen.append(kwargs)
        raise Stop

    monkeypatch.setattr(smc, "generate", fake_generate)
    for method, extra in runs:
        with pytest.raises(Stop):
            solve(lm, dom, task, method=method, **extra)
    return seen
