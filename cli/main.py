"""The ``rnncompress`` command group."""

from __future__ import annotations

import click

from cli.bench import bench
from cli.check import check
from cli.common import CliError, terminate_like_interrupt
from cli.export import export
from cli.info import info
from cli.prune import prune
from cli.run import run
from cli.sparsify import sparsify
from cli.train import train
from models.checkpoint import package_version


class OneLineErrors(click.Group):
    """Usage errors (bad option value, unknown option or command) as one line, exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx else "rnncompress"
            raise CliError(f"{e.format_message()} (see '{where} --help')", 2) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # the order they were added: the workflow's


@click.group(cls=OneLineErrors, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_version(), prog_name="rnncompress")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Compress recurrent networks for real-time CPU inference.

    Exit codes: 0 success, 1 a budget is broken (check, run), 2 bad input (or anything
    unforeseen: RNNCOMPRESS_TRACEBACK=1 shows where), 3 an export failed verification or
    a self-check of the surgery (shrunk = masked model) failed, 130/143 interrupted by
    Ctrl-C/SIGTERM, 141 the reader of the output left (a closed pipe). 'rnncompress COMMAND --help' explains every option.
    """
    if ctx.invoked_subcommand is None:  # bare `rnncompress`: the help, as asked for (exit 0)
        click.echo(ctx.get_help())


# In the order of the workflow, each with the line `rnncompress --help` shows.
COMMANDS = [
    (train, "train with moduli regularization + gradual magnitude pruning"),
    (info, "show a checkpoint or an ONNX file (ops, int8, provenance)"),
    (prune, "remove whole neurons (lattice, norm or random selection) and fine-tune"),
    (export, "checkpoint -> verified ONNX (dense, sparse, step, chunk, int8)"),
    (sparsify, "store any ONNX model's weights as sparse initializers"),
    (bench, "latency, size and accuracy in onnxruntime -> report.json, report.md, plots"),
    (check, "a bench report against budgets (latency ratio, ms, metric, size); CI exit code"),
    (run, "the whole pipeline from one TOML file (or the embedded default)"),
]
for command, summary in COMMANDS:
    command.short_help = summary
    cli.add_command(command)


def main() -> None:
    terminate_like_interrupt()
    cli(prog_name="rnncompress")


if __name__ == "__main__":
    main()
