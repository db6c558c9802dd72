"""The ``rnncompress`` command group."""

from __future__ import annotations

import click

from cli.info import info
from cli.train import train
from models.checkpoint import package_version


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_version(), prog_name="rnncompress")
def cli() -> None:
    """Compress recurrent networks for real-time CPU inference.

    \b
    train     train with moduli regularization + gradual magnitude pruning
    info      show a checkpoint

    Exit codes: 0 success, 1 a budget is broken (check), 2 bad input, 3 an export failed
    verification.
    """


cli.add_command(train)
cli.add_command(info)


def main() -> None:
    cli(prog_name="rnncompress")


if __name__ == "__main__":
    main()
