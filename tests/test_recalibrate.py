"""BatchNorm recalibration (issue 8): it restores a model whose statistics were corrupted,
never changes the caller's model, leaves a normally trained individual network where it was,
and the CLI prints both column sets."""

import pytest
import torch
from click.testing import CliRunner

from cli import cli
from repro.data import load_data
from repro.evaluate import evaluate, evaluate_recalibrated
from repro.models import build_model
from repro.presets import make_spec
from repro.recalibrate import NORM_TYPES, bn_drift, recalibrated, recalibration_images, used_norms
from repro.skip import SkipConfig
from repro.train import Runtime, train
from tests.conftest import FASHION, needs_fashion


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke-trained ADN and individual FFFF (seconds), with their run records."""
    if not FASHION.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    root = tmp_path_factory.mktemp("results")
    runs = {}
    for name, method, options in (("adn", "adn", {}), ("individual", "individual", {"depth": "FFFF"})):
        spec = make_spec("resnet_mini", method, "fashion_mnist", "smoke", options=options)
        runs[name] = train(spec, Runtime(results_dir=str(root), device="cpu", progress=False))
    return runs


@pytest.fixture(scope="module")
def data():
    return load_data("fashion_mnist", batch_size=128, augment=False, test_subset=1000)


def states(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@needs_fashion
def test_recalibration_restores_corrupted_statistics_and_leaves_the_model_alone(trained, data):
    model = trained["adn"].model.eval()
    for module in model.modules():
        if isinstance(module, NORM_TYPES):
            module.running_mean.add_(3.0)
            module.running_var.mul_(25.0)
    before = states(model)
    configs = [SkipConfig.super_net(4), SkipConfig.base_net(4)]
    broken = evaluate(model, data.test, configs)
    fixed = evaluate_recalibrated(model, {"test": data.test}, configs, recalibration_images(data.train, 1024))["test"]
    for bad, good in zip(broken, fixed):
        assert bad.acc1_pct < 40 and good.acc1_pct > bad.acc1_pct + 30, (bad, good)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the caller's model is never changed


@needs_fashion
def test_an_individual_network_keeps_its_accuracy_after_recalibration(trained):
    table = trained["individual"].record.evaluation()
    test = table[table["split"] == "test"].iloc[0]
    assert abs(test["acc1_pct_recalibrated"] - test["acc1_pct"]) < 5.0  # 500 test images: noise of a few points


@needs_fashion
def test_every_run_records_both_column_sets(trained):
    table = trained["adn"].record.evaluation()
    assert len(table) == 2 * 16
    for column in ("acc1_pct", "acc5_pct", "loss"):
        assert table[f"{column}_recalibrated"].notna().all()


def test_recalibration_uses_the_first_images_and_only_the_path_of_the_config():
    torch.manual_seed(0)
    batches = [torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28)]

    class Fake:
        def epoch(self, epoch):
            return iter((b, None) for b in batches)

    taken = recalibration_images(Fake(), 12)
    assert [len(b) for b in taken] == [8, 4] and torch.equal(taken[1], batches[1][:4])
    joined = recalibration_images(Fake(), 12, min_batch=10)  # the same images in fewer passes
    assert [len(b) for b in joined] == [12] and torch.equal(joined[0], torch.cat(taken))
    assert [len(b) for b in recalibration_images(Fake(), 16, min_batch=8)] == [8, 8]
    model = build_model("resnet_mini", 10, in_channels=1, image_size=28).eval()
    base = used_norms(model, SkipConfig.base_net(4), batches[0])
    super_ = used_norms(model, SkipConfig.super_net(4), batches[0])
    assert set(base) != set(super_) and all(name.endswith(".skip") or "downsample" in name or name == "bn1"
                                            for name in base if name not in super_)
    drift = bn_drift(model, SkipConfig.base_net(4), taken)
    # every stage's first Bottleneck widens the channels: four projection shortcuts, layer1-4
    assert list(drift["norm"]) == base and drift["shortcut"].sum() == 4
    copy = recalibrated(model, SkipConfig.base_net(4), taken)
    assert copy is not model and not copy.training


def test_recalibrated_evaluation_shares_stages_and_equals_one_copy_per_subnetwork():
    torch.manual_seed(0)
    model = build_model("resnet_mini", 10, in_channels=1, image_size=28)
    for module in model.modules():  # stored statistics far from any re-estimate
        if isinstance(module, NORM_TYPES):
            module.running_mean.uniform_(-1, 1)
    before = states(model)
    # evaluation batches of 16 with uneven last ones (24 = 16 + 8, 40 = 16 + 16 + 8)
    fake = load_data("fake", batch_size=8, eval_batch_size=16, augment=False, fake_shape=(1, 28, 28),
                     fake_sizes=(24, 24, 40), fake_num_classes=10)
    splits = {"val": fake.val, "test": fake.test}
    recalibration = recalibration_images(fake.train, 24)  # three batches of 8: a running average
    configs = model.configs()
    shared = evaluate_recalibrated(model, splits, configs, recalibration)
    for name, split in splits.items():
        alone = [evaluate(recalibrated(model, c, recalibration), split, [c], share_prefixes=False)[0]
                 for c in configs]
        assert [r.as_row() for r in shared[name]] == [r.as_row() for r in alone]
    stored = evaluate(model, splits["test"], configs)
    assert [r.loss for r in stored] != [r.loss for r in shared["test"]]  # the statistics did change
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@needs_fashion
def test_evaluate_cli_prints_stored_and_recalibrated_columns(trained, tmp_path):
    checkpoint = trained["adn"].record.model_file
    out = tmp_path / "eval.csv"
    result = CliRunner().invoke(cli, ["evaluate", str(checkpoint), "--test-subset", "256", "--skip", "FFFF,TTTT",
                                      "--recalibrate-bn", "512", "--output", str(out)])
    assert result.exit_code == 0, result.output
    header = out.read_text().splitlines()[0].split(",")
    assert {"acc1_pct", "acc1_pct_recalibrated", "acc5_pct_recalibrated", "loss_recalibrated"} <= set(header)
    drift = CliRunner().invoke(cli, ["norms", str(checkpoint), "--skip", "TTTT", "--bn-drift", "512"])
    assert drift.exit_code == 0 and "mean_abs_log_var_ratio" in drift.output
