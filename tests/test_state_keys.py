"""cocktail_core.state_keys: checkpoint tensor names to a loaded model's state-dict keys."""

from __future__ import annotations

import transformers

from cocktail_core.state_keys import match_key


def _tiny_llama_config() -> transformers.LlamaConfig:
    return transformers.LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, num_key_value_heads=2)


def test_base_and_task_checkpoints_map_both_ways():
    config = _tiny_llama_config()
    task = transformers.LlamaForCausalLM(config)
    base = transformers.LlamaModel(config)
    prefix = task.base_model_prefix
    task_keys, base_keys = set(task.state_dict()), set(base.state_dict())
    assert prefix == "model"
    for name in task_keys:  # same class: the names are the keys
        assert match_key(name, task_keys, prefix) == name
    for name in base_keys:  # a base model's checkpoint loaded into the *ForCausalLM head: prefix added
        assert match_key(name, task_keys, prefix) == f"model.{name}"
    for name in task_keys:  # a task checkpoint loaded as the base model: prefix removed, the head has no place
        expected = name.removeprefix("model.") if name.startswith("model.") else None
        assert match_key(name, base_keys, prefix) == expected


def test_a_prefixed_name_is_stripped_before_it_is_prefixed_again():
    keys = {"layers.0.weight", "model.model.layers.0.weight"}
    assert match_key("model.layers.0.weight", keys, "model") == "layers.0.weight"


def test_no_prefix_no_match():
    assert match_key("layers.0.weight", {"model.layers.0.weight"}, "") is None
    assert match_key("other.weight", {"model.layers.0.weight"}, "model") is None
