"""Solve one task of a domain: bind the domain to the task, generate, score the best output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smc.domains.base import Domain, Evaluation, Task
from smc.result import Result


@dataclass
class Solved:
    """A task, what ``smc.generate`` returned for it and the domain's score of ``result.best``."""

    task: Task
    result: Result
    evaluation: Evaluation

    def to_json(self) -> dict[str, Any]:
        return {"id": self.task.id, "question": self.task.question, **self.result.to_json(),
                "evaluation": self.evaluation.to_json()}


def solve(lm: Any, dom: Domain, task: Task, *, method: str = "smc", n_particles: int = 16,
          max_tokens: int | None = None, seed: int | None = 0, progress: bool = False,
          **generate_options: Any) -> Solved:
    """Run ``smc.generate`` on ``task`` with the domain's prompt, constraint and critic
    (``max_tokens`` defaults to the domain's budget; an ``smc`` run takes the domain's
    ``smc_options`` unless ``generate_options`` say otherwise) and evaluate the best output."""
    import smc

    bound = dom.for_task(task)
    if method == "smc":
        generate_options = {**bound.smc_options, **generate_options}
    res = smc.generate(
        lm, bound.prompt(task.question, lm), constraint=bound.constraint, critic=bound.critic,
        method=method, n_particles=n_particles, max_tokens=max_tokens or bound.max_tokens,
        seed=seed, progress=progress, **generate_options,
    )
    return Solved(task, res, bound.evaluate(res.best, task))
