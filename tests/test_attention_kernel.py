"""The attention kernel a ViT runs on the CPU (repro/models/attention.py): the math kernel
in reduced precision on short sequences, PyTorch's own choice everywhere else."""
import pytest
import torch

from repro.models import attention, build_model


def flash_allowed_inside(model, x, autocast: bool) -> list[bool]:
    """Whether flash attention was allowed while each attention module ran."""
    seen = []
    hooks = [m.register_forward_pre_hook(lambda *_: seen.append(torch.backends.cuda.flash_sdp_enabled()))
             for m in model.modules() if isinstance(m, torch.nn.MultiheadAttention)]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast), torch.no_grad():
        model(x, "TTTT")
    for hook in hooks:
        hook.remove()
    return seen


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return build_model("vit_mini", 10, in_channels=1, image_size=28).eval(), torch.randn(4, 1, 28, 28)


def test_a_short_vit_in_bf16_on_the_cpu_runs_the_math_kernel(vit):
    model, x = vit
    seen = flash_allowed_inside(model, x, autocast=True)
    assert seen and not any(seen)
    assert torch.backends.cuda.flash_sdp_enabled()  # the process-wide choice is restored after


def test_float32_keeps_pytorch_s_choice(vit):
    model, x = vit
    seen = flash_allowed_inside(model, x, autocast=False)
    assert seen and all(seen)


def test_a_long_sequence_keeps_pytorch_s_choice(vit, monkeypatch):
    model, x = vit
    monkeypatch.setattr(attention, "SHORT_SEQUENCE", model.net.seq_length - 1)
    seen = flash_allowed_inside(model, x, autocast=True)
    assert seen and all(seen)


def test_both_kernels_give_the_same_features_up_to_bf16_rounding(vit, monkeypatch):
    model, x = vit  # the stages' outputs: the untrained heads output zeros
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, math = model(x, return_features=True)
        monkeypatch.setattr(attention, "SHORT_SEQUENCE", 0)
        _, flash = model(x, return_features=True)
    model.eval()
    assert not all(torch.equal(a, b) for a, b in zip(math, flash))  # two kernels did run
    for a, b in zip(math, flash):
        torch.testing.assert_close(a.float(), b.float(), rtol=0.02, atol=0.1)
