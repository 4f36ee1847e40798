"""results/README.md's claims: one section per claim, Figure 4b judged per depth and
protocol, and plain "not reproduced yet" where an artifact is missing."""
import pandas as pd

from analysis.claims import CLAIMS, claims_markdown, depth_matched_table, depth_matched_verdicts


def evals(adn_gain: float, seeds=(0, 1, 2), recalibrated_gain: float | None = None) -> pd.DataFrame:
    """ADN at FFFF, TTFF and TTTT; individual networks at FFFF and TTTT; KD-individual at
    TTFF; ADN ``adn_gain`` pp above each, with a small per-seed wobble."""
    rows = []
    for seed in seeds:
        wobble = 0.05 * seed
        for skip, base in (("FFFF", 90.0), ("TTFF", 88.0), ("TTTT", 86.0)):
            rows.append(("ADN", skip, seed, base + adn_gain + wobble))
        rows += [("individual", "FFFF", seed, 90.0 - wobble), ("individual-Base", "TTTT", seed, 86.0 - wobble),
                 ("KD-individual", "TTFF", seed, 88.0 - wobble)]
    frame = pd.DataFrame(rows, columns=["role", "skip", "seed", "acc1_pct"]).assign(arch="m", split="test")
    if recalibrated_gain is not None:
        frame["acc1_pct_recalibrated"] = frame["acc1_pct"] + (frame["role"] == "ADN") * (recalibrated_gain - adn_gain)
    return frame


def test_each_depth_is_compared_with_the_network_trained_there():
    table = depth_matched_table(evals(1.0))
    assert set(zip(table["skip"], table["comparison"])) == {("FFFF", "individual"), ("TTTT", "individual"),
                                                            ("TTFF", "KD-individual")}
    assert (table["n"] == 3).all() and table["diff"].between(1.0, 1.3).all()


def test_depth_matched_verdicts_follow_the_rule_per_protocol():
    lines = depth_matched_verdicts(evals(1.0, recalibrated_gain=-1.0))
    stored = [line for line in lines if "stored" in line]
    recal = [line for line in lines if "re-estimated" in line]
    assert len(stored) == len(recal) == 3
    assert all(line.endswith("AGREES.") for line in stored)
    assert all(line.endswith("DISAGREES.") for line in recal)
    one_seed = depth_matched_verdicts(evals(1.0, seeds=(0,)))
    assert all("INCONCLUSIVE (n = 1 < 2 seeds)" in line for line in one_seed)
    assert all("by construction" in line for line in depth_matched_verdicts(evals(1.0), converged=False))


def test_every_claim_has_a_section_and_missing_artifacts_say_how_to_make_them():
    text = claims_markdown({}, evals(1.0), "mini", True, lambda artifact: f"reproduce {artifact}")
    assert text.count("### ") == len(CLAIMS)
    assert "Not reproduced yet: `reproduce table1`" in text
    assert "| vs individual, stored" in text  # fig4's section is judged from the evals, as a table


def test_a_written_artifact_without_the_compared_rows_says_so_instead_of_not_reproduced():
    only_adn = pd.DataFrame({"arch": "m", "variant": ["ADN", "+ skip-aware shortcuts"], "base_acc1_pct": 80.0,
                             "base_acc1_std": 0.1, "n_seeds": 2})
    text = claims_markdown({"table3": only_adn}, None, "mini", True, lambda artifact: f"reproduce {artifact}")
    ablation = text.split("### Self-distillation")[1].split("### ")[0]
    assert "No verdict yet: `table3` is written" in ablation and "Not reproduced yet" not in ablation


def test_claims_command_writes_results_readme_from_an_empty_study(tmp_path):
    from paper.claims import write_claims

    path = write_claims(tmp_path, "mini")
    text = path.read_text()
    assert path == tmp_path / "README.md" and text.count("### ") == len(CLAIMS)
    assert "`python cli.py reproduce table1 --preset mini --seeds 3`" in text
    assert "0 finished runs" in text
    assert "runs of its scope not finished yet (`python cli.py reproduce ARTIFACT --preset mini" in text


