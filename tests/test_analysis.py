"""analysis/: tables and figures from synthetic run records (no training, no torch)."""
from itertools import product

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

import analysis
from analysis.aggregate import pareto_frontier, summarize, to_markdown
from analysis.reference import load_reference
from analysis.verdicts import table3_verdicts
from repro.errors import ReproError

STAGE_GFLOPS = [0.2, 0.3, 0.5, 0.1]   # what skipping each stage's skippable sub-path saves
STAGE_ACC = [0.4, 0.6, 1.0, 0.2]      # and what it costs in top-1
SKIPS = ["".join(flags) for flags in product("FT", repeat=4)]


def _rows(role, skips, seeds, arch="resnet_mini", method="adn", base_acc=70.0, split="test"):
    """One eval row per (seed, skip); seed s adds s points of accuracy (so 2 seeds: std 0.7071)."""
    rows = []
    for seed, skip in product(seeds, skips):
        skipped = [c == "T" for c in skip]
        rows.append({
            "role": role, "arch": arch, "method": method, "seed": seed, "run_id": f"{role}-{seed}",
            "split": split, "skip": skip,
            "acc1_pct": base_acc + seed - sum(a for a, t in zip(STAGE_ACC, skipped) if t),
            "acc5_pct": 90.0 + seed, "loss": 1.0,
            "gflops": 2.0 - sum(g for g, t in zip(STAGE_GFLOPS, skipped) if t), "params_m": 3.0,
        })
    return rows


@pytest.fixture
def evals():
    rows = (_rows("ADN", SKIPS, [0, 1]) + _rows("ADN", SKIPS, [0, 1], split="val", base_acc=71.0)
            + _rows("individual", ["FFFF"], [0, 1], method="individual", base_acc=69.0)
            + _rows("individual-Base", ["TTTT"], [0], method="individual", base_acc=67.0)
            + _rows("individual (depth)", ["TTFF"], [0], method="individual", base_acc=68.0)
            + _rows("KD-individual", ["TTTT", "FFFF"], [0], method="kd_individual", base_acc=69.5))
    return pd.DataFrame(rows)


def test_reference_has_the_model_zoo():
    ref = load_reference()
    assert list(ref.columns) == analysis.reference.REFERENCE_COLUMNS
    row = ref[(ref["model"] == "ResNet50") & (ref["skip"] == "FFFF") & (ref["network"] == "ADN super-net")]
    assert row[["gflops", "acc1_pct", "delta_pct"]].values.tolist() == [[4.11, 77.6, 0.9]]
    individual = ref[(ref["model"] == "ResNet50") & (ref["network"] == "individual")]
    assert individual["acc1_pct"].item() == pytest.approx(76.7)
    assert ref["source"].str.len().min() > 10 and set(ref["dataset"]) == {"ImageNet"}


def test_summarize_means_and_sample_std_over_seeds(evals):
    table = summarize(evals[evals["split"] == "test"], ["role", "skip"], ["acc1_pct"])
    adn = table[(table["role"] == "ADN") & (table["skip"] == "FFFF")].iloc[0]
    assert (adn["acc1_pct"], adn["n_seeds"]) == (70.5, 2)
    assert adn["acc1_std"] == pytest.approx(np.sqrt(0.5))
    assert np.isnan(table[table["role"] == "individual-Base"]["acc1_std"].item())


def test_table1_compares_with_individual_networks_and_the_paper(evals):
    table = analysis.table1(evals, load_reference())
    assert list(table.columns) == [
        "arch", "network", "skip", "gflops", "params_m", "acc1_pct", "acc1_std", "n_seeds",
        "delta_vs_individual_pct", "paper_model", "paper_dataset", "paper_gflops",
        "paper_acc1_pct", "paper_delta_pct"]
    assert table["network"].tolist() == ["ADN super-net", "individual", "ADN base-net", "individual-Base"]
    by = table.set_index("network")
    assert by.loc["ADN super-net", "delta_vs_individual_pct"] == pytest.approx(70.5 - 69.5)
    assert by.loc["ADN base-net", "delta_vs_individual_pct"] == pytest.approx((70.5 - 2.2) - (67.0 - 2.2))
    assert np.isnan(by.loc["individual", "delta_vs_individual_pct"])
    assert by.loc["ADN super-net", ["paper_acc1_pct", "paper_gflops", "paper_delta_pct"]].tolist() == [77.6, 4.11, 0.9]
    assert by.loc["individual-Base", "paper_acc1_pct"] == pytest.approx(75.0)
    assert set(table["paper_dataset"]) == {"ImageNet"}


