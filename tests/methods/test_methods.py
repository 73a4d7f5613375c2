"""Merge methods against independent computations of mergekit's definitions, on tiny tensors."""

import math

import pytest
import torch

from cocktail_core import methods
from cocktail_core.errors import RecipeError


def _t(seed, shape=(6, 5)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_registry_lists_every_method_and_rejects_unknown():
    assert methods.available()[0] == "linear"
    assert {"linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "slerp", "model_stock"} <= set(methods.available())
    with pytest.raises(RecipeError, match="Expected one of"):
        methods.get("nope")


def test_linear_normalized_and_not():
    a, b = _t(0), _t(1)
    m = methods.get("linear")
    out = m.merge([a, b], [3.0, 1.0], None, {"normalize": True})
    torch.testing.assert_close(out, (3 * a + b) / 4)
    out = m.merge([a, b], [3.0, 1.0], None, {"normalize": False})
    torch.testing.assert_close(out, 3 * a + b)


def test_linear_forbids_negative_and_all_zero_weights_when_it_normalizes():
    m = methods.get("linear")
    for params in ({"normalize": True}, {}, None):  # normalize is the default
        assert any("negative" in p and "normalize: false" in p for p in m.check_weights([1.0, -0.5], params))
        assert any("zero" in p for p in m.check_weights([0.0, 0.0], params))
        assert m.check_weights([0.2, 0.8], params) == []


def test_linear_without_normalization_takes_any_weights_as_given():
    m = methods.get("linear")
    assert m.check_weights([1.5, -0.5], {"normalize": False}) == []
    assert m.check_weights([-1.0, -2.0], {"normalize": False}) == []
    assert m.check_weights([0.0, 0.0], {"normalize": False}) == []
    a, b, c = _t(0), _t(1), _t(2)
    w = [1.5, -0.5, 0.25]
    expected = a * w[0] + b * w[1] + c * w[2]  # exactly sum(w_i * theta_i): no division, bit for bit
    assert torch.equal(m.merge([a, b, c], w, None, {"normalize": False}), expected)
    scratch = [a.clone(), b.clone(), c.clone()]  # the engine's in-place path gives the same bits
    assert torch.equal(m.merge(scratch, w, None, {"normalize": False}, out=torch.empty_like(a)), expected)
    # extrapolation past the first model, away from the second
    torch.testing.assert_close(m.merge([a, b], [1.5, -0.5], None, {"normalize": False}), a + 0.5 * (a - b))


def test_other_methods_check_weights_with_params():
    assert methods.get("task_arithmetic").check_weights([0.5, -0.25], {"lambda": 1.0, "normalize": False}) == []
    assert methods.get("slerp").check_weights([], {"t": 0.5}) == []


def test_task_arithmetic():
    base, a, b = _t(0), _t(1), _t(2)
    out = methods.get("task_arithmetic").merge([a, b], [0.5, -0.25], base, {"lambda": 2.0, "normalize": False})
    torch.testing.assert_close(out, base + 2.0 * (0.5 * (a - base) - 0.25 * (b - base)))


def _ties_reference(base, models, weights, density, normalize, lam):
    deltas = []
    for t in models:
        d = (t - base).flatten()
        k = int(density * d.numel())
        keep = set(sorted(range(d.numel()), key=lambda i: -abs(float(d[i])))[:k]) if density < 1 else set(range(d.numel()))
        deltas.append([float(d[i]) if i in keep else 0.0 for i in range(d.numel())])
    out = []
    for i in range(base.numel()):
        s = sum(w * d[i] for w, d in zip(weights, deltas))
        sign = 1.0 if s >= 0 else -1.0
        agree = [(w, d[i]) for w, d in zip(weights, deltas) if d[i] != 0 and math.copysign(1, d[i]) == sign]
        mixed = sum(w * v for w, v in agree)
        if normalize:
            div = sum(w for w, _ in agree) or 1.0
            mixed /= div
        out.append(float(base.flatten()[i]) + lam * mixed)
    return torch.tensor(out).view_as(base)


@pytest.mark.parametrize("density,normalize", [(1.0, True), (0.4, True), (0.6, False)])
def test_ties_matches_elementwise_reference(density, normalize):
    base, a, b, c = _t(0), _t(1), _t(2), _t(3)
    out = methods.get("ties").merge([a, b, c], [0.5, 0.3, 0.2], base,
                                    {"density": density, "normalize": normalize, "lambda": 1.0})
    torch.testing.assert_close(out, _ties_reference(base, [a, b, c], [0.5, 0.3, 0.2], density, normalize, 1.0))


def test_dare_is_seeded_and_preserves_l1_norm():
    base, a = _t(0, (40, 40)), _t(1, (40, 40))
    m = methods.get("dare_linear")
    params = {"density": 0.3, "lambda": 1.0, "rescale": True, "normalize": False}
    o1 = m.merge([a], [1.0], base, params, generator=torch.Generator().manual_seed(7))
    o2 = m.merge([a], [1.0], base, params, generator=torch.Generator().manual_seed(7))
    o3 = m.merge([a], [1.0], base, params, generator=torch.Generator().manual_seed(8))
    assert torch.equal(o1, o2) and not torch.equal(o1, o3)
    kept = o1 - base
    assert 0.2 < (kept != 0).float().mean() < 0.4
    torch.testing.assert_close(kept.abs().sum(), (a - base).abs().sum())


def test_slerp_endpoints_midpoint_and_parallel_fallback():
    m = methods.get("slerp")
    base, other = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    torch.testing.assert_close(m.merge([other], [], base, {"t": 0.0}), base)
    torch.testing.assert_close(m.merge([other], [], base, {"t": 1.0}), other)
    mid = m.merge([other], [], base, {"t": 0.5})
    torch.testing.assert_close(mid, torch.tensor([math.sqrt(0.5), math.sqrt(0.5)]))
    torch.testing.assert_close(m.merge([base * 2], [], base, {"t": 0.5}), base * 1.5)


def test_model_stock_formula():
    base, a, b = _t(0), _t(1), _t(2)
    out = methods.get("model_stock").merge([a, b], [], base, {"filter_wise": False})
    da, db = (a - base).flatten(), (b - base).flatten()
    cos = float(torch.dot(da, db) / (da.norm() * db.norm()))
    t = 2 * cos / (1 + cos)
    torch.testing.assert_close(out, t * (a + b) / 2 + (1 - t) * base)
