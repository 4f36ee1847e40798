"""Serving an adaptive-depth network under a budget that changes per request (issue 17).

``AdaptiveRunner(model, table)`` holds one plain sub-network per entry of the measured
Pareto frontier and runs, for each call, the most accurate one within that call's budget::

    runner = repro.AdaptiveRunner(model, choice.frontier)     # or a `select --output` CSV
    logits = runner(images, budget_ms=2.5)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from repro.deploy.frontier import BUDGETS, best_within, one_budget, pareto_frontier
from repro.errors import ReproError
from repro.models.adaptive import AdaptiveDepthNetwork, SkipAware
from repro.models.extract import extract_subnetwork
from repro.models.interface import is_adaptive
from repro.skip import SkipLike

if TYPE_CHECKING:
    import pandas as pd


class AdaptiveRunner:
    """Runs, per call, the most accurate frontier sub-network within the call's budget.

    Thread safety, and why this design: ``AdaptiveDepthNetwork`` selects its sub-network
    through shared state (one ``Selection`` object its modules read), so two threads
    asking for different sub-networks at once would mix them. A lock around it would
    serialise every request. Instead the runner holds, for each sub-network on a frontier,
    a plain network (``extract_subnetwork``) whose parameters and buffers *are* the
    model's tensors (shared, not copied: memory stays about one model, and switching costs
    nothing). Plain networks in eval mode keep no state between calls, so any number of
    threads may call the runner at once, each with its own budget. The model's weights
    must not be changed while the runner serves (in-place loads are seen by the runner;
    moving the model to another device is not: build a new runner).

    table: one row per sub-network with ``skip``, ``acc1_pct`` and at least one cost
        column (``latency_ms``, ``gflops``, ``energy_mj``), e.g. ``select(...).table`` or
        the CSV ``python cli.py select ... --output`` writes. Each cost column present
        gives a frontier; their union is extracted.
    A call whose budget no sub-network meets runs the cheapest one on that frontier (the
    best effort: ``choose`` says which). Without a budget the most accurate one runs.
    """

    def __init__(self, model: AdaptiveDepthNetwork, table: pd.DataFrame):
        if not is_adaptive(model):
            raise ReproError("AdaptiveRunner needs an adaptive-depth network (one with sub-networks)")
        self.model = model
        table = table.assign(skip=[str(model.parse_skip(s)) for s in table["skip"]])
        self.frontiers = {cost: pareto_frontier(table, cost) for cost in BUDGETS.values()
                          if cost in table.columns and table[cost].notna().any()}
        if not self.frontiers:
            raise ReproError(f"the table has no cost column ({', '.join(BUDGETS.values())})")
        self.most_accurate = str(table.sort_values("acc1_pct", ascending=False, kind="stable")["skip"].iloc[0])
        skips = {self.most_accurate, *(s for f in self.frontiers.values() for s in f["skip"])}
        self.networks = {skip: shared_subnetwork(model, skip).eval() for skip in sorted(skips)}

    def choose(self, budget_ms: float | None = None, budget_gflops: float | None = None,
               budget_mj: float | None = None) -> str:
        """The skip config a call with this budget runs."""
        budget = one_budget(budget_ms, budget_gflops, budget_mj, required=False)
        if budget is None:
            return self.most_accurate
        cost, bound = budget
        frontier = self.frontiers.get(cost)
        if frontier is None:
            raise ReproError(f"the runner's table has no {cost} to meet this budget")
        best = best_within(frontier, cost, bound)
        return str(frontier["skip"][0 if best is None else best])

    def run(self, x: torch.Tensor, **budget) -> tuple[torch.Tensor, str]:
        """(logits, skip config used) for one batch under ``budget_ms=``, ``budget_gflops=``
        or ``budget_mj=`` (at most one)."""
        skip = self.choose(**budget)
        with torch.inference_mode():
            return self.networks[skip](x), skip

    def __call__(self, x: torch.Tensor, **budget) -> torch.Tensor:
        return self.run(x, **budget)[0]


def shared_subnetwork(model: AdaptiveDepthNetwork, skip: SkipLike) -> nn.Module:
    """``extract_subnetwork(model, skip)`` whose parameters and buffers are the model's own
    tensors rather than copies (a skipped stage's mandatory norms are its ``skip`` norms)."""
    config = model.parse_skip(skip)
    plain = extract_subnetwork(model, config)
    for path, module in plain.named_modules():
        source = model.net.get_submodule(path)
        if isinstance(source, SkipAware) and hasattr(source, "skip") and config.flags[source.stage]:
            source = source.skip
        for tensors, originals in ((module._parameters, source._parameters), (module._buffers, source._buffers)):
            for name, tensor in tensors.items():
                if tensor is not None:
                    if originals[name].shape != tensor.shape:
                        raise RuntimeError(f"{path}.{name}: the sub-network does not mirror the model")
                    tensors[name] = originals[name]
    return plain
