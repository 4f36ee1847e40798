"""Writing one sub-network as a deployable file (issue 17): the plain network
``extract_subnetwork`` gives, as ONNX (``torch.onnx.export``, the dynamo-based exporter,
which needs ``onnxscript``) or as a ``torch.export`` ExportedProgram (``.pt2``), with a
dynamic batch dimension::

    python cli.py export results/quick/runs/<run>/model.pt --skip TTFF --format onnx --output ttff.onnx

ONNX needs the optional packages of the ``deploy`` extra (``pip install -e .[deploy]``).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from repro.deploy.select import check_adaptive
from repro.errors import ReproError
from repro.files import atomic_write
from repro.models.extract import extract_subnetwork
from repro.skip import SkipLike

FORMATS = ("onnx", "pt2")
EXAMPLE_BATCH = 2  # an example batch of 1 would let the exporter specialise the batch size


def export_subnetwork(model, skip: SkipLike, path: str | Path, format: str = "onnx",
                      input_shape: tuple[int, int, int] | None = None) -> Path:
    """Writes sub-network ``skip`` of ``model`` (an ``AdaptiveDepthNetwork``) to ``path``
    (atomically) and returns it. Input ``images`` of shape (batch, *input_shape), batch
    dynamic; output ``logits`` (batch, classes). input_shape defaults to the architecture's.
    The file records the architecture and skip config (ONNX metadata; a ``adn.json`` extra
    file in the .pt2 archive)."""
    if format not in FORMATS:
        raise ReproError(f"export format {format!r}: choose {' or '.join(FORMATS)}")
    check_adaptive(model, "export")
    config = model.parse_skip(skip)
    arch = model.config
    shape = tuple(input_shape or (arch.in_channels, arch.image_size, arch.image_size))
    plain = extract_subnetwork(model, config).eval().cpu()
    example = (torch.randn(EXAMPLE_BATCH, *shape, generator=torch.Generator().manual_seed(0)),)
    dynamic = ({0: torch.export.Dim("batch", min=1)},)
    info = {"arch": arch.arch, "skip": str(config), "input_shape": list(shape), "num_classes": arch.num_classes,
            "split": list(model.split)}
    write = _onnx_writer if format == "onnx" else _pt2_writer
    return atomic_write(path, write(plain, example, dynamic, info))


def _pt2_writer(plain, example, dynamic, info):
    with torch.no_grad():
        program = torch.export.export(plain, example, dynamic_shapes=dynamic)
    buffer = io.BytesIO()  # torch.export.save wants a .pt2 name or a buffer, not atomic_write's temporary name
    torch.export.save(program, buffer, extra_files={"adn.json": json.dumps(info)})
    return lambda tmp: tmp.write_bytes(buffer.getvalue())


def _onnx_writer(plain, example, dynamic, info):
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401  (the dynamo-based exporter builds the graph with it)
    except ImportError as error:
        raise ReproError(f"ONNX export needs the deploy extra (pip install -e .[deploy]): {error}") from None
    with torch.no_grad():
        program = torch.onnx.export(plain, example, dynamo=True, dynamic_shapes=dynamic, input_names=["images"],
                                    output_names=["logits"], verbose=False)
    program.model.metadata_props.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in info.items()})
    # Our networks are far below ONNX's 2 GB limit: one self-contained file.
    return lambda tmp: program.save(tmp, external_data=False)
