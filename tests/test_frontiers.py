"""The helpers of notebooks/03-pareto.ipynb: finished run records of a results folder ->
evals frame (paper.collect), recalibrated-BN roles and frontier tables (analysis.frontiers),
the all-roles figure (analysis.figures.frontiers). Synthetic records, no training."""
import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis.figures import frontiers
from analysis.frontiers import frontier_table, with_recalibrated
from paper.collect import finished_evals
from repro.presets import make_spec
from repro.runs import RunRecord, run_directory


def _record(results, method, seed, options=None, finished=True, recalibrated=True, accuracy=70.0,
            arch="resnet_mini"):
    """A run record as training leaves it: spec, env (finished or not), eval.csv of two skips."""
    spec = make_spec(arch, method, "fashion_mnist", "smoke", seed=seed, options=options)
    record = RunRecord(run_directory(results, spec))
    record.create(spec)
    record.end_segment(record.start_segment(None), "finished" if finished else "interrupted")
    skips = [options["depth"]] if method == "individual" else ["FFFF", "TTTT"]
    table = pd.DataFrame({"split": "test", "skip": skips, "acc1_pct": [accuracy + seed - i for i in range(len(skips))],
                          "acc5_pct": 99.0, "loss": 1.0, "images": 500, "gflops": [0.017, 0.0106][:len(skips)],
                          "params_m": 0.3})
    if recalibrated:
        table["acc1_pct_recalibrated"] = table["acc1_pct"] + 5
    record.write_evaluation(table)
    return record


def test_finished_evals_takes_every_finished_run_in_its_role(tmp_path):
    _record(tmp_path, "adn", 0)
    _record(tmp_path, "adn", 3, accuracy=72.0)  # any seed, not only 0..n-1
    _record(tmp_path, "individual", 0, {"depth": "FFFF"}, recalibrated=False)
    _record(tmp_path, "individual", 0, {"depth": "TTTT"}, finished=False)  # unfinished: left out
    _record(tmp_path, "adn", 0, {"feature_distill": True})  # a Table 3 run: no role in fig4/table2
    _record(tmp_path, "alphanet", 1)
    evals = finished_evals(tmp_path, "smoke")
    runs = evals.drop_duplicates("run_id").set_index("run_id")
    assert sorted(zip(runs["role"], runs["seed"])) == [("ADN", 0), ("ADN", 3), ("AlphaNet-style", 1), ("individual", 0)]
    assert set(evals["skip"]) == {"FFFF", "TTTT"} and (evals["dataset"] == "fashion_mnist").all()
    # eval.csv's extra columns come along; records without them give NaN
    assert evals.loc[evals["role"] == "individual", "acc1_pct_recalibrated"].isna().all()
    assert evals.loc[evals["role"] == "ADN", "acc1_pct_recalibrated"].notna().all()


def test_a_network_without_batch_norm_has_empty_re_estimated_columns_and_its_verdicts_say_why(tmp_path):
    """Training skips re-estimation for vit_mini (LayerNorm): its eval.csv has no such columns.
    The evals frame marks them empty, so that figure 7's table (vit_mini alone) names its
    protocol; a BatchNorm network's record without them stays without (written before
    re-estimation existed)."""
    from analysis.figures import FIG7_ROLES
    from analysis.tables import table7
    from analysis.verdicts import NO_BATCH_NORM, verdicts

    _record(tmp_path, "adn", 0, arch="vit_mini", recalibrated=False)
    _record(tmp_path, "adn", 0, {"split": [1, 1, 1, 1]}, arch="vit_mini", recalibrated=False, accuracy=68.0)
    evals = finished_evals(tmp_path, "smoke", ["fig7"])
    assert set(evals["role"]) == set(FIG7_ROLES) and evals["acc1_pct_recalibrated"].isna().all()
    table = table7(evals, FIG7_ROLES)
    assert table["base_acc1_recal_pct"].isna().all()
    (line,) = verdicts("table7", table)
    assert f"{NO_BATCH_NORM}, n = 1 seed" in line and "stored BatchNorm" not in line

    _record(tmp_path / "convnet", "individual", 0, {"depth": "FFFF"}, recalibrated=False)
    assert "acc1_pct_recalibrated" not in finished_evals(tmp_path / "convnet", "smoke")


def test_finished_evals_of_an_empty_folder_has_the_columns(tmp_path):
    evals = finished_evals(tmp_path / "nothing", "smoke")
    assert not len(evals) and {"role", "seed", "skip", "acc1_pct", "gflops"} <= set(evals.columns)


def _evals(seeds=(0, 1)):
    rows = []
    for seed in seeds:
        for skip, gflops, acc in [("FFFF", 0.017, 80.0), ("TFFF", 0.016, 70.0), ("TTTT", 0.0106, 75.0)]:
            rows.append({"role": "ADN", "arch": "resnet_mini", "seed": seed, "run_id": f"adn-{seed}", "split": "test",
                         "skip": skip, "gflops": gflops, "acc1_pct": acc + seed, "acc1_pct_recalibrated": acc + 3})
        rows.append({"role": "individual", "arch": "resnet_mini", "seed": seed, "run_id": f"ind-{seed}",
                     "split": "test", "skip": "FFFF", "gflops": 0.017, "acc1_pct": 82.0,
                     "acc1_pct_recalibrated": float("nan")})
    return pd.DataFrame(rows)


def test_with_recalibrated_adds_the_role_after_its_source():
    evals = with_recalibrated(_evals())
    assert list(dict.fromkeys(evals["role"])) == ["ADN", "ADN (recalibrated BN)", "individual"]
    copies = evals[evals["role"] == "ADN (recalibrated BN)"]
    assert len(copies) == 6 and (copies["acc1_pct"] == copies["acc1_pct_recalibrated"]).all()
    older = _evals().drop(columns="acc1_pct_recalibrated")
    assert with_recalibrated(older).equals(older)


def test_frontier_table_means_std_and_frontier():
    table = frontier_table(_evals()).set_index(["role", "skip"])
    assert table.loc[("ADN", "FFFF"), "acc1_pct"] == 80.5
    assert table.loc[("ADN", "FFFF"), "acc1_std"] == pytest.approx(0.7071, abs=1e-4)
    assert table.loc[("ADN", "FFFF"), "n_seeds"] == 2
    # TFFF is cheaper than FFFF but less accurate than the cheaper TTTT: dominated
    assert table["on_frontier"].to_dict() == {("ADN", "TTTT"): True, ("ADN", "TFFF"): False,
                                              ("ADN", "FFFF"): True, ("individual", "FFFF"): True}
    assert list(frontier_table(_evals().iloc[:0]).columns)[-1] == "on_frontier"


def test_frontiers_figure_draws_the_roles_present():
    fig = frontiers(with_recalibrated(_evals()))
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["ADN (Pareto frontier)", "ADN (recalibrated BN) (Pareto frontier)", "individual"]
    assert isinstance(frontiers(pd.DataFrame()), Figure)
