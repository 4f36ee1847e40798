"""Checkpoints: ours round-trip; official-release and torchvision state dicts import."""
import ast
from pathlib import Path

import pytest
import torch
import torchvision

from repro.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from repro.models import ARCHS, build_individual, build_model
from tests.conftest import small_input

# The official release's key lists (names and shapes, as in ../shared/paper/official_keys).
OFFICIAL_KEYS = Path(__file__).resolve().parent / "data" / "official_keys"


def official_state_dict(arch):
    """A synthetic state dict in the official release's format, from its key list."""
    state = {}
    for line in (OFFICIAL_KEYS / f"{arch}.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape = line.split("\t")
        shape = ast.literal_eval(shape)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("relative_position_index"):
            state[key] = torch.randint(0, 169, shape)
        else:
            state[key] = torch.randn(shape)
    return state


def official_flag(arch, key):
    """The stage whose flag switches an official ``*_skip`` norm (OFFICIAL_MODELS.md)."""
    parts = key.split(".")
    if arch == "resnet50":
        return int(parts[0][-1]) - 1
    if arch.startswith("vit"):
        return int(parts[2].rsplit("_", 1)[1]) // 3
    if arch == "swin_t":
        return (int(parts[1]) + 1) // 2
    entry = int(parts[1])  # mobilenet_v2
    return min(max(entry - 2, 0), 4)


def test_round_trip(tmp_path):
    model = build_model("resnet_mini", num_classes=7, split=(1, 2, 3, 1))
    path = save_checkpoint(tmp_path / "m.pt", model)
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and loaded.split == (1, 2, 3, 1)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, "TFTF"), model.eval()(x, "TFTF"))
    individual = build_individual("resnet_mini", "TTTT")
    again = load_checkpoint(save_checkpoint(tmp_path / "i.pt", individual))
    assert str(again.depth) == "TTTT"


@pytest.mark.parametrize("arch", ["resnet50", "mobilenet_v2", "vit_b_16", "vit_b_32", "swin_t"])
def test_official_release_state_dict_loads_strictly(arch, tmp_path):
    state = official_state_dict(arch)
    wrapped = {"model_ema": {f"module.{k}": v for k, v in state.items()}, "n_averaged": torch.tensor(3)}
    torch.save(wrapped, tmp_path / "official.pth")
    model = load_checkpoint(tmp_path / "official.pth", ema=True)  # architecture recognised from the keys
    assert model.config.arch == arch
    ours = model.state_dict()
    assert len(ours) == len(state)
    modules = dict(model.net.named_modules())
    spec = ARCHS.get(arch)
    skip_keys = [k for k in state if "_skip." in k]
    assert skip_keys
    for key in skip_keys:
        mapped = "net." + spec.official_keys(key)
        assert torch.equal(ours[mapped], state[key]), key
        norm_path = mapped.removeprefix("net.").split(".skip.")[0]
        assert modules[norm_path].stage == official_flag(arch, key), key


def test_torchvision_weights_give_the_same_super_net(tmp_path):
    plain = torchvision.models.resnet50()
    torch.save(plain.state_dict(), tmp_path / "tv.pth")
    model = load_checkpoint(tmp_path / "tv.pth", arch="resnet50")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain.eval()(x), rtol=0, atol=0)
        # skip-aware norms start equal to the main norms
        assert torch.equal(model.net.layer1[0].bn1.skip.weight, plain.layer1[0].bn1.weight)


def test_wrong_architecture_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", build_model("resnet_mini"))
    with pytest.raises(CheckpointError, match="resnet_mini checkpoint, not vit_mini"):
        load_checkpoint(path, arch="vit_mini")
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "tv.pth")
    with pytest.raises(CheckpointError, match="does not fit mobilenet_v2"):
        load_checkpoint(tmp_path / "tv.pth", arch="mobilenet_v2")


def test_missing_keys_are_refused(tmp_path):
    state = torchvision.models.resnet50().state_dict()
    del state["layer2.1.conv2.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "partial.pth", arch="resnet50")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_corrupt_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is None:  # a real checkpoint cut in half
        save_checkpoint(path, build_model("resnet_mini"))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(path)


def test_pickled_code_is_never_run(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must not run",))

    torch.save({"model": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="never run code"):
        load_checkpoint(tmp_path / "evil.pt")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_loaded_model_runs(tmp_path):
    spec = ARCHS.get("mobilenet_v2_mini")
    model = load_checkpoint(save_checkpoint(tmp_path / "m.pt", build_model("mobilenet_v2_mini")))
    assert model(small_input(spec), "base").shape == (2, 10)
