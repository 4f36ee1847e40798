"""Three-valued verdicts against the paper's claims: AGREES / DISAGREES only beyond the
seeds' noise, INCONCLUSIVE otherwise, each naming n and the BatchNorm protocol."""
import pandas as pd
import pytest

from analysis.interpretation import verdict_tally
from analysis.verdicts import verdicts

NAN = float("nan")


def table1(delta_super, delta_base, std=0.1, n=3, recal=None):
    table = pd.DataFrame({
        "arch": ["m"] * 4, "network": ["ADN super-net", "individual", "ADN base-net", "individual-Base"],
        "acc1_pct": [90.0, 90.0 - delta_super, 89.0, 89.0 - delta_base], "acc1_std": [std] * 4, "n_seeds": [n] * 4,
        "delta_vs_individual_pct": [delta_super, NAN, delta_base, NAN],
        "paper_model": ["ResNet50"] * 4, "paper_delta_pct": [0.9, NAN, 1.1, NAN]})
    if recal is not None:
        table["acc1_recal_pct"], table["acc1_recal_std"] = (90.0, std) if recal == recal else (NAN, NAN)  # NaN: no BatchNorm
        table["delta_vs_individual_recal_pct"] = [recal, NAN, recal, NAN]
    return table


def test_table1_agrees_and_disagrees_beyond_two_standard_errors():
    super_line, base_line = verdicts("table1", table1(0.5, -2.0))
    assert "+0.50 pp" in super_line and super_line.endswith("AGREES.")
    assert "-2.00 pp" in base_line and base_line.endswith("DISAGREES.")
    assert "stored BatchNorm statistics" in super_line and "n = 3 seeds" in super_line


def test_table1_is_inconclusive_within_the_noise_or_with_one_seed():
    noisy, _ = verdicts("table1", table1(0.5, -2.0, std=1.0))  # t(0.975, 4) SE = 2.78 * sqrt(2/3) = 2.27 pp
    assert "INCONCLUSIVE" in noisy and "standard errors at df" in noisy
    single, _ = verdicts("table1", table1(0.5, -2.0, n=1))
    assert "INCONCLUSIVE (n = 1 < 2 seeds)" in single


def test_table1_judges_each_protocol_on_its_own_line():
    lines = verdicts("table1", table1(-2.0, -2.0, recal=1.5))
    assert len(lines) == 4
    assert any("re-estimated" in line and line.endswith("AGREES.") for line in lines)
    assert any("stored" in line and line.endswith("DISAGREES.") for line in lines)



def test_a_network_without_batch_norm_is_not_said_to_use_stored_batch_norm_statistics():
    """vit_mini (LayerNorm) has an empty re-estimated column: its one protocol is named as such."""
    lines = verdicts("table1", table1(0.5, -2.0, recal=NAN))
    assert len(lines) == 2 and all("LayerNorm (no statistics to re-estimate)" in line for line in lines)
    assert not any("BatchNorm statistics" in line for line in lines)
    split = table7(90.0, 88.0, 0.4).assign(base_acc1_recal_pct=NAN)
    (line,) = verdicts("table7", split)
    assert "LayerNorm" in line and "stored BatchNorm" not in line
    assert "stored BatchNorm statistics" in verdicts("table1", table1(0.5, -2.0, recal=1.0))[0]
    assert "with LayerNorm (no statistics to re-estimate) 1 agrees, 1 disagrees" in verdict_tally(lines)

def test_unconverged_presets_are_inconclusive_by_construction():
    lines = verdicts("table1", table1(0.5, -2.0), converged=False)
    assert lines and all("INCONCLUSIVE by construction" in line for line in lines)


@pytest.mark.parametrize("middle, below, verdict", [(60.0, "1 of 2", "DISAGREES"), (78.5, "0 of 2", "AGREES")])
def test_table6_counts_untrained_subnetworks_below_both_ends(middle, below, verdict):
    table = pd.DataFrame({"arch": ["m"] * 4, "skip": ["FF", "FT", "TF", "TT"], "acc1_pct": [80.0, 79.0, middle, 78.0],
                          "acc1_std": [0.1] * 4, "n_seeds": [3] * 4})
    (line,) = verdicts("table6", table)
    assert below in line and f"worst TF {middle:.2f}%" in line and line.endswith(f"{verdict}.")


def test_artifacts_without_claims_give_no_lines():
    assert verdicts("table5", pd.DataFrame({"arch": ["m"]})) == []


def test_two_seeds_need_a_t_test_not_two_standard_errors():
    # n = 2 per side: Welch df = 2, so a difference must reach t(0.975, 2) = 4.30 standard
    # errors; 3 SE (beyond the naive 2 SE) stays inconclusive, 5 SE agrees
    se = (0.1 ** 2 / 2 * 2) ** 0.5
    assert "INCONCLUSIVE" in verdicts("table1", table1(3 * se, 5 * se, n=2))[0]
    assert verdicts("table1", table1(3 * se, 5 * se, n=2))[1].endswith("AGREES.")


def test_welch_degrees_of_freedom_and_critical_values():
    from analysis.verdicts import t_critical, welch

    se, df = welch(0.1, 3, 0.1, 3)
    assert se == pytest.approx((2 * 0.01 / 3) ** 0.5) and df == pytest.approx(4.0)
    _, lopsided = welch(0.14, 2, 0.02, 2)  # one noisy side: about one degree of freedom
    assert 1.0 < lopsided < 1.1 and t_critical(lopsided) == pytest.approx(12.706)
    assert t_critical(float("inf")) == pytest.approx(2.042) and t_critical(0.3) == pytest.approx(12.706)


