"""The base-drift guard of the merge optimizer: how much a merge forgets, as a self-NLL.

The base model answers a few built-in general prompts greedily (:func:`greedy_answers`); the loss of
those answers under a merge (:func:`make_drift_task`) measures how far it drifted from the base. A
candidate merge passes (:func:`drift_ok`) when its self-NLL is at most the softmax merge's plus a small
relative tolerance, so the optimizer never returns a merge that forgets more than LM-Cocktail's own mix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cocktail_core.examples import TextExample

if TYPE_CHECKING:
    from cocktail_core.optimize.options import OptimizeOptions
    from cocktail_core.optimize.problem import Eval

#: general prompts whose greedy answers by the base model measure a merge's drift (decoders)
GENERAL_PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "What is 7 plus 5?",
    "What colour is the sky on a clear day?",
    "Name three fruits.",
    "Who wrote Romeo and Juliet?",
    "What is the opposite of hot?",
    "Write one sentence about the ocean.",
    "How many days are in a week?",
)


def greedy_answers(loaded: Any, task: Any, options: OptimizeOptions) -> list[TextExample]:
    """The base model's own greedy answers to the general prompts (the drift probe)."""
    import torch

    model, tok = loaded.model, task.tokenizer
    eos = task.eos_id
    out: list[TextExample] = []
    for i, prompt in enumerate(options.drift_prompts):
        ids = task.prompt_ids(prompt)
        room = task.context - len(ids) - 1 if task.context else options.drift_new_tokens
        n_new = min(options.drift_new_tokens, room)
        if n_new < 1:
            continue
        inp = torch.tensor([ids], device=loaded.device)
        gen = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), max_new_tokens=n_new,
                             do_sample=False, pad_token_id=eos if eos is not None else 0,
                             eos_token_id=eos)
        new = gen[0, len(ids):].tolist()
        if eos is not None and eos in new:
            new = new[: new.index(eos)]
        text = tok.decode(new, skip_special_tokens=True)
        if text.strip():
            out.append(TextExample(prompt=prompt, answer=text, index=i))
    return out


def make_drift_task(answers: list[TextExample], task: Any, source: Any, chat_template: bool) -> Any:
    """The scoring task whose loss is a merge's self-NLL of the base's ``answers``.

    Args:
        answers: the base's greedy answers (:func:`greedy_answers`).
        task: the example task of the tokenizer donor (its tokenizer and context are reused).
        source: the tokenizer donor's downloaded model source.
        chat_template: wrap prompts in the tokenizer's chat template when it has one.

    Returns:
        A decoder task from :func:`cocktail_core.scoring.make_task`.
    """
    from cocktail_core.scoring import make_task

    return make_task("decoder", answers, tokenizer=task.tokenizer, config=source.config,
                     name=source.ref.display_name, chat_template=chat_template, max_length=task.context)


def drift_ok(cand: Eval, ref: Eval, options: OptimizeOptions) -> bool:
    """True when ``cand`` drifts at most ``options.drift_tolerance`` more than ``ref`` (or drift is unknown)."""
    if cand.drift is None or ref.drift is None:
        return True
    return cand.drift <= ref.drift * (1.0 + options.drift_tolerance) + 1e-6


__all__ = ["GENERAL_PROMPTS", "greedy_answers", "make_drift_task", "drift_ok"]
