"""Every training method, at smoke size on CPU: it learns a fixed batch, builds the network
it promises, refuses a teacher it cannot use and samples its sub-networks as documented."""
import sys
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from repro.checkpoints import save_checkpoint
from repro.errors import ReproError
from repro.methods import METHODS, StepContext, check_options
from repro.methods.alphanet import alphanet_step, sample_configs
from repro.methods.losses import alpha_divergence, distillation_kl, soft_cross_entropy
from repro.models import ARCHS, build_individual, build_model, extract_subnetwork
from repro.presets import make_spec
from repro.runs import RunRecord, run_directory
from repro.skip import SkipConfig
from repro.train import Runtime, train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cli import cli  # noqa: E402

# 16 px instead of Fashion-MNIST's 28 (resnet_mini takes >= 8 px): ~3x cheaper steps, so
# all eleven method variants learn within ~25 s on two cores.
INFO = SimpleNamespace(name="fake", num_classes=10, in_channels=1, image_size=16)  # a DatasetInfo stand-in


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 cores shared with other jobs: one thread is the faster
    yield
    torch.set_num_threads(threads)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- 1. they learn
VARIANTS = [
    ("adn", {}),
    ("adn", {"self_distill": False}),
    ("adn", {"skip_aware_norms": False}),
    ("adn", {"feature_distill": True}),
    ("adn", {"distill_strategy": "super_to_random"}),
    ("adn", {"distill_strategy": "random_to_random"}),
    ("adn", {"split": (1, 1, 2, 1)}),
    ("adn", {"two_backward": False}),
    ("adn", {"skip_aware_shortcuts": True}),
    ("individual", {"depth": "TTFF"}),
    ("kd_individual", {"depth": "TTTT"}),
    ("alphanet", {}),
    ("stochastic_depth", {}),
]
LOSS_PARTS = {"adn": {"ce", "kd"}, "individual": {"ce"}, "kd_individual": {"ce", "kd"},
              "alphanet": {"ce", "divergence"}, "stochastic_depth": {"ce"}}


def test_every_registered_method_is_trained_below():
    assert {method for method, _ in VARIANTS} == set(METHODS.names()) == set(LOSS_PARTS)


def context(model, spec, step, teacher=None) -> StepContext:
    return StepContext(model=model, module=model, options=spec.options, criterion=soft_cross_entropy,
                       backward=lambda loss: loss.backward(), autocast=nullcontext, seed=spec.seed,
                       global_step=step, state=teacher)


def train_steps(spec, images, targets, steps, teacher=None):
    """The method's own steps on one fixed batch, SGD as in the trainer (with the clipping
    the method's recipe implies); returns the model and the summed reported loss per step."""
    method = METHODS.get(spec.method)
    model = method.build_model(spec, INFO)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    totals, parts = [], set()
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        result = method.train_step(images, targets, context(model, spec, step, teacher))
        if spec.recipe.clip_grad_value is not None:
            nn.utils.clip_grad_value_(model.parameters(), spec.recipe.clip_grad_value)
        optimizer.step()
        parts |= set(result.losses)
        totals.append(float(sum(result.losses.values())))
    return model, totals, parts


@pytest.mark.parametrize("method, options", VARIANTS, ids=lambda v: v if isinstance(v, str) else
                         ",".join(f"{k}={v}" for k, v in v.items()) or "default")
def test_method_learns_a_fixed_batch(method, options):
    spec = make_spec("resnet_mini", method, "fake", "smoke", options=options)
    check_options(spec)
    images = torch.randn(16, 1, 16, 16)
    targets = torch.randint(0, 10, (16,))
    teacher = None
    if method == "kd_individual":
        teacher = build_individual("resnet_mini", "FFFF", 10, image_size=16).eval().requires_grad_(False)
    model, totals, parts = train_steps(spec, images, targets, steps=16, teacher=teacher)
    assert all(torch.isfinite(torch.tensor(totals))), totals
    first, last = sum(totals[:2]) / 2, sum(totals[-2:]) / 2
    assert last < 0.8 * first, totals
    assert parts == LOSS_PARTS[method] | ({"feature_kd"} if options.get("feature_distill") else set())
    # the options reached the network
    assert model.split == options.get("split", (2, 2, 3, 2))
    has_skip_norms = any(".skip." in name for name, _ in model.named_parameters())
    assert has_skip_norms == (method == "adn" and options.get("skip_aware_norms", True))


