"""adn-repro command line: ``python cli.py --help``. Each command parses its options and
calls one library function; errors are one line on stderr and exit status 2."""
from __future__ import annotations

from contextlib import contextmanager

import click

from repro.cli_types import (ANY_DEVICE_OR_AUTO, CHECKPOINT, DEVICE, DEVICE_OR_AUTO, EXISTING_FOLDER, HALF_OPEN_UNIT,
                             NON_NEGATIVE_FLOAT, NON_NEGATIVE_INT, OPEN_UNIT, OUTPUT_FILE, OUTPUT_FOLDER,
                             POSITIVE_FLOAT, POSITIVE_INT, UNIT_INTERVAL)
from repro.data import DATASETS
from repro.errors import ReproError
from repro.methods import METHODS
from repro.models import ARCHS
from repro.presets import PRESETS


class OneLineError(click.ClickException):
    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


@contextmanager
def one_line_errors():
    """Library errors and Click's usage errors (unknown option or name, bad value) become
    ``error: ...``, one line on stderr with exit status 2, without Click's usage block."""
    try:
        yield
    except ReproError as error:
        raise OneLineError(" ".join(str(error).split())) from None
    except click.exceptions.NoArgsIsHelpError:
        raise  # a bare command name prints its help
    except click.UsageError as error:
        message = " ".join(error.format_message().split()).rstrip(".")
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
        raise OneLineError(message + hint) from None


class Cli(click.Group):
    def make_context(self, info_name, args, parent=None, **extra):
        with one_line_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx):
        with one_line_errors():
            return super().invoke(ctx)


@click.group(cls=Cli)
def cli():
    """Adaptive depth networks (Kang & Lee, NeurIPS 2024): train, measure, reproduce."""


def write_table(table, output) -> None:
    from repro.files import write_text

    click.echo(table.to_string(index=False))
    if output:
        write_text(output, table.to_csv(index=False))
        click.echo(f"wrote {output}")


@cli.command()
def archs():
    """List the registered architectures with their stages and super/base-net GFLOPs."""
    from repro.measure.flops import arch_summary

    click.echo(arch_summary().to_string(index=False))


@cli.command()
@click.option("--arch", type=click.Choice(ARCHS.names()), required=True)
@click.option("--resolution", type=POSITIVE_INT, help="Input size in pixels (default: the architecture's).")
@click.option("--in-channels", type=POSITIVE_INT, help="Input channels (default: the architecture's).")
@click.option("--split", help="Mandatory blocks per stage, e.g. 2,2,3,2 (default: official).")
@click.option("--output", type=OUTPUT_FILE, help="Also write the table as CSV.")
def flops(arch, resolution, in_channels, split, output):
    """GFLOPs (multiply-adds) and parameters of every sub-network."""
    from repro.measure.flops import flops_table
    from repro.models import build_model

    model = build_model(arch, in_channels=in_channels, image_size=resolution, split=parse_split(split))
    config = model.config
    write_table(flops_table(model, (config.in_channels, config.image_size, config.image_size)), output)


@cli.command()
def methods():
    """List the training methods."""
    for name, method in METHODS.items():
        click.echo(f"{name:16s} {method.summary}")


def recipe_options(fn):
    """Overrides of the preset's recipe (scientific settings: they change the run's hash)."""
    for option in reversed([
        click.option("--epochs", type=POSITIVE_INT), click.option("--batch-size", type=POSITIVE_INT, help="Per process."),
        click.option("--lr", type=POSITIVE_FLOAT, help="Peak learning rate."),
        click.option("--train-subset", type=POSITIVE_INT, help="Train on the first N training images."),
        click.option("--amp", type=click.Choice(["bf16", "fp16"]), help="Mixed precision (GPU)."),
        click.option("--ema-decay", type=OPEN_UNIT), click.option("--label-smoothing", type=HALF_OPEN_UNIT),
        click.option("--channels-last/--no-channels-last", default=None),
    ]):
        fn = option(fn)
    return fn


