"""Plain functions behind the web app: UI values in, core calls, displayable values out.

Nothing here builds components and nothing computes merge math: the functions convert what the
page holds (model rows, dropdown values, table rows) into a :class:`~cocktail_core.Recipe` and call
the core (:mod:`cocktail_core.compat`, :mod:`cocktail_core.engine`, :mod:`cocktail_core.weights`,
:mod:`cocktail_core.playground`, :mod:`cocktail_core.hub`). They raise
:class:`~cocktail_core.errors.CocktailError` for anything a user can cause; the event layer turns
that into ``gr.Error(format_error(exc))``. Tests call them directly, without a browser.

One module per part of the page, all re-exported here (``handlers.build_recipe``...):

* :mod:`.rows`: the model rows (shape documented there), shares, chart, base dropdown.
* :mod:`.recipe_form`: form values to a recipe and back (recipe upload).
* :mod:`.sources`: the local-folder guard and the session's model-metadata cache.
* :mod:`.preflight`: each row's inline check and the summary.
* :mod:`.examples` / :mod:`.weights`: the examples table, and weights computed from examples.
* :mod:`.merge`, :mod:`.try_it`, :mod:`.push`: the merge, try-it and push panels.
* :mod:`.tokens` (which Hub token acts, errors without tokens), :mod:`.progress` (core progress to the bar).
"""

from __future__ import annotations

from ui_components.handlers.examples import (EXAMPLE_ROWS, RETRIEVAL_HEADERS, TEXT_HEADERS, empty_table,
                                             example_headers, examples_from_form, kind_format)
from ui_components.handlers.merge import merge_form, merge_summary, recipe_download
from ui_components.handlers.preflight import PreflightView, preflight_form, require_mergeable
from ui_components.handlers.progress import Progress
from ui_components.handlers.push import LICENSES, default_repo_name, push_form
from ui_components.handlers.recipe_form import (FormValues, build_recipe, collect_params, form_from_recipe,
                                                read_recipe_file)
from ui_components.handlers.rows import (NO_BASE, add_row, base_choices, chart_frame, decorate, filled, initial_rows,
                                         new_row, pick_base, refs_of, remove_row, row_label, rows_for, set_ref,
                                         set_weight, set_weights, shares)
from ui_components.handlers.sources import check_local, inspect_ref, local_paths_allowed
from ui_components.handlers.tokens import on_space, resolve_token, safe_error, scrub, token_for
from ui_components.handlers.try_it import TryView, live_remerge, live_status, try_form
from ui_components.handlers.weights import WeightsView, compute_weights_form

__all__ = [
    "Progress", "LICENSES", "TEXT_HEADERS", "RETRIEVAL_HEADERS", "EXAMPLE_ROWS", "NO_BASE",
    # rows
    "new_row", "initial_rows", "rows_for", "add_row", "remove_row", "set_ref", "set_weight", "set_weights", "filled",
    "refs_of", "shares", "decorate", "row_label", "chart_frame", "base_choices", "pick_base",
    # form and recipe
    "collect_params", "build_recipe", "FormValues", "form_from_recipe", "read_recipe_file",
    # sources and preflight
    "local_paths_allowed", "check_local", "inspect_ref", "PreflightView", "preflight_form", "require_mergeable",
    # examples and weights
    "kind_format", "example_headers", "empty_table", "examples_from_form", "WeightsView", "compute_weights_form",
    # merge, try it, push
    "merge_form", "merge_summary", "recipe_download", "TryView", "live_status", "live_remerge", "try_form",
    "default_repo_name", "push_form",
    # tokens
    "on_space", "resolve_token", "token_for", "scrub", "safe_error",
]
