"""``rnncompress check``: a benchmark report against budgets, as an exit code."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import click

from cli.common import CliError, PathArg, echo_json, fmt_table, handle_errors
from models.errors import BudgetExceeded, ConfigError, RnnCompressError, clip
from runtime.check import (BudgetResult, Budgets, check_junit_path, check_report, describe_failure, measured_text,
                           write_junit, write_junit_error)
from runtime.report import load_report

OPTIONS = {"max_p50_ms": "--max-p50-ms", "max_p99_ms": "--max-p99-ms", "max_latency_ratio": "--max-latency-ratio",
           "max_step_latency_ratio": "--max-step-latency-ratio", "min_metric": "--min-metric", "max_metric_drop": "--max-metric-drop", "max_size_kb": "--max-size-kb"}


def _budgets(limits: dict[str, float | None]) -> Budgets:
    """``Budgets`` from the options, with errors naming the option rather than the field."""
    for name, value in limits.items():
        try:
            Budgets(**{name: value})
        except ConfigError as e:
            raise CliError(str(e).replace(f"The '{name}' parameter", f"{OPTIONS[name]}")) from None
    return Budgets(**limits)


def results_table(results: Sequence[BudgetResult], names: dict[str, str] | None = None) -> str:
    """One row per (model, budget); ``names`` labels the budgets (default: their field names)."""
    rows = []
    for r in results:
        if r.applicable:
            cells = [f"{r.comparison} {r.limit:.6g}", measured_text(r), "pass" if r.passed else "FAIL",
                     r.what + (f" ({r.note})" if r.note else "")]
        else:
            cells = [f"{'<=' if r.budget != 'min_metric' else 'limit'} {r.limit:.6g}", "-", "n/a", r.note]
        rows.append([r.model, (names or {}).get(r.budget, r.budget), *cells])
    return fmt_table(rows, ["model", "budget", "limit", "measured", "result", "what"])


def verdict(results: Sequence[BudgetResult]) -> str:
    """"all N budgets pass" (and how many do not apply).

    Raises:
        BudgetExceeded: a budget is broken (exit 1), naming the first three.
    """
    checked = [r for r in results if r.applicable]
    failed = [r for r in checked if not r.passed]
    if failed:
        first = "; ".join(describe_failure(r) for r in failed[:3]) + ("; ..." if len(failed) > 3 else "")
        raise BudgetExceeded(f"{len(failed)} of {_count(len(checked))} broken: {first}")
    na = len(results) - len(checked)
    passed = "the budget passes" if len(checked) == 1 else f"all {len(checked)} budgets pass"
    return passed + (f" ({na} not applicable)" if na else "")


def _count(n: int) -> str:
    return f"{n} budget" + ("" if n == 1 else "s")


@click.command()
@click.argument("report", type=PathArg(path_type=Path), metavar="REPORT.json")
@click.option("--max-p50-ms", type=float, default=None,
              help="Full-sequence p50 latency in ms (per-step for step-only models). Machine-dependent.")
@click.option("--max-p99-ms", type=float, default=None,
              help="Full-sequence p99 latency in ms (per-step for step-only models). Machine-dependent.")
@click.option("--max-latency-ratio", type=float, default=None,
              help="Full-sequence p50 latency / the baseline's, from the same interleaved run (per-step for "
                   "step-only models: step and chunk files, which have no full-sequence latency). The robust gate on "
                   "noisy CI machines.")
@click.option("--max-step-latency-ratio", type=float, default=None,
              help="Per-step (streaming) p50 latency / the baseline's, same run. Small models are bound by "
                   "onnxruntime's per-call overhead, so this ratio falls less than the full-sequence one.")
@click.option("--min-metric", type=float, default=None,
              help="Worst acceptable onnxruntime metric: metric >= value for higher-is-better metrics (accuracy), "
                   "metric <= value for lower-is-better ones (mse, bpc, position error).")
@click.option("--max-metric-drop", type=float, default=None,
              help="How much worse than the baseline's onnxruntime metric the model's may be, in the metric's "
                   "units (accuracy as a fraction: 0.01 = one point; direction as for --min-metric).")
@click.option("--max-size-kb", type=float, default=None, help="Model size in KB (1 KB = 1024 bytes).")
@click.option("--model", "models", multiple=True,
              help="Check this model (repeatable); it must answer every budget given. Default: every model "
                   "except the baseline, where a budget that does not apply to a model (e.g. "
                   "--max-step-latency-ratio on a model measured without its step model, a metric budget on a "
                   "model without a metric) is shown as n/a instead of failing.")
@click.option("--junit", type=PathArg(path_type=Path), default=None,
              help="Also write JUnit XML (one testcase per model and budget; n/a ones skipped) for CI systems; on "
                   "bad input (exit 2) one testcase holding the error, so an earlier run's file never stands for this "
                   "one. An existing file is replaced only when it is JUnit XML itself.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--quiet", "-q", is_flag=True,
              help="Print only the broken budgets' rows and the verdict (the verdict alone when all pass).")
@handle_errors
def check(report: Path, models: tuple[str, ...], junit: Path | None, as_json: bool, quiet: bool,
          **limits: float | None) -> None:
    """Check a benchmark report against budgets; the exit code says whether it passes.

    Latency ratios to the baseline (--max-latency-ratio) are measured in one interleaved
    run, so drift and noise on a shared CI machine cancel out: they are the robust
    gate. Absolute --max-p50-ms / --max-p99-ms budgets depend on the machine and its
    load; use them only on dedicated hardware.

    Prints one row per model and budget. Exit codes: 0 every budget passes, 1 a budget
    is broken, 2 bad input (unreadable or foreign report, incompatible schema version,
    a budget that is not a number, an unknown --model, no budget given, a --junit path
    that exists and is not JUnit XML, or a budget the report cannot answer).

    A budget that does not apply to one of the default models (--max-step-latency-ratio
    on a model without a per-step ratio, a metric budget on a model without a metric,
    ...) is a row marked n/a: neither a pass nor a failure. It is bad input only for a
    model named with --model, or when it applies to none of the models (e.g.
    --min-metric on a report made with --no-accuracy).

    \b
    Example:
      rnncompress check bench/report.json --max-latency-ratio 0.8 --max-metric-drop 0.01 --junit check.xml
    """
    if junit is not None:
        if str(junit) == ".":
            raise CliError("--junit must name a file (got '.').")
        check_junit_path(junit, [report], "--junit")
    try:
        results = _results(report, models, limits)
    except (RnnCompressError, click.ClickException) as e:
        if junit is not None:  # (an earlier run's green file must not stand for this run)
            write_junit_error(e.format_message() if isinstance(e, click.ClickException) else str(e), junit)
        raise
    if junit is not None:
        write_junit(results, junit)
    if as_json:
        echo_json([asdict(r) for r in results])
    else:
        shown = [r for r in results if r.applicable and not r.passed] if quiet else results
        if shown:
            click.echo(results_table(shown, OPTIONS))
        if junit is not None and not quiet:
            click.echo(f"wrote {junit}")
    summary = verdict(results)
    if not as_json:
        click.echo(summary)


def _results(report: Path, models: tuple[str, ...], limits: dict[str, float | None]) -> list[BudgetResult]:
    """The budgets' results on the report, every error one line naming the option (exit 2)."""
    budgets = _budgets(limits)
    if not budgets.given():
        raise CliError("No budget given: pass at least one of " + ", ".join(OPTIONS.values()) + ".")
    try:
        return check_report(load_report(report), budgets, list(models) or None)
    except RnnCompressError as e:
        # "Budget max_metric_drop cannot be checked ..." names the option here
        name = next((n for n in OPTIONS if str(e).startswith(f"Budget {n} ")), None)
        if name is None:
            raise
        raise CliError(f"Budget {OPTIONS[name]} {str(e)[len(f'Budget {name} '):]}") from None
    except Exception as e:  # noqa: BLE001 -- exit 1 means "budget broken" to CI: anything unforeseen is exit 2
        raise CliError(f"Report {report} cannot be checked ({type(e).__name__}: {clip(str(e))}); it is not a report "
                       "this version reads (if rnncompress bench wrote it, please report this as a bug).", 2) from None
