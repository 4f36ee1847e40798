"""Data sets by name: ``load_data(name, batch_size=...)`` -> train / val / test ``Batches``.

In-memory sets (fashion_mnist, cifar10, cifar100, fake) live on the device as uint8 and are
augmented there per batch (``memory``); imagenet streams from class folders (``folders``).
The engine checks that a data set fits an architecture with
``ARCHS.get(arch).check_input(info.in_channels, info.image_size, where=f"data set {name}")``.
"""
# registration order is the CLI's listing order
from repro.data import idx, cifar, folders, fake  # noqa: F401, I001  (they register their data sets)
from repro.data.registry import DATASETS, Batches, DatasetInfo, DataSplits, LoadOptions, load_data
from repro.data.samples import sample_images

__all__ = ["DATASETS", "Batches", "DataSplits", "DatasetInfo", "LoadOptions", "load_data", "sample_images"]
