"""The merge recipe: one data model shared by the CLI, the UI, the model card and the tests.

A recipe file (YAML or JSON) reproduces the same weights bit for bit anywhere:

.. code-block:: yaml

    method: linear
    models:
      - model: org/base@main
        weight: 0.5
      - model: ./my-finetune
        weight: 0.5
    base: org/base@main
    dtype: bfloat16
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cocktail_core.errors import RecipeError
from cocktail_core.units import parse_size

DType = Literal["auto", "bfloat16", "float16", "float32"]
ModelKind = Literal["decoder", "encoder", "reranker", "encoder-decoder"]
DTYPES: tuple[str, ...] = ("auto", "bfloat16", "float16", "float32")
KINDS: tuple[str, ...] = ("decoder", "encoder", "reranker", "encoder-decoder")

# Hub repo ids: optional namespace, then a name of letters, digits, '-', '_', '.'.
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class ModelRef(BaseModel):
    """A model: a local folder or a Hub repo id with an optional revision (``org/name@rev``).

    Example:
        >>> ModelRef.parse("Qwen/Qwen2-0.5B@main")
        ModelRef(path='Qwen/Qwen2-0.5B', revision='main')
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    revision: str | None = None

    @classmethod
    def parse(cls, text: str | "ModelRef") -> "ModelRef":
        """Parse ``org/name``, ``org/name@revision`` or a local folder path."""
        if isinstance(text, ModelRef):
            return text
        text = str(text).strip()
        if not text:
            raise RecipeError("A model reference is empty.", hint="Give a Hub id like org/name or a local folder.")
        # A local folder may legitimately contain '@'; only split when the whole string is not a folder.
        if "@" in text and not Path(text).expanduser().exists():
            path, _, rev = text.rpartition("@")
            if not path or not rev:
                raise RecipeError(f"Invalid model reference {text!r}.", hint="Use org/name@revision.")
            return cls(path=path, revision=rev)
        return cls(path=text)

    @property
    def is_local(self) -> bool:
        """True when the reference names a folder on disk (or looks like a filesystem path)."""
        p = Path(self.path).expanduser()
        return p.exists() or self.path.startswith(("/", "./", "../", "~")) or not _HUB_ID.match(self.path)

    @property
    def display_name(self) -> str:
        """Short name for tables: the repo id, or the folder name for local models."""
        return Path(self.path).name if self.is_local else self.path

    def __str__(self) -> str:
        return f"{self.path}@{self.revision}" if self.revision else self.path

    def __repr__(self) -> str:
        return f"ModelRef(path={self.path!r}, revision={self.revision!r})"