def test_table1_keeps_the_rows_that_exist_and_refuses_nothing(evals):
    table = analysis.table1(evals[evals["role"] != "individual-Base"], load_reference())
    assert table["network"].tolist() == ["ADN super-net", "individual", "ADN base-net"]
    assert np.isnan(table.set_index("network").loc["ADN base-net", "delta_vs_individual_pct"])
    vit = analysis.table1(evals.assign(arch="vit_b_32"), load_reference())
    assert vit["paper_acc1_pct"].isna().all()
    with pytest.raises(ReproError, match="table1: no runs with roles"):
        analysis.table1(evals[evals["role"] == "KD-individual"], load_reference())


def test_markdown_shows_spread_only_over_several_seeds(evals):
    text = to_markdown(analysis.table1(evals, load_reference()))
    assert "70.50 ± 0.71" in text and "acc1_std" not in text
    assert "| 64.80 " in text          # individual-Base (67 - 2.2): one seed, plain mean
    assert "2.0000" in text and "+1.00" in text


def test_table2_ratios_and_extrapolated_epoch_time():
    timing = pd.DataFrame({
        "method_label": ["individual FFFF", "adn", "alphanet"], "arch": "resnet50", "batch_size": 128,
        "input_shape": "3x224x224", "step_ms": [100.0, 180.0, 360.0], "step_iqr_ms": 2.0, "steps": 20,
        "device": "H100", "epoch_images": 1281167})
    runs = pd.DataFrame({"role": ["adn", "adn"], "arch": "resnet50", "method": "adn", "seed": [0, 1],
                         "epoch_s": [10.0, 12.0], "images_per_s": 500.0, "device": "H100"})
    table = analysis.table2(timing, runs).set_index("method_label")
    assert table["ratio_to_individual"].tolist() == [1.0, 1.8, 3.6]
    assert table.loc["adn", "extrapolated_epoch_h"] == pytest.approx(1281167 / 128 * 180 / 3.6e6)
    assert table.loc["adn", ["measured_epoch_s", "n_runs"]].tolist() == [11.0, 2]
    assert np.isnan(table.loc["alphanet", "measured_epoch_s"])
    assert "3.6" in to_markdown(analysis.table2(timing, None))
    with pytest.raises(ReproError):
        analysis.table2(timing.iloc[:0], runs)
    # CPU presets: real runs of a small arch beside the ResNet50 timing mode, matched by label
    small = pd.DataFrame({"role": ["individual FFFF", "adn"], "arch": "resnet_mini", "method": ["individual", "adn"],
                          "seed": 0, "epoch_s": [100.0, 160.0], "images_per_s": 500.0, "device": "cpu"})
    mixed = analysis.table2(timing, small).set_index("method_label")
    assert mixed.loc["adn", "measured_arch"] == "resnet_mini" and mixed.loc["adn", "arch"] == "resnet50"
    assert mixed.loc["adn", "measured_ratio_to_individual"] == pytest.approx(1.6)
    assert np.isnan(mixed.loc["adn", "measured_load_5min"])  # older records: no load recorded
    loaded = analysis.table2(timing, small.assign(machine_load_5min=[1.0, 3.0])).set_index("method_label")
    assert loaded["measured_load_5min"].tolist()[:2] == [1.0, 3.0]