def test_one_summed_backward_gives_the_gradient_of_algorithm_1s_two():
    images, targets = torch.randn(8, 1, 16, 16), torch.randint(0, 10, (8,))
    model = METHODS.get("adn").build_model(make_spec("resnet_mini", "adn", "fake", "smoke"), INFO)
    grads = []
    for two_backward in (True, False):
        spec = make_spec("resnet_mini", "adn", "fake", "smoke", options={"two_backward": two_backward})
        model.zero_grad(set_to_none=True)
        METHODS.get("adn").train_step(images, targets, context(model, spec, step=0))
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any(".skip." in name for name in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_alpha_divergence_stays_finite_when_probabilities_underflow():
    # Confident logits (gaps > ~104) make float32 softmax probabilities exactly 0: p / q and
    # 0 * log 0 must not turn the loss, the logged divergence or the gradient into NaN.
    teacher = torch.tensor([[0.0, -200.0, 1.0], [0.0, -210.0, 1.0]])
    student = torch.tensor([[0.0, -5.0, 1.0], [0.0, -200.0, 1.0]], requires_grad=True)
    loss, divergence = alpha_divergence(student, teacher)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(divergence) and torch.isfinite(student.grad).all()
    assert divergence >= 0
    # ordinary logits: the alpha = 1 end is the usual KL(teacher || student)
    student, teacher = torch.randn(4, 10) * 3, torch.randn(4, 10) * 3
    _, kl = alpha_divergence(student, teacher, alpha_min=1.0, alpha_max=1.0)
    torch.testing.assert_close(kl, distillation_kl(student, teacher))


# ----------------------------------------------------------------------------- 2. parameters
@pytest.mark.parametrize("depth", ["TTTT", "TTFF", "FTFT"])
def test_individual_network_has_exactly_the_parameters_its_sub_network_uses(depth):
    net, layout = ARCHS.get("resnet_mini").build_net(10, 1, 28)  # the unmodified torchvision network
    adn = build_model("resnet_mini", 10)
    flags = SkipConfig.parse(depth, adn.num_stages).flags
    blocks = [(net.get_submodule(f"{stage.container}.{name}"), j < m, flag)
              for stage, m, flag in zip(layout.stages, adn.split, flags) for j, name in enumerate(stage.blocks)]
    skipped = sum(count(block) for block, mandatory, flag in blocks if flag and not mandatory)
    # The ADN adds one second norm set per norm of a mandatory block, except the shared
    # projection-shortcut norm; each sub-network uses exactly one of the two sets.
    second_norm_set = sum(count(norm) for block, mandatory, _ in blocks if mandatory
                          for path, norm in block.named_modules()
                          if isinstance(norm, nn.BatchNorm2d) and "downsample" not in path)
    assert second_norm_set > 0 and skipped > 0
    assert count(adn) == count(net) + second_norm_set

    spec = make_spec("resnet_mini", "individual", "fashion_mnist", "smoke", options={"depth": depth})
    individual = METHODS.get("individual").build_model(spec, SimpleNamespace(num_classes=10, in_channels=1,
                                                                             image_size=28))
    assert str(individual.depth) == depth
    assert count(individual) == count(adn) - second_norm_set - skipped
    assert count(extract_subnetwork(adn, depth)) == count(individual)


# ----------------------------------------------------------------------------- 3. kd teacher
def teacher_file(path, dataset: str, num_classes: int):
    spec = make_spec("resnet_mini", "individual", dataset, "smoke", options={"depth": "FFFF"})
    return str(save_checkpoint(path, build_individual("resnet_mini", "FFFF", num_classes), spec=spec.to_dict()))


@pytest.mark.parametrize("dataset, num_classes, message", [
    ("fashion_mnist", 10, "trained on fashion_mnist, not fake"),
    ("fake", 100, "has 100 classes, but fake has 10"),
])
def test_kd_individual_refuses_a_foreign_teacher_before_training(tmp_path, dataset, num_classes, message):
    teacher = teacher_file(tmp_path / "teacher.pt", dataset, num_classes)
    spec = make_spec("resnet_mini", "kd_individual", "fake", "smoke", options={"depth": "TTTT", "teacher": teacher},
                     recipe={"train_subset": None, "val_size": 32, "test_subset": None})  # fake has 320 images
    with pytest.raises(ReproError, match=message):
        train(spec, Runtime(results_dir=str(tmp_path / "results"), device="cpu", progress=False))
    assert not RunRecord(run_directory(str(tmp_path / "results"), spec)).exists()  # nothing was trained


def test_kd_individual_accepts_a_matching_teacher_and_needs_one(tmp_path):
    prepare = METHODS.get("kd_individual").prepare
    teacher = teacher_file(tmp_path / "teacher.pt", "fake", 10)
    spec = make_spec("resnet_mini", "kd_individual", "fake", "smoke", options={"depth": "TTTT", "teacher": teacher})
    model = prepare(spec, INFO, str(tmp_path), "cpu")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    no_teacher = make_spec("resnet_mini", "kd_individual", "fake", "smoke", options={"depth": "TTTT"})
    with pytest.raises(ReproError, match="individual FFFF run"):
        prepare(no_teacher, INFO, str(tmp_path), "cpu")


def test_kd_individual_default_teacher_is_the_full_depth_of_its_architecture():
    from repro.methods.kd import default_teacher_spec

    for arch, full in (("resnet_mini", "FFFF"), ("mobilenet_v2_mini", "FFFFF")):
        student = make_spec(arch, "kd_individual", "fashion_mnist", "mini", seed=1, options={"depth": "T" * len(full)})
        individual = make_spec(arch, "individual", "fashion_mnist", "mini", seed=1, options={"depth": full})
        assert default_teacher_spec(student).run_id == individual.run_id


# ----------------------------------------------------------------------------- 4. AlphaNet sampling
class Recorder(nn.Module):
    """A stand-in network that records which sub-network each forward pass runs."""

    num_stages = 4

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 10)
        self.calls: list[SkipConfig] = []

    def forward(self, x, skip=None):
        self.calls.append(skip)
        return self.head(x)


