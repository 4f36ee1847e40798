"""bf16 training on a CPU without bf16 units: matrix products in fp32 kernels compute what
a bf16 unit computes (bf16 operands, exact products, one rounding of each result)."""
import pytest
import torch
import torch.nn.functional as F

from repro import precision
from repro.precision import bf16_products_in_fp32


def rounded(t: torch.Tensor) -> torch.Tensor:
    return t.detach().bfloat16().double()


def within_one_bf16_step(got: torch.Tensor, exact: torch.Tensor, magnitude: torch.Tensor) -> bool:
    """``got`` equals ``exact`` rounded to bf16, give or take one step of bf16 and what fp32
    accumulation in some order may add (``magnitude``: the sum of the absolute products)."""
    target = exact.bfloat16().double()
    return bool(((got.double() - target).abs() <= target.abs() * 2 ** -7 + magnitude * 2 ** -16).all())


def exact_products(fn, operands, grad):
    """Outputs and operand gradients of ``fn`` in float64 on bf16-rounded operands."""
    ops = [rounded(t).requires_grad_() if t is not None else None for t in operands]
    out = fn(*ops)
    out.backward(rounded(grad))
    return [out.detach()] + [t.grad for t in ops[:2]]


LAYERS = {
    "convolution": (lambda x, w, b: F.conv2d(x, w, b, padding=1), (8, 16, 10, 10), (32, 16, 3, 3), (32,)),
    "linear on tokens": (F.linear, (4, 50, 64), (48, 64), (48,)),
    "batched matmul": (lambda x, w, b: torch.matmul(x, w), (6, 20, 16), (6, 16, 24), None),
}


@pytest.mark.parametrize("layer", LAYERS)
def test_products_and_their_gradients_are_those_of_a_bf16_unit(layer):
    fn, *shapes = LAYERS[layer]
    torch.manual_seed(0)
    x, w, b = (torch.randn(s, requires_grad=True) if s else None for s in shapes)
    with bf16_products_in_fp32():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = fn(x, w, b)
        grad = torch.randn(y.shape)
        y.backward(grad)
    assert y.dtype == torch.bfloat16  # what autocast hands on

    exact = exact_products(fn, (x, w, b), grad)  # exact arithmetic on the operands a bf16 unit sees
    magnitude = exact_products(fn, [t.abs() if t is not None else None for t in (x, w, b)], grad.abs())
    for got, want, size in zip((y, x.grad, w.grad), exact, magnitude):
        assert within_one_bf16_step(got, want, size)


def test_the_forward_product_agrees_with_pytorchs_own_bf16_kernel():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 32, 3, padding=1)
    x = torch.randn(4, 16, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        own = conv(x).double()
        with bf16_products_in_fp32():
            ours = conv(x).double()
    differs = (ours - own).abs() > own.abs() * 2 ** -7
    assert float(differs.float().mean()) < 1e-3


def test_fp32_work_and_other_operations_are_left_alone():
    torch.manual_seed(0)
    x, w = torch.randn(4, 8, 6, 6), torch.randn(8, 8, 3, 3)
    plain = F.batch_norm(F.conv2d(x, w), None, None, training=True)
    with bf16_products_in_fp32():
        same = F.batch_norm(F.conv2d(x, w), None, None, training=True)
        norm = F.batch_norm(x.bfloat16(), None, None, training=True)
    assert torch.equal(plain, same)
    assert norm.dtype == torch.bfloat16


def test_autocasts_own_kernels_return_afterwards():
    before = {name: torch._C._dispatch_dump(f"aten::{name.partition('.')[0]}") for name in precision.MATRIX_PRODUCTS}
    with bf16_products_in_fp32():
        during = torch._C._dispatch_dump("aten::conv2d")
    assert during != before["conv2d"]
    assert {name: torch._C._dispatch_dump(f"aten::{name.partition('.')[0]}")
            for name in precision.MATRIX_PRODUCTS} == before


@pytest.mark.parametrize("native, device, amp, used", [(False, "cpu", "bf16", True), (True, "cpu", "bf16", False),
                                                       (None, "cpu", "bf16", False), (False, "cpu", None, False)])
def test_only_a_cpu_known_to_lack_bf16_units_runs_products_in_fp32(monkeypatch, native, device, amp, used):
    monkeypatch.setattr(precision, "native_bf16", lambda d: native)
    assert precision.products_in_fp32(amp, device) == used
    assert not precision.products_in_fp32(amp, device, compiled=True)  # inductor's own choice
    note = precision.bf16_kernel_note(amp, device, used)
    assert (note is None) == (amp is None)
    assert note is None or ("fp32 kernels" in note) == used