def test_table3_orders_variants_and_reads_flags_from_names(evals):
    adn = evals[evals["role"] == "ADN"]
    rows = pd.concat([adn.assign(role="w/o both", acc1_pct=adn["acc1_pct"] - 3), adn,
                      adn.assign(role="+ feature distillation")])
    table = analysis.table3(rows)
    assert table.columns.tolist() == [
        "arch", "variant", "self_distillation", "skip_aware_norms", "feature_distillation",
        "super_acc1_pct", "super_acc1_std", "base_acc1_pct", "base_acc1_std", "n_seeds"]
    assert table["variant"].tolist() == ["ADN", "w/o both", "+ feature distillation"]
    assert table[["self_distillation", "skip_aware_norms", "feature_distillation"]].values.tolist() == [
        [True, True, False], [False, False, False], [True, True, True]]
    assert table.set_index("variant").loc["w/o both", "base_acc1_pct"] == pytest.approx(70.5 - 2.2 - 3)
    with pytest.raises(ReproError, match="table3: no runs with roles"):
        analysis.table3(evals[evals["role"] != "ADN"])


def test_table3_and_its_verdicts_read_both_batchnorm_protocols(evals):
    adn = evals[evals["role"] == "ADN"].assign(acc1_pct_recalibrated=lambda rows: rows["acc1_pct"] + 1.0)
    ablated = adn.assign(role="w/o skip-aware norms", acc1_pct=adn["acc1_pct"] - 5.0,
                         acc1_pct_recalibrated=adn["acc1_pct"])
    table = analysis.table3(pd.concat([adn, ablated]))
    assert {"super_acc1_recal_pct", "super_acc1_recal_std", "base_acc1_recal_pct",
            "base_acc1_recal_std"} <= set(table.columns)
    by_variant = table.set_index("variant")
    assert by_variant.loc["ADN", "base_acc1_recal_pct"] - by_variant.loc["ADN", "base_acc1_pct"] == pytest.approx(1.0)
    stored, recalibrated = table3_verdicts(table)
    assert "stored BatchNorm statistics" in stored and "+5.00 pp" in stored
    assert "re-estimated" in recalibrated and "+1.00 pp" in recalibrated
    assert "base_acc1_recal_pct" not in analysis.table3(evals[evals["role"] == "ADN"]).columns  # older records


def test_table4_averages_all_sub_networks(evals):
    adn = evals[evals["role"] == "ADN"]
    table = analysis.table4(pd.concat([adn.assign(role="super-net -> random"),
                                       adn.assign(role="super-net -> base-net (ADN)")]))
    assert table["strategy"].tolist() == ["super-net -> base-net (ADN)", "super-net -> random"]
    assert "mean_subnet_acc1_std" in table and "n_subnets" in table
    row = table.iloc[0]
    assert row["mean_subnet_acc1_pct"] == pytest.approx(70.5 - sum(STAGE_ACC) / 2)
    assert row["n_subnets"] == 16 and row["n_seeds"] == 2


def test_table5_names_the_papers_analogue():
    layouts = pd.DataFrame({"arch": ["resnet_mini", "vit_b_32"], "S": 4, "blocks": "3,4,6,3",
                            "split": "2/1,2/2,3/3,2/1", "super_gflops": 1.0, "base_gflops": 0.5,
                            "params_m": 1.0})
    assert analysis.table5(layouts)["paper_model"].tolist()[0] == "ResNet50"
    assert pd.isna(analysis.table5(layouts)["paper_model"].tolist()[1])


def test_table6_lists_every_sub_network_with_published_numbers(evals):
    table = analysis.table6(evals, load_reference())
    assert table.columns.tolist() == [
        "arch", "skip", "gflops", "params_m", "acc1_pct", "acc1_std", "acc5_pct", "val_acc1_pct",
        "n_seeds", "paper_model", "paper_gflops", "paper_acc1_pct"]
    assert len(table) == 16 and table["gflops"].is_monotonic_decreasing
    by = table.set_index("skip")
    assert by.loc["TTFF", ["paper_gflops", "paper_acc1_pct"]].tolist() == [3.46, 76.5]
    assert np.isnan(by.loc["TTTF", "paper_acc1_pct"])
    assert by.loc["FFFF", "val_acc1_pct"] == pytest.approx(71.5)


def test_table7_and_split_roles(evals):
    adn = evals[evals["role"] == "ADN"]
    rows = pd.concat([adn.assign(role="2,2,3,2 (official)"), adn.assign(role="1,1,2,1"), adn])
    table = analysis.table7(rows)
    assert table["split"].tolist() == ["2,2,3,2 (official)", "1,1,2,1"]
    assert table.columns.tolist() == [
        "arch", "split", "super_gflops", "base_gflops", "super_acc1_pct", "super_acc1_std",
        "base_acc1_pct", "base_acc1_std", "n_seeds"]
    assert table["base_gflops"].iloc[0] == pytest.approx(2.0 - sum(STAGE_GFLOPS))