def method_options(fn):
    """Options of the training methods (see ``python cli.py methods``)."""
    for option in reversed([
        click.option("--alpha", type=UNIT_INTERVAL, help="Weight of the super-net CE; 1-alpha on distillation."),
        click.option("--temperature", type=POSITIVE_FLOAT), click.option("--kl-topk", type=POSITIVE_INT),
        click.option("--one-backward", "two_backward", flag_value=False, default=None,
                     help="One summed backward pass instead of Algorithm 1's two."),
        click.option("--feature-distill", flag_value=True, default=None),
        click.option("--no-self-distill", "self_distill", flag_value=False, default=None),
        click.option("--no-skip-norms", "skip_aware_norms", flag_value=False, default=None),
        click.option("--skip-aware-shortcuts", flag_value=True, default=None,
                     help="adn: projection-shortcut norms skip-aware too (beyond the paper)."),
        click.option("--split", help="Mandatory blocks per stage, e.g. 1,1,2,1."),
        click.option("--distill-strategy", type=click.Choice(["super_to_base", "super_to_random", "random_to_random"])),
        click.option("--depth", help="individual/kd_individual: the network's skip config, e.g. TTTT."),
        click.option("--teacher", type=CHECKPOINT, help="kd_individual: teacher checkpoint."),
        click.option("--num-sampled", type=POSITIVE_INT), click.option("--divergence", type=click.Choice(["alpha", "kl"])),
        click.option("--no-duplicates", "allow_duplicates", flag_value=False, default=None,
                     help="alphanet: never sample the same sub-network twice in a step (default: AlphaNet's draws)."),
        click.option("--drop-rate", type=HALF_OPEN_UNIT, help="stochastic_depth: drop probability of each skippable block."),
    ]):
        fn = option(fn)
    return fn


def runtime_options(fn=None, *, device_type=DEVICE_OR_AUTO, device_help="cpu, cuda, cuda:1, auto."):
    """Run-time choices: they never change what is learned."""
    if fn is None:
        return lambda fn: runtime_options(fn, device_type=device_type, device_help=device_help)
    for option in reversed([
        click.option("--data-path", type=EXISTING_FOLDER, help="Data set folder (default: the standard place)."),
        click.option("--device", type=device_type, default="auto", show_default=True, help=device_help),
        click.option("--workers", type=NON_NEGATIVE_INT, default=4, show_default=True, help="Data loader workers (ImageNet)."),
        click.option("--results-dir", type=OUTPUT_FOLDER, default="results", show_default=True),
        click.option("--progress/--no-progress", default=True, show_default=True),
        click.option("--checkpoint-minutes", type=NON_NEGATIVE_FLOAT, default=10.0, show_default=True,
                     help="Also save a recovery checkpoint mid-epoch this often (a hard kill loses at most this much)."),
    ]):
        fn = option(fn)
    return fn


