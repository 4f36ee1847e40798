"""``reproduce all --preset smoke``: every artifact from real (tiny) runs, once per session.

The module fixture trains the smoke study (about 15 runs of 2,000 Fashion-MNIST images)
into a temporary results folder; the tests read what it wrote.
"""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cli import cli  # noqa: E402
import paper.reproduce as reproduce_module  # noqa: E402
from paper.artifacts import ARTIFACTS  # noqa: E402
from repro import precision  # noqa: E402
from repro.errors import ReproError  # noqa: E402
from repro.train import Runtime  # noqa: E402
from tests.conftest import needs_fashion  # noqa: E402

pytestmark = needs_fashion

TABLE_COLUMNS = {
    "table1": {"arch", "network", "skip", "gflops", "acc1_pct", "delta_vs_individual_pct", "paper_acc1_pct"},
    "table2": {"method_label", "step_ms", "ratio_to_individual", "extrapolated_epoch_h", "measured_epoch_s"},
    "table3": {"variant", "self_distillation", "skip_aware_norms", "super_acc1_pct", "base_acc1_pct"},
    "table4": {"strategy", "super_acc1_pct", "base_acc1_pct", "mean_subnet_acc1_pct"},
    "table5": {"arch", "S", "blocks", "split", "super_gflops", "base_gflops"},
    "table6": {"arch", "skip", "gflops", "params_m", "acc1_pct", "val_acc1_pct", "paper_acc1_pct"},
    "table7": {"split", "super_gflops", "base_gflops", "super_acc1_pct", "base_acc1_pct"},
}
FIGURES = ["fig3", "fig4", "fig5", "fig6", "fig7", "fig8"]


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    result = CliRunner().invoke(cli, ["reproduce", "all", "--preset", "smoke", "--results-dir", str(results),
                                      "--no-progress", "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return results / "smoke", result.output


def test_every_registered_artifact_is_checked():
    assert set(ARTIFACTS.names()) == set(TABLE_COLUMNS) | set(FIGURES)


@pytest.mark.parametrize("name", sorted(TABLE_COLUMNS))
def test_each_table_has_its_columns_and_rows(smoke_results, name):
    folder, _ = smoke_results
    table = pd.read_csv(folder / "tables" / f"{name}.csv")
    assert TABLE_COLUMNS[name] <= set(table.columns), set(table.columns)
    assert len(table) > 0
    markdown = (folder / "tables" / f"{name}.md").read_text()
    assert markdown.startswith(f"# {name}:") and "|" in markdown
    provenance = json.loads((folder / "tables" / f"{name}.provenance.json").read_text())
    assert provenance["artifact"] == name and provenance["git"]["commit"]
    # the header names the runs' commits, or says that no run went into the table
    assert ("Runs trained from commit " in markdown) == bool(provenance["runs"])
    assert ("from measurements alone" in markdown) == (not provenance["runs"])
    for run in provenance["runs"]:
        assert (folder / "runs" / run["run_id"] / "eval.csv").is_file()


def test_table1_compares_with_the_paper(smoke_results):
    folder, output = smoke_results
    table = pd.read_csv(folder / "tables" / "table1.csv").set_index("network")
    assert list(table.index) == ["ADN super-net", "individual", "ADN base-net", "individual-Base"]
    assert table.loc["ADN super-net", "paper_acc1_pct"] == pytest.approx(77.6)
    delta = table.loc["ADN base-net", "acc1_pct"] - table.loc["individual-Base", "acc1_pct"]
    assert table.loc["ADN base-net", "delta_vs_individual_pct"] == pytest.approx(delta)
    markdown = (folder / "tables" / "table1.md").read_text()
    assert "## Against the paper" in markdown
    assert markdown in output  # printed as well as written
    # 16 sub-networks in table 6, super-net first
    table6 = pd.read_csv(folder / "tables" / "table6.csv")
    assert len(table6) == 16 and table6["skip"].iloc[0] == "FFFF"
    assert table6["acc1_pct"].between(0, 100).all()


@pytest.mark.parametrize("name", FIGURES)
def test_each_figure_is_written(smoke_results, name):
    folder, _ = smoke_results
    png, pdf = folder / "figures" / f"{name}.png", folder / "figures" / f"{name}.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert (folder / "figures" / f"{name}.provenance.json").is_file()


def test_measurements_that_read_no_run_are_taken_before_training(smoke_results):
    _, output = smoke_results
    lines = output.splitlines()
    first_training = next(i for i, line in enumerate(lines) if line.startswith(("[1/", "training ")))
    before = {line.split()[1] for line in lines[:first_training] if line.startswith("measuring ")}
    assert before == {"timing", "latency", "depth_width_latency", "layouts"}
    assert "measuring norms ..." in output[output.index(lines[first_training]):]


def test_runs_are_reused_not_retrained(smoke_results):
    folder, _ = smoke_results
    before = {p: p.stat().st_mtime_ns for p in (folder / "runs").glob("*/eval.csv")}
    result = CliRunner().invoke(cli, ["reproduce", "table1", "--preset", "smoke", "--results-dir",
                                      str(folder.parent), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "0 to train" in result.output
    assert not any(line.startswith(("[1/", "training ")) for line in result.output.splitlines())  # no run trained
    assert before == {p: p.stat().st_mtime_ns for p in (folder / "runs").glob("*/eval.csv")}


def test_dry_run_lists_runs_and_trains_nothing(tmp_path):
    result = CliRunner().invoke(cli, ["reproduce", "table1", "fig4", "--dry-run", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "10 runs, 10 to train" in result.output and "expected ~" in result.output
    assert "resnet_mini-kd_individual-TTTT" in result.output and "resnet_mini-alphanet" in result.output
    assert not (tmp_path / "quick" / "runs").exists()


def test_reproduce_says_a_missing_bf16_unit_once_and_its_runs_do_not_repeat_it(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    notes_in_runs = []

    def fake_train(spec, runtime):  # what a run would print is the engine's (test_engine); here, its choice
        notes_in_runs.append(runtime.machine_notes)
        raise ReproError("not trained in this test")

    monkeypatch.setattr(reproduce_module, "train", fake_train)
    said = []
    with pytest.raises(ReproError):
        reproduce_module.reproduce(["table3"], "mini", runtime=Runtime(results_dir=str(tmp_path), device="cpu"),
                                   archs=("resnet_mini",), echo=said.append)
    assert sum("this CPU has no bf16 units" in line for line in said) == 1
    assert notes_in_runs and not any(notes_in_runs)


def test_a_dry_run_says_when_its_bf16_runs_would_train_without_bf16_units_here(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    command = ["reproduce", "table1", "--preset", "mini", "--arch", "resnet_mini", "--dry-run", "--results-dir",
               str(tmp_path), "--device", "cpu"]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    assert result.output.count("this CPU has no bf16 units") == 1  # once, not once per run
    assert "bf16 units" not in CliRunner().invoke(cli, [*command, "--no-train"]).output  # nothing to train
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert "bf16 units" not in CliRunner().invoke(cli, command).output


def test_a_run_to_resume_is_estimated_by_the_epochs_it_has_left(tmp_path, monkeypatch):
    from paper import plan
    from paper.plan import PlannedRun, describe_plan, expected_seconds
    from repro.presets import make_spec
    from repro.runs import RunRecord, run_directory

    monkeypatch.setattr(plan, "COMMITTED_RESULTS", tmp_path)  # no finished run anywhere: the built-in rates
    spec = make_spec("resnet_mini", "adn", "fashion_mnist", "mini")  # 15 epochs
    record = RunRecord(run_directory(tmp_path, spec))
    record.create(spec)
    for epoch in range(1, 11):
        record.append_metrics({"epoch": epoch})
    record.checkpoint_file.write_bytes(b"checkpoint")
    lines, total = describe_plan({spec.run_id: PlannedRun(spec, record)}, tmp_path)
    assert "to resume" in lines[0]
    assert total == pytest.approx(expected_seconds(spec, {}) / 3)


def test_within_a_seed_the_run_nearest_its_end_trains_first_and_students_last(tmp_path):
    from paper.plan import PlannedRun, training_order
    from repro.presets import make_spec
    from repro.runs import RunRecord, run_directory

    def planned(method, depth, seed, epochs_done):
        options = {"depth": depth} if depth else None
        spec = make_spec("resnet_mini", method, "fashion_mnist", "mini", seed=seed, options=options)
        record = RunRecord(run_directory(tmp_path, spec))
        record.create(spec)
        for epoch in range(1, epochs_done + 1):
            record.append_metrics({"epoch": epoch})
        return PlannedRun(spec, record)

    new_adn, half_done, nearly_done = planned("adn", None, 0, 0), planned("individual", "FFFF", 0, 7), \
        planned("individual", "TTTT", 0, 14)
    next_seed, student = planned("individual", "FFFF", 1, 12), planned("kd_individual", "TTTT", 0, 10)
    order = training_order([student, next_seed, new_adn, half_done, nearly_done])
    assert order == [nearly_done, half_done, new_adn, next_seed, student]


def on_cores(monkeypatch, threads: int, cores: int = 2) -> None:
    """Run records written from now on say they trained with ``threads`` threads on ``cores`` cores."""
    from repro import runs
    real = runs.hardware
    monkeypatch.setattr(runs, "hardware", lambda: {**real(), "torch_threads": threads, "cpu_count": cores})


def test_a_run_resumed_on_another_device_names_both_and_gives_no_cpu_rate(tmp_path, monkeypatch):
    from paper.plan import measured_rates
    from repro.presets import make_spec
    from repro.runs import RunRecord, hardware, run_directory

    on_cores(monkeypatch, threads=1)
    spec = make_spec("resnet_mini", "adn", "fashion_mnist", "mini")
    record = RunRecord(run_directory(tmp_path, spec))
    record.create(spec)
    # a first segment on a GPU machine, written before segments named their hardware
    env = record.env()
    env["hardware"] = {**env["hardware"], "cpu": "Intel Xeon", "cuda_devices": ["NVIDIA H200"]}
    env["segments"] = [{"started_at": "2026-11-27T05:33:08+00:00", "resumed_from": None,
                        "command": "cli.py reproduce table1 --device cuda", "git": env["git"]}]
    record.env_file.write_text(json.dumps(env))
    record.append_metrics({"epoch": 1, "images_per_s": 3000.0})
    record.end_segment(record.start_segment({"epoch": 1, "step": 0}, device="cpu"), "finished")
    record.eval_file.write_text("split,skip,acc1_pct\n")
    here = hardware()["cpu"]
    assert [d["kind"] for d in record.segment_devices()] == ["cuda", "cpu"]
    assert record.device_names() == f"NVIDIA H200, {here}"
    assert measured_rates(tmp_path) == {}  # its images/s are no CPU rate
    from paper.measurements import FinishedRun
    from paper.reproduce import trained_on
    run = FinishedRun("ADN", "resnet_mini", "adn", 0, record)
    assert trained_on([run], "cpu") == [] and trained_on([run], "cuda") == []  # table 2 shows its epochs nowhere
    record.env_file.write_text(json.dumps({**record.env(), "segments": record.env()["segments"][1:]}))
    assert measured_rates(tmp_path) == {("resnet_mini", "adn", None, None, 128, False): [3000.0]}
    assert trained_on([run], "cpu") == [run]


def finished_adn(results_dir, seed: int, images_per_s: float, **segment_notes):
    """A finished mini ADN run record (bf16) under ``results_dir`` that trained at ``images_per_s``."""
    from repro.presets import make_spec
    from repro.runs import RunRecord, run_directory

    spec = make_spec("resnet_mini", "adn", "fashion_mnist", "mini", seed=seed)
    record = RunRecord(run_directory(results_dir, spec))
    record.create(spec)
    record.append_metrics({"epoch": 1, "images_per_s": images_per_s})
    record.end_segment(record.start_segment(None, device="cpu", **segment_notes), "finished")
    record.eval_file.write_text("split,skip,acc1_pct\n")
    return spec


def test_a_bf16_plan_is_estimated_from_runs_on_cpus_of_this_machines_kind(tmp_path, monkeypatch):
    from paper.plan import expected_seconds, measured_rates

    on_cores(monkeypatch, threads=1)
    spec = finished_adn(tmp_path, 0, 330.0)  # before segments said, or with bf16 units
    finished_adn(tmp_path, 1, 110.0, bf16_kernels=precision.FP32_PRODUCTS)
    rates = measured_rates(tmp_path)
    assert rates == {("resnet_mini", "adn", None, None, 128, False): [330.0],
                     ("resnet_mini", "adn", None, None, 128, True): [110.0]}
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    without_units = expected_seconds(spec, rates)
    assert without_units == pytest.approx(15 * 55_000 / (2 * 110.0) * 1.1)  # alone on both cores
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert expected_seconds(spec, rates) == pytest.approx(without_units / 3)


@pytest.mark.parametrize("threads, cores, images_per_s", [(1, 2, 110.0), (2, 2, 220.0), (4, 2, 220.0)])
def test_a_plan_counts_a_finished_runs_speed_per_thread_it_had(tmp_path, monkeypatch, threads, cores, images_per_s):
    """One run per core beside another (110 images/s each) is what one run on both cores
    does (220): both estimate a new run alone on the plan's 2 cores at 220 images/s; threads
    beyond the cores count as the cores."""
    from paper.plan import expected_seconds, measured_rates

    monkeypatch.setattr(precision, "native_bf16", lambda device: True)  # runs and plan on bf16 units
    on_cores(monkeypatch, threads, cores)
    spec = finished_adn(tmp_path, 0, images_per_s)
    assert expected_seconds(spec, measured_rates(tmp_path)) == pytest.approx(15 * 55_000 / 220.0 * 1.1)


def test_individual_networks_of_other_depths_are_estimated_apart(tmp_path, monkeypatch):
    """A full-depth and a base-depth individual network train at different speeds: each
    estimate comes from runs of its own depth, and a depth never trained falls back to the
    built-in rate."""
    from paper.plan import CPU_IMAGES_PER_S, expected_seconds, measured_rates
    from repro.presets import make_spec
    from repro.runs import RunRecord, run_directory

    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    on_cores(monkeypatch, threads=2, cores=2)
    specs = {}
    for depth, images_per_s in (("FFFF", 300.0), ("TTTT", 450.0)):
        spec = specs[depth] = make_spec("resnet_mini", "individual", "fashion_mnist", "mini",
                                        options={"depth": depth})
        record = RunRecord(run_directory(tmp_path, spec))
        record.create(spec)
        record.append_metrics({"epoch": 1, "images_per_s": images_per_s})
        record.end_segment(record.start_segment(None, device="cpu"), "finished")
        record.eval_file.write_text("split,skip,acc1_pct\n")
    rates = measured_rates(tmp_path)
    assert expected_seconds(specs["FFFF"], rates) == pytest.approx(15 * 55_000 / 300.0 * 1.1)
    assert expected_seconds(specs["TTTT"], rates) == pytest.approx(15 * 55_000 / 450.0 * 1.1)
    untrained = make_spec("resnet_mini", "individual", "fashion_mnist", "mini", options={"depth": "TTFF"})
    assert expected_seconds(untrained, rates) == pytest.approx(15 * 55_000 / CPU_IMAGES_PER_S["resnet_mini"] * 1.1)


def test_a_study_trained_anew_is_estimated_from_the_committed_runs(tmp_path, monkeypatch):
    """A dry run for a new results folder holds no finished runs: the committed records'
    speeds estimate it, each record counted once when the folder is the committed one."""
    from paper import plan
    from paper.plan import PlannedRun, describe_plan
    from repro.runs import RunRecord, run_directory

    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    on_cores(monkeypatch, threads=2, cores=2)
    committed, fresh = tmp_path / "committed", tmp_path / "fresh"
    finished_adn(committed, 0, 220.0)
    monkeypatch.setattr(plan, "COMMITTED_RESULTS", committed)
    spec = finished_adn(tmp_path / "elsewhere", 1, 1.0)  # the spec of an unfinished seed 1 run
    entry = PlannedRun(spec, RunRecord(run_directory(fresh, spec)))
    _, total = describe_plan({spec.run_id: entry}, fresh)
    assert total == pytest.approx(15 * 55_000 / 220.0 * 1.1)
    assert plan.measured_rates(committed, committed) == plan.measured_rates(committed)  # counted once


def test_a_run_whose_segments_trained_on_different_thread_counts_gives_no_rate(tmp_path, monkeypatch):
    from paper.plan import measured_rates
    from repro.runs import RunRecord, run_directory

    on_cores(monkeypatch, threads=2)
    spec = finished_adn(tmp_path, 0, 220.0)
    record = RunRecord(run_directory(tmp_path, spec))
    on_cores(monkeypatch, threads=1)
    record.end_segment(record.start_segment({"epoch": 1, "step": 0}, device="cpu"), "finished")
    assert measured_rates(tmp_path) == {}


def test_a_no_train_dry_run_counts_no_training_time(tmp_path):
    result = CliRunner().invoke(cli, ["reproduce", "table1", "--no-train", "--dry-run", "--results-dir",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "unfinished left out (--no-train)" in result.output and "training ~" not in result.output
    assert "left out   resnet_mini-adn" in result.output and "to train" not in result.output


def test_a_measurement_never_taken_at_these_settings_is_estimated_by_its_work(tmp_path):
    from paper.plan import expected_measure_seconds
    from paper.study import STUDIES
    folder = tmp_path / "other" / "measurements"
    folder.mkdir(parents=True)
    mini = STUDIES["mini"]  # nearer in work than the quick preset's built-in estimate
    settings = {"arch": "resnet50", "batch": mini.timing_batch, "steps": mini.timing_steps + 1,
                "epoch_images": 1281167}
    (folder / "timing.json").write_text(json.dumps({"settings": settings, "wall_s": 100.0}))
    seconds = expected_measure_seconds("timing", mini, tmp_path)
    assert seconds == pytest.approx(100.0 * mini.timing_steps / (mini.timing_steps + 1))


def test_a_measurement_on_another_architecture_is_scaled_by_its_flops():
    from paper.plan import _work
    from repro.measure.flops import arch_summary

    gflops = arch_summary(["resnet50", "resnet_mini"]).set_index("arch")["super_gflops"]
    big = {"arch": "resnet50", "batch": 16, "steps": 3, "epoch_images": 1281167}
    small = {**big, "arch": "resnet_mini", "batch": 32}
    assert _work(small) / _work(big) == pytest.approx(2 * gflops["resnet_mini"] / gflops["resnet50"])
    # a resolution other than the architecture's own scales quadratically
    assert _work({**big, "resolution": 112}) == pytest.approx(_work(big) / 4)


def test_the_extra_baselines_train_at_most_two_seeds_in_every_artifact(tmp_path):
    result = CliRunner().invoke(cli, ["reproduce", "fig4", "table2", "--preset", "mini", "--seeds", "3", "--arch",
                                      "resnet_mini", "--dry-run", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for method in ("alphanet", "stochastic_depth"):
        assert [s for s in range(3) if f"resnet_mini-{method}-fashion_mnist-s{s}-" in result.output] == [0, 1]
    assert "resnet_mini-adn-fashion_mnist-s2-" in result.output


def test_no_train_writes_what_it_can_and_skips_the_rest(tmp_path):
    result = CliRunner().invoke(cli, ["reproduce", "table5", "fig3", "--preset", "smoke", "--no-train",
                                      "--results-dir", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "skipped fig3: none of its 2 runs has finished" in result.output
    assert (tmp_path / "smoke" / "tables" / "table5.md").is_file()
    assert not (tmp_path / "smoke" / "figures").exists() and not list((tmp_path / "smoke").glob("runs/*/eval.csv"))


def test_no_train_writes_an_artifact_from_its_finished_runs_and_names_the_missing(smoke_results, tmp_path):
    import shutil

    folder, _ = smoke_results
    copy = tmp_path / "smoke"
    shutil.copytree(folder, copy)
    individual = next((copy / "runs").glob("resnet_mini-individual-FFFF-*"))
    shutil.rmtree(individual)
    result = CliRunner().invoke(cli, ["reproduce", "table1", "--preset", "smoke", "--no-train", "--results-dir",
                                      str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    markdown = (copy / "tables" / "table1.md").read_text()
    assert f"**Incomplete**: written with `--no-train` while 1 of its runs had not finished (`{individual.name}`)" \
        in markdown
    provenance = json.loads((copy / "tables" / "table1.provenance.json").read_text())
    assert provenance["unfinished_runs"] == [individual.name] and len(provenance["runs"]) == 2
    assert not individual.exists()  # nothing was trained


def test_a_results_folder_that_cannot_be_written_is_refused(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("keep")
    result = subprocess.run([sys.executable, "cli.py", "reproduce", "table5", "--preset", "smoke",
                             "--results-dir", str(blocker / "sub")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "cannot write" in result.stderr and "Traceback" not in result.stderr
    assert blocker.read_text() == "keep"


def test_redrawing_a_figure_leaves_the_same_pdf_bytes(tmp_path):
    import time

    import matplotlib.pyplot as plt

    from paper.reproduce import save_figure

    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    first = save_figure(figure, tmp_path / "a.pdf").read_bytes()
    time.sleep(1.1)  # the PDF date has one-second resolution
    assert save_figure(figure, tmp_path / "a.pdf").read_bytes() == first
    plt.close(figure)


def test_table2_says_its_measured_epochs_are_not_judged():
    from paper.reproduce import table_markdown
    from paper.study import STUDIES

    table = pd.DataFrame({"method_label": ["individual FFFF"], "step_ms": [10.0]})
    markdown = table_markdown(ARTIFACTS.get("table2"), STUDIES["mini"], table, [])
    assert "indicative only and not judged" in markdown.split("| individual FFFF")[1]
    assert "indicative only" not in table_markdown(ARTIFACTS.get("table5"), STUDIES["mini"], table, [])


def test_timings_off_the_cpu_are_cached_and_drawn_beside_the_cpus(tmp_path):
    from paper.measurements import MEASUREMENTS, MeasureContext, cache_files, is_cached, timed_on
    from paper.reproduce import artifact_stem, table_markdown
    from paper.study import STUDIES

    mini = STUDIES["mini"]
    folder = tmp_path / "measurements"
    folder.mkdir()
    cpu_info, cpu_data = cache_files("timing", folder)
    assert (cpu_info.name, cpu_data.name) == ("timing.json", "timing.csv")
    assert cache_files("timing", folder, "cuda:0")[1].name == "timing-cuda.csv"
    assert cache_files("norms", folder, "cuda")[1].name == "norms.csv"  # no timing: one file for every device
    settings = MEASUREMENTS.get("timing").settings(mini)
    cpu_info.write_text(json.dumps({"settings": settings, "runs": []}))
    cpu_data.write_text("step_ms\n1.0\n")
    assert is_cached("timing", MeasureContext(mini, [], device="cpu"), folder)
    assert not is_cached("timing", MeasureContext(mini, [], device="cuda"), folder)  # the CPU's is no GPU timing

    assert artifact_stem(ARTIFACTS.get("table2"), "cuda") == "table2-cuda"
    assert artifact_stem(ARTIFACTS.get("fig6"), "cuda:1") == "fig6-cuda"
    assert artifact_stem(ARTIFACTS.get("table2"), "cpu") == "table2"
    assert artifact_stem(ARTIFACTS.get("table1"), "cuda") == "table1"  # accuracy does not depend on the device
    table = pd.DataFrame({"method_label": ["individual FFFF"], "step_ms": [10.0]})
    markdown = table_markdown(ARTIFACTS.get("table2"), mini, table, [], stem="table2-cuda")
    assert markdown.startswith("# table2-cuda:") and "--device cuda`" in markdown
    assert "`table2.md` holds the CPU's" in markdown

    # the hardware each kind's timings were taken on, from the caches' provenance
    cpu_info.write_text(json.dumps({"settings": settings, "runs": [], "hardware": {"cpu": "AMD EPYC"}}))
    gpu_info = cache_files("timing", folder, "cuda")[0]
    gpu_info.write_text(json.dumps({"hardware": {"cpu": "Intel Xeon", "cuda_devices": ["NVIDIA H200"]}}))
    assert timed_on(["timing", "norms"], folder, "cuda") == ["NVIDIA H200"]
    assert timed_on(["timing"], folder, "cpu") == ["AMD EPYC"]
    assert timed_on(["latency"], folder, "cuda") == []  # not taken there
    markdown = table_markdown(ARTIFACTS.get("table2"), mini, table, [], stem="table2-cuda", hardware=["NVIDIA H200"])
    assert "Timings taken on `cuda` (NVIDIA H200)" in markdown


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a machine without CUDA")
def test_without_a_gpu_cuda_only_reads_the_gpus_cached_timings(tmp_path):
    training = CliRunner().invoke(cli, ["reproduce", "table1", "--device", "cuda", "--results-dir", str(tmp_path)])
    assert training.exit_code == 2 and "no CUDA device is available" in training.output
    assert not (tmp_path / "quick").exists()
    drawing = CliRunner().invoke(cli, ["reproduce", "fig5", "--no-train", "--device", "cuda", "--results-dir",
                                       str(tmp_path)])
    assert drawing.exit_code == 0, drawing.output
    assert "skipped fig5" in drawing.output and "no CUDA device to measure it on" in drawing.output
    assert not list(tmp_path.rglob("fig5*"))