def test_pareto_frontier_is_non_dominated():
    points = pd.DataFrame(np.random.default_rng(0).uniform(size=(50, 2)), columns=["gflops", "acc1_pct"])
    frontier = pareto_frontier(points)
    for _, p in points.iterrows():
        dominated = ((frontier["gflops"] <= p["gflops"]) & (frontier["acc1_pct"] >= p["acc1_pct"])
                     & ((frontier["gflops"] < p["gflops"]) | (frontier["acc1_pct"] > p["acc1_pct"])))
        assert dominated.any() != (p.name in frontier.index)


def _latency(label_column, labels, gflops):
    n = len(labels)
    return pd.DataFrame({label_column: labels, "latency_ms": np.linspace(2, 1, n),
                         "latency_q1_ms": np.linspace(1.9, 0.9, n), "latency_q3_ms": np.linspace(2.2, 1.1, n),
                         "energy_mj": np.nan, "energy_source": "none", "gflops": gflops, "device": "cpu",
                         "batch_size": 1})


def _figures(evals):
    norms = pd.DataFrame([{"role": role, "arch": "resnet_mini", "seed": seed, "stage": stage, "block": block,
                           "kind": "skippable" if block > 1 else "mandatory", "ratio_mean": 0.1 * block + seed}
                          for role in ["ADN super-net", "individual"] for seed in [0, 1]
                          for stage in [1, 2] for block in [1, 2]])
    timing = pd.DataFrame({"method_label": ["individual FFFF", "adn"], "arch": "resnet50", "batch_size": 128,
                           "input_shape": "3x224x224", "step_ms": [100.0, 180.0], "step_iqr_ms": 2.0,
                           "steps": 20, "device": "cpu", "epoch_images": 1281167})
    latency = _latency("skip", ["FFFF", "TTTT"], [2.0, 1.0])
    adn = evals[evals["role"] == "ADN"]
    splits = pd.concat([adn.assign(role="2,2,3,2 (official)"), adn.assign(role="1,1,2,1", acc1_pct=adn["acc1_pct"] - 1)])
    vit = pd.concat([adn.assign(role="1 skippable block per group (official)"),
                     adn.assign(role="2 skippable blocks per group")]).assign(arch="vit_mini", dataset="cifar100")
    rng = np.random.default_rng(0)
    cams = {role: {"3.1": rng.uniform(size=(2, 4, 4)), "3.2": rng.uniform(size=(2, 4, 4))}
            for role in ["ADN super-net", "individual"]}
    return {
        "fig3": analysis.fig3(norms),
        "fig4": analysis.fig4(evals.assign(dataset="cifar100")),
        "fig5": analysis.fig5(analysis.table2(timing), latency),
        "fig5_energy": analysis.fig5(analysis.table2(timing), latency.assign(energy_mj=[3.0, 2.0])),
        "fig6": analysis.fig6(latency, _latency("model", ["width x1.00", "width x0.50"], [2.0, 0.6]), splits),
        "fig7": analysis.fig7(vit),
        "fig8_gray": analysis.fig8(cams, rng.normal(size=(2, 1, 8, 8))),
        "fig8_rgb": analysis.fig8(cams, rng.normal(size=(2, 3, 8, 8))),
        "fig3_empty": analysis.fig3(norms.iloc[:0]),
        "fig4_empty": analysis.fig4(evals.iloc[:0]),
        "fig4_adn_only": analysis.fig4(evals[evals["role"] == "ADN"]),
        "fig5_empty": analysis.fig5(None, None),
        "fig6_no_splits": analysis.fig6(latency, None, evals),
        "fig7_empty": analysis.fig7(evals),
        "fig8_empty": analysis.fig8({}, None),
    }


