"""The model card (``README.md``) of a merged model: Hub metadata plus the recipe that made it.

The card written next to a local merge has a generic title and a ``path/to/this/model`` loading
snippet; :func:`retarget_card` turns it into the card for a Hub repo (title and snippet naming the
repo) -- exactly what :func:`render_card` with ``repo_id`` gives -- so a pushed folder's card can be
fixed without re-inspecting the inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # imported lazily: `push` retargets cards without loading torch
    from cocktail_core.io.sources import ModelSource
    from cocktail_core.recipe import Recipe

#: title and snippet placeholder of a card rendered without ``repo_id``
LOCAL_TITLE = "Cocktail merge"
LOCAL_PLACEHOLDER = "path/to/this/model"

PIPELINE_TAGS = {
    "decoder": "text-generation",
    "encoder": "feature-extraction",
    "reranker": "text-classification",
    "encoder-decoder": "text2text-generation",
}


def card_metadata(recipe: Recipe, sources: list[ModelSource], kind: str | None) -> dict[str, Any]:
    """The YAML front matter: Hub inputs as ``base_model`` (never local paths), relation, tags, license.

    ``base_model`` holds plain repo ids (each once, in recipe order), as the Hub's model tree
    expects; the exact commits used are in the card's ingredients table and the pinned recipe.

    Example:
        >>> card_metadata(recipe, sources, "decoder")["base_model_relation"]
        'merge'
    """
    hub_ids = list(dict.fromkeys(s.ref.path for s in sources if not s.is_local))
    sentence_transformers = kind == "encoder" and any(s.folder and (s.folder / "modules.json").is_file() for s in sources)
    meta: dict[str, Any] = {}
    if hub_ids:
        meta["base_model"] = hub_ids
        meta["base_model_relation"] = "merge"
    meta["library_name"] = "sentence-transformers" if sentence_transformers else "transformers"
    meta["tags"] = ["merge", "cocktail", recipe.method]
    licenses = {s.license for s in sources}
    if len(licenses) == 1 and None not in licenses:
        meta["license"] = licenses.pop()
    if kind in PIPELINE_TAGS:
        meta["pipeline_tag"] = "sentence-similarity" if sentence_transformers else PIPELINE_TAGS[kind]
    return meta


def render_card(recipe: Recipe, sources: list[ModelSource], kind: str | None, *, repo_id: str | None = None) -> str:
    """The whole ``README.md``: front matter, what was merged and how, the recipe, a loading snippet."""
    from cocktail_core import methods

    method = methods.get(recipe.method)
    meta = card_metadata(recipe, sources, kind)
    total = sum(recipe.weights) or 1.0
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", ""]
    title = repo_id.split("/")[-1] if repo_id else LOCAL_TITLE
    lines += [f"# {title}", "",
              f"This model is a merge of {len(recipe.models)} models made with "
              f"Cocktail using **{method.pretty_name}** ([reference]({method.reference_url})): "
              f"{method.description}", ""]
    lines += ["## Ingredients", "", "| model | revision | weight | share |", "|---|---|---|---|"]
    # a linear merge without normalization is sum(w_i * theta_i): the weights are the coefficients, not shares
    shares = method.uses_weights and not (method.name == "linear" and recipe.params.get("normalize") is False)
    for entry, src in zip(recipe.models, sources):
        if src.is_local:
            label, revision = f"`{entry.model.display_name}` (local)", "-"
        else:
            label = f"[{src.ref.path}](https://huggingface.co/{src.ref.path})"
            revision = f"`{src.sha or entry.model.revision or 'main'}`"
        share = entry.weight / total if shares else float("nan")
        share_text = f"{share:.1%}" if shares else "-"
        lines.append(f"| {label} | {revision} | {entry.weight:g} | {share_text} |")
    lines.append("")
    if recipe.base is not None:
        lines += [f"Base model: `{recipe.base}`.", ""]
    prov = recipe.weights_from
    if prov is not None:
        lines += ["## Weights from examples", "",
                  f"The weights were computed from **{prov.n_examples} example(s)** of the target task, "
                  f"LM-Cocktail style: softmax(-loss / {prov.temperature:g}) over each model's loss on the examples"
                  + (", then optimized on the merged model's own loss" if prov.optimized else "") + ".", ""]
        if prov.constraint == "free":
            lines += ["The optimizer searched free weights: weights unconstrained (may be negative; not normalized); "
                      "the merge is exactly sum(w_i * theta_i).", ""]
        lines += ["| model | loss on the examples | weight |", "|---|---|---|"]
        for entry, loss in zip(recipe.models, prov.losses):
            lines.append(f"| `{entry.model.display_name}` | {loss:.4f} | {entry.weight:.4f} |")
        lines.append("")
        if prov.merged_loss_softmax is not None:
            lines.append(f"Loss of the softmax-weighted merge on the examples: {prov.merged_loss_softmax:.4f}.")
        if prov.merged_loss_optimized is not None:
            lines.append(f"Loss of the optimized merge on the examples: {prov.merged_loss_optimized:.4f}.")
        lines.append("")
    lines += ["## Recipe", "", "Reproduce this model with `python -m cocktail_core merge --recipe cocktail_recipe.yaml --out DIR`:",
              "", "```yaml", recipe.to_yaml().strip(), "```", ""]
    lines += ["## Use it", "", "```python", *_snippet(kind, repo_id or LOCAL_PLACEHOLDER), "```", ""]
    return "\n".join(lines)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """A model card's YAML front matter (between ``---`` lines) as a dict, and the text after it.

    A card without front matter gives ``({}, text)``; front matter that is not a YAML mapping reads as ``{}``.

    Example:
        >>> split_front_matter("---\nlicense: mit\n---\n\n# Title\n")
        ({'license': 'mit'}, '# Title\n')
    """
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end >= 0:
            try:
                data = yaml.safe_load(text[3:end]) or {}
            except yaml.YAMLError:
                data = {}
            return (data if isinstance(data, dict) else {}), text[end + 4:].lstrip("\n")
    return {}, text


def is_cocktail_card(text: str) -> bool:
    """True when ``text`` is a model card written by Cocktail (front matter tagged ``cocktail``)."""
    tags = split_front_matter(text)[0].get("tags")
    return isinstance(tags, list) and "cocktail" in tags


def retarget_card(text: str, repo_id: str) -> str:
    """The card of a local merge, made the card of Hub repo ``repo_id``: title and loading snippet name it.

    Equal to ``render_card(..., repo_id=repo_id)`` for a card ``render_card`` wrote without one.
    Cards not written by Cocktail, or already naming a repo, are returned unchanged.

    Example:
        >>> "# cocktail" in retarget_card(render_card(recipe, sources, "decoder"), "alice/cocktail")
        True
    """
    if not is_cocktail_card(text):
        return text
    title = f"\n# {LOCAL_TITLE}\n"
    if title not in text:
        return text
    text = text.replace(title, f"\n# {repo_id.split('/')[-1]}\n", 1)
    return text.replace(f'.from_pretrained("{LOCAL_PLACEHOLDER}"', f'.from_pretrained("{repo_id}"')


def with_license(text: str, license: str) -> str:
    """``text`` (a model card, possibly empty) with ``license`` set in its front matter.

    Example:
        >>> with_license("---\nlicense: apache-2.0\n---\n\n# T\n", "mit").splitlines()[1]
        'license: mit'
    """
    meta, body = split_front_matter(text)
    meta["license"] = license
    return "---\n" + yaml.safe_dump(meta, sort_keys=False).strip() + "\n---\n\n" + body


def _snippet(kind: str | None, repo: str) -> list[str]:
    if kind == "encoder":
        return ["from transformers import AutoModel, AutoTokenizer", "",
                f'tokenizer = AutoTokenizer.from_pretrained("{repo}")',
                f'model = AutoModel.from_pretrained("{repo}")']
    if kind == "reranker":
        return ["from transformers import AutoModelForSequenceClassification, AutoTokenizer", "",
                f'tokenizer = AutoTokenizer.from_pretrained("{repo}")',
                f'model = AutoModelForSequenceClassification.from_pretrained("{repo}")']
    if kind == "encoder-decoder":
        return ["from transformers import AutoModelForSeq2SeqLM, AutoTokenizer", "",
                f'tokenizer = AutoTokenizer.from_pretrained("{repo}")',
                f'model = AutoModelForSeq2SeqLM.from_pretrained("{repo}")']
    return ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
            f'tokenizer = AutoTokenizer.from_pretrained("{repo}")',
            f'model = AutoModelForCausalLM.from_pretrained("{repo}", dtype="auto")']
