"""``rnncompress prune``: remove whole neurons, then fine-tune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.common import (CliError, PathArg, command_line, data_option, echo_json, explicit_options, fmt_table,
                        handle_errors, note_unfinished, progress_for, quiet_option, refuse_inapplicable, set_threads,
                        threads_option)
from compressor.prune import PruneConfig, ignored_settings, prune_checkpoint
from compressor.selection import CENTRALITIES, METHODS, VARIANTS, SelectionConfig, parse_keep
from models.checkpoint import load_checkpoint, save_checkpoint
from models.errors import DataError
from models.io import check_output_file, removed_on_failure
from models.tasks import check_data_fits, task_files, task_from_checkpoint


@click.command()
@click.argument("checkpoint", type=PathArg(path_type=Path))
@click.option("--method", type=click.Choice(METHODS), default="lattice", show_default=True,
              help="lattice: keep meet-irreducible neurons of the dependency lattice, then the most central; "
                   "norm: largest gate-summed L1 norm (torch.ao's LSTM saliency); random: seeded random choice.")
@click.option("--variant", type=click.Choice(VARIANTS), default="binary", show_default=True,
              help="Lattice relation: one threshold (binary) or persistence over a filtration (continuous). "
                   "On seq-MNIST with a 10-epoch fine-tune, continuous was level with --method norm on "
                   "validation and binary 0.06 points behind at 50% kept (README, Results).")
@click.option("--keep", default="0.5", show_default=True,
              help="Neurons kept per layer: a fraction with a decimal point in (0, 1] (0.5; 1.0 = all; the count "
                   "rounded half up), a count without one (128; 1 = one neuron), or 'auto' (exactly the "
                   "meet-irreducible set; "
                   "lattice only; continuous: the neurons meet-irreducible over at least half of the "
                   "filtration).")
@click.option("--quantile", type=float, default=SelectionConfig.quantile, show_default=True,
              help="Binary relation threshold: this quantile of the nonzero influences (per receiver block). "
                   "The binary variant's, and --edge-prune's (the continuous variant has its own levels).")
@click.option("--threshold", type=float, default=None,
              help="Binary relation: an absolute influence threshold instead of --quantile.")
@click.option("--thresholds", type=int, default=16, show_default=True,
              help="Continuous variant: number of threshold levels in the filtration (quantiles evenly spaced "
                   "in [0.05, 0.95]).")
@click.option("--feed-forward/--no-feed-forward", default=True, show_default=True,
              help="Count what a neuron drives downstream (next layer, head) as receivers too.")
@click.option("--centrality", type=click.Choice(list(CENTRALITIES)), default="degree", show_default=True,
              help="Lattice ranking after irreducibility: weighted degree, out-strength (what a neuron drives, "
                   "downstream included), or flow: importance flowing back from the layer's outputs along the "
                   "recurrent graph (Katz-style); degree-norm: degree times the incoming-weight norm; norm: the "
                   "incoming-weight norm alone (the lattice removes the redundant neurons first, norm orders the rest).")
@click.option("--edge-prune", is_flag=True,
              help="Also drop the kept neurons' recurrent connections outside the binary relation (recomputed "
                   "on the shrunk layer, recurrent receivers only). It is the selection's relation: at the "
                   "default --quantile 0.97 it keeps the top 3% of each receiver block's nonzero influences, a "
                   "small fraction of the recurrent weights (prune prints the recurrent sparsity it leaves); "
                   "fine-tuning keeps them dropped.")
@click.option("--finetune-epochs", type=int, default=3, show_default=True,
              help="Fine-tuning epochs after shrinking (regularizer and magnitude masks still in force, "
                   "unless --finetune-strength 0 / --release-masks).")
@click.option("--finetune-lr", type=float, default=5e-4, show_default=True, help="Fine-tuning learning rate.")
@click.option("--distill", type=float, default=0.0, show_default=True,
              help="Weight w in [0, 1] of knowledge distillation from the unpruned parent while fine-tuning: "
                   "loss = (1 - w) * task loss + w * T^2 * KL(parent || pruned) on outputs softened by the "
                   "temperature T (MSE to the parent's outputs for regression tasks; with --teacher, to the "
                   "mean of the teachers' outputs). 0 = off.")
@click.option("--distill-temperature", type=float, default=2.0, show_default=True,
              help="Softmax temperature of the distillation term.")
@click.option("--teacher", "teachers", multiple=True, type=PathArg(path_type=Path),
              help="A further distillation teacher (repeatable): a checkpoint of the same task, e.g. the dense "
                   "model the sparse parent was trained beside. The distillation target becomes the mean of the "
                   "parent's and these models' outputs. Needs --distill > 0.")
@click.option("--release-masks", is_flag=True,
              help="Fine-tune every weight of the shrunk model instead of keeping the parent's magnitude masks "
                   "(onnxruntime runs dense kernels either way; the sparse ONNX file gets larger).")
@click.option("--finetune-strength", type=float, default=None,
              help="Moduli regularizer strength while fine-tuning. Default: the parent's; 0 turns the "
                   "regularizer off (the shrunk model's onnxruntime latency does not depend on its "
                   "recurrent sparsity).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of --method random's choice (the other methods choose deterministically).")
@click.option("--out", type=PathArg(path_type=Path), required=True, help="Pruned checkpoint to write.")
@click.option("--plot", type=PathArg(path_type=Path), default=None,
              help="Write a PNG of each layer's recurrent matrix (neurons ordered by position on the space) "
                   "with kept and removed neurons marked, beside the neurons drawn on the space (when the "
                   "model was trained with one); with several layers, layer l goes to PLOT with suffix -l.")
@click.option("--json", "as_json", is_flag=True, help="Print the pruning report as JSON.")
@click.option("--force", is_flag=True, help="Overwrite existing --out and --plot files (inputs never).")
@data_option
@threads_option
@quiet_option
@click.pass_context
@handle_errors
def prune(ctx: click.Context, checkpoint: Path, out: Path, plot: Path | None, as_json: bool, force: bool, quiet: bool,
          threads: int,
          teachers: tuple[Path, ...], **o: Any) -> None:
    """Shrink a trained checkpoint: select neurons, remove them, fine-tune.

    The shrunk model is a plain, smaller dense model: that is where onnxruntime latency comes
    from. Before writing, the masked and the shrunk model are checked to agree (exit 3, nothing
    written, if they do not: a bug to report).

    \b
    Example:
      rnncompress prune lstm.pt --method lattice --keep 0.25 --finetune-epochs 3 --out small.pt
    """
    set_threads(threads)
    ignored = ignored_settings(o["method"], o["variant"], o["edge_prune"], o["finetune_epochs"], o["distill"])
    for name, needs in ignored.items():
        refuse_inapplicable(ctx, [name], needs.as_option())
    if len(explicit_options(ctx, ["quantile", "threshold"])) == 2:
        raise CliError("--threshold (absolute) replaces --quantile; give one of them.")
    ckpt = load_checkpoint(checkpoint)  # the input first: a missing one is the error to report
    inputs = [checkpoint, *teachers, *task_files(ckpt.task, o["data"])]  # (the data too: never written over)
    check_output_file(out, "--out", inputs, force)
    plots: list[Path] = []
    if plot is not None:
        from runtime.plots import pruning_plot_paths

        # (force: whether it exists matters only where it is written: a deep model's --plot is a name pattern)
        check_output_file(plot, "--plot", inputs, True, outputs={"--out": out})
        if plot.suffix.lower() != ".png":
            raise CliError(f"--plot {plot} must be a .png file name.")
        plots = pruning_plot_paths(plot, len(ckpt.config.hidden_sizes))  # a deep model: one file per layer
        for path in plots:
            check_output_file(path, "--plot", inputs, force, outputs={"--out": out})
    config = PruneConfig(method=o["method"], variant=o["variant"], keep=parse_keep(o["keep"]),
                         quantile=o["quantile"], threshold=o["threshold"], thresholds=o["thresholds"], feed_forward=o["feed_forward"],
                         centrality=o["centrality"],
                         edge_prune=o["edge_prune"], finetune_epochs=o["finetune_epochs"],
                         finetune_lr=o["finetune_lr"], distill=o["distill"],
                         distill_temperature=o["distill_temperature"], release_masks=o["release_masks"],
                         finetune_strength=o["finetune_strength"], seed=o["seed"])
    note_unfinished(ckpt)
    if ((ckpt.regularizer or {}).get("config") or {}).get("space", "none") == "none":
        refuse_inapplicable(ctx, ["finetune_strength"], f"a parent trained with a regularizer ({checkpoint} was not)")
    task = task_from_checkpoint(ckpt.task, o["data"])
    try:
        data = task.load()
    except DataError as e:
        hint = "" if o["data"] is not None else "; pass --data PATH if the data moved"
        raise DataError(f"{str(e).rstrip('.')}{hint}.") from None
    task.check_data_is(ckpt.provenance.get("data_sha256"), str(checkpoint))
    for split in (data.train, data.val, data.test):
        check_data_fits(split, ckpt.config, task.name)
    further = tuple(load_checkpoint(t) for t in teachers)
    for t in further:
        note_unfinished(t)  # a teacher, like the parent, may be an interrupted run
    result = prune_checkpoint(ckpt, config, task, data, None, progress_for(quiet), teachers=further,
                              provenance={"command": command_line()})
    rep = result.report
    write_outputs(result, out, plot, plots, ckpt)
    if plots:
        rep["plots"] = [str(p) for p in plots]
    if as_json:
        echo_json(rep)
        return
    rows = [[l["layer"], l["before"], l["after"], l.get("meet_irreducible", "-")] for l in rep["layers"]]
    click.echo(fmt_table(rows, ["layer", "neurons before", "after", "meet-irreducible"]))
    m = rep["metric"]
    click.echo(f"parameters {rep['parameters_before']:,} -> {rep['parameters_after']:,}; recurrent sparsity "
               f"{rep['recurrent_sparsity_before']:.3f} -> {rep['recurrent_sparsity_after']:.3f}")
    tuned = (f"after fine-tuning {rep['test_after_finetune']:.4f}" if config.finetune_epochs
             else "no fine-tuning (--finetune-epochs 0)")
    click.echo(f"test {m}: before {rep['test_before']:.4f}, after shrink {rep['test_after_shrink']:.4f}, {tuned}")
    for p in rep.get("plots", []):
        click.echo(f"plot: {p}")
    click.echo(f"wrote {out}")


def write_outputs(result: Any, out: Path, plot: Path | None, plots: list[Path], parent: Any) -> None:
    """The plots, then the checkpoint, each atomically. A failure (a full disk) removes the plots
    this run created, so a failed prune leaves no checkpoint and no new plots behind."""
    with removed_on_failure(plots):
        if plot is not None:
            from runtime.plots import plot_pruning

            plot_pruning(plot, result.parent_model, result.selections, parent.regularizer, parent.config.gates)
        save_checkpoint(out, result.checkpoint)
