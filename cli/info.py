"""``rnncompress info``: what a checkpoint holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.common import echo_json, fmt_table, handle_errors
from models.checkpoint import Checkpoint, load_checkpoint
from models.sequence import count_parameters, sparsity_report


def describe(ckpt: Checkpoint) -> dict[str, Any]:
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
    }


@click.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON (for scripts).")
@handle_errors
def info(checkpoint: Path, as_json: bool) -> None:
    """Show a checkpoint: model, task, per-matrix sparsity, metrics and history."""
    d = describe(load_checkpoint(checkpoint))
    if as_json:
        echo_json(d)
        return
    m = d["model"]
    click.echo(f"{d['path']}  ({d['state']}, sha256 {d['sha256'][:12]})")
    click.echo(f"task: {d['task'].get('name')} {d['task'].get('params', {})}")
    click.echo(f"model: {m['cell']} hidden {m['hidden_sizes']} input {m['input_size']} output {m['output_size']} "
               f"head {m['head']}  parameters {d['parameters']:,} (nonzero {d['nonzero_parameters']:,})")
    reg = d["regularizer"]
    if reg:
        click.echo(f"regularizer: space {reg.get('space')} inhibitor {reg.get('inhibitor')} "
                   f"invert {reg.get('invert')} strength {reg.get('strength')}")
    pr = d["training"].get("pruning", {})
    if pr:
        click.echo(f"magnitude pruning: target {pr.get('sparsity')} {pr.get('schedule')} {pr.get('mode')} "
                   f"scope {pr.get('scope')}")
    rows = [[name, f"{v['numel']:,}", f"{v['sparsity']:.3f}"] for name, v in d["sparsity"]["per_matrix"].items()]
    click.echo(fmt_table(rows, ["matrix", "entries", "sparsity"]))
    click.echo(f"recurrent sparsity {d['sparsity']['recurrent']:.3f}, overall {d['sparsity']['overall']:.3f}")
    if d["pruning"]:
        p = d["pruning"]
        click.echo(f"lattice pruning: method {p.get('method')} variant {p.get('variant')} keep {p.get('keep')}")
        ft = (f"  fine-tuning: {p.get('finetune_epochs')} epochs at lr {p.get('finetune_lr')}, masks "
              f"{'released' if p.get('release_masks') else 'kept'}")
        if p.get("finetune_strength") is not None:
            ft += f", regularizer strength {p['finetune_strength']}"
        if p.get("distill"):
            more = f" and {len(p['teachers'])} further teacher(s)" if p.get("teachers") else ""
            ft += f", distilled from the parent{more} (weight {p['distill']}, temperature {p.get('distill_temperature')})"
        click.echo(ft)
        for layer in p.get("layers", []):
            click.echo(f"  layer {layer['layer']}: {layer['before']} -> {layer['after']} neurons "
                       f"({layer.get('meet_irreducible', '?')} meet-irreducible)")
    if d["history"]:
        keys = [k for k in d["history"][0] if k not in ("lr",)]
        rows = [[h.get(k, "") for k in keys] for h in d["history"]]
        click.echo(fmt_table(rows, keys))
    if d["metrics"]:
        click.echo("final: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in d["metrics"].items()))
    if d["resume_after_epoch"] is not None:
        click.echo(f"unfinished: resumable after epoch {d['resume_after_epoch']} (train --resume --out {d['path']})")