@cli.command()
@click.option("--arch", type=click.Choice(ARCHS.names()), required=True)
@click.option("--method", type=click.Choice(METHODS.names()), default="adn", show_default=True)
@click.option("--dataset", type=click.Choice(DATASETS.names()), default="fashion_mnist", show_default=True)
@click.option("--preset", type=click.Choice(PRESETS.names()), default="quick", show_default=True)
@click.option("--seed", type=NON_NEGATIVE_INT, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an unfinished run from its last checkpoint.")
@recipe_options
@method_options
@runtime_options
def train(arch, method, dataset, preset, seed, resume, data_path, device, workers, results_dir, progress,
          checkpoint_minutes, **settings):
    """Train one run (or reuse it if it has finished); leaves a run record."""
    from repro.presets import make_spec
    from repro.specs import MethodOptions
    from repro.train import Runtime, train as train_run

    settings["split"] = parse_split(settings["split"])
    option_names = set(MethodOptions.__dataclass_fields__)
    chosen = {k: v for k, v in settings.items() if v is not None}
    spec = make_spec(arch, method, dataset, preset, seed,
                     recipe={k: v for k, v in chosen.items() if k not in option_names},
                     options={k: v for k, v in chosen.items() if k in option_names})
    result = train_run(spec, Runtime(results_dir, data_path, device, workers, resume, progress,
                                     checkpoint_minutes=checkpoint_minutes))
    table = result.record.evaluation()
    test = table[table["split"] == "test"]
    click.echo(f"{'reused finished' if result.reused else 'finished'} run {result.record.path}")
    click.echo(test[["skip", "acc1_pct", "gflops"]].to_string(index=False))


@cli.command()
@click.argument("checkpoint", type=CHECKPOINT)
@click.option("--arch", type=click.Choice(ARCHS.names()), help="Check (ours) or choose (official, torchvision) the architecture.")
@click.option("--dataset", type=click.Choice(DATASETS.names()), help="Default: the run's data set, else fashion_mnist.")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@click.option("--skip", "configs", help="Comma-separated skip configs (default: all 2^S).")
@click.option("--ema", is_flag=True, help="Use the EMA weights where the checkpoint has them.")
@click.option("--batch-size", type=POSITIVE_INT, default=256, show_default=True)
@click.option("--test-subset", type=POSITIVE_INT, help="Only the first N test images.")
@click.option("--data-path", type=EXISTING_FOLDER)
@click.option("--device", type=DEVICE, default="cpu", show_default=True)
@click.option("--recalibrate-bn", type=POSITIVE_INT, metavar="N",
              help="Also evaluate each sub-network with BatchNorm statistics re-estimated on N training images.")
@click.option("--output", type=OUTPUT_FILE, help="Also write the table as CSV.")
def evaluate(checkpoint, arch, dataset, split, configs, ema, batch_size, test_subset, data_path, device,
             recalibrate_bn, output):
    """Accuracy, loss, GFLOPs and parameters of every sub-network of a checkpoint, in one
    pass over the data (depth-first, stage outputs shared between configs); with
    --recalibrate-bn, also with each sub-network's own re-estimated BatchNorm statistics."""
    from repro.checkpoints import checkpoint_dataset, load_checkpoint
    from repro.evaluate import evaluate_on_dataset

    model = load_checkpoint(checkpoint, arch, ema=ema)
    dataset = dataset or checkpoint_dataset(checkpoint) or "fashion_mnist"
    table = evaluate_on_dataset(model, dataset, split=split, data_path=data_path, batch_size=batch_size,
                                test_subset=test_subset, device=device, configs=configs.split(",") if configs else None,
                                source=checkpoint, recalibrate_bn=recalibrate_bn)
    write_table(table.drop(columns="images"), output)


@cli.command()
@click.option("--arch", type=click.Choice(ARCHS.names()), required=True)
@click.option("--checkpoint", type=CHECKPOINT, help="Trained weights (latency does not depend on them).")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="cpu or cuda[:N].")
@click.option("--batch-size", type=POSITIVE_INT, default=1, show_default=True)
@click.option("--threads", type=POSITIVE_INT, help="CPU threads (default: torch's setting).")
@click.option("--repeats", type=POSITIVE_INT, default=30, show_default=True, help="Timed interleaved rounds.")
@click.option("--resolution", type=POSITIVE_INT, help="Input size in pixels (default: the architecture's).")
@click.option("--width/--no-width", default=False, show_default=True,
              help="Also time width-scaled ResNet50s (x0.25..x1.0), in the same interleaved comparison.")
@click.option("--channels-last", is_flag=True, help="Every network and the input in channels-last memory format.")
@click.option("--output", type=OUTPUT_FILE, help="Also write the table as CSV.")
def latency(arch, checkpoint, device, batch_size, threads, repeats, resolution, width, channels_last, output):
    """Latency (median, IQR over interleaved runs) and energy, where a counter exists, of
    every sub-network, each timed as the plain network one would deploy; all networks
    measured alike, in one interleaved comparison."""
    from repro.checkpoints import load_checkpoint
    from repro.measure.latency import measure_depth_and_width, measure_latency
    from repro.models import build_model

    model = load_checkpoint(checkpoint, arch) if checkpoint else build_model(arch, image_size=resolution)
    c = model.config
    shape = (c.in_channels, resolution or c.image_size, resolution or c.image_size)
    settings = dict(device=device, batch_size=batch_size, threads=threads, repeats=repeats, channels_last=channels_last)
    measure = measure_depth_and_width if width else measure_latency
    write_table(measure(model, shape, **settings), output)


