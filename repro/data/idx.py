"""Fashion-MNIST from its idx files: Debian's ``dataset-fashion-mnist``, a folder, or a download.

The idx format (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number (two zero bytes,
a type code, 0x08 for unsigned bytes, and the number of dimensions), one big-endian int32 per
dimension, then the values. Files may be gzipped.
"""
from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import torch
from torch import Tensor

from repro.data.memory import ImageSet, memory_splits
from repro.data.registry import DataSplits, LoadOptions, register_dataset
from repro.errors import ReproError

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")  # apt install dataset-fashion-mnist
CACHE_FOLDER = Path("~/.cache/adn-repro/fashion_mnist")
FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
MEAN, STD = (0.2860,), (0.3530,)  # of the training pixels in [0, 1]; constants, not computed per run
NUM_CLASSES = 10


def read_idx(path: Path, ndim: int) -> Tensor:
    """The uint8 array stored in an idx file (gzipped or not), with ``ndim`` dimensions."""
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":  # gzip magic
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise ReproError(f"cannot read {path}: {error} (a damaged or truncated download?)") from None
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        found = f"0x{data[:4].hex()}" if data else "missing (empty file)"
        raise ReproError(f"{path} is not an idx file of {ndim}-d unsigned bytes: its magic number is "
                         f"{found}, expected 0x0000080{ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ReproError(f"{path} is truncated: {len(data)} bytes, shorter than its {header}-byte header")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + math.prod(dims)
    if len(data) != expected:
        shape = "x".join(map(str, dims))
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise ReproError(f"{path} is {state}: its header announces a {shape} array ({expected} bytes), "
                         f"the file has {len(data)} bytes")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header).view(*dims)


def find_files(folder: Path) -> dict[str, Path] | None:
    """The four idx files in ``folder`` (gzipped or not), None if none is there; an error
    if only some are."""
    found = {}
    for key, name in FILES.items():
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                found[key] = candidate
                break
    if found and len(found) < len(FILES):
        missing = [FILES[k] for k in FILES if k not in found]
        raise ReproError(f"{folder} has only some Fashion-MNIST idx files; missing: {', '.join(missing)}")
    return found or None


def file_checksums(paths) -> tuple[tuple[str, str], ...]:
    """(path, sha256) of each file a data set was read from: the run record's provenance."""
    import hashlib

    return tuple((str(path), hashlib.sha256(Path(path).read_bytes()).hexdigest()) for path in paths)


def read_files(files: dict[str, Path]) -> ImageSet:
    arrays = {key: read_idx(path, 3 if key.endswith("images") else 1) for key, path in files.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if len(images) != len(labels):
            raise ReproError(f"{files[f'{part}_images']} has {len(images)} images but "
                             f"{files[f'{part}_labels']} has {len(labels)} labels")
        if len(labels) and int(labels.max()) >= NUM_CLASSES:
            raise ReproError(f"{files[f'{part}_labels']} has label {int(labels.max())}; "
                             f"Fashion-MNIST labels are 0..{NUM_CLASSES - 1}")
    return ImageSet(arrays["train_images"][:, None], arrays["train_labels"].long(),
                    arrays["test_images"][:, None], arrays["test_labels"].long(), NUM_CLASSES, MEAN, STD,
                    sources=file_checksums(files.values()))


def download(root: Path, searched: list[Path]) -> ImageSet:
    """torchvision's copy, downloaded into ``root`` if need be (the last resort)."""
    from torchvision.datasets import FashionMNIST

    try:
        parts = [FashionMNIST(str(root), train=train, download=True) for train in (True, False)]
    except Exception as error:  # offline, proxy, bad checksum: all mean "not available"
        looked = ", ".join(str(p) for p in searched)
        raise ReproError(f"Fashion-MNIST not found (looked in {looked}) and the download into {root} failed "
                         f"({type(error).__name__}); install Debian's dataset-fashion-mnist or pass "
                         f"--data-path to a folder with the four idx files") from None
    (train, test) = parts
    raw = sorted(Path(train.raw_folder).glob("*-ubyte*"))
    return ImageSet(train.data[:, None].contiguous(), train.targets.long(), test.data[:, None].contiguous(),
                    test.targets.long(), NUM_CLASSES, MEAN, STD, sources=file_checksums(raw))


def read_fashion_mnist(data_path: str | None = None) -> ImageSet:
    """The whole of Fashion-MNIST: from ``data_path`` (or its torchvision layout
    ``FashionMNIST/raw``, else a torchvision download into it), or without one from Debian's
    folder, else a torchvision download into the cache."""
    folders = [DEBIAN_FOLDER]
    if data_path:  # an explicit folder is never silently replaced by the default copy
        root = Path(data_path).expanduser()
        folders = [root, root / "FashionMNIST" / "raw"]
    for folder in folders:
        files = find_files(folder)
        if files:
            return read_files(files)
    return download(Path(data_path).expanduser() if data_path else CACHE_FOLDER.expanduser(), folders)


@register_dataset("fashion_mnist", "Fashion-MNIST: 28x28 grey clothing images, 10 classes, 60k train / 10k test",
                  train_images=55_000)
def fashion_mnist(options: LoadOptions) -> DataSplits:
    return memory_splits(read_fashion_mnist(options.data_path), options, default_val_size=5000)
