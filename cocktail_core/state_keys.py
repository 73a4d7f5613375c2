"""Matching checkpoint tensor names to a loaded model's ``state_dict()`` keys.

A safetensors checkpoint and the model class it is loaded into may disagree about the base-model
prefix (``base_model_prefix``, e.g. ``model`` for Llama, ``bert`` for BERT): a task model
(``*ForCausalLM``, ``*ForSequenceClassification``) keeps the base model under that attribute, a bare
base model does not. So a checkpoint saved from one can name ``model.layers.0...`` where the loaded
model has ``layers.0...``, or the other way round.
"""

from __future__ import annotations

from typing import Any, Iterable


def match_key(name: str, keys: set[str] | frozenset[str], prefix: str) -> str | None:
    """The model's state-dict key for checkpoint tensor ``name``, or None when it has no place.

    ``name`` itself when the model has it; else, with the base-model ``prefix``, ``name`` without
    the prefix (a task checkpoint loaded as a base model), else with it added (a base checkpoint
    loaded into a task model). Stripping comes first, as in transformers' own loading: a name that
    already carries the prefix is a prefixed name, and is not prefixed a second time when a key
    ``prefix.prefix.…`` happens to exist too.
    """
    if name in keys:
        return name
    if prefix:
        if name.startswith(prefix + ".") and name[len(prefix) + 1:] in keys:
            return name[len(prefix) + 1:]
        if f"{prefix}.{name}" in keys:
            return f"{prefix}.{name}"
    return None


def model_key_map(names: Iterable[str], model: Any) -> tuple[dict[str, str], list[str]]:
    """Where each checkpoint tensor of ``names`` goes in ``model``'s ``state_dict()`` (see :func:`match_key`).

    Returns:
        ``({checkpoint name: state-dict key}, [names that have no place in the model])``.
    """
    keys = set(model.state_dict().keys())
    prefix = getattr(model, "base_model_prefix", "") or ""
    mapped: dict[str, str] = {}
    unmapped: list[str] = []
    for name in names:
        target = match_key(name, keys, prefix)
        if target is None:
            unmapped.append(name)
        else:
            mapped[name] = target
    return mapped, unmapped


__all__ = ["match_key", "model_key_map"]
