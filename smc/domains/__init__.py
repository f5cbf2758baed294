"""Domain plugins, found through the ``smc.domains`` entry-point group.

    dom = smc.domains.load("sql", db="shop.sqlite")
    res = smc.generate(lm, dom.prompt("How many orders?", lm), constraint=dom.constraint,
                       critic=dom.critic, method="smc", n_particles=16)
    dom.evaluate(res.best, task)

A third party registers a domain with, in its ``pyproject.toml``::

    [project.entry-points."smc.domains"]
    mydsl = "my_package.module:MyDomain"     # a smc.domains.Domain subclass
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from smc.domains.base import Domain, Evaluation, Task

GROUP = "smc.domains"
# The shipped domains, so a source checkout that was never pip-installed still finds them.
BUILTIN = {
    "sql": "smc.domains.sql:SQLDomain",
    "python": "smc.domains.python:PythonDomain",
    "smiles": "smc.domains.smiles:SmilesDomain",
    "pddl": "smc.domains.pddl:PDDLDomain",
}


def _registry() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        found[ep.name] = ep.value
    return found


def names() -> list[str]:
    """Names of every registered domain, sorted."""
    return sorted(_registry())


def domain_class(name: str) -> type[Domain]:
    """The class registered under ``name``; ValueError naming the known ones if unknown."""
    registry = _registry()
    if name not in registry:
        raise ValueError(f"unknown domain {name!r}; registered: {', '.join(sorted(registry))}")
    target = registry[name]
    module_name, _, attr = target.partition(":")
    import importlib

    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Domain)):
        raise TypeError(f"domain {name!r} ({target}) is not a smc.domains.Domain subclass")
    return obj


def load(name: str, **options: Any) -> Domain:
    """The domain ``name`` built with its own ``options`` (e.g. ``db=`` for ``sql``)."""
    return domain_class(name)(**options)


__all__ = ["BUILTIN", "GROUP", "Domain", "Evaluation", "Task", "domain_class", "load", "names"]
