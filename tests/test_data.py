"""Data sets: splits, determinism, exact resume, rank shards, on-device augmentation, errors."""
import gzip
import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from repro.data import DATASETS, idx, load_data
from repro.data.memory import crop_flip
from repro.data.splits import choose_splits, interleaved_order
from repro.errors import ReproError
from tests.conftest import FASHION

TINY = dict(fake_shape=(1, 28, 28), fake_sizes=(100, 20, 30), fake_num_classes=10)
TINY_STD = 12 ** -0.5  # the fake data's std, of uniform pixels


def one_line_error(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(ReproError, match=match) as error:
        fn(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    return message


def batches(split, epoch=0, start_step=0):
    return [(x.clone(), y.clone()) for x, y in split.epoch(epoch, start_step)]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def image_keys(images):
    return [bytes(row) for row in images.flatten(1).numpy().view(np.uint8)]


# ---------------------------------------------------------------- Fashion-MNIST (real files)
@pytest.fixture(scope="module")
def fashion_set():
    if not FASHION.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    return idx.read_fashion_mnist()


@pytest.fixture
def fashion(fashion_set, monkeypatch):
    monkeypatch.setattr(idx, "read_fashion_mnist", lambda data_path=None: fashion_set)  # read once per module
    return fashion_set


def test_fashion_mnist_files_are_read_whole(fashion_set):
    assert fashion_set.train_images.shape == (60000, 1, 28, 28) and fashion_set.train_images.dtype == torch.uint8
    assert fashion_set.test_images.shape == (10000, 1, 28, 28)
    assert torch.equal(torch.bincount(fashion_set.train_labels), torch.full((10,), 6000))
    # the documented constants are the training pixels' statistics
    pixels = fashion_set.train_images.float() / 255
    assert pixels.mean().item() == pytest.approx(idx.MEAN[0], abs=1e-3)
    assert pixels.std().item() == pytest.approx(idx.STD[0], abs=1e-3)


def test_fashion_mnist_splits_shapes_and_normalisation(fashion):
    data = load_data("fashion_mnist", batch_size=128, eval_batch_size=1000)
    info = data.info
    assert (info.num_classes, info.in_channels, info.image_size) == (10, 1, 28)
    assert (info.train_size, info.val_size, info.test_size) == (55000, 5000, 10000)
    assert (len(data.train), len(data.val), len(data.test)) == (55000 // 128, 5, 10)
    x, y = next(data.train.epoch(0))
    assert x.shape == (128, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    test = batches(data.test)
    assert sum(len(y) for _, y in test) == 10000
    x, y = test[0]
    expected = (fashion.test_images[:1000].float() / 255 - idx.MEAN[0]) / idx.STD[0]
    torch.testing.assert_close(x, expected)
    assert torch.equal(y, fashion.test_labels[:1000])
    everything = torch.cat([x for x, _ in test])
    assert abs(everything.mean().item()) < 0.05 and abs(everything.std().item() - 1) < 0.05


def test_validation_split_is_fixed_disjoint_and_class_balanced(fashion):
    class Opts:
        val_size, train_subset, test_subset, where = 5000, None, None, "test"

    train, val, test = choose_splits(fashion.train_labels, 10000, Opts, 0)
    assert len(set(train.tolist()) | set(val.tolist())) == 60000 and len(train) + len(val) == 60000
    assert torch.equal(torch.bincount(fashion.train_labels[val]), torch.full((10,), 500))
    vals = [batches(load_data("fashion_mnist", batch_size=64, seed=s, train_subset=64).val) for s in (0, 1)]
    assert same(*vals)


def test_train_subset_is_a_balanced_prefix_of_the_fixed_order():
    labels = torch.arange(1000) % 10
    order = interleaved_order(labels)
    assert torch.equal(order, interleaved_order(labels))
    assert sorted(order.tolist()) == list(range(1000))
    for prefix in (10, 200, 530):
        counts = torch.bincount(labels[order[:prefix]], minlength=10)
        assert counts.max() - counts.min() <= 1


# ---------------------------------------------------------------- batches: order, resume, shards
def test_same_seed_and_epoch_give_identical_batches_and_epochs_differ():
    a = load_data("fake", batch_size=16, seed=3, **TINY)
    b = load_data("fake", batch_size=16, seed=3, **TINY)
    assert same(batches(a.train, 1), batches(b.train, 1))
    assert not same(batches(a.train, 1), batches(a.train, 2))
    c = load_data("fake", batch_size=16, seed=4, **TINY)
    assert not same(batches(a.train, 1), batches(c.train, 1))
    assert same(batches(a.test), batches(c.test))  # evaluation does not depend on the seed


@pytest.mark.parametrize("k", [0, 1, 4])
def test_start_step_yields_exactly_the_tail_of_the_epoch(k):
    data = load_data("fake", batch_size=16, seed=1, **TINY)
    full = batches(data.train, 2)
    assert len(full) == len(data.train) == 100 // 16
    assert same(batches(data.train, 2, start_step=k), full[k:])
    assert batches(data.train, 2, start_step=len(full)) == []
    one_line_error("start_step", lambda: next(data.train.epoch(0, start_step=len(full) + 1)))


def test_rank_shards_are_disjoint_and_equal_and_evaluation_drops_nothing():
    world = 3
    ranks = [load_data("fake", batch_size=8, augment=False, rank=r, world_size=world, **TINY) for r in range(world)]
    data = load_data("fake", batch_size=8, augment=False, **TINY)
    train = [[key for x, _ in batches(d.train, 5) for key in image_keys(x)] for d in ranks]
    assert len({len(t) for t in train}) == 1 and len(train[0]) == (100 // world // 8) * 8
    assert len(set().union(*map(set, train))) == sum(map(len, train))
    assert len({len(d.train) for d in ranks}) == 1
    for split in ("val", "test"):
        shards = [[key for x, _ in batches(getattr(d, split)) for key in image_keys(x)] for d in ranks]
        whole = [key for x, _ in batches(getattr(data, split)) for key in image_keys(x)]
        assert sorted(sum(shards, [])) == sorted(whole)


# ---------------------------------------------------------------- augmentation
def test_batches_leave_the_global_rng_alone(imagenet_root):
    state = torch.get_rng_state()
    batches(load_data("fake", batch_size=16, **TINY).train, 0)
    batches(load_data("imagenet", batch_size=4, val_size=2, data_path=str(imagenet_root), workers=0).train, 0)
    assert torch.equal(state, torch.get_rng_state())


def reference_crop_flip(images, offsets, flips, padding=4):
    h, w = images.shape[-2:]
    out = []
    for image, (oy, ox), flip in zip(images, offsets.tolist(), flips.tolist()):
        crop = F.pad(image, (padding,) * 4)[:, oy: oy + h, ox: ox + w]
        out.append(crop.flip(-1) if flip else crop)
    return torch.stack(out)


def test_crop_flip_matches_a_per_sample_reference():
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    offsets = torch.randint(0, 9, (16, 2))
    flips = torch.rand(16) < 0.5
    assert torch.equal(crop_flip(images, offsets, flips), reference_crop_flip(images, offsets, flips))
    centred = torch.full((16, 2), 4)
    assert torch.equal(crop_flip(images, centred, torch.zeros(16, dtype=torch.bool)), images)
    assert torch.equal(crop_flip(images, centred, torch.ones(16, dtype=torch.bool)), images.flip(-1))


def test_augmentation_changes_images_but_keeps_labels_aligned():
    plain = load_data("fake", batch_size=16, augment=False, **TINY)
    augmented = load_data("fake", batch_size=16, **TINY)
    (x0, y0), (x1, y1) = batches(plain.train, 0)[0], batches(augmented.train, 0)[0]
    assert torch.equal(y0, y1) and not torch.equal(x0, x1)
    # every augmented image is a crop/flip of the un-augmented image at the same position
    zero = (0 - 0.5) / TINY_STD  # a zero-padding pixel after normalisation
    for a, b in zip(x0, x1):
        padded = F.pad(a, (4,) * 4, value=zero)
        candidates = [c.flip(-1) if flip else c for oy in range(9) for ox in range(9) for flip in (0, 1)
                      for c in [padded[:, oy: oy + 28, ox: ox + 28]]]
        assert any(torch.allclose(c, b) for c in candidates)


def test_channels_last_batches():
    data = load_data("fake", batch_size=4, channels_last=True, fake_shape=(3, 16, 16), fake_sizes=(8, 2, 2))
    x, _ = next(data.train.epoch(0))
    assert x.is_contiguous(memory_format=torch.channels_last)
    x, _ = next(data.test.epoch(0))
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_fake_data_shapes():
    data = load_data("fake", batch_size=4, eval_batch_size=3, fake_shape=(3, 40, 40), fake_sizes=(12, 5, 7),
                     fake_num_classes=7)
    assert (data.info.train_size, data.info.val_size, data.info.test_size) == (12, 5, 7)
    assert (data.info.in_channels, data.info.image_size, data.info.num_classes) == (3, 40, 7)
    x, y = next(data.train.epoch(0))
    assert x.shape == (4, 3, 40, 40) and int(y.max()) < 7
    assert [len(y) for _, y in data.test.epoch(0)] == [3, 3, 1]


# ---------------------------------------------------------------- idx files and their errors
def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    read = idx.read_idx(write_idx(tmp_path / "a", array, compress), 3)
    assert torch.equal(read, torch.from_numpy(array))


def tiny_fashion_folder(folder: Path, num_test_labels: int = 3) -> Path:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n, m in (("train", 20, 20), ("t10k", 3, num_test_labels)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), True)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (m,)), False)
    return folder


def test_fashion_mnist_from_a_data_path_folder(tmp_path):
    data = load_data("fashion_mnist", batch_size=5, val_size=4, data_path=str(tiny_fashion_folder(tmp_path)))
    assert (data.info.train_size, data.info.val_size, data.info.test_size) == (16, 4, 3)


def test_truncated_idx_file_is_one_clear_error(tmp_path):
    folder = tiny_fashion_folder(tmp_path)
    path = folder / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    message = one_line_error("truncated", load_data, "fashion_mnist", batch_size=4, data_path=str(folder))
    assert str(path) in message and "(28 bytes)" in message and "has 23 bytes" in message
    gz = folder / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:100])
    one_line_error("cannot read .*train-images", load_data, "fashion_mnist", batch_size=4, data_path=str(folder))


