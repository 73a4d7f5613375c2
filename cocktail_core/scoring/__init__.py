"""Each candidate model's loss on the examples, one module per model kind.

* :mod:`~cocktail_core.scoring.decoder`: answer-token cross-entropy (+EOS), prompt masked, chat template;
* :mod:`~cocktail_core.scoring.embedding`: contrastive loss with the model's own pooling;
* :mod:`~cocktail_core.scoring.reranker`: cross-entropy of the positive among the negatives;
* :mod:`~cocktail_core.scoring.seq2seq`: seq2seq loss of the answer;
* :mod:`~cocktail_core.scoring.loading`: loading a folder per kind, dtype and device placement.

Example:
    >>> from cocktail_core.examples import load_examples
    >>> examples = load_examples("examples.jsonl", kind="decoder")
    >>> score_model("./my-finetune", examples, kind="decoder").loss
    1.234
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from cocktail_core.examples import Example
from cocktail_core.scoring.base import Task, context_length
from cocktail_core.scoring.decoder import DecoderTask
from cocktail_core.scoring.embedding import EmbeddingTask, read_pooling
from cocktail_core.scoring.loading import LoadedModel, load_model, load_tokenizer
from cocktail_core.scoring.reranker import RerankerTask
from cocktail_core.scoring.seq2seq import Seq2SeqTask

TASKS: dict[str, type[Task]] = {
    "decoder": DecoderTask,
    "encoder": EmbeddingTask,
    "reranker": RerankerTask,
    "encoder-decoder": Seq2SeqTask,
}


@dataclass
class ModelScore:
    """One model's loss on the examples.

    Attributes:
        loss: the mean of ``per_example``.
        per_example: each example's loss, in order.
        seconds: wall time of loading and scoring.
    """

    loss: float
    per_example: list[float]
    seconds: float


def make_task(kind: str, examples: Sequence[Example], *, tokenizer: Any, config: Any,
              folder: str | Path | None = None, name: str = "the model", chat_template: bool = True,
              max_length: int | None = None, seed: int = 0, **options: Any) -> Task:
    """Encode ``examples`` for one model's tokenizer as a :class:`~cocktail_core.scoring.base.Task` of ``kind``.

    Raises:
        ExamplesError: the examples do not fit the kind, or are longer than the context.
        ScoringError: an answer would be truncated away, or the model cannot be scored as ``kind``.
    """
    from cocktail_core.errors import ScoringError

    if kind not in TASKS:
        raise ScoringError(f"Unknown model kind {kind!r}.", hint=f"Expected one of: {', '.join(TASKS)}.")
    return TASKS[kind](examples, tokenizer=tokenizer, config=config, folder=folder, name=name,
                       chat_template=chat_template, max_length=max_length, seed=seed, **options)


def score_model(folder: str | Path, examples: Sequence[Example], *, kind: str, chat_template: bool = True,
                max_length: int | None = None, seed: int = 0, device: str | torch.device | None = None,
                trust_remote_code: bool = False, task: Task | None = None, **options: Any) -> ModelScore:
    """Load the model in ``folder``, compute its loss on ``examples``, and free it.

    Args:
        folder: a local model folder.
        examples: validated examples (see :func:`cocktail_core.examples.load_examples`).
        kind: ``decoder``, ``encoder``, ``reranker`` or ``encoder-decoder``.
        chat_template: decoders: wrap prompts in the chat template when the tokenizer has one.
        max_length: truncate longer examples (else longer than the context is an error).
        seed: seed of the negative sampling (embedding models, rerankers).
        device: where to run (default: the accelerate device).
        trust_remote_code: allow the model's own code.
        task: an already built task for this model's tokenizer (skips encoding).
        options: kind-specific options (``neg_number``, ``temperature``, ``pooling``).

    Returns:
        A :class:`ModelScore`.

    Raises:
        ExamplesError / ScoringError: see :func:`make_task`; ScoringError when the model cannot load.
    """
    started = time.perf_counter()
    folder = Path(folder)
    if task is None:
        tokenizer = load_tokenizer(folder, trust_remote_code=trust_remote_code)
        import json

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        task = make_task(kind, examples, tokenizer=tokenizer, config=config, folder=folder, name=folder.name,
                         chat_template=chat_template, max_length=max_length, seed=seed, **options)
    per, _ = task_losses(folder, task, kind, device=device, trust_remote_code=trust_remote_code)
    return ModelScore(loss=float(per.mean()), per_example=[float(x) for x in per],
                      seconds=time.perf_counter() - started)


def task_losses(folder: str | Path, task: Task, kind: str, *, device: str | torch.device | None = None,
                trust_remote_code: bool = False, then: Callable[[LoadedModel], Any] | None = None
                ) -> tuple[torch.Tensor, Any]:
    """Load the model in ``folder``, compute ``task``'s per-example losses (float32, CPU) and free it.

    ``then(loaded)``, when given, runs on the loaded model before it is freed (under ``no_grad``, as the
    losses); its result is returned with the losses (else ``None``).

    Raises:
        ScoringError: the model cannot load, or gives a non-finite loss.
    """
    folder = Path(folder)
    loaded = load_model(folder, kind, device=device, trust_remote_code=trust_remote_code, tokenizer=task.tokenizer)
    try:
        with torch.no_grad():
            per = task.example_losses(loaded.model).detach().float().cpu()
            extra = then(loaded) if then is not None else None
    finally:
        loaded.close()
    _check_finite(per, folder.name, task)
    return per, extra


def _check_finite(per: torch.Tensor, name: str, task: Task) -> None:
    from cocktail_core.errors import ScoringError

    bad = [i for i, v in enumerate(per.tolist()) if v != v or v in (float("inf"), float("-inf"))]
    if bad:
        which = ", ".join(task.examples[i].where for i in bad)
        raise ScoringError(f"{name} gives a non-finite loss on {which}.",
                           hint="The model's weights may hold NaN/inf, or its dtype overflows; "
                                "check the model loads and generates normally.")


__all__ = ["TASKS", "ModelScore", "make_task", "score_model", "task_losses", "load_model", "load_tokenizer",
           "LoadedModel", "DecoderTask", "EmbeddingTask", "RerankerTask", "Seq2SeqTask", "read_pooling",
           "context_length"]
