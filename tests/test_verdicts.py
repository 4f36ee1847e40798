"""Plain-language verdicts against the paper's claims."""
import pandas as pd

from analysis.verdicts import verdicts


def test_table1_says_disagrees_when_adn_trails_the_individual_network():
    table = pd.DataFrame({
        "arch": ["m"] * 4, "network": ["ADN super-net", "individual", "ADN base-net", "individual-Base"],
        "delta_vs_individual_pct": [0.5, float("nan"), -2.0, float("nan")],
        "paper_model": ["ResNet50"] * 4, "paper_delta_pct": [0.9, float("nan"), 1.1, float("nan")]})
    super_line, base_line = verdicts("table1", table)
    assert "+0.50 pp" in super_line and super_line.endswith("agrees.")
    assert "-2.00 pp" in base_line and "DISAGREES" in base_line


def test_table6_counts_untrained_subnetworks_below_both_ends():
    table = pd.DataFrame({"arch": ["m"] * 4, "skip": ["FF", "FT", "TF", "TT"],
                          "acc1_pct": [80.0, 79.0, 60.0, 78.0]})
    (line,) = verdicts("table6", table)
    assert "1 of 2" in line and "worst TF 60.00%" in line and "DISAGREES" in line
    table.loc[2, "acc1_pct"] = 78.5
    (line,) = verdicts("table6", table)
    assert "0 of 2" in line and line.endswith("agrees.")


def test_artifacts_without_claims_give_no_lines():
    assert verdicts("table5", pd.DataFrame({"arch": ["m"]})) == []
