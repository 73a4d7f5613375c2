"""The examples table and pasted examples: the form's examples as records for the core."""

from __future__ import annotations

import math
from typing import Any

from cocktail_core.errors import ExamplesError

TEXT_HEADERS = ["prompt", "answer"]
RETRIEVAL_HEADERS = ["query", "positive", "negative"]
EXAMPLE_ROWS = 5


def kind_format(kind: str | None) -> str:
    """``"text"`` (prompt/answer) or ``"retrieval"`` (query/positive/negative)."""
    return "retrieval" if kind in ("encoder", "reranker") else "text"


def example_headers(kind: str | None) -> list[str]:
    return RETRIEVAL_HEADERS if kind_format(kind) == "retrieval" else TEXT_HEADERS


def empty_table(kind: str | None) -> list[list[str]]:
    return [["" for _ in example_headers(kind)] for _ in range(EXAMPLE_ROWS)]


def _table_rows(table: Any) -> list[list[str]]:
    if table is None:
        return []
    if hasattr(table, "values") and hasattr(table, "columns"):  # pandas DataFrame
        table = table.values.tolist()
    rows = []
    for row in table:
        rows.append(["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip() for v in row])
    return rows


def examples_from_form(kind: str | None, table: Any, paste: str | None) -> list[dict[str, Any]] | str:
    """The examples the form holds: the table's filled rows plus the pasted JSON/JSONL.

    Returns a list of example dicts (the table, plus pasted records), or the pasted text alone.

    Raises:
        ExamplesError: a half-filled table row, or no examples at all.
    """
    from cocktail_core.examples import parse_examples

    fmt = kind_format(kind)
    records: list[dict[str, Any]] = []
    for i, row in enumerate(_table_rows(table), start=1):
        cells = (row + ["", "", ""])[:3]
        if not any(cells):
            continue
        if fmt == "text":
            prompt, answer = cells[0], cells[1]
            if not answer:
                raise ExamplesError("the answer is empty.", line=None, field="answer",
                                    hint=f"Examples table, row {i}: give the answer the model should give.")
            records.append({"input": prompt, "output": answer})
        else:
            query, pos, neg = cells
            if not query or not pos:
                missing = "query" if not query else "positive"
                raise ExamplesError(f"the {missing} is empty.", field=missing,
                                    hint=f"Examples table, row {i}: a query needs at least one positive passage.")
            records.append({"query": query, "pos": [pos], "neg": [neg] if neg else []})
    paste = (paste or "").strip()
    if paste:
        from cocktail_core.examples import examples_to_dicts

        records += examples_to_dicts(parse_examples(paste, kind=kind, max_examples=10**6))
    if not records:
        raise ExamplesError("there are no examples.",
                            hint="Fill rows of the examples table or paste JSON/JSONL examples.")
    return records
