"""The two searches of the merge optimizer; each returns the best guarded candidate it saw.

A candidate counts only when its loss is below the softmax merge's and it passes the drift guard;
among those the lowest ``loss + pull * KL(q || q_softmax)`` wins. ``None`` means none beat the start.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

from cocktail_core.drift import drift_ok
from cocktail_core.optimize.options import OptimizeOptions
from cocktail_core.optimize.problem import Eval, Problem

if TYPE_CHECKING:
    from cocktail_core.optimize.evaluators import InMemoryEvaluator


def gradient_search(evaluator: InMemoryEvaluator, problem: Problem, start: Eval, options: OptimizeOptions,
                    tick: Callable[[int, str], None]) -> tuple[list[float] | None, int]:
    """Adam on the weight logits; returns the best guarded candidate seen (None when none beats the start).

    The weights are ``softmax(logits)`` (non-negative, summing to 1); the objective is the merged loss
    plus ``pull * KL`` plus, with the drift guard, the self-NLL above the softmax merge's cap.

    Args:
        evaluator: the in-memory evaluator (linear merges: its merge is differentiable).
        problem: the free weights and the softmax start.
        start: the softmax merge's evaluation.
        options: ``steps``, ``lr``, ``pull``, ``drift_tolerance``.
        tick: progress, called with (steps done, message).

    Returns:
        The best free weights ``q`` (or ``None``) and the Adam steps taken.
    """
    import torch

    logits = torch.tensor([math.log(max(q, 1e-12)) for q in problem.q_soft], dtype=torch.float32,
                          requires_grad=True)
    q_soft = torch.tensor(problem.q_soft, dtype=torch.float32)
    opt = torch.optim.Adam([logits], lr=options.lr)
    best: tuple[float, list[float]] | None = None
    steps = 0
    for step in range(options.steps + 1):
        q = torch.softmax(logits, dim=0)
        loss, drift = evaluator.differentiable(problem, q)
        kl = (q * (q.clamp_min(1e-12).log() - q_soft.log())).sum()
        objective = loss + options.pull * kl
        if drift is not None and start.drift is not None:
            cap = start.drift * (1.0 + options.drift_tolerance)
            objective = objective + torch.relu(drift - cap)
        cand = Eval(float(loss.detach()), float(drift.detach()) if drift is not None else None)
        value = float(loss.detach()) + options.pull * float(kl.detach())
        if step > 0 and cand.loss < start.loss and drift_ok(cand, start, options):
            if best is None or value < best[0]:
                best = (value, q.detach().tolist())
        tick(step + 1, f"step {step}: merged loss {cand.loss:.4f}")
        if step == options.steps:
            break
        opt.zero_grad()
        objective.backward()
        opt.step()
        steps += 1
    return (best[1] if best is not None else None), steps


def pattern_search(evaluator: Any, problem: Problem, start: Eval, options: OptimizeOptions, budget: int,
                   tick: Callable[[int, str], None]) -> tuple[list[float] | None, int]:
    """Gradient-free: move the free weights toward one model at a time, halving the step when stuck.

    Args:
        evaluator: any evaluator (in memory or streamed); only its ``evaluate`` is used.
        problem: the free weights and the softmax start.
        start: the softmax merge's evaluation.
        options: ``pull``, ``drift_tolerance``.
        budget: most merge evaluations.
        tick: progress, called with (evaluations done + 1, message).

    Returns:
        The best free weights ``q`` (or ``None``) and the merge evaluations used.
    """
    q = list(problem.q_soft)
    f_cur = start.loss
    best: list[float] | None = None
    step = 0.5
    evals = 0
    order = sorted(range(len(q)), key=lambda j: -q[j])  # the favoured models first
    while evals < budget and step >= 1 / 64:
        improved = False
        for j in order:
            if evals >= budget:
                break
            cand_q = [(1 - step) * x + (step if k == j else 0.0) for k, x in enumerate(q)]
            e = evaluator.evaluate(problem.weights(cand_q))
            evals += 1
            tick(evals + 1, f"evaluation {evals}: merged loss {e.loss:.4f}")
            value = e.loss + options.pull * problem.kl(cand_q)
            if e.loss < start.loss and drift_ok(e, start, options) and value < f_cur - 1e-9:
                q, f_cur, best, improved = cand_q, value, cand_q, True
                break
        if not improved:
            step /= 2
    return best, evals


__all__ = ["gradient_search", "pattern_search"]
