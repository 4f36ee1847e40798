"""Three-valued verdicts against the paper's claims: AGREES / DISAGREES only beyond the
seeds' noise, INCONCLUSIVE otherwise, each naming n and the BatchNorm protocol."""
import pandas as pd
import pytest

from analysis.verdicts import verdicts

NAN = float("nan")


def table1(delta_super, delta_base, std=0.1, n=3, recal=None):
    table = pd.DataFrame({
        "arch": ["m"] * 4, "network": ["ADN super-net", "individual", "ADN base-net", "individual-Base"],
        "acc1_pct": [90.0, 90.0 - delta_super, 89.0, 89.0 - delta_base], "acc1_std": [std] * 4, "n_seeds": [n] * 4,
        "delta_vs_individual_pct": [delta_super, NAN, delta_base, NAN],
        "paper_model": ["ResNet50"] * 4, "paper_delta_pct": [0.9, NAN, 1.1, NAN]})
    if recal is not None:
        table["acc1_recal_pct"], table["acc1_recal_std"] = 90.0, std
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
