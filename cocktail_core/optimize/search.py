"""The two searches of the merge optimizer; each returns the best guarded candidate it saw.

A candidate counts only when its loss is below the softmax merge's and it passes the drift guard;
among those the lowest ``loss + pull * distance(q, q_softmax)`` wins (KL on the simplex, squared L2
for free weights, :meth:`Problem.distance`). ``None`` means none beat the start.
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
    """Adam on the weights; returns the best guarded candidate seen (None when none beats the start).

    On the simplex the weights are ``softmax(logits)`` (non-negative, summing to 1) and Adam moves the
    logits (``options.lr``); with free weights Adam moves the weights themselves (``options.free_lr``).
    The objective is the merged loss plus ``pull * distance`` (KL, or squared L2 for free weights) plus,
    with the drift guard, the self-NLL above the softmax merge's cap.

    Args:
        evaluator: the in-memory evaluator (linear merges: its merge is differentiable).
        problem: the free weights and the softmax start.
        start: the softmax merge's evaluation.
        options: ``steps``, ``lr`` / ``free_lr``, ``pull``, ``drift_tolerance``.
        tick: progress, called with (steps done, message).

    Returns:
        The best free weights ``q`` (or ``None``) and the Adam steps taken.
    """
    import torch

    free = problem.constraint == "free"
    q_soft = torch.tensor(problem.q_soft, dtype=torch.float32)
    if free:
        variable = q_soft.clone().requires_grad_(True)
    else:
        variable = torch.tensor([math.log(max(q, 1e-12)) for q in problem.q_soft], dtype=torch.float32,
                                requires_grad=True)
    opt = torch.optim.Adam([variable], lr=options.free_lr if free else options.lr)
    best: tuple[float, list[float]] | None = None
    steps = 0
    for step in range(options.steps + 1):
        q = variable if free else torch.softmax(variable, dim=0)
        loss, drift = evaluator.differentiable(problem, q)
        if free:
            distance = ((q - q_soft) ** 2).sum()
        else:
            distance = (q * (q.clamp_min(1e-12).log() - q_soft.log())).sum()
        objective = loss + options.pull * distance
        if drift is not None and start.drift is not None:
            cap = start.drift * (1.0 + options.drift_tolerance)
            objective = objective + torch.relu(drift - cap)
        cand = Eval(float(loss.detach()), float(drift.detach()) if drift is not None else None)
        value = float(loss.detach()) + options.pull * float(distance.detach())
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
    """Gradient-free: move the weights one model at a time, halving the step when stuck.

    On the simplex a move goes part of the way toward one model (the weights stay non-negative and sum
    to 1); with free weights a move adds or subtracts the step to one model's weight.

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
    free = problem.constraint == "free"
    step = 0.25 if free else 0.5
    evals = 0
    order = sorted(range(len(q)), key=lambda j: -q[j])  # the favoured models first
    moves = [(j, sign) for j in order for sign in ((1.0, -1.0) if free else (1.0,))]
    while evals < budget and step >= 1 / 64:
        improved = False
        for j, sign in moves:
            if evals >= budget:
                break
            if free:
                cand_q = [x + (sign * step if k == j else 0.0) for k, x in enumerate(q)]
            else:
                cand_q = [(1 - step) * x + (step if k == j else 0.0) for k, x in enumerate(q)]
            e = evaluator.evaluate(problem.weights(cand_q))
            evals += 1
            tick(evals + 1, f"evaluation {evals}: merged loss {e.loss:.4f}")
            value = e.loss + options.pull * problem.distance(cand_q)
            if e.loss < start.loss and drift_ok(e, start, options) and value < f_cur - 1e-9:
                q, f_cur, best, improved = cand_q, value, cand_q, True
                break
        if not improved:
            step /= 2
    return best, evals


__all__ = ["gradient_search", "pattern_search"]
