"""Encoder-decoder loss: the seq2seq cross-entropy of the answer (plus EOS) given the prompt.

The encoder reads the prompt as the tokenizer encodes it (its special tokens included); the decoder is
teacher-forced on ``[decoder_start] + answer`` and every answer token and the final EOS carry loss.
An example's loss is the mean over its answer tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from cocktail_core.errors import ScoringError
from cocktail_core.examples import TextExample
from cocktail_core.scoring.base import (Task, call_model, config_value, eos_token_id, fallback_pad_id, first_id,
                                        in_example_order, masked_token_mean, model_device, pad_batch)


class Seq2SeqTask(Task):
    """Answer loss of an encoder-decoder model.

    Args:
        examples: :class:`~cocktail_core.examples.TextExample` list.
        tokenizer / config: the model's.
        max_length: truncate prompts and answers to this many tokens; else longer ones are an error.

    Raises:
        ExamplesError: a prompt or answer is longer than the model's context; not text examples.
        ScoringError: the config has no decoder start token.
    """

    kind = "encoder-decoder"

    def __init__(self, examples: Sequence[TextExample], *, tokenizer: Any, config: Any,
                 folder: str | Path | None = None, name: str = "the model", max_length: int | None = None,
                 seed: int = 0, **_: Any) -> None:
        super().__init__(examples, tokenizer=tokenizer, config=config, folder=folder, name=name,
                         max_length=max_length, seed=seed)
        self.require(TextExample, "query/pos/neg examples do not fit an encoder-decoder model.", "query",
                     'Encoder-decoder models take {"input": "<prompt>", "output": "<answer>"}.')
        self.eos_id = eos_token_id(tokenizer, config)
        start = first_id(config_value(config, "decoder_start_token_id"))
        if start is None:
            start = first_id(config_value(config, "pad_token_id"))
        if start is None:
            raise ScoringError(f"{name} declares no decoder_start_token_id; it cannot be teacher-forced.")
        self.start_id = start
        self.pad_id = fallback_pad_id(tokenizer, self.eos_id)
        self.encoded = [self._encode(ex) for ex in self.examples]

    def _encode(self, ex: TextExample) -> tuple[list[int], list[int]]:
        src = list(self.tokenizer(ex.prompt)["input_ids"]) or [self.pad_id]
        tgt = list(self.tokenizer(ex.answer, add_special_tokens=False)["input_ids"])
        if self.eos_id is not None:
            tgt.append(self.eos_id)
        limit = self.limit
        if limit is not None:
            for ids, field in ((src, "input"), (tgt, "output")):
                if len(ids) > limit and not self.truncates:
                    raise self.too_long(ex, len(ids), f"its {field}", field)
            src, tgt = src[:limit], tgt[:limit]
        return src, tgt

    def example_losses(self, model: Any, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        device = model_device(model)

        def batch_losses(batch: list[int]) -> torch.Tensor:
            rows = [self.encoded[i] for i in batch]
            src, src_mask, _ = pad_batch([r[0] for r in rows], self.pad_id)
            tgt, tgt_mask, _ = pad_batch([r[1] for r in rows], self.pad_id)
            # teacher forcing: the decoder reads [start] + the answer shifted right
            dec_mask = torch.cat([torch.ones(len(rows), 1, dtype=torch.long), tgt_mask[:, :-1]], dim=1)
            dec_in = torch.cat([torch.full((len(rows), 1), self.start_id, dtype=torch.long), tgt[:, :-1]], dim=1)
            dec_in = dec_in.masked_fill(dec_mask == 0, self.pad_id)
            logits = call_model(model, params, input_ids=src.to(device), attention_mask=src_mask.to(device),
                                decoder_input_ids=dec_in.to(device), decoder_attention_mask=dec_mask.to(device)).logits
            return masked_token_mean(logits, tgt.to(device), tgt_mask.to(device))

        return in_example_order([len(s) + len(t) for s, t in self.encoded], batch_losses, device)


__all__ = ["Seq2SeqTask"]
