"""``rnncompress run``: the whole pipeline from one TOML file."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.common import fmt_table, handle_errors, progress_for, quiet_option, set_threads, threads_option
from runtime.default_pipeline import DEFAULT_PIPELINE
from runtime.pipeline import run_pipeline
from runtime.pipeline_config import load_pipeline, parse_pipeline


def _print_plan(stages) -> None:
    rows = [[s.name, s.action, s.reason, ", ".join(s.outputs)] for s in stages]
    click.echo(fmt_table(rows, ["stage", "action", "why", "writes"]))


@click.command()
@click.argument("pipeline", type=click.Path(path_type=Path), required=False)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Output directory: artifacts, manifest.json, report. Rerunning into the same directory "
                   "skips unchanged stages and resumes an interrupted training run.")
@click.option("--dry-run", is_flag=True, help="Print the resolved plan (what runs, what is skipped, why) and stop.")
@threads_option
@quiet_option
@handle_errors
def run(pipeline: Path | None, out_dir: Path, dry_run: bool, quiet: bool, threads: int) -> None:
    """Run train -> prune -> export -> bench -> check from PIPELINE.toml.

    Without PIPELINE, runs the embedded default: a synthetic navigation task (no download),
    torus-regularized RNN at 90% sparsity, lattice-pruned to 25% of its neurons, exported,
    benchmarked in onnxruntime and checked against a latency-ratio budget.

    Exit codes: 0 done and every budget holds; 1 a budget is broken; 2 bad input (the TOML
    error names the line and key); 3 an export failed verification.

    \b
    Examples:
      rnncompress run --out runs/default
      rnncompress run examples/smnist_lstm.toml --out runs/smnist --dry-run
    """
    set_threads(threads)
    if pipeline is None:
        p = parse_pipeline(DEFAULT_PIPELINE, "<embedded default>")
    else:
        p = load_pipeline(pipeline)
    progress = progress_for(quiet)
    click.echo(f"pipeline: {p.name} -> {out_dir}")
    result = run_pipeline(p, out_dir, progress, dry_run=dry_run, on_plan=_print_plan)
    if dry_run:
        return
    if result.report is not None:
        md = out_dir / "bench" / "report.md"
        if md.exists():
            click.echo("")
            click.echo(md.read_text().strip())
    if result.check:
        rows = [[r.model, r.budget, r.what, f"{r.comparison} {r.limit:g}", r.measured, "pass" if r.passed else "FAIL"]
                for r in result.check]
        click.echo("")
        click.echo(fmt_table(rows, ["model", "budget", "measured on", "limit", "measured", "result"]))
    click.echo(f"\nartifacts: {out_dir} (manifest.json lists every file with its sha256)")
    if not result.budgets_ok:
        click.echo("error: a budget is broken (see the table above)", err=True)
        sys.exit(1)
