"""The weights panel: merge method, that method's parameters, and a chart of the mix.

Each method's parameters are drawn once, in a group shown only while that method is selected,
so every parameter component is static and can feed any event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from cocktail_core import methods


@dataclass
class WeightsPanel:
    """Handles of the weights panel.

    Attributes:
        method: method dropdown.
        description: the method's one-line description.
        groups: per method, the group holding its parameters.
        params: ``(method, param name, component)`` for every parameter of every method.
        chart: bar chart of each model's share.
    """

    method: gr.Dropdown
    description: gr.Markdown
    groups: dict[str, gr.Group]
    params: list[tuple[str, str, Any]]
    chart: gr.BarPlot

    @property
    def param_components(self) -> list[Any]:
        return [c for _, _, c in self.params]

    def values_by_method(self, values: tuple[Any, ...] | list[Any]) -> dict[str, dict[str, Any]]:
        """Map the param components' values (in :attr:`params` order) to ``{method: {param: value}}``."""
        out: dict[str, dict[str, Any]] = {}
        for (method, name, _), value in zip(self.params, values):
            out.setdefault(method, {})[name] = value
        return out

    def updates_for(self, method: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Group visibilities (then param values when ``params`` is given) for ``method``."""
        updates: list[Any] = [gr.Group(visible=name == method) for name in self.groups]
        if params is not None:
            for m, name, _ in self.params:
                updates.append(params[name] if m == method and name in params else gr.skip())
        return updates


def method_description(name: str) -> str:
    m = methods.get(name)
    extra = []
    if m.needs_base:
        extra.append("needs a base model")
    if not m.uses_weights:
        extra.append("ignores the weights")
    tail = f" _({'; '.join(extra)})_" if extra else ""
    return f"**{m.pretty_name}**: {m.description}{tail} [reference]({m.reference_url})"


def build_weights_panel() -> WeightsPanel:
    """Draw the weights panel (inside a Blocks context)."""
    gr.Markdown("### 2 · Mix")
    names = methods.available()
    with gr.Row():
        with gr.Column(scale=2):
            method = gr.Dropdown(choices=names, value=names[0], label="Merge method", elem_id="method")
            description = gr.Markdown(method_description(names[0]), elem_id="method-description")
            groups: dict[str, gr.Group] = {}
            params: list[tuple[str, str, Any]] = []
            for name in names:
                m = methods.get(name)
                with gr.Group(visible=name == names[0], elem_id=f"params-{name}") as group:
                    for p in m.parameters:
                        elem = f"param-{name}-{p.name}"
                        if isinstance(p.default, bool):
                            comp = gr.Checkbox(value=p.default, label=p.name, info=p.help, elem_id=elem)
                        elif p.minimum is not None and p.maximum is not None:
                            step = 1 if isinstance(p.default, int) else 0.01
                            comp = gr.Slider(minimum=p.minimum, maximum=p.maximum, step=step, value=p.default,
                                             label=p.name, info=p.help, elem_id=elem)
                        else:
                            comp = gr.Number(value=p.default, label=p.name, info=p.help, elem_id=elem,
                                             precision=0 if isinstance(p.default, int) else None)
                        params.append((name, p.name, comp))
                    if not m.parameters:
                        gr.Markdown("_No parameters._")
                groups[name] = group
        with gr.Column(scale=3):
            chart = gr.BarPlot(value=None, x="model", y="share", title="Share of each model in the mix",
                               y_lim=[0, 1], elem_id="weights-chart", height=220, sort=None)
    return WeightsPanel(method=method, description=description, groups=groups, params=params, chart=chart)
