"""``rnncompress run``: the whole pipeline from one TOML file."""

from __future__ import annotations

from pathlib import Path

import click

from cli.check import results_table, verdict
from cli.common import PathArg, fmt_table, handle_errors, progress_for, quiet_option, set_threads, threads_option
from runtime.default_pipeline import DEFAULT_PIPELINE
from runtime.pipeline import PLOTS, Manifest, run_pipeline
from runtime.pipeline_config import load_pipeline, parse_pipeline, resolved_toml
from runtime.report import markdown



def _print_plan(stages) -> None:
    def writes(s) -> str:
        plots = [] if any(f.endswith(".png") for f in s.outputs) or s.name not in PLOTS else [PLOTS[s.name]]
        return ", ".join([*s.outputs, *plots])

    rows = [[s.name, s.action, s.reason, writes(s)] for s in stages]
    click.echo(fmt_table(rows, ["stage", "action", "why", "writes"]))


@click.command()
@click.argument("pipeline", type=PathArg(path_type=Path), required=False)
@click.option("--out", "out_dir", type=PathArg(), required=True,
              help="Output directory: artifacts, manifest.json, report. New or empty, or one an earlier "
                   "run wrote: rerunning into it skips unchanged stages and resumes an interrupted training run "
                   "(a folder of other files is refused, so nothing of yours is written over).")
@click.option("--dry-run", is_flag=True, help="Check the inputs, print the plan (what runs, what is skipped, "
                                              "why) and the resolved settings (every default filled in, as "
                                              "TOML that runs the same pipeline), and stop. With -q only the "
                                              "TOML: `--dry-run -q > pinned.toml`.")
@threads_option
@quiet_option
@handle_errors
def run(pipeline: Path | None, out_dir: str, dry_run: bool, quiet: bool, threads: int) -> None:
    """Run train -> prune -> export -> bench -> check from PIPELINE.toml.

    Without PIPELINE, runs the embedded default: a synthetic navigation task (no download),
    torus-regularized RNN at 90% sparsity, lattice-pruned to 25% of its neurons, exported,
    benchmarked in onnxruntime against the trained model and checked against two budgets
    (every exported form of the pruned model vs the trained one): max_latency_ratio = 0.5
    (full-sequence latency at most half) and max_metric_drop = 1.5 (at most 1.5 cm more
    position error).

    Relative paths in PIPELINE.toml are relative to the file. The inputs (task data,
    [prune] teachers, a writable --out) are checked before any work, also with --dry-run;
    a refused run leaves --out as it was. The folder keeps pipeline.toml (this pipeline
    with every default filled in: running it remakes the folder) and manifest.json (every
    file with its sha256 and the stage that wrote it).

    Prints the plan, the benchmark table (the plots are named, not shown), the budget
    table and the artifacts line; with -q only the budget table, the verdict and the
    artifacts line (with --dry-run -q: only the resolved pipeline, as TOML).

    Exit codes: 0 done and every budget holds; 1 a budget is broken; 2 bad input (the TOML
    error names the line and key); 3 an export failed verification, or the pruning surgery's
    self-check (shrunk = masked model) failed.

    \b
    Examples:
      rnncompress run --out runs/default
      rnncompress run examples/smnist_lstm.toml --out runs/smnist --dry-run
    """
    out_dir = Path(out_dir)
    set_threads(threads)
    if pipeline is None:
        p = parse_pipeline(DEFAULT_PIPELINE, "<embedded default>")
    else:
        p = load_pipeline(pipeline)
    # A dry run's plan is its result; a real run prints it only when not quiet. Printed once
    # the inputs are checked, so a refused run prints its one error line only.
    def show_plan(stages) -> None:
        click.echo(f"pipeline: {p.name} -> {out_dir}")
        _print_plan(stages)

    on_plan = show_plan if not quiet else None
    result = run_pipeline(p, out_dir, progress_for(quiet), dry_run=dry_run, on_plan=on_plan)
    if dry_run:  # with -q the TOML alone, so `run --dry-run -q > resolved.toml` saves a pipeline
        click.echo(("" if quiet else "\n") + "# resolved settings: every default filled in, paths absolute "
                   "(`run --dry-run -q` prints this alone: a pipeline file)\n" + resolved_toml(p).rstrip())
        return
    sections = []
    if result.report is not None and not quiet:
        sections.append(markdown(result.report).strip())  # without image links: the PNGs are named instead
        plots = sorted(f for f in Manifest(out_dir).files() if f.endswith(".png"))
        if plots:
            sections.append(f"plots in {out_dir}: {', '.join(plots)}")
    if result.check:
        sections.append(results_table(result.check))
    sections.append(f"artifacts: {out_dir} (manifest.json lists every file with its sha256)")
    click.echo(("" if quiet else "\n") + "\n\n".join(sections))
    if result.check:
        click.echo(verdict(result.check))  # raises BudgetExceeded (exit 1) when a budget is broken