def test_figures_render_to_png(evals, tmp_path):
    for name, fig in _figures(evals).items():
        assert isinstance(fig, Figure), name
        path = tmp_path / f"{name}.png"
        fig.savefig(path)
        assert path.stat().st_size > 1000, name
    assert len(analysis.fig6(_latency("skip", ["FFFF"], [1.0]), None, None).axes) == 1


def test_missing_data_is_said_in_the_panel(evals):
    texts = [t.get_text() for ax in analysis.fig7(evals).axes for t in ax.texts]
    assert texts == ["no data"]
    fig5 = analysis.fig5(None, _latency("skip", ["FFFF", "TTTT"], [2.0, 1.0]))
    assert any("energy: unavailable on this machine (cpu)" in t.get_text() for t in fig5.axes[1].texts)


def test_tables_keep_our_data_set_beside_the_arch(evals):
    rows = pd.concat([evals.assign(arch="vit_mini"), evals]).assign(dataset="cifar100")
    table = analysis.table1(rows, load_reference())
    assert table.columns[:3].tolist() == ["arch", "dataset", "network"]
    assert table["arch"].tolist() == ["vit_mini"] * 4 + ["resnet_mini"] * 4
    assert table["paper_model"].tolist() == ["ViT-b/16"] * 4 + ["ResNet50"] * 4
    assert "| cifar100 " in to_markdown(analysis.table6(rows, load_reference()))


def test_importing_analysis_does_not_load_torch():
    """analysis/ is pandas and matplotlib only: a fresh interpreter imports all of it
    without torch (repro's public names load lazily)."""
    import subprocess
    import sys

    code = ("import sys, analysis, analysis.aggregate, analysis.tables, analysis.verdicts, analysis.figures, "
            "analysis.reference; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_table1_shows_recalibrated_accuracy_beside_the_stored(evals):
    recal = evals.assign(acc1_pct_recalibrated=evals["acc1_pct"] + 1.0)
    table = analysis.table1(recal, load_reference())
    assert {"acc1_recal_pct", "acc1_recal_std", "delta_vs_individual_recal_pct"} <= set(table.columns)
    assert (table["acc1_recal_pct"] - table["acc1_pct"]).round(6).eq(1.0).all()
    assert "acc1_recal_pct" not in analysis.table1(evals, load_reference()).columns  # older records: stored only


def test_fig4_adds_the_recalibrated_adn_frontier_dashed(evals):
    def labels(fig):
        return [text.get_text() for text in fig.axes[1].get_legend().get_texts()]

    assert not any("re-estimated" in label for label in labels(analysis.fig4(evals, "resnet_mini")))
    recal = evals.assign(acc1_pct_recalibrated=evals["acc1_pct"] + 1.0)
    assert any("re-estimated" in label for label in labels(analysis.fig4(recal, "resnet_mini")))


def test_table6_shows_the_skip_aware_shortcuts_variant_beside_adn(evals):
    variant = evals[evals["role"] == "ADN"].assign(role="ADN + skip-aware shortcuts",
                                                   acc1_pct=lambda rows: rows["acc1_pct"] + 0.5)
    table = analysis.table6(pd.concat([evals, variant]), load_reference())
    assert len(table) == 16 and "shortcuts_acc1_pct" in table
    assert (table["shortcuts_acc1_pct"] - table["acc1_pct"]).round(6).eq(0.5).all()
    assert "shortcuts_acc1_pct" not in analysis.table6(evals, load_reference())


def test_training_time_bars_show_the_steps_spread():
    timing = pd.DataFrame({"method_label": ["individual FFFF", "adn"], "arch": "resnet50", "batch_size": 128,
                           "input_shape": "3x224x224", "step_ms": [100.0, 200.0], "step_iqr_ms": [10.0, 40.0],
                           "steps": 20, "device": "cpu", "epoch_images": 1281167})
    table = analysis.table2(timing)
    axis = analysis.fig5(table, None).axes[0]
    (bars,) = [c for c in axis.containers if isinstance(c, BarContainer)]
    whiskers = bars.errorbar.lines[2][0].get_segments()  # one horizontal segment per bar
    widths = [seg[1][0] - seg[0][0] for seg in whiskers]
    assert widths == pytest.approx(list(table["extrapolated_epoch_h"] * [0.1, 0.2]))
