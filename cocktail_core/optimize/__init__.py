"""The merge optimizer behind ``compute_weights(optimize=True)`` (see :mod:`cocktail_core.weights`).

* :mod:`~cocktail_core.optimize.options`: :class:`OptimizeOptions`, its knobs.
* :mod:`~cocktail_core.optimize.problem`: the search space (the tuned weights on the simplex, or free
  real weights with ``constraint="free"``) and one evaluation's result.
* :mod:`~cocktail_core.optimize.evaluators`: scoring a merge, in memory or streamed to disk.
* :mod:`~cocktail_core.optimize.search`: gradient descent (linear, in memory) and the gradient-free
  pattern search.

The drift guard lives in :mod:`cocktail_core.drift`.
"""
