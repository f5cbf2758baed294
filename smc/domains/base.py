"""The domain plugin interface: a grammar, its potentials, a prompt format and an evaluator.

A domain targets π(x) ∝ p(x | prompt(question)) · constraint(x) · critic(x): the
constraint (cheap, usually a grammar) shapes the proposal, the critic (semantic:
does the SQL name real columns, does the partial program run) twists the weights
at its boundaries.  ``evaluate`` scores one finished output against a task.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from potentials.base import Potential

_FENCE = re.compile(r"```[A-Za-z0-9_+-]*\s*\n?(.*?)(?:```|$)", re.S)


@dataclass(frozen=True)
class Task:
    """One question of a domain's task set; ``gold`` is whatever ``evaluate`` compares with."""

    id: str
    question: str
    gold: Any = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    """The score of one output: ``valid`` (well-formed for the domain), ``correct`` (task
    solved), ``score`` (the domain's headline number, 1.0/0.0 unless said otherwise) and
    domain-specific ``details``."""

    valid: bool
    correct: bool
    score: float
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "correct": self.correct, "score": self.score,
                "details": self.details}


class Domain:
    """Base class of domain plugins; subclasses set the class attributes and override
    ``instruction``, ``tasks`` and ``evaluate`` (and ``for_task`` when the constraint or
    critic depends on the task, e.g. a PDDL problem's objects)."""

    name: ClassVar[str] = "domain"
    description: ClassVar[str] = ""
    max_tokens: ClassVar[int] = 96           # default budget for one output
    # ``smc.generate`` options the domain's ``smc`` runs use unless told otherwise
    smc_options: ClassVar[dict[str, Any]] = {}
    system: ClassVar[str | None] = None      # system message of the chat prompt

    constraint: Potential | None = None
    critic: Potential | None = None

    # -- prompts ---------------------------------------------------------------
    def instruction(self, question: str) -> str:
        """The user turn for ``question`` (few-shot examples, schema, signature ...)."""
        return question

    def prompt(self, question: str, lm: Any = None) -> str:
        """The prompt text for ``question``: in ``lm``'s chat template when it has one,
        otherwise the system message and instruction as plain text."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"{self.name}: the question is empty")
        user = self.instruction(question)
        if lm is not None and hasattr(lm, "chat"):
            return lm.chat(user, system=self.system)
        return (self.system + "\n\n" if self.system else "") + user + "\n"

    # -- tasks -----------------------------------------------------------------
    def tasks(self) -> list[Task]:
        """The domain's shipped task set (for ``benchmarks/domains.py`` and ``--tasks``)."""
        return []

    def benchmark_tasks(self, limit: int | None = None) -> list[Task]:
        """The fixed subset ``benchmarks/domains.py`` runs (default: the first ``limit``)."""
        tasks = self.tasks()
        return tasks if limit is None else tasks[:limit]

    def task(self, question: str, **fields: Any) -> Task:
        """A task from a free question (``--question``, a JSONL line); ``gold`` optional."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"{self.name}: the question is empty")
        gold = fields.pop("gold", None)
        task_id = str(fields.pop("id", "question"))
        return Task(task_id, question, gold, dict(fields))

    def for_task(self, task: Task) -> Domain:
        """The domain bound to ``task`` (its constraint and critic may depend on it)."""
        return self

    # -- scoring ---------------------------------------------------------------
    def evaluate(self, output: str | None, task: Task) -> Evaluation:
        """Score ``output`` (None when every particle died) against ``task``."""
        raise NotImplementedError

    @staticmethod
    def clean(output: str | None) -> str | None:
        """The program inside an output: the first fenced code block if there is one
        (unconstrained ``direct`` samples often wrap code in Markdown), stripped."""
        if output is None:
            return None
        m = _FENCE.search(output)
        return (m.group(1) if m else output).strip()

    # -- command line ------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the domain's own options (e.g. ``--db``) to its CLI sub-command."""

    @classmethod
    def options_from(cls, args: argparse.Namespace) -> dict[str, Any]:
        """Keyword options for ``load(name, **options)`` from parsed CLI arguments."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