def alphanet_configs(steps: int, **options) -> list[list[SkipConfig]]:
    """The sub-networks each of ``steps`` real AlphaNet steps runs, in order."""
    spec = make_spec("resnet_mini", "alphanet", "fake", "smoke", options=options)
    model, per_step = Recorder(), []
    images, targets = torch.randn(2, 3), torch.tensor([0, 1])
    for step in range(steps):
        model.calls = []
        ctx = StepContext(model=model, module=model, options=spec.options, criterion=soft_cross_entropy,
                          backward=lambda loss: None, autocast=nullcontext, seed=0, global_step=step)
        alphanet_step(images, targets, ctx)
        per_step.append(model.calls)
    return per_step


def test_alphanet_without_duplicates_samples_distinct_middle_networks_and_covers_them():
    super_net, base_net = SkipConfig.super_net(4), SkipConfig.base_net(4)
    per_step = alphanet_configs(500, allow_duplicates=False)
    for calls in per_step:  # sandwich: max net, 2 sampled, min net, all different
        assert len(calls) == 4 and calls[0] == super_net and calls[-1] == base_net
        assert len(set(calls)) == 4, calls
    sampled = {c for calls in per_step for c in calls[1:-1]}
    assert sampled == set(SkipConfig.all(4)[1:-1])  # all 2^4 - 2 middle networks occur


def test_alphanet_by_default_draws_each_flag_uniformly_with_repeats():
    per_step = alphanet_configs(500)
    draws = [calls[1:-1] for calls in per_step]
    assert all(len(calls) == 4 and calls[0] == SkipConfig.super_net(4) and calls[-1] == SkipConfig.base_net(4)
               for calls in per_step)
    flat = [c for pair in draws for c in pair]
    assert set(flat) == set(SkipConfig.all(4))  # the max and min nets can be drawn too
    assert any(a == b for a, b in draws)  # a draw may repeat within a step (AlphaNet's default)
    skip_rate = torch.tensor([c.flags for c in flat], dtype=torch.float).mean(0)
    assert torch.allclose(skip_rate, torch.full((4,), 0.5), atol=0.06), skip_rate
    assert alphanet_configs(8)[-1] == per_step[7]  # seeded by (seed, step): the same after a resume


def test_alphanet_sampler_returns_what_exists_without_duplicates():
    generator = torch.Generator().manual_seed(0)
    configs = sample_configs(2, 5, generator, allow_duplicates=False)  # S=2: only FT and TF are in between
    assert sorted(map(str, configs)) == ["FT", "TF"]


# ----------------------------------------------------------------------------- 5. CLI
def test_cli_methods_lists_each_registered_method_on_one_line():
    result = CliRunner().invoke(cli, ["methods"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == len(METHODS.names())
    assert sorted(line.split()[0] for line in lines) == sorted(METHODS.names())
    for line in lines:
        assert METHODS.get(line.split()[0]).summary in line