def test_malformed_idx_files(tmp_path):
    folder = tiny_fashion_folder(tmp_path, num_test_labels=4)
    one_line_error("3 images but .* 4 labels", load_data, "fashion_mnist", batch_size=4, data_path=str(folder))
    (folder / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    one_line_error("magic number is 0x00000803, expected 0x00000801", idx.read_files, idx.find_files(folder))
    (folder / "t10k-labels-idx1-ubyte").unlink()
    one_line_error("missing: t10k-labels", load_data, "fashion_mnist", batch_size=4, data_path=str(folder))


def test_missing_fashion_mnist_without_network_says_where_it_looked(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(idx, "DEBIAN_FOLDER", tmp_path / "not-installed")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    message = one_line_error("dataset-fashion-mnist", load_data, "fashion_mnist", batch_size=4)
    assert str(tmp_path / "not-installed") in message and "--data-path" in message


def test_an_explicit_data_path_is_never_replaced_by_the_default_copy(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(idx, "DEBIAN_FOLDER", tiny_fashion_folder(tmp_path))  # a default copy exists
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    (tmp_path / "empty").mkdir()
    message = one_line_error("not found", load_data, "fashion_mnist", batch_size=4, data_path=str(tmp_path / "empty"))
    assert str(tmp_path / "empty") in message


# ---------------------------------------------------------------- CIFAR (no network)
def test_cifar10_from_a_tiny_torchvision_folder(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)  # our files have other md5s
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    written = {}
    for name in names:
        data = rng.integers(0, 256, (4, 3 * 32 * 32), dtype=np.uint8)
        written[name] = data
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": list(rng.integers(0, 10, 4))}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    data = load_data("cifar10", batch_size=4, val_size=4, data_path=str(folder), augment=False)
    assert (data.info.in_channels, data.info.image_size, data.info.num_classes) == (3, 32, 10)
    assert (data.info.train_size, data.info.val_size, data.info.test_size) == (16, 4, 4)
    x, _ = next(data.test.epoch(0))
    mean, std = torch.tensor(data.info.mean).view(3, 1, 1), torch.tensor(data.info.std).view(3, 1, 1)
    expected = torch.from_numpy(written["test_batch"]).view(4, 3, 32, 32).float() / 255
    torch.testing.assert_close(x, (expected - mean) / std)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_missing_cifar_without_network_is_one_line(tmp_path, monkeypatch, name):
    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    message = one_line_error("could not be downloaded", load_data, name, batch_size=4, data_path=str(tmp_path))
    assert str(tmp_path) in message


# ---------------------------------------------------------------- ImageNet layout
def image_folder(root: Path, classes=("cat", "dog"), per_class=6) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    image_folder(root / "train")
    image_folder(root / "val", per_class=2)
    return root


def test_imagenet_folders_end_to_end(imagenet_root):
    data = load_data("imagenet", batch_size=4, eval_batch_size=3, val_size=2, data_path=str(imagenet_root),
                     workers=0, seed=1)
    info = data.info
    assert (info.num_classes, info.in_channels, info.image_size) == (2, 3, 224)
    assert (info.train_size, info.val_size, info.test_size) == (10, 2, 4)
    epoch = batches(data.train, 0)
    assert len(epoch) == len(data.train) == 2 and epoch[0][0].shape == (4, 3, 224, 224)
    assert same(batches(data.train, 0, start_step=1), epoch[1:])
    assert [len(y) for _, y in batches(data.test)] == [3, 1]
    assert [len(y) for _, y in batches(data.val)] == [2]
    assert sorted(torch.cat([y for _, y in batches(data.test)]).tolist()) == [0, 0, 1, 1]


def test_imagenet_augmentation_does_not_depend_on_workers(imagenet_root):
    runs = [load_data("imagenet", batch_size=4, val_size=2, data_path=str(imagenet_root), workers=w)
            for w in (0, 2)]
    assert same(*(batches(d.train, 3) for d in runs))
    next(runs[1].train.epoch(4))  # an abandoned epoch leaves the persistent workers usable
    assert same(batches(runs[0].train, 3), batches(runs[1].train, 3))
    assert not same(batches(runs[0].train, 3), batches(runs[0].train, 4))


def test_imagenet_layout_errors(tmp_path):
    one_line_error("needs --data-path", load_data, "imagenet", batch_size=2)
    message = one_line_error("is not a folder", load_data, "imagenet", batch_size=2, data_path=str(tmp_path))
    assert str(tmp_path / "train") in message and "<class>" in message
    (tmp_path / "train").mkdir()
    one_line_error("class folder", load_data, "imagenet", batch_size=2, data_path=str(tmp_path))
    image_folder(tmp_path / "train", per_class=3)
    (tmp_path / "val" / "cat").mkdir(parents=True)
    one_line_error("no valid file", load_data, "imagenet", batch_size=2, data_path=str(tmp_path))


# ---------------------------------------------------------------- argument errors
def test_bad_arguments_are_one_line_errors():
    one_line_error("unknown data set 'mnist'", load_data, "mnist", batch_size=4)
    one_line_error("batch_size must be at least 1", load_data, "fake", batch_size=0, **TINY)
    one_line_error("eval_batch_size must be at least 1", load_data, "fake", batch_size=4, eval_batch_size=0, **TINY)
    one_line_error("train_subset 200 is larger than the 100", load_data, "fake", batch_size=4, train_subset=200,
                   **TINY)
    one_line_error("val_size 500 leaves no training images", load_data, "fake", batch_size=4, val_size=500, **TINY)
    one_line_error("test_subset 31 is larger", load_data, "fake", batch_size=4, test_subset=31, **TINY)
    one_line_error("batch_size 101 is larger than the 100", load_data, "fake", batch_size=101, **TINY)
    one_line_error("rank must be in 0..1", load_data, "fake", batch_size=4, rank=2, world_size=2, **TINY)
    one_line_error("apply to the fake data set only", load_data, "cifar10", batch_size=4, fake_shape=(1, 8, 8))
    one_line_error("fake_shape must be", load_data, "fake", batch_size=4, fake_shape=(1, 8, 9))
    assert DATASETS.names() == ["fashion_mnist", "cifar10", "cifar100", "imagenet", "fake"]
