"""``rnncompress info``: what a checkpoint or an ONNX file holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import torch

from cli.common import PathArg, data_option, echo_json, fmt_table, handle_errors
from exporters.export import onnx_summary
from exporters.verify import check_sparsity_metadata
from models.checkpoint import Checkpoint, check_model_file, load_checkpoint
from models.errors import RnnCompressError
from models.io import model_file_kind
from models.sequence import count_parameters, sparsity_report
from models.tasks import interface_of, task_from_checkpoint


def describe(ckpt: Checkpoint, data: str | None = None) -> dict[str, Any]:
    model = ckpt.build_model()
    sp = sparsity_report(model)
    return {
        "path": str(ckpt.path),
        "sha256": ckpt.sha256,
        "state": ckpt.state,
        "task": ckpt.task,
        "model": ckpt.config.to_dict(),
        "parameters": count_parameters(model),
        "nonzero_parameters": count_parameters(model, nonzero=True),
        "sparsity": sp,
        "training": ckpt.training,
        "regularizer": ckpt.regularizer.get("config", {}),
        "pruning": ckpt.pruning,
        "metrics": ckpt.metrics,
        "history": ckpt.history,
        "provenance": ckpt.provenance,
        "resume_after_epoch": ckpt.resume["epoch"] if ckpt.resume else None,
        "interface": interface_of(ckpt.task, ckpt.provenance.get("data_sha256"), data),
        # (prune, export and bench refuse such weights: info shows the checkpoint and says so)
        "not_finite": [name for name, t in ckpt.state_dict.items()
                       if t.is_floating_point() and not bool(torch.isfinite(t).all())],
    }


def _check_data_option(task_dict: Any, data: str | None) -> None:
    """--data names where the model's data is now: given for a task that generates its data,
    or not there, it is a mistake (exit 2, as export and bench say), not an unavailable
    interface. (A task the model cannot make is the model's: shown as unavailable.)"""
    if data is None or not isinstance(task_dict, dict) or not task_dict.get("name"):
        return
    try:
        task = task_from_checkpoint(task_dict)
    except RnnCompressError:
        return
    task.with_data(data).check_data_location()


def _tensors(values: list[dict[str, Any]]) -> str:
    return "; ".join(f"{v['name']} {v['type']} [{', '.join(str(d) for d in v['shape'])}]" for v in values)


def check_onnx_metadata(d: dict[str, Any]) -> None:
    """Raise ExportError unless the sparsity info prints (``onnx_summary``, which has refused
    metadata that is not a JSON object where one belongs) holds fractions, as bench requires."""
    check_sparsity_metadata(d["metadata"].get("sparsity"), d["path"])


def show_interface(interface: dict[str, Any], source: str = "") -> None:
    """How a service feeds the model and reads it: the sentences in full, the constants
    inline, the tables (permutation, vocabulary, centres) by size (in full with --json).
    ``source`` says where they come from when it matters (an ONNX file that stores them)."""
    if "unavailable" in interface:
        click.echo(f"interface: unavailable ({interface['unavailable']})")
        return
    click.echo(f"interface (what a service feeding the ONNX file needs{source}; tables in full with --json):")
    sentences = ("input", "init", "output", "streaming")  # each starts with the tensor or file it describes
    for key in sentences:
        if key in interface:
            click.echo(f"  {interface[key]}")
    rest = {k: v for k, v in interface.items() if k not in sentences}
    if rest:
        def shown(v: Any) -> str:  # a short string quoted, so a space or newline in a vocabulary shows
            if isinstance(v, list) or (isinstance(v, str) and len(v) > 20):
                return f"[{len(v)}]"
            return json.dumps(v, ensure_ascii=False) if isinstance(v, str) else str(v)

        click.echo("  " + ", ".join(f"{k} {shown(v)}" for k, v in rest.items()))


def show_onnx(d: dict[str, Any]) -> None:
    opsets = ", ".join(f"{k} {v}" for k, v in d["opset"].items())
    click.echo(f"{d['path']}  ({d['bytes']:,} bytes, IR {d['ir_version']}, opset {opsets})")
    meta = d["metadata"]
    if meta:
        how = str(meta.get("verified", "?"))
        verified = {"task": "the task's test data and random inputs", "random": "random inputs"}.get(how, how)
        click.echo(f"rnncompress {meta.get('version', '?')}: format {meta.get('format', '?')} of "
                   f"{meta.get('source') or '?'} (sha256 {str(meta.get('source_sha256', ''))[:12]}), "
                   f"verified against torch on {verified}")
        m, task = meta.get("model_config") or {}, meta.get("task") or {}
        if m:
            value = meta.get("metric_value")
            metric = f"; source test {meta.get('metric')} {value:.4g}" if isinstance(value, float) else ""
            click.echo(f"model: {m.get('cell')} hidden {m.get('hidden_sizes')} input {m.get('input_size')} "
                       f"output {m.get('output_size')} head {m.get('head')}; task {task.get('name', '?')}{metric}")
        sp = meta.get("sparsity") or {}
        if sp:
            click.echo(f"weight sparsity: recurrent {sp.get('recurrent', 0):.3f}, overall {sp.get('overall', 0):.3f}")
    else:
        click.echo("not written by rnncompress (no rnncompress.* metadata)")
    click.echo(f"inputs:  {_tensors(d['inputs'])}")
    click.echo(f"outputs: {_tensors(d['outputs'])}")
    click.echo("ops:     " + ", ".join(f"{k} {v}" for k, v in d["ops"].items()))
    if d["int8"]:
        below = meta.get("int8_float_below")
        note = (f" (kept float: ops on one row per call with < {below:,} weights, and matrices too small for int8 "
                "storage to pay)" if isinstance(below, int) and below > 0 else "")
        click.echo("int8:    " + "; ".join(d["int8"]) + note)
    elif "int8" in str(meta.get("format", "")).split("+"):
        click.echo("int8:    none (every matrix too small for int8 to pay): the float model")
    i = d["initializers"]
    click.echo(f"storage: {i['dense']} dense + {i['sparse']} sparse initializers, {i['elements']:,} elements, "
               f"{i['stored_sparsity']:.1%} left out by sparse storage")
    if meta.get("session_config"):
        entries = ", ".join(f"{k}={v}" for k, v in meta["session_config"].items())
        click.echo(f"session: {entries} (onnxruntime does not read this from the file: set it in your own "
                   "session's config entries, as rnncompress bench and export verification do)")
    if "interface" in d:
        show_interface(d["interface"], ", stored in the file" if d.get("interface_source") == "file" else "")


def _show_pruning(p: dict[str, Any]) -> None:
    """What ``prune`` did, as it printed it: the policy with the settings it used, the
    neurons per layer, the metric before and after, and the fine-tuning recipe."""
    method = p.get("method")
    detail = []
    if method == "lattice":
        relation = (f"{p.get('thresholds')} thresholds" if p.get("variant") == "continuous" else
                    f"threshold {p['threshold']}" if p.get("threshold") is not None else f"quantile {p.get('quantile')}")
        detail = [str(p.get("variant")), relation, f"{p.get('centrality')} centrality"]
        detail += ["edge pruning"] if p.get("edge_prune") else []
    elif method == "random":
        detail = [f"seed {p.get('seed')}"]
    click.echo(f"pruning: method {method}" + (f" ({', '.join(detail)})" if detail else "") + f", keep {p.get('keep')}")
    for layer in p.get("layers", []):
        mi = layer.get("meet_irreducible")
        click.echo(f"  layer {layer['layer']}: {layer['before']} -> {layer['after']} neurons"
                   + (f" ({mi} meet-irreducible)" if mi is not None else ""))
    epochs = p.get("finetune_epochs") or 0
    if p.get("test_before") is not None:
        tuned = (f", after fine-tuning {p['test_after_finetune']:.4f}"
                 if epochs and p.get("test_after_finetune") is not None else "")
        click.echo(f"  test {p.get('metric')}: before {p['test_before']:.4f}, after shrink "
                   f"{p['test_after_shrink']:.4f}{tuned}")
    if not epochs:
        click.echo("  no fine-tuning")
        return
    ft = (f"  fine-tuning: {epochs} epoch{'' if epochs == 1 else 's'} at lr {p.get('finetune_lr')}, masks "
          f"{'released' if p.get('release_masks') else 'kept'}")
    if p.get("finetune_strength") is not None:
        ft += f", regularizer strength {p['finetune_strength']}"
    if p.get("distill"):
        more = f" and {len(p['teachers'])} further teacher(s)" if p.get("teachers") else ""
        ft += f", distilled from the parent{more} (weight {p['distill']}, temperature {p.get('distill_temperature')})"
    click.echo(ft)


@click.command()
@click.argument("checkpoint", type=PathArg(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON (for scripts).")
@data_option
@handle_errors
def info(checkpoint: Path, as_json: bool, data: str | None) -> None:
    """Show a checkpoint: model, task, per-matrix sparsity, metrics and history.

    Given an .onnx file, show what it is instead: inputs and outputs, ops, which ops are
    int8, sparse storage, and the provenance rnncompress recorded when it exported and
    verified it (source checkpoint and hash, task, metric, sparsity).

    Both include the interface a service running the model without rnncompress needs:
    how inputs are made and outputs read, with the task's constants and tables (smnist
    normalisation and pixel permutation, charlm vocabulary, navigation place-cell
    centres); --json gives the tables in full. An ONNX file carries its own (metadata
    rnncompress.interface, written by the export); for one that does not, it is derived
    from the task the file records, reading its data from --data if given.
    """
    check_model_file(checkpoint)
    if model_file_kind(checkpoint) == "onnx":
        d = onnx_summary(checkpoint)
        check_onnx_metadata(d)
        stored = d["metadata"].pop("interface", None)
        if stored:  # the export's own record, whatever --data says
            d["interface"], d["interface_source"] = stored, "file"
        elif d["metadata"].get("task"):  # an older export, or tables unreadable then: from its task
            _check_data_option(d["metadata"]["task"], data)
            d["interface"] = interface_of(d["metadata"]["task"], d["metadata"].get("data_sha256"), data)
            d["interface_source"] = "task"
        if as_json:
            echo_json(d)
        else:
            show_onnx(d)
        return
    ckpt = load_checkpoint(checkpoint)
    _check_data_option(ckpt.task, data)
    d = describe(ckpt, data)
    if as_json:
        echo_json(d)
        return
    m = d["model"]
    click.echo(f"{d['path']}  ({d['state']}, sha256 {d['sha256'][:12]})")
    params = ", ".join(f"{k} {v}" for k, v in d["task"].get("params", {}).items())
    click.echo(f"task: {d['task'].get('name')} ({params})" if params else f"task: {d['task'].get('name')}")
    click.echo(f"model: {m['cell']} hidden {m['hidden_sizes']} input {m['input_size']} output {m['output_size']} "
               f"head {m['head']}  parameters {d['parameters']:,} (nonzero {d['nonzero_parameters']:,})")
    reg = d["regularizer"]
    if reg and reg.get("space") == "none":
        click.echo("regularizer: none")
    elif reg:
        click.echo(f"regularizer: space {reg.get('space')} inhibitor {reg.get('inhibitor')} "
                   f"invert {reg.get('invert')} strength {reg.get('strength')}")
    pr = d["training"].get("pruning", {})
    if pr and not pr.get("sparsity"):
        if not d["pruning"]:  # (a pruned model's fine-tuning prunes nothing: not worth a line)
            click.echo("magnitude pruning: none")
    elif pr:
        click.echo(f"magnitude pruning: target {pr.get('sparsity')} {pr.get('schedule')} {pr.get('mode')} "
                   f"scope {pr.get('scope')}")
    rows = [[name, f"{v['numel']:,}", f"{v['sparsity']:.3f}"] for name, v in d["sparsity"]["per_matrix"].items()]
    click.echo(fmt_table(rows, ["matrix", "entries", "sparsity"]))
    click.echo(f"recurrent sparsity {d['sparsity']['recurrent']:.3f}, overall {d['sparsity']['overall']:.3f}")
    if d["pruning"]:
        _show_pruning(d["pruning"])
    if d["history"]:
        keys = [k for k in d["history"][0] if k not in ("lr",)]
        rows = [[h.get(k, "") for k in keys] for h in d["history"]]
        click.echo(fmt_table(rows, keys))
    if d["metrics"]:
        click.echo("final: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in d["metrics"].items()))
    show_interface(d["interface"])
    if d["not_finite"]:
        click.echo(f"warning: NaN or Inf values in {', '.join(d['not_finite'])}: prune, export and bench refuse "
                   "this checkpoint.", err=True)
    if d["resume_after_epoch"] is not None:
        click.echo(f"unfinished: resumable after epoch {d['resume_after_epoch']} (train --resume --out {d['path']})")
