"""What every scoring task shares: context limits, padding, and calling a model with swapped weights.

A *task* turns examples into token ids once (for one tokenizer), then computes each example's loss
for any model of that architecture: ``task.example_losses(model)`` for the model's own weights, or
``task.example_losses(model, params)`` with another set of parameters (an in-memory merge) through
:func:`torch.func.functional_call`, so gradients flow back to the merge weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch
import torch.nn.functional as F

from cocktail_core.errors import ExamplesError

#: config keys that hold the longest sequence a model can see, most specific first
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx",
                 "max_sequence_length")
#: tokenizers store "no limit" as a huge number
_NO_LIMIT = 1_000_000
#: padded tokens per forward pass while scoring
BATCH_TOKENS = 4096
MAX_BATCH = 16


def config_value(config: Any, key: str, default: Any = None) -> Any:
    """``key`` of a config given as a dict or a transformers config (also looked up in ``text_config``)."""
    for cfg in (config, _get(config, "text_config")):
        if cfg is None:
            continue
        value = _get(cfg, key)
        if value is not None:
            return value
    return default


def _get(cfg: Any, key: str) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(key)
    return getattr(cfg, key, None)


def context_length(config: Any, tokenizer: Any = None) -> int | None:
    """The longest input the model accepts, from its config and tokenizer (``None`` when unknown).

    Example:
        >>> context_length({"max_position_embeddings": 2048})
        2048
    """
    found: list[int] = []
    for key in _CONTEXT_KEYS:
        value = config_value(config, key)
        if isinstance(value, int) and value > 0:
            found.append(value)
            break
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < _NO_LIMIT:
        found.append(tok_max)
    return min(found) if found else None


def first_id(value: Any) -> int | None:
    """A token id from a config value that may be an int, a list of ints, or None."""
    if isinstance(value, (list, tuple)):
        return int(value[0]) if value else None
    return int(value) if value is not None else None


def eos_token_id(tokenizer: Any, config: Any) -> int | None:
    """The tokenizer's EOS id, else the config's (``None`` when neither has one)."""
    eos = getattr(tokenizer, "eos_token_id", None)
    return eos if eos is not None else first_id(config_value(config, "eos_token_id"))


def fallback_pad_id(tokenizer: Any, eos_id: int | None) -> int:
    """An id to pad with: the tokenizer's pad token, else ``eos_id``, else 0 (the mask hides it anyway)."""
    return next(i for i in (getattr(tokenizer, "pad_token_id", None), eos_id, 0) if i is not None)


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, *, extra: Sequence[Sequence[int]] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Right-pad token id lists to the longest: (ids, attention_mask, padded ``extra`` or None).

    Any pad id works (the attention mask hides it and no loss is taken there), so a tokenizer
    without a pad token needs none.
    """
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    other = torch.zeros((len(rows), width), dtype=torch.long) if extra is not None else None
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
        if other is not None and extra is not None:
            other[i, : len(extra[i])] = torch.tensor(extra[i], dtype=torch.long)
    return ids, mask, other


def batches_by_length(lengths: Sequence[int], *, budget: int = BATCH_TOKENS, max_batch: int = MAX_BATCH
                      ) -> list[list[int]]:
    """Indices grouped into batches of similar length, each within ``budget`` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = max([lengths[j] for j in current] + [lengths[i]])
        if current and (width * (len(current) + 1) > budget or len(current) >= max_batch):
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    return out


def in_example_order(lengths: Sequence[int], step: Callable[[list[int]], torch.Tensor],
                     device: torch.device | None = None) -> torch.Tensor:
    """Run ``step`` on batches of similar length (:func:`batches_by_length`), rows back in input order.

    ``step(batch)`` returns one row per index of ``batch``; the result has one row per entry of
    ``lengths``, in order (one differentiable gather).
    """
    batches = batches_by_length(lengths)
    if not batches:
        return torch.zeros(0, dtype=torch.float32, device=device)
    rows = torch.cat([step(batch) for batch in batches])
    order = torch.tensor([i for batch in batches for i in batch], dtype=torch.long)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order))
    return rows[inverse.to(rows.device)]


def masked_token_mean(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each row's mean cross-entropy over the target positions where ``mask`` is set (float32, ``[B]``)."""
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                         reduction="none").view(targets.shape)
    return (ce * mask).sum(1) / mask.sum(1)


def call_model(model: Any, params: Mapping[str, torch.Tensor] | None, **inputs: Any) -> Any:
    """``model(**inputs)``, or with ``params`` swapped in through :func:`torch.func.functional_call`."""
    if params is None:
        return model(**inputs)
    return torch.func.functional_call(model, dict(params), (), inputs, strict=False)


def model_device(model: Any) -> torch.device:
    from cocktail_core.scoring.loading import input_device

    return input_device(model)


class Task:
    """Examples encoded for one tokenizer; computes per-example losses for a model.

    Subclasses set ``kind`` and implement :meth:`example_losses`.
    """

    kind: ClassVar[str]

    def __init__(self, examples: Sequence[Any], *, tokenizer: Any, config: Any, folder: str | Path | None = None,
                 name: str = "the model", max_length: int | None = None, seed: int = 0) -> None:
        self.examples = list(examples)
        self.tokenizer = tokenizer
        self.config = config
        self.folder = Path(folder) if folder is not None else None
        self.name = name
        self.seed = seed
        self.context = context_length(config, tokenizer)
        if max_length is not None and max_length < 1:
            raise ExamplesError(f"max_length must be at least 1, got {max_length}.")
        self.max_length = max_length
        # Lengths are checked here, with errors that name the example; transformers' own warning is noise.
        warned = getattr(tokenizer, "deprecation_warnings", None)
        if isinstance(warned, dict):
            warned["sequence-length-is-longer-than-the-specified-maximum"] = True

    @property
    def limit(self) -> int | None:
        """The longest sequence scored: ``max_length`` (capped by the context), else the context."""
        if self.max_length is None:
            return self.context
        return min(self.max_length, self.context) if self.context else self.max_length

    @property
    def truncates(self) -> bool:
        """True when the user asked for truncation (``max_length``); else over-long examples are errors."""
        return self.max_length is not None

    def require(self, example_type: type, mismatch: str, field: str, hint: str) -> None:
        """Raise ``ExamplesError("<example>: <mismatch>")``, naming ``field``, for the first example that is
        not an ``example_type``."""
        for ex in self.examples:
            if not isinstance(ex, example_type):
                raise ExamplesError(f"{ex.where}: {mismatch}", line=ex.line, field=field, hint=hint)

    def too_long(self, example: Any, n_tokens: int, what: str, field: str | None) -> ExamplesError:
        return ExamplesError(
            f"{example.where} is {n_tokens} tokens long ({what}), more than the {self.context}-token context "
            f"of {self.name}.", line=getattr(example, "line", None), field=field,
            hint="Shorten it, or pass max_length to truncate long examples.")

    def example_losses(self, model: Any, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Each example's loss (float32, shape ``[n_examples]``), differentiable w.r.t. ``params``."""
        raise NotImplementedError

    def loss(self, model: Any, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The mean of :meth:`example_losses`: every example counts the same."""
        return self.example_losses(model, params).mean()


__all__ = ["Task", "context_length", "config_value", "first_id", "eos_token_id", "fallback_pad_id", "pad_batch",
           "batches_by_length", "in_example_order", "masked_token_mean", "call_model"]
