"""Examples of the target task, from which the mixing weights are computed.

Two formats, one per family of model kinds:

* decoder and encoder-decoder models: ``{"input": prompt, "output": answer}``
  (``prompt`` / ``answer`` are accepted as synonyms);
* embedding models and rerankers: ``{"query": str, "pos": [str, ...], "neg": [str, ...]}``.

Examples come as JSON (an array of objects, or one object), JSONL (one object a line), a file holding
either, or a Python list of dicts. Every problem is an :class:`~cocktail_core.errors.ExamplesError`
that names the line (and column, for malformed JSON) and the field, raised before any model is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from cocktail_core import settings
from cocktail_core.errors import ExamplesError
from cocktail_core.example_text import looks_like_path, parse_text, read_file

ExampleFormat = Literal["text", "retrieval"]

#: accepted names of the two text fields, canonical first
_PROMPT_KEYS = ("input", "prompt")
_ANSWER_KEYS = ("output", "answer")
_RETRIEVAL_KEYS = ("query", "pos", "neg")
_TEXT_HINT = 'Decoder and encoder-decoder models take {"input": "<prompt>", "output": "<answer>"}.'
_RETRIEVAL_HINT = 'Embedding models and rerankers take {"query": "...", "pos": ["..."], "neg": ["..."]}.'


@dataclass(frozen=True)
class TextExample:
    """A prompt and the answer the model should give (decoder and encoder-decoder models).

    Attributes:
        prompt: the input text (may be empty).
        answer: the expected output; never empty.
        line: where the example starts in the source text (1-based), when it came from text.
        index: position among the examples (0-based).
    """

    prompt: str
    answer: str
    line: int | None = None
    index: int = 0

    @property
    def where(self) -> str:
        """``"example 3 (line 7)"``: how errors name this example."""
        return _where(self.index, self.line)


@dataclass(frozen=True)
class RetrievalExample:
    """A query with relevant (``pos``) and irrelevant (``neg``) passages (embedding models, rerankers).

    Attributes:
        query: the query text.
        pos: at least one relevant passage.
        neg: irrelevant passages (may be empty: other examples' positives then serve as negatives).
        line: where the example starts in the source text (1-based), when it came from text.
        index: position among the examples (0-based).
    """

    query: str
    pos: tuple[str, ...]
    neg: tuple[str, ...] = field(default_factory=tuple)
    line: int | None = None
    index: int = 0

    @property
    def where(self) -> str:
        """``"example 3 (line 7)"``: how errors name this example."""
        return _where(self.index, self.line)


Example = Union[TextExample, RetrievalExample]
ExamplesLike = Union[str, Path, Sequence[Mapping[str, Any]], Sequence[Example]]


def format_for_kind(kind: str) -> ExampleFormat:
    """The example format a model kind takes: ``"text"`` or ``"retrieval"``.

    Example:
        >>> format_for_kind("reranker")
        'retrieval'
    """
    if kind in ("decoder", "encoder-decoder"):
        return "text"
    if kind in ("encoder", "reranker"):
        return "retrieval"
    raise ExamplesError(f"unknown model kind {kind!r}",
                        hint="Expected one of: decoder, encoder, reranker, encoder-decoder.")


def load_examples(
    source: ExamplesLike,
    *,
    kind: str | None = None,
    max_examples: int | None = None,
) -> list[Example]:
    """Read and validate examples from a file, JSON / JSONL text, or a list of dicts.

    Args:
        source: a path to a ``.json`` / ``.jsonl`` file (``"-"`` reads standard input), JSON or JSONL
            text, a list of dicts, or already parsed examples (re-validated).
        kind: the model kind (``decoder``, ``encoder``, ``reranker``, ``encoder-decoder``); the format
            must fit it. ``None`` infers the format from the first example.
        max_examples: most examples allowed; default ``settings.get().max_examples`` (50).

    Returns:
        The examples, all :class:`TextExample` or all :class:`RetrievalExample`.

    Raises:
        ExamplesError: malformed JSON (with line and column), a missing or empty field, a format that
            does not fit ``kind``, no examples, or more than ``max_examples``.

    Example:
        >>> load_examples('{"input": "2+2=", "output": "4"}')
        [TextExample(prompt='2+2=', answer='4', line=1, index=0)]
    """
    limit = settings.get().max_examples if max_examples is None else max_examples
    expected = format_for_kind(kind) if kind is not None else None
    records = _records(source)
    if not records:
        raise ExamplesError("no examples given.",
                            hint=f"Give 1 to {limit} examples; about 5 is the expected use. {_TEXT_HINT}")
    if len(records) > limit:
        raise ExamplesError(f"{len(records)} examples given; at most {limit} are allowed.",
                            hint="Keep the most representative ones; about 5 is the expected use "
                                 "(the limit is COCKTAIL_MAX_EXAMPLES).")
    fmt = expected or _guess_format(records[0][1])
    out: list[Example] = []
    for index, (line, item) in enumerate(records):
        out.append(_validate(item, fmt, kind, line, index))
    return out


def parse_examples(text: str, *, kind: str | None = None, max_examples: int | None = None) -> list[Example]:
    """Parse JSON or JSONL ``text`` into validated examples (see :func:`load_examples`).

    Raises:
        ExamplesError: as :func:`load_examples`.
    """
    return load_examples(_Text(text), kind=kind, max_examples=max_examples)


def examples_to_dicts(examples: Iterable[Example]) -> list[dict[str, Any]]:
    """The examples as plain dicts in the canonical format (for saving as JSONL)."""
    return [_as_dict(ex) for ex in examples]


def _as_dict(ex: Example) -> dict[str, Any]:
    if isinstance(ex, TextExample):
        return {"input": ex.prompt, "output": ex.answer}
    return {"query": ex.query, "pos": list(ex.pos), "neg": list(ex.neg)}


# -- reading ----------------------------------------------------------------------------------------


class _Text(str):
    """Marks a string as example text, never a file path."""


def _records(source: Any) -> list[tuple[int | None, Any]]:
    """(line, raw object) pairs from any accepted source."""
    if isinstance(source, (TextExample, RetrievalExample, Mapping)):
        source = [source]
    if isinstance(source, Path) or (isinstance(source, str) and not isinstance(source, _Text)
                                    and looks_like_path(source)):
        return parse_text(read_file(Path(source) if str(source) != "-" else None))
    if isinstance(source, str):
        return parse_text(str(source))
    if isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        out: list[tuple[int | None, Any]] = []
        for item in source:
            if isinstance(item, (TextExample, RetrievalExample)):
                out.append((item.line, _as_dict(item)))
            else:
                out.append((None, item))
        return out
    raise ExamplesError(f"examples must be a file, JSON / JSONL text or a list of dicts, not {type(source).__name__}.")


# -- validation -------------------------------------------------------------------------------------


def _guess_format(item: Any) -> ExampleFormat:
    """``retrieval`` for an object with query/pos/neg keys and no input/output ones, else ``text``."""
    if isinstance(item, Mapping):
        keys = set(item)
        if keys & set(_RETRIEVAL_KEYS) and not keys & set(_PROMPT_KEYS + _ANSWER_KEYS):
            return "retrieval"
    return "text"


def _validate(item: Any, fmt: ExampleFormat, kind: str | None, line: int | None, index: int) -> Example:
    where = {"line": line} if line is not None else {}
    label = "" if line is not None else f"example {index + 1}: "
    if not isinstance(item, Mapping):
        raise ExamplesError(f"{label}each example must be a JSON object, got {_json_type(item)}.",
                            hint=_TEXT_HINT if fmt == "text" else _RETRIEVAL_HINT, **where)
    keys = set(item)
    if fmt == "text":
        if _guess_format(item) == "retrieval":
            for_kind = f"a {kind} model" if kind else "this model kind"
            raise ExamplesError(f"{label}query/pos/neg examples do not fit {for_kind}.",
                                field=_first(keys, _RETRIEVAL_KEYS), hint=_TEXT_HINT, **where)
        prompt = _text_field(item, _PROMPT_KEYS, label, where, allow_empty=True)
        answer = _text_field(item, _ANSWER_KEYS, label, where, allow_empty=False)
        return TextExample(prompt=prompt, answer=answer, line=line, index=index)
    if keys & set(_PROMPT_KEYS + _ANSWER_KEYS) and not keys & set(_RETRIEVAL_KEYS):
        for_kind = f"a {kind} model" if kind else "this model kind"
        raise ExamplesError(f"{label}input/output examples do not fit {for_kind}.",
                            field=_first(keys, _PROMPT_KEYS + _ANSWER_KEYS), hint=_RETRIEVAL_HINT, **where)
    query = _text_field(item, ("query",), label, where, allow_empty=False)
    pos = _passages(item, "pos", label, where, required=True)
    neg = _passages(item, "neg", label, where, required=False)
    return RetrievalExample(query=query, pos=pos, neg=neg, line=line, index=index)


def _text_field(item: Mapping[str, Any], names: tuple[str, ...], label: str, where: dict[str, Any],
                *, allow_empty: bool) -> str:
    present = [n for n in names if n in item]
    if len(present) > 1:
        raise ExamplesError(f"{label}both '{present[0]}' and '{present[1]}' are given; they mean the same.",
                            field=present[1], hint=f"Keep only '{names[0]}'.", **where)
    if not present:
        synonyms = f" (or '{names[1]}')" if len(names) > 1 else ""
        found = ", ".join(f"'{k}'" for k in item) or "none"
        raise ExamplesError(f"{label}the required field '{names[0]}'{synonyms} is missing (found: {found}).",
                            field=names[0], hint=_TEXT_HINT if names[0] != "query" else _RETRIEVAL_HINT, **where)
    name = present[0]
    value = item[name]
    if not isinstance(value, str):
        raise ExamplesError(f"{label}'{name}' must be a string, got {_json_type(value)}.", field=name, **where)
    if not allow_empty and not value.strip():
        raise ExamplesError(f"{label}'{name}' is empty.", field=name,
                            hint="Every example needs a non-empty " + ("answer." if name in _ANSWER_KEYS else "query."),
                            **where)
    return value


def _passages(item: Mapping[str, Any], name: str, label: str, where: dict[str, Any],
              *, required: bool) -> tuple[str, ...]:
    if name not in item:
        if required:
            found = ", ".join(f"'{k}'" for k in item) or "none"
            raise ExamplesError(f"{label}the required field '{name}' is missing (found: {found}).",
                                field=name, hint=_RETRIEVAL_HINT, **where)
        return ()
    value = item[name]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ExamplesError(f"{label}'{name}' must be a list of strings, got {_json_type(value)}.",
                            field=name, hint=_RETRIEVAL_HINT, **where)
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise ExamplesError(f"{label}'{name}[{i}]' must be a string, got {_json_type(text)}.",
                                field=f"{name}[{i}]", **where)
        if not text.strip():
            raise ExamplesError(f"{label}'{name}[{i}]' is empty.", field=f"{name}[{i}]", **where)
    if required and not value:
        raise ExamplesError(f"{label}'{name}' is empty; give at least one relevant passage.",
                            field=name, hint=_RETRIEVAL_HINT, **where)
    return tuple(value)


def _first(keys: set[str], names: tuple[str, ...]) -> str:
    return next(n for n in names if n in keys)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _where(index: int, line: int | None) -> str:
    return f"example {index + 1}" + (f" (line {line})" if line is not None else "")


__all__ = ["TextExample", "RetrievalExample", "Example", "ExamplesLike", "load_examples", "parse_examples",
           "format_for_kind", "examples_to_dicts"]
