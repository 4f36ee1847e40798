"""Deployment (issue 17): choosing a sub-network under a budget (repro.select), switching per
request from several threads (repro.AdaptiveRunner), exporting one (ONNX, torch.export)."""
import json
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import repro  # noqa: E402
from cli import cli  # noqa: E402
from repro.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from repro.deploy.frontier import best_within, pareto_frontier  # noqa: E402
from repro.deploy.runner import shared_subnetwork  # noqa: E402
from repro.errors import ReproError  # noqa: E402
from repro.measure.flops import flops_table  # noqa: E402
from repro.models import build_individual, build_model  # noqa: E402
from tests.conftest import needs_fashion  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared with other work: one thread is faster and steadier
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model("resnet_mini", 10)
    net.train()
    with torch.no_grad():  # non-trivial norm statistics, so skip-aware norms change the outputs
        for config in ("FFFF", "TTTT", "TFTF"):
            net(torch.randn(64, 1, 28, 28), config)
    return net.eval()


@pytest.fixture(scope="module")
def table(model):
    """A made-up but plausible table: accuracy grows with kept blocks, latency with GFLOPs."""
    rows = []
    for i, config in enumerate(model.configs()):
        kept = str(config).count("F")
        rows.append({"skip": str(config), "acc1_pct": 70.0 + 4 * kept + (i % 3) * 0.5,
                     "latency_ms": 1.0 + kept + (i % 2) * 0.3, "gflops": 0.01 + 0.002 * kept + i * 1e-5,
                     "energy_mj": float("nan")})
    return pd.DataFrame(rows)


def dominated(table, cost):
    """Brute force: the skips some other row beats (no worse on both, better on one)."""
    out = set()
    for _, a in table.iterrows():
        for _, b in table.iterrows():
            if (b[cost] <= a[cost] and b.acc1_pct >= a.acc1_pct) and (b[cost] < a[cost] or b.acc1_pct > a.acc1_pct):
                out.add(a.skip)
    return out


# --------------------------------------------------------------------------- frontier and select
def test_pareto_frontier_and_budget():
    t = pd.DataFrame({"skip": list("ABCDE"), "acc1_pct": [70, 65, 80, 75, 80],
                      "latency_ms": [1.0, 2.0, 3.0, 3.0, 4.0]})
    frontier = pareto_frontier(t, "latency_ms")
    assert list(frontier.skip) == ["A", "C"]  # B, D cost more for less; E costs more for the same
    assert best_within(frontier, "latency_ms", 2.5) == 0 and best_within(frontier, "latency_ms", 3.0) == 1
    assert best_within(frontier, "latency_ms", 0.5) is None


def test_select_returns_the_best_sub_network_within_the_budget(model, table):
    accuracy = table[["skip", "acc1_pct"]]
    for budget in (1.5, 2.4, 3.3, 5.0, 100.0):
        choice = repro.select(model, accuracy, budget_ms=budget, measurements=table)
        fitting = table[table.latency_ms <= budget]
        assert choice.row.acc1_pct == fitting.acc1_pct.max()
        assert choice.frontier.chosen.sum() == 1 and choice.skip == choice.row.skip
        undominated = table[~table.skip.isin(dominated(table, "latency_ms"))]
        assert set(choice.frontier.skip) <= set(undominated.skip)  # of exact ties, one is kept
        assert set(zip(choice.frontier.latency_ms, choice.frontier.acc1_pct)) == set(
            zip(undominated.latency_ms, undominated.acc1_pct))
        assert choice.frontier.latency_ms.is_monotonic_increasing and choice.frontier.acc1_pct.is_monotonic_increasing
    by_flops = repro.select(model, accuracy, budget_gflops=0.0161, measurements=table)
    assert by_flops.row.gflops <= 0.0161 and by_flops.cost == "gflops"


@pytest.mark.parametrize("budgets, message", [
    (dict(budget_ms=0.5), "no sub-network fits 0.5 ms: the cheapest, TTTT, needs 1.3 ms"),
    (dict(budget_ms=1.0, budget_gflops=1.0), "exactly one budget"),
    (dict(), "exactly one budget"),
    (dict(budget_mj=5.0), "no energy counter"),
])
def test_select_refusals_are_one_line(model, table, budgets, message):
    table = table.assign(device="cpu")
    with pytest.raises(ReproError, match=message):
        repro.select(model, table[["skip", "acc1_pct"]], measurements=table, **budgets)


