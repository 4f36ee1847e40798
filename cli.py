"""adn-repro command line: ``python cli.py --help``. Each command parses its options and
calls one library function; errors are one line on stderr and exit status 2."""
from __future__ import annotations

import sys

import click

from repro.errors import ReproError
from repro.models import ARCHS


class Cli(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ReproError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)


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
    from repro.flops import arch_summary

    click.echo(arch_summary().to_string(index=False))


@cli.command()
@click.option("--arch", type=click.Choice(ARCHS.names()), required=True)
@click.option("--resolution", type=int, help="Input size in pixels (default: the architecture's).")
@click.option("--in-channels", type=int, help="Input channels (default: the architecture's).")
@click.option("--split", help="Mandatory blocks per stage, e.g. 2,2,3,2 (default: official).")
@click.option("--output", type=click.Path(dir_okay=False), help="Also write the table as CSV.")
def flops(arch, resolution, in_channels, split, output):
    """GFLOPs (multiply-adds) and parameters of every sub-network."""
    from repro.flops import flops_table
    from repro.models import build_model

    model = build_model(arch, in_channels=in_channels, image_size=resolution, split=parse_split(split))
    config = model.config
    write_table(flops_table(model, (config.in_channels, config.image_size, config.image_size)), output)


def parse_split(text: str | None):
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ReproError(f"--split {text!r}: expected comma-separated block counts such as 2,2,3,2") from None


if __name__ == "__main__":
    cli()
