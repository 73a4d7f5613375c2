"""Recipe data model: parsing, validation errors, YAML/JSON round trip."""

import json

import pytest

from cocktail_core.errors import RecipeError
from cocktail_core.recipe import ModelRef, Recipe, parse_size


def test_model_ref_parses_hub_id_with_revision():
    ref = ModelRef.parse("org/name@v1.0")
    assert (ref.path, ref.revision, str(ref)) == ("org/name", "v1.0", "org/name@v1.0")
    assert not ref.is_local


def test_model_ref_local_folder_with_at_sign_is_kept_whole(tmp_path):
    folder = tmp_path / "model@2"
    folder.mkdir()
    ref = ModelRef.parse(str(folder))
    assert ref.revision is None and ref.is_local


def test_round_trip_yaml_and_json_is_identical():
    r = Recipe.from_lists(["org/a@main", "./b"], [0.7, 0.3], dtype="bfloat16", base="org/a", shard_size="500MB")
    assert r.base == ModelRef(path="org/a", revision="main")  # --base org/a matched org/a@main
    assert Recipe.from_yaml(r.to_yaml()) == r
    assert Recipe.from_yaml(r.to_json()) == r
    assert json.loads(r.to_json())["models"][1] == {"model": "./b", "weight": 0.3}


def test_misspelt_key_says_what_was_expected():
    with pytest.raises(RecipeError) as e:
        Recipe.from_yaml("models:\n - {model: a/b, weight: 1}\n - {model: c/d, weight: 1}\nmethdo: linear\n")
    msg = str(e.value)
    assert "methdo" in msg and "did you mean 'method'" in msg and "expected one of" in msg


def test_misspelt_key_inside_a_model_entry():
    with pytest.raises(RecipeError, match="unknown key 'wieght'.*weight"):
        Recipe.from_yaml("models:\n - {model: a/b, wieght: 1}\n - {model: c/d, weight: 1}\n")


def test_unknown_method_lists_valid_ones():
    with pytest.raises(RecipeError) as e:
        Recipe.from_lists(["a/b", "c/d"], [1, 1], method="lineer")
    assert "lineer" in str(e.value) and "linear" in str(e.value) and "ties" in str(e.value)


def test_fewer_than_two_models():
    with pytest.raises(RecipeError, match="at least two models; got 1"):
        Recipe.from_lists(["a/b"], [1.0])


def test_weight_list_of_wrong_length():
    with pytest.raises(RecipeError, match="3 model.*2 weight"):
        Recipe.from_lists(["a/b", "c/d", "e/f"], [0.5, 0.5])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weight(bad):
    with pytest.raises(RecipeError, match="finite"):
        Recipe.from_lists(["a/b", "c/d"], [bad, 1.0])


def test_bad_dtype_and_base_not_in_models():
    with pytest.raises(RecipeError, match="dtype.*bfloat16"):
        Recipe.from_lists(["a/b", "c/d"], [1, 1], dtype="bf16")
    with pytest.raises(RecipeError, match="base x/y is not one of the models"):
        Recipe.from_lists(["a/b", "c/d"], [1, 1], base="x/y")


def test_method_params_validated_and_defaulted():
    r = Recipe.from_lists(["a/b", "c/d"], [1, 1], method="ties", base="a/b", params={"density": "0.5"})
    assert r.params == {"density": 0.5, "lambda": 1.0, "normalize": True}
    with pytest.raises(RecipeError, match="no parameter.*'dens'.*density"):
        Recipe.from_lists(["a/b", "c/d"], [1, 1], method="ties", base="a/b", params={"dens": 0.5})
    with pytest.raises(RecipeError, match="needs a base model"):
        Recipe.from_lists(["a/b", "c/d"], [1, 1], method="ties")


def test_duplicate_model_rejected():
    with pytest.raises(RecipeError, match="listed twice"):
        Recipe.from_lists(["a/b", "a/b"], [1, 1])


def test_parse_size():
    assert parse_size("2GB") == 2 * 10**9
    assert parse_size("1GiB") == 2**30
    with pytest.raises(RecipeError):
        parse_size("two gigs")
