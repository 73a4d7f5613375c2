"""Decoder (causal LM) loss: mean cross-entropy over the answer tokens plus an EOS, prompt masked.

The prompt and the answer are tokenized separately and concatenated, so the boundary is exact by
construction: every answer token (and the EOS) carries loss, no prompt token does. With a chat
template (on by default when the tokenizer has one) the prompt is the rendered user turn plus the
assistant header (``add_generation_prompt``), and the answer is the assistant's content.
Without one, the answer follows the prompt after one space (the reference's join), unless the prompt
already ends in whitespace, the answer starts with it, or the tokenizer adds a prefix space itself.

Sequences are right-padded per batch with any id (no pad token needed); only the answer positions'
logits are computed when the model supports ``logits_to_keep``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from cocktail_core.errors import ScoringError
from cocktail_core.examples import TextExample
from cocktail_core.scoring.base import (Task, call_model, eos_token_id, fallback_pad_id, in_example_order,
                                        masked_token_mean, model_device, pad_batch)


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of one example: ``ids[:n_prompt]`` is the prompt, ``ids[n_prompt:]`` the scored answer."""

    ids: tuple[int, ...]
    n_prompt: int

    @property
    def answer_ids(self) -> tuple[int, ...]:
        return self.ids[self.n_prompt:]


class DecoderTask(Task):
    """Answer-token loss of a causal LM.

    Args:
        examples: :class:`~cocktail_core.examples.TextExample` list.
        tokenizer: the model's tokenizer (pad token not needed).
        config: the model's config (dict or transformers config): context length and EOS fallback.
        chat_template: wrap the prompt in the tokenizer's chat template when it has one.
        max_length: truncate longer examples to this many tokens (an example whose whole answer is cut
            off is an error); without it an example longer than the context is an error.

    Raises:
        ExamplesError: an example is longer than the model's context, or not a text example.
        ScoringError: truncation cuts an example's whole answer away; the chat template fails.
    """

    kind = "decoder"

    def __init__(self, examples: Sequence[TextExample], *, tokenizer: Any, config: Any,
                 folder: str | Path | None = None, name: str = "the model", chat_template: bool = True,
                 max_length: int | None = None, seed: int = 0, **_: Any) -> None:
        super().__init__(examples, tokenizer=tokenizer, config=config, folder=folder, name=name,
                         max_length=max_length, seed=seed)
        self.require(TextExample, "query/pos/neg examples do not fit a decoder model.", "query",
                     'Decoder models take {"input": "<prompt>", "output": "<answer>"}.')
        self.use_template = bool(chat_template and getattr(tokenizer, "chat_template", None))
        self.eos_id = eos_token_id(tokenizer, config)
        self.bos_id = getattr(tokenizer, "bos_token_id", None)
        self.pad_id = fallback_pad_id(tokenizer, self.eos_id)
        self._prefix_space = _adds_prefix_space(tokenizer)
        self.encoded = [self._encode(ex) for ex in self.examples]

    # -- encoding ---------------------------------------------------------------------------------

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of the prompt side: the chat template's user turn + assistant header, or the text."""
        tok = self.tokenizer
        if self.use_template:
            try:
                text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                               add_generation_prompt=True)
            except Exception as exc:  # noqa: BLE001 - templates are user code (jinja)
                raise ScoringError(f"The chat template of {self.name} failed ({exc}).",
                                   hint="Pass chat_template=False (--no-chat-template) to score plain text.") from None
            return list(tok(text, add_special_tokens=False)["input_ids"])
        if not prompt:
            return [self.bos_id] if self.bos_id is not None else []
        ids = list(tok(prompt)["input_ids"])
        plain = list(tok(prompt, add_special_tokens=False)["input_ids"])
        # A tokenizer that appends EOS to every text would put it between prompt and answer.
        if self.eos_id is not None and ids and ids[-1] == self.eos_id and (not plain or plain[-1] != self.eos_id):
            ids.pop()
        return ids

    def answer_ids(self, prompt: str, answer: str) -> list[int]:
        """Token ids of the scored side: the answer, then EOS."""
        text = answer
        if (not self.use_template and prompt and not prompt[-1].isspace() and not answer[0].isspace()
                and not self._prefix_space):
            text = " " + answer
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if self.eos_id is not None:
            ids.append(self.eos_id)
        return ids

    def _encode(self, ex: TextExample) -> EncodedExample:
        prompt = self.prompt_ids(ex.prompt)
        answer = self.answer_ids(ex.prompt, ex.answer)
        ids = prompt + answer
        limit = self.limit
        if limit is not None and len(ids) > limit:
            if not self.truncates:
                raise self.too_long(ex, len(ids), f"{len(prompt)} prompt + {len(answer)} answer", "input")
            if len(prompt) >= limit:
                raise ScoringError(
                    f"{ex.where}: its prompt alone is {len(prompt)} tokens, so truncating to {limit} tokens cuts "
                    f"its whole answer away; it cannot be scored.",
                    hint="Shorten the prompt or raise max_length.")
            ids = ids[:limit]
        if len(prompt) == 0:
            # Nothing predicts the first answer token; score from the second one.
            if len(ids) < 2:
                raise ScoringError(f"{ex.where}: a one-token answer without a prompt cannot be scored by "
                                   f"{self.name} (it has no BOS token).", hint="Give the example a prompt.")
            return EncodedExample(tuple(ids), 1)
        return EncodedExample(tuple(ids), len(prompt))

    # -- loss -------------------------------------------------------------------------------------

    def example_losses(self, model: Any, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        device = model_device(model)
        keep_ok = _accepts(model, "logits_to_keep")

        def batch_losses(batch: list[int]) -> torch.Tensor:
            rows = [self.encoded[i] for i in batch]
            ids, mask, _ = pad_batch([r.ids for r in rows], self.pad_id)
            ids, mask = ids.to(device), mask.to(device)
            width = ids.shape[1]
            start = min(r.n_prompt for r in rows) - 1  # position whose logits predict the first answer token
            kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
            if keep_ok:
                kwargs["logits_to_keep"] = torch.arange(start, width - 1, device=device)
            logits = call_model(model, params, **kwargs).logits
            if not keep_ok:
                logits = logits[:, start: width - 1]
            targets = ids[:, start + 1:]
            positions = torch.arange(start + 1, width, device=device)
            n_prompt = torch.tensor([r.n_prompt for r in rows], device=device)
            lengths = mask.sum(1)
            scored = (positions[None, :] >= n_prompt[:, None]) & (positions[None, :] < lengths[:, None])
            return masked_token_mean(logits, targets, scored)

        return in_example_order([len(e.ids) for e in self.encoded], batch_losses, device)


def _adds_prefix_space(tokenizer: Any) -> bool:
    """True when the tokenizer marks a word start itself (sentencepiece "▁", add_prefix_space "Ġ")."""
    try:
        ids = tokenizer("a", add_special_tokens=False)["input_ids"]
        first = tokenizer.convert_ids_to_tokens(ids[:1])[0] if ids else ""
    except Exception:  # noqa: BLE001 - exotic tokenizers: assume no prefix space
        return False
    return isinstance(first, str) and first.startswith(("\u2581", "\u0120")) and len(first) > 1


def _accepts(model: Any, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


__all__ = ["DecoderTask", "EncodedExample"]