def test_the_study_state_names_the_runs_its_scope_still_lacks(tmp_path, monkeypatch):
    from paper import claims

    monkeypatch.setattr(claims, "STUDY_SEEDS", {"table4": 2})
    left = claims.unfinished_study_runs(tmp_path, "mini")
    assert len(left) == 6 and all(run_id.startswith("resnet_mini-adn-") for run_id in left)  # 3 strategies x 2 seeds
    assert claims.study_state(tmp_path, "mini").startswith(f"6 runs of its scope not finished yet (`{left[0]}`, ")
    monkeypatch.setattr(claims, "STUDY_SEEDS", {"table3": 2})
    assert len(claims.unfinished_study_runs(tmp_path, "mini")) == 12  # resnet_mini's 6 variants, not vit_mini's
    assert claims.reproduce_command("mini", "table3") == "python cli.py reproduce table3 --preset mini --seeds 2 --arch resnet_mini"
    monkeypatch.setattr(claims, "unfinished_study_runs", lambda results_dir, preset: [])
    assert claims.study_state(tmp_path, "mini") == "complete: every run of its scope has finished"


def test_with_every_artifact_written_every_claim_has_a_verdict():
    from tests.test_verdicts import latency, norms, table1, table7

    def base_nets(label, names):
        return pd.DataFrame({"arch": "m", label: names, "base_acc1_pct": 80.0, "base_acc1_std": 0.1, "n_seeds": 2})

    frames = {"table1": table1(0.5, 0.5), "table7": table7(90.0, 88.0, 0.4), "norms": norms(0.3),
              "depth_width_latency": latency((30.0, 26.0, 20.0)),
              "latency": latency((30.0, 26.0, 20.0)).query("kind == 'depth'").rename(columns={"network": "skip"}),
              "table2": pd.DataFrame({"method_label": ["adn", "alphanet"], "step_ms": [100.0, 180.0]}),
              "table3": base_nets("variant", ["ADN", "w/o self-distillation", "w/o skip-aware norms", "w/o both"]),
              "table4": base_nets("strategy", ["super-net -> base-net (ADN)", "random -> random"]),
              "table6": pd.DataFrame({"arch": "m", "skip": ["FF", "FT", "TT"], "acc1_pct": [80.0, 79.0, 78.0],
                                      "acc1_std": 0.1, "n_seeds": 3})}
    text = claims_markdown(frames, evals(1.0), "mini", True, lambda artifact: f"reproduce {artifact}")
    sections = text.split("### ")[1:]
    assert len(sections) == len(CLAIMS)
    for section in sections:
        verdict_lines = [line for line in section.splitlines() if line.startswith("- ")]
        cells = [cell for line in section.splitlines() if line.startswith("| m ") for cell in line.split("|")[3:-1]]
        assert verdict_lines or cells, section
        assert all(line.rstrip(".").endswith(("AGREES", "DISAGREES", ")")) for line in verdict_lines), section
        assert all(cell.strip() == "–" or cell.strip().endswith(("AGREES", "INCONCLUSIVE")) for cell in cells)
        assert "**In sum.**" in section


def test_in_sum_tallies_the_verdicts_per_protocol_and_says_what_shortcut_norms_change():
    from analysis.interpretation import shortcut_effect, verdict_tally

    lines = ["a, stored BatchNorm statistics, n = 2 seeds: +1 pp: AGREES.",
             "b, stored BatchNorm statistics, n = 3 seeds: -1 pp: INCONCLUSIVE (n = 1 < 2 seeds).",
             "c, BatchNorm statistics re-estimated, n = 3 seeds: -2 pp: DISAGREES."]
    assert verdict_tally(lines) == ("3 comparisons at n = 2-3 seeds: with stored BatchNorm statistics 1 agrees, "
                                    "0 disagree, 1 is inconclusive; with BatchNorm statistics re-estimated 0 agree, "
                                    "1 disagrees, 0 are inconclusive.")
    frame = evals(1.0, recalibrated_gain=1.0)
    variant = frame[frame["role"] == "ADN"].assign(role="ADN + skip-aware shortcuts")
    variant["acc1_pct"] += variant["skip"].map({"FFFF": 0.0, "TTFF": 2.0, "TTTT": 0.0})  # helps the mixed one
    text = shortcut_effect(pd.concat([frame, variant]))
    assert "stored BatchNorm statistics (n = 3 seeds): +0.00 pp at the trained ends, +2.00 pp over the 1 mixed" in text
    assert "re-estimated (n = 3 seeds): +0.00 pp at the trained ends, +0.00 pp over the 1 mixed" in text
    assert shortcut_effect(frame) == ""  # no variant runs: nothing to say