@cli.command()
@click.argument("checkpoint", type=CHECKPOINT)
@click.option("--arch", type=click.Choice(ARCHS.names()))
@click.option("--dataset", type=click.Choice(DATASETS.names()), help="Default: the run's data set, else fashion_mnist.")
@click.option("--skip", help="Sub-network to probe (default: the super-net, or the network's own depth).")
@click.option("--images", type=POSITIVE_INT, default=256, show_default=True, help="Test images averaged over.")
@click.option("--bn-drift", type=POSITIVE_INT, metavar="N",
              help="Instead: how far each BatchNorm's stored statistics are from ones re-estimated on N training images.")
@click.option("--data-path", type=EXISTING_FOLDER)
@click.option("--output", type=OUTPUT_FILE, help="Also write the table as CSV.")
def norms(checkpoint, arch, dataset, skip, images, bn_drift, data_path, output):
    """||F(h)||_2 / ||h||_2 of every residual block over real images (paper Figure 3); with
    --bn-drift N, the drift of the stored BatchNorm statistics of sub-network --skip."""
    from repro.checkpoints import checkpoint_dataset, load_checkpoint
    from repro.data import sample_images
    from repro.evaluate import check_model_fits_data
    from repro.measure.probes import residual_norm_ratios

    model = load_checkpoint(checkpoint, arch)
    dataset = dataset or checkpoint_dataset(checkpoint) or "fashion_mnist"
    if bn_drift:
        from repro.recalibrate import bn_drift_on_dataset

        write_table(bn_drift_on_dataset(model, dataset, skip, bn_drift, data_path=data_path, source=checkpoint), output)
        return
    x, _, info = sample_images(dataset, images, data_path=data_path)
    check_model_fits_data(model, info, checkpoint)
    write_table(residual_norm_ratios(model, x, skip), output)


@cli.command("select")
@click.argument("checkpoint", type=CHECKPOINT)
@click.option("--budget-ms", type=POSITIVE_FLOAT, help="Latency budget per forward pass of a batch.")
@click.option("--budget-gflops", type=POSITIVE_FLOAT, help="GFLOPs budget per image.")
@click.option("--budget-mj", type=POSITIVE_FLOAT, help="Energy budget per forward pass of a batch (needs a counter).")
@click.option("--device", type=DEVICE, default="cpu", show_default=True)
@click.option("--batch-size", type=POSITIVE_INT, default=1, show_default=True)
@click.option("--threads", type=POSITIVE_INT, help="CPU threads (default: torch's setting).")
@click.option("--repeats", type=POSITIVE_INT, default=30, show_default=True, help="Timed interleaved rounds.")
@click.option("--remeasure", is_flag=True, help="Measure again even if a cached measurement exists.")
@click.option("--dataset", type=click.Choice(DATASETS.names()), help="For an evaluation: default the run's, else fashion_mnist.")
@click.option("--test-subset", type=POSITIVE_INT, help="Evaluate on the first N test images instead of reading the run's eval.csv.")
@click.option("--data-path", type=EXISTING_FOLDER)
@click.option("--output", type=OUTPUT_FILE, help="Also write the frontier as CSV (input of repro.AdaptiveRunner).")
def select_command(checkpoint, budget_ms, budget_gflops, budget_mj, device, batch_size, threads, repeats, remeasure,
                   dataset, test_subset, data_path, output):
    """The most accurate sub-network within a budget on this device, and the Pareto frontier:
    latency (and energy) measured here or reused from a cache, accuracy from the run's
    eval.csv or an evaluation."""
    from repro.checkpoints import load_checkpoint
    from repro.deploy import checkpoint_accuracy, select

    model = load_checkpoint(checkpoint, ema=True)  # the weights our runs evaluate
    accuracy, source = checkpoint_accuracy(checkpoint, model, dataset=dataset, data_path=data_path,
                                           test_subset=test_subset, device=device)
    choice = select(model, accuracy, budget_ms=budget_ms, budget_gflops=budget_gflops, budget_mj=budget_mj,
                    device=device, batch_size=batch_size, threads=threads, repeats=repeats, remeasure=remeasure)
    click.echo(f"best: {choice.summary()}")
    click.echo(f"accuracy: {source}; latency: {choice.measurement} ({device}, batch {batch_size})")
    write_table(choice.frontier, output)


