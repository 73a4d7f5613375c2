"""Examples: JSON / JSONL / dicts, and errors that name the line, column and field."""

from __future__ import annotations

import json
import re

import pytest

from cocktail_core.errors import ExamplesError
from cocktail_core.examples import (
    RetrievalExample,
    TextExample,
    examples_to_dicts,
    format_for_kind,
    load_examples,
    parse_examples,
)


def test_jsonl_text_with_line_numbers_and_synonyms():
    text = '{"input": "2+2=", "output": "4"}\n\n{"prompt": "Capital of France?", "answer": "Paris"}\n'
    ex = parse_examples(text)
    assert ex == [TextExample("2+2=", "4", line=1, index=0), TextExample("Capital of France?", "Paris", line=3, index=1)]
    assert ex[1].where == "example 2 (line 3)"


def test_json_array_keeps_the_line_of_each_element():
    text = '[\n  {"input": "a", "output": "b"},\n\n  {"input": "c",\n   "output": "d"}\n]'
    ex = parse_examples(text)
    assert [(e.prompt, e.answer, e.line) for e in ex] == [("a", "b", 2), ("c", "d", 4)]


def test_single_object_and_list_of_dicts_and_reparse():
    assert parse_examples('{\n "input": "x",\n "output": "y"\n}') == [TextExample("x", "y", line=1)]
    ex = load_examples([{"input": "x", "output": "y"}, {"input": "", "output": "z"}])
    assert [e.line for e in ex] == [None, None] and ex[1].prompt == ""
    assert load_examples(ex, kind="decoder") == ex  # parsed examples are re-validated for a kind
    assert examples_to_dicts(ex)[0] == {"input": "x", "output": "y"}


def test_file_json_and_jsonl(tmp_path):
    p = tmp_path / "ex.jsonl"
    p.write_text('{"query": "q", "pos": "p", "neg": ["n1", "n2"]}\n', encoding="utf-8")
    assert load_examples(p) == [RetrievalExample("q", ("p",), ("n1", "n2"), line=1)]
    j = tmp_path / "ex.json"
    j.write_text(json.dumps([{"input": "a", "output": "b"}]), encoding="utf-8")
    assert load_examples(str(j), kind="encoder-decoder")[0].answer == "b"
    with pytest.raises(ExamplesError, match="does not exist"):
        load_examples(tmp_path / "missing.jsonl")


def test_malformed_jsonl_names_line_and_column():
    text = '{"input": "a", "output": "b"}\n{"input": "c", "output": "d"\n'
    with pytest.raises(ExamplesError) as err:
        parse_examples(text)
    assert (err.value.line, err.value.column) == (2, 29)
    assert "line 2, column 29" in str(err.value)


def test_malformed_json_array_names_line_and_column():
    text = '[\n {"input": "a", "output": "b"},\n {"input": "c" "output": "d"}\n]'
    with pytest.raises(ExamplesError) as err:
        parse_examples(text)
    assert (err.value.line, err.value.column) == (3, 16)


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"input": "a"}, "output", "'output' (or 'answer') is missing"),
        ({"output": "a"}, "input", "'input' (or 'prompt') is missing"),
        ({"input": "a", "output": "   "}, "output", "'output' is empty"),
        ({"input": "a", "output": 3}, "output", "must be a string, got a number"),
        ({"input": "a", "prompt": "b", "output": "c"}, "prompt", "both 'input' and 'prompt'"),
    ],
)
def test_text_field_errors_name_line_and_field(record, field, message):
    text = json.dumps({"input": "ok", "output": "ok"}) + "\n" + json.dumps(record) + "\n"
    with pytest.raises(ExamplesError, match=re.escape(message)) as err:
        parse_examples(text, kind="decoder")
    assert err.value.line == 2 and err.value.field == field


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"query": "q", "neg": ["n"]}, "pos"),
        ({"query": "q", "pos": []}, "pos"),
        ({"query": "", "pos": ["p"]}, "query"),
        ({"query": "q", "pos": ["p"], "neg": ["ok", 5]}, "neg[1]"),
        ({"query": "q", "pos": ["p"], "neg": {"a": 1}}, "neg"),
    ],
)
def test_retrieval_field_errors(record, field):
    with pytest.raises(ExamplesError) as err:
        load_examples([record], kind="encoder")
    assert err.value.field == field and "example 1" in str(err.value)


def test_format_must_fit_the_kind():
    retrieval = '{"query": "q", "pos": ["p"], "neg": ["n"]}'
    with pytest.raises(ExamplesError, match="query/pos/neg examples do not fit a decoder model") as err:
        parse_examples(retrieval, kind="decoder")
    assert err.value.field == "query" and err.value.line == 1
    with pytest.raises(ExamplesError, match="do not fit a reranker model"):
        parse_examples('{"input": "a", "output": "b"}', kind="reranker")
    assert format_for_kind("encoder") == "retrieval" and format_for_kind("encoder-decoder") == "text"
    with pytest.raises(ExamplesError):
        format_for_kind("vision")


def test_not_an_object_and_counts(monkeypatch):
    with pytest.raises(ExamplesError, match="must be a JSON object, got an array") as err:
        parse_examples('[[1, 2]]')
    assert err.value.line == 1
    with pytest.raises(ExamplesError, match="no examples"):
        parse_examples("  \n ")
    with pytest.raises(ExamplesError, match="no examples"):
        load_examples([])
    monkeypatch.setenv("COCKTAIL_MAX_EXAMPLES", "3")
    four = "\n".join(json.dumps({"input": str(i), "output": "x"}) for i in range(4))
    with pytest.raises(ExamplesError, match="4 examples given; at most 3"):
        parse_examples(four)
    assert len(parse_examples(four, max_examples=4)) == 4