def test_select_needs_every_sub_networks_accuracy(model, table):
    with pytest.raises(ReproError, match="no accuracy for sub-network TTTT"):
        repro.select(model, table[table.skip != "TTTT"], budget_ms=3, measurements=table)
    with pytest.raises(ReproError, match="adaptive-depth"):
        repro.select(build_individual("resnet_mini", "TTTT"), table, budget_ms=3, measurements=table)


def test_select_measures_once_then_reuses_the_measurement(model, table, tmp_path):
    accuracy = table[["skip", "acc1_pct"]]
    first = repro.select(model, accuracy, budget_gflops=0.016, repeats=2, cache_dir=tmp_path)
    assert first.measurement == "measured"
    assert (first.table.device == "cpu").all() and (first.table.latency_ms > 0).all() and len(first.table) == 16
    again = repro.select(model, accuracy, budget_gflops=0.016, repeats=2, cache_dir=tmp_path)
    assert again.measurement.startswith(str(tmp_path)) and again.skip == first.skip
    assert again.table.latency_ms.tolist() == pytest.approx(first.table.latency_ms.tolist())
    assert repro.select(model, accuracy, budget_gflops=0.016, repeats=2, cache_dir=tmp_path,
                        remeasure=True).measurement == "measured"
    key = json.loads(next(tmp_path.glob("latency-*.json")).read_text())
    assert key["batch_size"] == 1 and key["threads"] == 1 and key["device"].startswith("cpu")


@pytest.fixture(scope="module")
def run_dir(model, table, tmp_path_factory):
    """A run directory as training leaves it: spec.json, eval.csv, model.pt."""
    folder = tmp_path_factory.mktemp("run")
    (folder / "spec.json").write_text("{}")
    evaluation = pd.concat([table.assign(split="val", acc1_pct=50.0), table.assign(split="test")])
    evaluation[["split", "skip", "acc1_pct", "gflops"]].to_csv(folder / "eval.csv", index=False)
    save_checkpoint(folder / "model.pt", model)
    return folder