class ModelEntry(BaseModel):
    """One ingredient of the cocktail: a model and its weight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelRef
    weight: float = 1.0

    @field_validator("model", mode="before")
    @classmethod
    def _parse_model(cls, v: Any) -> Any:
        return ModelRef.parse(v) if isinstance(v, str) else v


class WeightsProvenance(BaseModel):
    """How the weights were computed from examples (recorded in the recipe and the card)."""

    model_config = ConfigDict(extra="forbid")

    n_examples: int
    temperature: float
    losses: list[float]
    seed: int = 0
    optimized: bool = False
    merged_loss_softmax: float | None = None
    merged_loss_optimized: float | None = None
    top_k: int | None = None
    alpha: float | None = None
    alpha_model: str | None = None
    #: ``"free"`` when the optimizer searched unconstrained weights (may be negative; not normalized)
    constraint: str | None = None


class Recipe(BaseModel):
    """A merge recipe.

    Args:
        models: the ingredients, each a :class:`ModelEntry` (``{"model": "org/name@rev", "weight": 0.5}``).
        method: merge method name (see :func:`cocktail_core.methods.available`).
        params: the method's parameters (e.g. ``{"normalize": true}``); unknown names are rejected.
        base: the base model, one of ``models`` (methods built on task vectors need it).
        dtype: output dtype; ``auto`` keeps the inputs' dtype.
        shard_size: largest output shard, e.g. ``"2GB"``.
        kind: model kind; detected from the config when omitted.
        tokenizer_source: model whose tokenizer, chat template and generation config are copied;
            defaults to the base, else the first model.
        seed: seed for methods with randomness (DARE); makes them reproducible.
        weights_from: set when the weights were computed from examples.

    Example:
        >>> r = Recipe.from_lists(["org/a", "org/b"], [0.7, 0.3], dtype="bfloat16")
        >>> Recipe.from_yaml(r.to_yaml()) == r
        True
    """

    model_config = ConfigDict(extra="forbid")

    models: list[ModelEntry] = Field(min_length=0)
    method: str = "linear"
    params: dict[str, Any] = Field(default_factory=dict)
    base: ModelRef | None = None
    dtype: DType = "auto"
    shard_size: str = "2GB"
    kind: ModelKind | None = None
    tokenizer_source: ModelRef | None = None
    seed: int = 0
    weights_from: WeightsProvenance | None = None

    @field_validator("base", "tokenizer_source", mode="before")
    @classmethod
    def _parse_ref(cls, v: Any) -> Any:
        return ModelRef.parse(v) if isinstance(v, str) else v

    @field_validator("shard_size")
    @classmethod
    def _check_size(cls, v: str) -> str:
        if parse_size(v) < 1024:
            raise ValueError(f"shard_size {v!r} is too small; use at least 1KB (e.g. 2GB)")
        return v

    @model_validator(mode="after")
    def _check(self) -> "Recipe":
        from cocktail_core import methods

        if len(self.models) < 2:
            names = ", ".join(str(m.model) for m in self.models) or "none"
            raise ValueError(f"a merge needs at least two models; got {len(self.models)} ({names})")
        seen: set[str] = set()
        for m in self.models:
            if str(m.model) in seen:
                raise ValueError(f"model {m.model} is listed twice; give each model once with its total weight")
            seen.add(str(m.model))
            if not math.isfinite(m.weight):
                raise ValueError(f"the weight of {m.model} is {m.weight}; weights must be finite numbers")
        method = methods.get(self.method)
        self.params = method.validate_params(self.params)
        refs = {str(m.model) for m in self.models}
        paths = {m.model.path: str(m.model) for m in self.models}
        for field in ("base", "tokenizer_source"):
            ref = getattr(self, field)
            if ref is None:
                continue
            if str(ref) not in refs:
                # "--base org/a" should match "org/a@rev" in the list.
                if ref.revision is None and ref.path in paths:
                    setattr(self, field, ModelRef.parse(paths[ref.path]))
                else:
                    raise ValueError(f"{field} {ref} is not one of the models ({', '.join(sorted(refs))})")
        if method.needs_base and self.base is None:
            raise ValueError(f"method {self.method!r} needs a base model; set 'base' to one of the models")
        return self

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_lists(cls, models: list[str], weights: list[float] | None = None, **kwargs: Any) -> "Recipe":
        """Build a recipe from parallel lists of model references and weights.

        Raises:
            RecipeError: when the lists differ in length or any field is invalid.
        """
        if weights is None:
            weights = [1.0 / max(len(models), 1)] * len(models)
        if len(weights) != len(models):
            raise RecipeError(
                f"Got {len(models)} model(s) but {len(weights)} weight(s).",
                hint="Give exactly one weight per model, in the same order.",
            )
        return cls.validated({"models": [{"model": m, "weight": w} for m, w in zip(models, weights)], **kwargs})

    @classmethod
    def validated(cls, data: Any, *, source: str = "recipe") -> "Recipe":
        """Validate a plain dict into a recipe, turning pydantic errors into one clear RecipeError."""
        if not isinstance(data, dict):
            raise RecipeError(f"The {source} must be a mapping of keys to values, got {type(data).__name__}.")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise RecipeError(_explain(exc, source)) from None
        except RecipeError:
            raise

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "recipe") -> "Recipe":
        """Parse a YAML (or JSON, which is YAML) recipe text."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RecipeError(f"The {source} is not valid YAML: {exc}") from None
        return cls.validated(data, source=source)

    @classmethod
    def from_file(cls, path: str | Path) -> "Recipe":
        """Read a recipe from a ``.yaml``/``.yml``/``.json`` file."""
        p = Path(path)
        if not p.is_file():
            raise RecipeError(f"Recipe file {p} does not exist.")
        return cls.from_yaml(p.read_text(encoding="utf-8"), source=f"recipe {p.name}")

    # -- serialization ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with model references written as ``org/name@rev`` strings."""
        data: dict[str, Any] = {
            "method": self.method,
            "models": [{"model": str(m.model), "weight": m.weight} for m in self.models],
        }
        if self.params:
            data["params"] = dict(self.params)
        if self.base is not None:
            data["base"] = str(self.base)
        data["dtype"] = self.dtype
        data["shard_size"] = self.shard_size
        if self.kind is not None:
            data["kind"] = self.kind
        if self.tokenizer_source is not None:
            data["tokenizer_source"] = str(self.tokenizer_source)
        if self.seed:
            data["seed"] = self.seed
        if self.weights_from is not None:
            data["weights_from"] = self.weights_from.model_dump(exclude_none=True)
        return data

    def to_yaml(self) -> str:
        """Serialize to YAML (the recipe file format)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def to_json(self) -> str:
        """Serialize to JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> Path:
        """Write the recipe to ``path``; JSON when it ends in ``.json``, else YAML."""
        p = Path(path)
        p.write_text(self.to_json() if p.suffix == ".json" else self.to_yaml(), encoding="utf-8")
        return p

    # -- helpers ------------------------------------------------------------------------------

    @property
    def refs(self) -> list[ModelRef]:
        """The model references, in order."""
        return [m.model for m in self.models]

    @property
    def weights(self) -> list[float]:
        """The weights, in model order."""
        return [m.weight for m in self.models]

    def with_weights(self, weights: list[float], **updates: Any) -> "Recipe":
        """A copy of this recipe with new weights (same model order) and other field updates."""
        if len(weights) != len(self.models):
            raise RecipeError(f"Got {len(weights)} weight(s) for {len(self.models)} model(s).")
        data = self.to_dict()
        for entry, w in zip(data["models"], weights):
            entry["weight"] = float(w)
        for key, value in updates.items():
            data[key] = value.model_dump(exclude_none=True) if isinstance(value, BaseModel) else value
        return Recipe.validated(data)

    def tokenizer_donor(self) -> ModelRef:
        """The model whose tokenizer files are copied: explicit, else the base, else the first."""
        return self.tokenizer_source or self.base or self.models[0].model


def _explain(exc: ValidationError, source: str) -> str:
    """Turn pydantic's error list into sentences that say what was expected."""
    allowed = {
        (): sorted(Recipe.model_fields),
        ("models",): sorted(ModelEntry.model_fields),
        ("weights_from",): sorted(WeightsProvenance.model_fields),
    }
    parts = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(x) for x in loc) or source
        if err["type"] == "extra_forbidden":
            parent = tuple(x for x in loc[:-1] if not isinstance(x, int))
            expected = allowed.get(parent)
            msg = f"unknown key '{loc[-1]}'"
            if expected:
                close = _closest(str(loc[-1]), expected)
                msg += f" (did you mean '{close}'?)" if close else ""
                msg += f"; expected one of: {', '.join(expected)}"
            parts.append(f"{where}: {msg}")
        elif err["type"] == "literal_error":
            parts.append(f"{where}: {err['msg'].replace('Input should be', 'expected')}, got {err.get('input')!r}")
        elif err["type"] == "missing":
            parts.append(f"{where}: required field is missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {msg}" if loc else msg)
    return f"Invalid {source}: " + "; ".join(p.rstrip(".") for p in parts) + "."


def _closest(word: str, choices: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None