def table7(official_base, other_base, other_gflops, n=2, std=0.1):
    return pd.DataFrame({"arch": ["m", "m"], "split": ["2,2 (official)", "other"], "super_gflops": [1.0, 1.0],
                         "base_gflops": [0.6, other_gflops], "base_acc1_pct": [official_base, other_base],
                         "base_acc1_std": [std, std], "n_seeds": [n, n]})


@pytest.mark.parametrize("other_base, other_gflops, verdict", [
    (88.0, 0.4, "AGREES"),  # cheaper base-net, less accurate: the paper's trade-off
    (92.0, 0.4, "DISAGREES"),  # cheaper and more accurate
    (92.0, 0.8, "AGREES"),  # costlier base-net, more accurate
    (88.0, 0.8, "DISAGREES")])
def test_table7_expects_the_cheaper_base_net_to_be_the_less_accurate(other_base, other_gflops, verdict):
    (line,) = verdicts("table7", table7(90.0, other_base, other_gflops))
    assert "split other vs the official 2,2 (official)" in line and line.endswith(f"{verdict}.")
    (single,) = verdicts("table7", table7(90.0, other_base, other_gflops, n=1))
    assert "INCONCLUSIVE (n = 1 < 2 seeds)" in single


def norms(adn_skippable: float, seeds=(0, 1, 2)) -> pd.DataFrame:
    """Two skippable and one mandatory block per network; the mandatory blocks go the other way."""
    rows = []
    for seed in seeds:
        wobble = 0.01 * seed
        for role, skippable, mandatory in (("ADN super-net", adn_skippable, 0.9), ("individual", 0.5, 0.5)):
            rows += [(role, seed, 1, 1, "mandatory", mandatory + wobble),
                     (role, seed, 1, 2, "skippable", skippable + wobble), (role, seed, 2, 2, "skippable", skippable)]
    return pd.DataFrame(rows, columns=["role", "seed", "stage", "block", "kind", "ratio_mean"]).assign(arch="m")


def test_norm_ratios_are_judged_over_seeds_on_the_skippable_blocks():
    (lower,) = verdicts("fig3", norms(0.3))
    assert "over the 2 skippable blocks" in lower and "n = 3 seeds" in lower and lower.endswith("AGREES.")
    (higher,) = verdicts("fig3", norms(0.7))
    assert "individual minus ADN -0.200" in higher and higher.endswith("DISAGREES.")
    (one_seed,) = verdicts("fig3", norms(0.3, seeds=(0,)))
    assert "n = 1 seed:" in one_seed and "INCONCLUSIVE (n = 1 < 2 seeds)" in one_seed


def latency(depth_ms, spread=1.0):
    """Sub-networks at 4, 3.5, 3 and 2.5 GFLOPs (the first is the super-net) and width
    variants at 1 and 4 GFLOPs taking 10 and 40 ms: 35, 30 and 25 ms by width at the others'."""
    rows = [("depth", name, g, ms) for name, g, ms in zip(["FF", "FT", "TF", "TT"], [4.0, 3.5, 3.0, 2.5],
                                                          [40.0, *depth_ms])]
    rows += [("width", "width x0.50", 1.0, 10.0), ("width", "width x1.00", 4.0, 40.0)]
    table = pd.DataFrame(rows, columns=["kind", "network", "gflops", "latency_ms"])
    return table.assign(latency_q1_ms=table["latency_ms"] - spread, latency_q3_ms=table["latency_ms"] + spread,
                        device="cpu", batch_size=1, runs=20)


@pytest.mark.parametrize("depth_ms, counts, verdict", [
    ((30.0, 26.0, 20.0), "3 of 3 ADN sub-networks are faster than the width multipliers at their FLOPs and 0 slower",
     "AGREES"),
    ((40.0, 35.0, 30.0), "0 of 3 ADN sub-networks are faster than the width multipliers at their FLOPs and 3 slower",
     "DISAGREES"),
    ((35.0, 26.0, 25.5), "1 of 3 ADN sub-networks are faster", "INCONCLUSIVE")])  # the others' quartiles overlap
def test_depth_against_width_at_equal_flops_needs_separated_quartiles(depth_ms, counts, verdict):
    (line,) = verdicts("fig6", latency(depth_ms))
    assert counts in line and "base-net TT" in line and line.endswith(f"{verdict}.")


@pytest.mark.parametrize("base_ms, spread, verdict", [(2.0, 0.2, "AGREES"), (2.9, 0.2, "INCONCLUSIVE"),
                                                       (3.5, 0.2, "DISAGREES")])
def test_the_base_nets_latency_against_the_super_nets_needs_separated_quartiles(base_ms, spread, verdict):
    table = pd.DataFrame({"skip": ["FF", "FT", "TT"], "gflops": [4.0, 3.0, 2.0], "latency_ms": [3.0, 2.5, base_ms]})
    table = table.assign(latency_q1_ms=table["latency_ms"] - spread, latency_q3_ms=table["latency_ms"] + spread,
                         device="cpu", batch_size=1, runs=30)
    (line,) = verdicts("fig5", table)
    assert f"base-net TT {base_ms:.2f} ms vs super-net FF 3.00 ms" in line and line.endswith(f"{verdict}.")


def test_table2_timing_is_inconclusive_when_the_interquartile_ranges_overlap():
    def table2(adn_iqr):
        return pd.DataFrame({"method_label": ["adn", "alphanet"], "step_ms": [100.0, 180.0],
                             "step_iqr_ms": [adn_iqr, 20.0]})
    assert verdicts("table2", table2(20.0))[0].endswith("x1.80; the paper finds ADN much cheaper (2 vs 4 "
                                                        "forward-backward passes): AGREES.")
    assert verdicts("table2", table2(200.0))[0].endswith("INCONCLUSIVE.")
