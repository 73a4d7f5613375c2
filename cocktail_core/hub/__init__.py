"""Everything Cocktail does with the Hugging Face Hub; the only package that imports huggingface_hub.

* :func:`fetch_metadata` -- config, tensor names/dtypes/shapes and download size of a Hub model,
  without downloading any weight (``config.json`` + Range reads of the safetensors headers).
* :func:`download_model` -- only the files a merge needs (safetensors weights, config, tokenizer,
  sentence-transformers pooling files, model card), into the standard HF cache; served from the
  cache when ``HF_HUB_OFFLINE=1`` or when the Hub cannot be reached.
* :func:`push` -- upload a merged model folder as ONE commit (or one pull request).
* :func:`whoami_name` -- the user a token belongs to.

``huggingface_hub`` is imported inside the functions, so importing this package is cheap.  Every
Hub/network failure is turned into a :class:`~cocktail_core.errors.HubError` subclass with a
message that says what happened and a hint that says what to do; a token never appears in any
message (it is scrubbed defensively, and the original exception is not chained).

Tokens: ``token=None`` in the read functions means "whatever huggingface_hub finds" (``HF_TOKEN``
or ``hf auth login``), as for any HF tool.  :func:`push` never falls back to an ambient token: a
web app must not push with the server's own credentials on behalf of a logged-out visitor.

Modules: :mod:`~cocktail_core.hub.metadata` (:func:`fetch_metadata`, :class:`HubModelMeta`),
:mod:`~cocktail_core.hub.download` (:func:`download_model`), :mod:`~cocktail_core.hub.upload`
(:func:`push`, :func:`whoami_name`), :mod:`~cocktail_core.hub.files` (which files a merge needs),
:mod:`~cocktail_core.hub.cache` (models already in the HF cache), :mod:`~cocktail_core.hub.errors`
(exception translation, token scrubbing) and :mod:`~cocktail_core.hub._client` (shared helpers).
"""

from __future__ import annotations

# ``ProgressFn``, ``_endpoint`` (cli/push_cmd.py builds a token hint with it) and ``_translate`` (tests)
# are not public API but are reached through this package, as when it was one module.
from cocktail_core.hub._client import ProgressFn, _endpoint  # noqa: F401
from cocktail_core.hub.download import download_model
from cocktail_core.hub.errors import _translate, scrub_token  # noqa: F401
from cocktail_core.hub.files import MERGE_FILES, select_merge_files
from cocktail_core.hub.metadata import HubModelMeta, fetch_metadata
from cocktail_core.hub.upload import push, whoami_name

__all__ = [
    "HubModelMeta",
    "MERGE_FILES",
    "fetch_metadata",
    "download_model",
    "push",
    "whoami_name",
    "scrub_token",
    "select_merge_files",
]

