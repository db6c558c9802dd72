"""onnxruntime side: latency measurement, accuracy in ORT, reports, plots, budget checks.

Public API (``bench`` is imported from ``runtime.bench``: re-exporting the function here
would hide the module of the same name):
    runtime.bench.bench(paths, baseline=None, config=BenchConfig(), names=None, progress=None) -> report dict
    write_report(report, out_dir) -> paths;  load_report(path) -> report dict (validated)
    check_report(report, Budgets(...), models=None) -> list[BudgetResult];  write_junit(results, path)
    measure_interleaved(runners, warmup, runs, seed=0, progress=None) -> {name: ms samples}
    summarize(samples_ms) -> {p50, p90, p99, mean, min, max, runs}
    run_pipeline(load_pipeline("p.toml") or parse_pipeline(text), out_dir) -> PipelineResult
        (budgets_ok False when a budget is broken: nothing is raised for it)
"""

from runtime.bench import BenchConfig, BenchInput, bench_inputs
from runtime.check import BudgetResult, Budgets, check_report, describe_failure, write_junit
from runtime.environment import environment
from runtime.latency import (
    measure_interleaved,
    ort_feeds_runner,
    ort_full_runner,
    ort_step_runner,
    summarize,
    torch_full_runner,
    torch_step_runner,
    torch_threads,
)
from runtime.pipeline import PipelineResult, plan_pipeline, run_pipeline
from runtime.pipeline_config import Pipeline, load_pipeline, parse_pipeline, resolved_toml
from runtime.report import SCHEMA, load_report, markdown, validate_report, write_report

__all__ = [
    "BenchConfig", "BenchInput", "bench_inputs",
    "BudgetResult", "Budgets", "check_report", "describe_failure", "write_junit",
    "environment",
    "measure_interleaved", "ort_feeds_runner", "ort_full_runner", "ort_step_runner", "summarize",
    "torch_full_runner", "torch_step_runner", "torch_threads",
    "SCHEMA", "load_report", "markdown", "validate_report", "write_report",
    "Pipeline", "PipelineResult", "load_pipeline", "parse_pipeline", "plan_pipeline", "resolved_toml", "run_pipeline",
]
