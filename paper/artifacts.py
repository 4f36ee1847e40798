"""The paper's tables and figures as a registry: what runs and measurements each one
needs (from a preset's ``Study``), and which pure function of ``analysis`` turns them
into the artifact. ``paper.reproduce`` trains, measures and writes; nothing here does.

Each run an artifact needs carries a *role*, the label under which the analysis
function finds it ("ADN", "individual-Base", "w/o skip-aware norms"...). One run may
play roles in several artifacts; it is trained once.

The builders import ``analysis`` when called: the CLI reads this registry for its
``reproduce`` choices at start-up, and pandas, matplotlib and seaborn would add about
half a second to every command.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from paper.study import Study
from repro.measure.train_cost import table2_methods
from repro.models import has_shortcut_norms, num_stages, official_split
from repro.registry import Registry


# Comparison networks trained at two seeds at most, wherever an artifact needs them (issue
# 14's scope): the AlphaNet-style network costs about three individual runs, stochastic
# depth is beyond the paper (issue 18).
EXTRA_BASELINE_SEEDS = 2
CAPPED_METHODS = ("alphanet", "stochastic_depth")


@dataclass(frozen=True)
class RunNeed:
    """One training run in the role an artifact gives it."""

    role: str
    arch: str
    method: str
    options: tuple[tuple[str, object], ...] = ()

    def options_dict(self) -> dict:
        return dict(self.options)

    def seeds(self, asked: int) -> range:
        """Seeds 0..n-1 of this run for ``reproduce --seeds asked`` (``EXTRA_BASELINE_SEEDS``
        at most for the ``CAPPED_METHODS``)."""
        return range(min(asked, EXTRA_BASELINE_SEEDS) if self.method in CAPPED_METHODS else asked)


@dataclass
class ArtifactInputs:
    """What the build functions get: frames of finished runs, measurements, reference."""

    study: Study
    evals: object  # pandas DataFrame: eval.csv rows of the needed runs + role, arch, method, seed, run_id, dataset
    runs: object  # pandas DataFrame: one row per needed run (role, arch, method, seed, epoch_s, images_per_s...)
    measurements: dict = field(default_factory=dict)
    reference: object = None


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str  # "table" | "figure"
    title: str
    runs: Callable[[Study], list[RunNeed]]
    measurements: tuple[str, ...]
    build: Callable[[ArtifactInputs], object]
    reading: str = ""  # printed under a table: how to read columns whose caveats the numbers cannot show


ARTIFACTS: Registry[Artifact] = Registry("artifact")


def artifact(name: str, kind: str, title: str, runs=lambda study: [], measurements: tuple[str, ...] = (),
             reading: str = ""):
    def register(build):
        ARTIFACTS.add(name, Artifact(name, kind, title, runs, measurements, build, reading))
        return build
    return register


# --------------------------------------------------------------------------- run roles
def full(arch: str) -> str:
    return "F" * num_stages(arch)


def base(arch: str) -> str:
    return "T" * num_stages(arch)


def adn(arch: str, role: str = "ADN", **options) -> RunNeed:
    return RunNeed(role, arch, "adn", tuple(sorted(options.items())))


def individual(arch: str, depth: str, role: str) -> RunNeed:
    return RunNeed(role, arch, "individual", (("depth", depth),))


def split_label(split: tuple[int, ...], official: bool = False) -> str:
    return ",".join(map(str, split)) + (" (official)" if official else "")


def table1_runs(study: Study) -> list[RunNeed]:
    return [need for arch in study.table1_archs for need in
            (adn(arch), individual(arch, full(arch), "individual"), individual(arch, base(arch), "individual-Base"))]


def table2_runs(study: Study) -> list[RunNeed]:
    arch = study.convnet
    return [RunNeed(m.label, arch, m.method, (("depth", m.depth),) if m.depth else ())
            for m in table2_methods(num_stages(arch))]


ABLATIONS = {"ADN": {}, "w/o self-distillation": {"self_distill": False},
             "w/o skip-aware norms": {"skip_aware_norms": False},
             "w/o both": {"self_distill": False, "skip_aware_norms": False},
             "+ feature distillation": {"feature_distill": True}}
# Beyond the paper (issue 13), only for networks with shared shortcut norms (ResNets).
SHORTCUTS = {"skip_aware_shortcuts": True}

STRATEGIES = {"super-net -> base-net (ADN)": {}, "super-net -> random": {"distill_strategy": "super_to_random"},
              "random -> random": {"distill_strategy": "random_to_random"}}


def table3_runs(study: Study) -> list[RunNeed]:
    return [need for arch in study.ablation_archs for need in
            [adn(arch, role, **options) for role, options in ABLATIONS.items()]
            + ([adn(arch, "+ skip-aware shortcuts", **SHORTCUTS)] if has_shortcut_norms(arch) else [])]


def table4_runs(study: Study) -> list[RunNeed]:
    return [adn(study.convnet, role, **options) for role, options in STRATEGIES.items()]


def split_runs(study: Study) -> list[RunNeed]:
    arch = study.convnet
    return [adn(arch, split_label(official_split(arch), official=True))] + [
        adn(arch, split_label(split), split=split) for split in study.convnet_splits]


def fig3_runs(study: Study) -> list[RunNeed]:
    return [adn(study.convnet), individual(study.convnet, full(study.convnet), "individual")]


def fig4_runs(study: Study) -> list[RunNeed]:
    arch = study.convnet
    return ([adn(arch), individual(arch, full(arch), "individual"), individual(arch, base(arch), "individual-Base")]
            + [individual(arch, depth, "individual (depth)") for depth in study.individual_depths]
            + [RunNeed("KD-individual", arch, "kd_individual", (("depth", depth),)) for depth in study.kd_depths]
            + ([adn(arch, "ADN + skip-aware shortcuts", **SHORTCUTS)] if has_shortcut_norms(arch) else [])
            + [RunNeed("stochastic depth", arch, "stochastic_depth"), RunNeed("AlphaNet-style", arch, "alphanet")])


def fig7_runs(study: Study) -> list[RunNeed]:
    arch = study.transformer
    return [adn(arch, "1 skippable block per group (official)"),
            adn(arch, "2 skippable blocks per group", split=study.transformer_long_split)]


# --------------------------------------------------------------------------- artifacts
SUPER_BASE_READING = ("`super_acc1_pct` and `base_acc1_pct` evaluate with the BatchNorm statistics that training "
                      "stored (the paper's protocol); the `_recal_` columns re-estimate them per sub-network on "
                      "training images first, which matters most where a variant has no skip-aware norms (its "
                      "base-net then runs on the super-net's statistics). Mean ± std over `n_seeds` seeds.")


@artifact("table1", "table", "Base-nets and super-nets vs individual networks of the same depth", table1_runs,
          reading="`acc1_pct` evaluates with the BatchNorm statistics that training stored (the paper's protocol); "
                  "`acc1_recal_pct` re-estimates them per sub-network on training images first. Networks without "
                  "BatchNorm (vit_mini uses LayerNorm) have nothing to re-estimate, so those columns stay empty "
                  "for them. Mean ± std over `n_seeds` seeds; a row with one seed shows no std, and a comparison "
                  "with one seed on either side is INCONCLUSIVE by the rule below.")
def build_table1(inputs: ArtifactInputs):
    from analysis.tables import table1
    return table1(inputs.evals, inputs.reference)


@artifact("table2", "table", "Training time per epoch: ADN vs non-adaptive and AlphaNet-style training",
          table2_runs, ("timing",),
          reading="The `step_ms` columns are interleaved steps timed in one process, the basis of the verdict. The "
                  "`measured_*` columns average the epochs of the finished training runs, which shared the machine "
                  "with a varying number of other runs and threads: they show what training cost here, but their "
                  "ratios are indicative only and not judged. `measured_load_5min` is the machine's load average "
                  "at the runs' epoch ends (recorded since 2026-11-27; above the core count, runs waited for CPU).")
def build_table2(inputs: ArtifactInputs):
    from analysis.tables import table2
    return table2(inputs.measurements["timing"], inputs.runs)


@artifact("table3", "table", "Ablation: self-distillation, skip-aware norms, feature distillation", table3_runs,
          reading=SUPER_BASE_READING)
def build_table3(inputs: ArtifactInputs):
    from analysis.tables import table3
    return table3(inputs.evals)


@artifact("table4", "table", "Self-distillation strategies", table4_runs,
          reading=SUPER_BASE_READING)
def build_table4(inputs: ArtifactInputs):
    from analysis.tables import table4
    return table4(inputs.evals)


@artifact("table5", "table", "Block splits: mandatory/skippable blocks per stage", measurements=("layouts",))
def build_table5(inputs: ArtifactInputs):
    from analysis.tables import table5
    return table5(inputs.measurements["layouts"])


@artifact("table6", "table", "FLOPs and accuracy of every selectable sub-network",
          lambda study: [need for arch in study.table1_archs for need in
                         [adn(arch)] + ([adn(arch, "ADN + skip-aware shortcuts", **SHORTCUTS)]
                                        if has_shortcut_norms(arch) else [])])
def build_table6(inputs: ArtifactInputs):
    from analysis.tables import table6
    return table6(inputs.evals, inputs.reference)


@artifact("table7", "table", "Mandatory/skippable ratio variants", split_runs, reading=SUPER_BASE_READING)
def build_table7(inputs: ArtifactInputs):
    from analysis.tables import table7
    return table7(inputs.evals)


@artifact("fig3", "figure", "Residual norm ratios ||F(h)||/||h|| per block: ADN vs individual network",
          fig3_runs, ("norms",))
def build_fig3(inputs: ArtifactInputs):
    from analysis.figures import fig3
    return fig3(inputs.measurements["norms"])


@artifact("fig4", "figure", "Accuracy of ADN vs individual networks; Pareto frontiers", fig4_runs)
def build_fig4(inputs: ArtifactInputs):
    from analysis.figures import fig4
    return fig4(inputs.evals)


@artifact("fig5", "figure", "Training time per epoch; latency (and energy) of every sub-network",
          measurements=("timing", "latency"))
def build_fig5(inputs: ArtifactInputs):
    import pandas as pd

    from analysis.figures import fig5
    from analysis.tables import table2
    return fig5(table2(inputs.measurements["timing"], pd.DataFrame(columns=["role", "epoch_s"])),
                inputs.measurements["latency"])


@artifact("fig6", "figure", "Latency: depth vs width adaptation; Pareto frontiers of split ratios",
          split_runs, ("depth_width_latency",))
def build_fig6(inputs: ArtifactInputs):
    from analysis.figures import fig6
    table = inputs.measurements["depth_width_latency"]
    depth, width = (table[table["kind"] == kind].drop(columns="kind") for kind in ("depth", "width"))
    return fig6(depth.rename(columns={"network": "skip"}), width.rename(columns={"network": "model"}), inputs.evals)


@artifact("fig7", "figure", "ViT-ADN with longer skippable sub-paths", fig7_runs)
def build_fig7(inputs: ArtifactInputs):
    from analysis.figures import fig7
    return fig7(inputs.evals)


@artifact("fig8", "figure", "Grad-CAM of the third stage's blocks", fig3_runs, ("cams",))
def build_fig8(inputs: ArtifactInputs):
    from analysis.figures import fig8
    cams = inputs.measurements["cams"]
    maps = {role: {block: cam.numpy() for block, cam in blocks.items()} for role, blocks in cams["cams"].items()}
    return fig8(maps, cams["images"].numpy())
