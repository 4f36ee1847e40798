"""FLOPs and parameters of sub-networks, counted as the paper counts them.

Convention (paper Tables 1, 6; ../shared/paper/BASELINES.md): fvcore's counts, where one
multiply-add is one FLOP and BatchNorm/LayerNorm are counted, plus the attention matrix
products (QK^T and AV), which fvcore misses inside torchvision's attention kernels.
ResNet50 = 4.11 G, ViT-B/16 = 17.58 G.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from math import prod

import torch
from torch import nn

with warnings.catch_warnings():
    # fvcore scripts a loss function at import time, which torch now marks as deprecated.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

from repro.skip import SkipConfig


def _sdpa_flops(inputs, outputs) -> int:
    # aten::scaled_dot_product_attention(q, k, v, ...): q (..., N, d), k (..., M, d), v (..., M, dv)
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch, n, d = prod(q[:-2]), q[-2], q[-1]
    m, dv = k[-2], v[-1]
    return batch * n * m * (d + dv)


def _native_mha_flops(inputs, outputs) -> int:
    # aten::_native_multi_head_attention(query, key, value, embed_dim, num_heads, qkv_weight, ...):
    # torchvision's nn.MultiheadAttention fast path under no_grad; fvcore sees none of it.
    q, k = get_shape(inputs[0]), get_shape(inputs[1])
    batch, n, e = prod(q[:-2]), q[-2], q[-1]
    m = k[-2]
    projections = batch * n * e * e + 2 * batch * m * e * e + batch * n * e * e  # q, k, v, out
    return projections + 2 * batch * n * m * e


ATTENTION_HANDLES = {
    "aten::scaled_dot_product_attention": _sdpa_flops,
    "aten::_native_multi_head_attention": _native_mha_flops,
}


def count_flops(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs (multiply-adds) of one forward pass of ``module`` on a batch of one image.

    input_shape: (channels, height, width).
    """
    module = module.eval()
    reference = next(module.parameters(), None)
    x = torch.zeros(1, *input_shape, device=reference.device if reference is not None else "cpu")
    # fvcore logs one warning per op it skips (activations, additions); they cost ~nothing.
    logging.getLogger("fvcore.nn.jit_analysis").setLevel(logging.ERROR)
    with torch.no_grad():
        analysis = FlopCountAnalysis(module, x).set_op_handle(**ATTENTION_HANDLES)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analysis.total())


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class SubnetworkCost:
    skip: SkipConfig
    gflops: float
    params_m: float

    def as_row(self) -> dict:
        return {"skip": str(self.skip), "gflops": self.gflops, "params_m": self.params_m}


def subnetwork_costs(model, input_shape: tuple[int, ...], configs=None) -> list[SubnetworkCost]:
    """GFLOPs and parameters (millions) of each sub-network of ``model``.

    Counts the plain extracted sub-network, so parameters are those it uses (its own
    norms only). ``configs`` defaults to all of the model's configs.
    """
    from repro.models import extract_subnetwork

    rows = []
    for config in configs or model.configs():
        # Costs depend on the structure only: remembered per architecture settings, shape and
        # config (a fixed-depth network has the structure of that sub-network of its architecture).
        key = (model.config, tuple(input_shape), str(config))
        cost = _COSTS.get(key)
        if cost is None:
            sub = extract_subnetwork(model, config)
            cost = SubnetworkCost(config, count_flops(sub, input_shape) / 1e9, count_params(sub) / 1e6)
            _COSTS[key] = cost
        rows.append(cost)
    return rows


_COSTS: dict = {}


def flops_table(model, input_shape: tuple[int, ...]):
    """One row per sub-network: ``skip, gflops, params_m`` (a pandas DataFrame)."""
    import pandas as pd

    return pd.DataFrame([cost.as_row() for cost in subnetwork_costs(model, input_shape)])


def arch_summary(names=None, cache: bool = True):
    """One row per registered architecture: stages S, blocks, split, super/base GFLOPs.

    Counting the larger networks takes about a minute in all, so rows are kept in
    ``~/.cache/adn-repro/arch_summary-<fingerprint>.json``; the fingerprint changes with the
    model code and the torch/torchvision/fvcore versions. ``cache=False`` counts afresh.
    """
    import pandas as pd

    from repro.models import ARCHS

    names = list(names or ARCHS.names())
    path = _summary_cache_path() if cache else None
    stored = _read_json(path) if path is not None else {}
    rows = {name: stored.get(name) or _arch_row(name) for name in names}
    if path is not None and any(name not in stored for name in names):
        from repro.errors import ReproError
        from repro.files import write_json
        try:
            write_json(path, {**stored, **rows})
        except (OSError, ReproError):
            pass  # an unwritable cache only costs time
    return pd.DataFrame([rows[name] for name in names])


def _arch_row(name: str) -> dict:
    from repro.models import ARCHS, build_model

    spec = ARCHS.get(name)
    model = build_model(name)
    shape = (spec.in_channels, spec.resolution, spec.resolution)
    super_net, base_net = subnetwork_costs(model, shape, [model.configs()[0], model.configs()[-1]])
    return {
        "arch": name, "S": model.num_stages,
        "blocks": ",".join(str(len(s.blocks)) for s in model.layout.stages),
        "mandatory/skippable": ",".join(f"{m}/{len(s.blocks) - m}" for s, m in zip(model.layout.stages, model.split)),
        "input": "x".join(map(str, shape)),
        "super_gflops": round(super_net.gflops, 4), "base_gflops": round(base_net.gflops, 4),
        "super_params_m": round(super_net.params_m, 3), "description": spec.description,
    }


def _summary_cache_path():
    import hashlib
    from pathlib import Path

    import fvcore
    import torchvision

    digest = hashlib.sha256(f"{torch.__version__} {torchvision.__version__} {fvcore.__version__}".encode())
    package = Path(__file__).resolve().parents[1]  # repro/
    for source in [Path(__file__).resolve(), package / "skip.py"] + sorted((package / "models").glob("*.py")):
        digest.update(source.read_bytes())
    return Path("~/.cache/adn-repro").expanduser() / f"arch_summary-{digest.hexdigest()[:16]}.json"


def _read_json(path) -> dict:
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