@cli.command("export")
@click.argument("checkpoint", type=CHECKPOINT)
@click.option("--skip", required=True, help="The sub-network, e.g. TTFF (or super, base).")
@click.option("--format", "format_", type=click.Choice(["onnx", "pt2"]), default="onnx", show_default=True)
@click.option("--output", type=OUTPUT_FILE, required=True)
def export_command(checkpoint, skip, format_, output):
    """Write one sub-network as a plain network: ONNX or a torch.export ExportedProgram (.pt2)."""
    from repro.checkpoints import load_checkpoint
    from repro.deploy import export_subnetwork

    model = load_checkpoint(checkpoint, ema=True)
    export_subnetwork(model, skip, output, format_)
    click.echo(f"wrote {output} ({model.parse_skip(skip)} of {model.config.arch}, {format_})")


def artifact_names():
    from paper.artifacts import ARTIFACTS

    return [*ARTIFACTS.names(), "all"]


@cli.command()
@click.argument("artifacts", nargs=-1, required=True, type=click.Choice(artifact_names()), metavar="ARTIFACT|all")
@click.option("--preset", type=click.Choice(PRESETS.names()), default="quick", show_default=True)
@click.option("--seeds", type=POSITIVE_INT, default=1, show_default=True, help="Seeds 0..N-1 of every run (fig4's AlphaNet-style and stochastic-depth runs: at most 2).")
@click.option("--dry-run", is_flag=True, help="List the runs and measurements and the expected time; train nothing.")
@click.option("--no-train", is_flag=True, help="Train nothing: write each artifact from those of its runs that have "
              "finished, naming the missing ones.")
@click.option("--arch", "archs", multiple=True, type=click.Choice(ARCHS.names()),
              help="Only the runs of this architecture (repeatable); tables show only its rows.")
@click.option("--jobs", type=POSITIVE_INT, help="Runs trained at once, as worker processes "
              "(default: one per CPU core, four on a GPU).")
@runtime_options(device_type=ANY_DEVICE_OR_AUTO,
                 device_help="cpu, cuda, cuda:1, auto. With --no-train, cuda also works without a GPU: the "
                 "timing artifacts are drawn from the GPU timings cached under results/ (table2-cuda.md).")
def reproduce(artifacts, preset, seeds, dry_run, no_train, archs, jobs, data_path, device, workers, results_dir,
              progress, checkpoint_minutes):
    """Regenerate paper artifacts (table1..table7, fig3..fig8, or all): train the missing
    runs (resuming unfinished ones), measure, write results/<preset>/tables|figures."""
    from paper.reproduce import reproduce as run_reproduce
    from repro.train import Runtime

    from repro.run_pool import default_jobs

    runtime = Runtime(results_dir, data_path, device, workers, True, progress, checkpoint_minutes=checkpoint_minutes)
    run_reproduce(list(artifacts), preset, seeds, runtime,
                  dry_run=dry_run, echo=click.echo, jobs=jobs or default_jobs(device), archs=archs,
                  no_train=no_train)


@cli.command()
@click.option("--preset", type=click.Choice(PRESETS.names()), default="mini", show_default=True)
@click.option("--results-dir", type=click.Path(file_okay=False), default="results", show_default=True)
def claims(preset, results_dir):
    """Write results/README.md: one section per claim of the paper with our verdicts, from
    the tables `reproduce` wrote and the finished runs (trains nothing)."""
    from paper.claims import write_claims

    click.echo(f"wrote {write_claims(results_dir, preset)}")


def parse_split(text: str | None):
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ReproError(f"--split {text!r}: expected comma-separated block counts such as 2,2,3,2") from None


if __name__ == "__main__":
    cli()