def test_select_command_joins_the_runs_eval_csv(run_dir, table, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "frontier.csv"
    result = CliRunner().invoke(cli, ["select", str(run_dir / "model.pt"), "--budget-gflops", "0.016",
                                      "--repeats", "2", "--threads", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    frontier = pd.read_csv(out)
    chosen = frontier[frontier.chosen].iloc[0]
    real = flops_table(load_checkpoint(run_dir / "model.pt"), (1, 28, 28)).merge(table[["skip", "acc1_pct"]])
    expected = real[real.gflops <= 0.016].acc1_pct.max()  # test split, not val's 50%
    assert chosen.acc1_pct == expected and chosen.gflops <= 0.016
    assert f"best: {chosen.skip}" in result.output and "eval.csv (test split)" in result.output
    assert "latency: measured" in result.output
    again = CliRunner().invoke(cli, ["select", str(run_dir / "model.pt"), "--budget-gflops", "0.00001",
                                     "--repeats", "2", "--threads", "1"])
    assert again.exit_code == 2
    assert again.output.strip().startswith("error: no sub-network fits 1e-05 GFLOPs: the cheapest, TTTT")


@needs_fashion
def test_select_command_evaluates_without_a_run_record(model, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    save_checkpoint(tmp_path / "alone.pt", model)
    result = CliRunner().invoke(cli, ["select", str(tmp_path / "alone.pt"), "--budget-ms", "1000",
                                      "--test-subset", "200", "--repeats", "2", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "evaluated on 200 fashion_mnist test images" in result.output


# --------------------------------------------------------------------------- the runner
def test_runner_serves_different_budgets_from_several_threads_at_once(model, table):
    runner = repro.AdaptiveRunner(model, table)
    budgets = [1.2, 2.4, 3.3, 4.4, 5.5, 100.0]
    chosen = [runner.choose(budget_ms=b) for b in budgets]
    assert len(set(chosen)) >= 4
    inputs = [torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(i)) for i in range(len(budgets))]
    with torch.no_grad():
        expected = [model(x, skip=skip) for x, skip in zip(inputs, chosen)]
    start, failures = threading.Barrier(len(budgets)), []

    def serve(i):
        start.wait()  # all threads call at once
        for _ in range(15):
            logits, skip = runner.run(inputs[i], budget_ms=budgets[i])
            if skip != chosen[i] or not torch.allclose(logits, expected[i], rtol=0, atol=1e-5):
                failures.append((i, skip))
    threads = [threading.Thread(target=serve, args=(i,)) for i in range(len(budgets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_runner_choices(model, table):
    runner = repro.AdaptiveRunner(model, table)
    best = table.sort_values("acc1_pct").skip.iloc[-1]
    assert runner.choose() == best  # no budget: the most accurate
    assert runner.choose(budget_ms=0.1) == "TTTT"  # nothing fits: the cheapest, best effort
    assert runner.choose(budget_gflops=0.0125) in set(pareto_frontier(table, "gflops").skip)
    assert set(runner.networks) <= set(table.skip)
    with pytest.raises(ReproError, match="exactly one budget"):
        runner.choose(budget_ms=1, budget_gflops=1)
    with pytest.raises(ReproError, match="energy_mj"):
        runner.choose(budget_mj=10)  # the table has no energy


def test_runner_networks_share_the_models_weights(model):
    plain = shared_subnetwork(model, "TFFF")
    net = model.net
    assert plain.conv1.weight is net.conv1.weight
    # A mandatory block of a skipping stage uses its skip-aware norm; of a full stage, the main one.
    assert plain.layer1[0].bn1.weight is net.layer1[0].bn1.skip.weight
    assert plain.layer1[0].bn1.running_mean is net.layer1[0].bn1.skip.running_mean
    assert plain.layer2[0].bn1.weight is net.layer2[0].bn1.weight
    assert len(plain.layer1) == 2 and len(plain.layer2) == 4
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(plain.eval()(x), model(x, skip="TFFF"), rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- export
def test_onnx_export_runs_in_onnxruntime_like_the_adaptive_model(model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import onnx

    path = repro.export_subnetwork(model, "TTFF", tmp_path / "ttff.onnx", "onnx")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["skip"] == "TTFF" and meta["arch"] == "resnet_mini"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # the batch dimension is dynamic
        x = torch.randn(batch, 1, 28, 28)
        (logits,) = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            assert torch.allclose(torch.from_numpy(logits), model(x, skip="TTFF"), rtol=0, atol=1e-4)


def test_pt2_export_command_loads_in_torch_like_the_adaptive_model(run_dir, model, tmp_path):
    out = tmp_path / "base.pt2"
    result = CliRunner().invoke(cli, ["export", str(run_dir / "model.pt"), "--skip", "base", "--format", "pt2",
                                      "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "TTTT" in result.output
    program = torch.export.load(str(out))
    for batch in (1, 4):
        x = torch.randn(batch, 1, 28, 28)
        with torch.no_grad():
            assert torch.allclose(program.module()(x), model(x, skip="TTTT"), rtol=0, atol=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--skip", "TTF", "--format", "pt2"], "invalid skip config"),
    (["--skip", "TTFF", "--format", "tflite"], "'tflite' is not one of"),
])
def test_export_refusals_are_one_line(run_dir, tmp_path, args, message):
    out = tmp_path / "never.pt2"
    result = CliRunner().invoke(cli, ["export", str(run_dir / "model.pt"), *args, "--output", str(out)])
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


# --------------------------------------------------------------------------- on a GPU
@pytest.mark.gpu
@needs_cuda
def test_runner_on_cuda(table):
    runner = repro.AdaptiveRunner(build_model("resnet_mini", 10).cuda().eval(), table)
    x = torch.randn(2, 1, 28, 28, device="cuda")
    logits, skip = runner.run(x, budget_ms=3.3)
    with torch.no_grad():
        assert torch.allclose(logits, runner.model(x, skip=skip), rtol=0, atol=1e-4)