def test_a_timing_taken_on_a_gpu_too_adds_its_own_verdict_line():
    from tests.test_verdicts import latency

    cpu, gpu = latency((30.0, 30.0, 30.0)), latency((30.0, 26.0, 20.0))
    claim = next(c for c in CLAIMS if c.artifact == "fig6")
    text = claims_markdown({"depth_width_latency": cpu, "depth_width_latency-cuda": gpu}, None, "mini", True,
                           lambda artifact: f"reproduce {artifact}")
    section = text.split(f"### {claim.title}")[1].split("### ")[0]
    lines = [line for line in section.splitlines() if line.startswith("- ")]
    assert len(lines) == 2 and not lines[0].startswith("- On the GPU")
    assert lines[1].startswith("- On the GPU (`depth_width_latency-cuda`): ")


def test_figure_7_is_judged_like_table_7_and_the_missing_table_is_still_named():
    from tests.test_verdicts import table7

    text = claims_markdown({"fig7": table7(90.0, 88.0, 0.4)}, None, "mini", True,
                           lambda artifact: f"reproduce {artifact}")
    splits = text.split("### Longer skippable sub-paths")[1].split("### ")[0]
    (line,) = [line for line in splits.splitlines() if line.startswith("- ")]
    assert line.startswith("- Figure 7 (`fig7`): ") and line.endswith("AGREES.")
    assert "`table7` is not reproduced yet: `reproduce table7`" in splits and "**In sum.** 1 comparison" in splits


def new_record(results):
    """An empty run record of a resnet_mini ADN run, as training creates it."""
    from repro.presets import make_spec
    from repro.runs import RunRecord, run_directory

    spec = make_spec("resnet_mini", "adn", "fashion_mnist", "mini")
    record = RunRecord(run_directory(results, spec))
    record.create(spec)
    return record


def test_a_killed_segment_counts_to_its_last_checkpoint_and_the_runs_table_says_lower_bound(tmp_path):
    from paper.claims import run_summary

    record = new_record(tmp_path)
    started = record.start_segment(None)
    record.checkpointed(started - 600)  # a checkpoint 600 s into the segment; then the process is killed
    record.end_segment(record.start_segment({"epoch": 3, "step": 0}) - 100, "finished")
    env = record.env()
    killed, resumed = env["segments"]
    assert killed["status"] == "killed" and killed["ended_at"] is None and killed["wall_s"] == 600.0
    assert resumed["status"] == "finished" and env["wall_s"] == 700.0
    assert record.wall_time() == (700.0, False)
    record.eval_file.write_text("split,skip,acc1_pct\ntest,FFFF,90.0\n")
    rows = run_summary(tmp_path / "mini" / "runs")
    assert f"| `{record.path.name}` |" in rows[2] and rows[2].endswith("| >= 0.19 h |")
    assert "lower bound (1 run)" in rows[-1] and "1 finished run (" in rows[-1]


def test_the_runs_table_leaves_out_records_still_training(tmp_path):
    """An unfinished record lives only on the machine that trains it: the committed table
    would otherwise count runs that a fresh clone does not have."""
    from paper.claims import run_summary

    new_record(tmp_path).start_segment(None)
    rows = run_summary(tmp_path / "mini" / "runs")
    assert rows[-1].startswith("0 finished runs") and not any("resnet_mini-adn" in row for row in rows)


def test_a_segment_killed_before_any_checkpoint_adds_no_time(tmp_path):
    record = new_record(tmp_path)
    record.start_segment(None)  # killed before its first checkpoint: its work is lost, its time unknown
    record.end_segment(record.start_segment(None, restart="no checkpoint") - 50, "finished")
    killed = record.env()["segments"][0]
    assert killed["status"] == "killed" and "wall_s" not in killed
    assert record.wall_time() == (50.0, False)
