"""``rnncompress train``: train a (sparse, geometric) recurrent model on a task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from cli.common import (CliError, PARAMETER_OPTIONS, PathArg, command_line, explicit_options, handle_errors,
                        option_label, progress_for, quiet_option, refuse_inapplicable, set_threads, threads_option)
from compressor.magnitude import PruneSchedule
from compressor.moduli import INHIBITORS, ModuliConfig
from compressor.training import (TrainConfig, check_resumable, ignored_train_settings, model_config_for,
                                 resume_training, train_new)
from models.checkpoint import load_checkpoint
from models.errors import CheckpointError, DataError
from models.io import check_output_file
from models.tasks import TASKS, make_task, task_from_checkpoint

# The options --resume accepts: the others are the run's settings, stored in the checkpoint
# (--data: where the run's files are now, if they moved; the same files, checked by sha256).
RESUME_OPTIONS = ("out", "resume", "quiet", "threads", "data")

# CLI option -> (task parameter name per task). Options a task does not take are refused.
TASK_OPTIONS: dict[str, dict[str, str]] = {
    "data": {"smnist": "data", "npz": "data", "charlm": "data"},
    "seq_len": {"adding": "seq_len", "navigation": "seq_len", "charlm": "seq_len"},
    "samples": {"adding": "samples", "navigation": "samples"},
    "permute_pixels": {"smnist": "permute"},
    "place_cells": {"navigation": "place_cells"},
    "tuning": {"navigation": "tuning"},
    "limit": {"smnist": "limit", "charlm": "limit_chars"},
}


def task_params_from_cli(ctx: click.Context, task: str, values: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    # Errors about a task parameter name the option that set it (limit_chars -> --limit).
    ctx.meta[PARAMETER_OPTIONS] = {per_task[task]: option_label(ctx, option)
                                   for option, per_task in TASK_OPTIONS.items() if task in per_task}
    for option, per_task in TASK_OPTIONS.items():
        if ctx.get_parameter_source(option) != ParameterSource.COMMANDLINE:
            continue
        if task not in per_task:
            users = ", ".join(sorted(per_task))
            raise CliError(f"{option_label(ctx, option)} does not apply to task '{task}' (only to {users}).")
        value = values[option]
        params[per_task[task]] = str(value) if option == "data" else value
    return params


@click.command()
@click.option("--task", type=click.Choice(sorted(TASKS)), default="adding", show_default=True,
              help="smnist: sequential MNIST (--data DIR with the idx files); npz: your own data (--data FILE.npz); "
                   "adding: the adding problem; navigation: path integration in a box; charlm: character LM on "
                   "a UTF-8 text file (--data FILE).")
@click.option("--data", type=PathArg(path_type=Path), default=None,
              help="Data location for smnist (directory), npz (file) and charlm (text file, .gz allowed). With "
                   "--resume: where the run's files are now, if they moved (the same files: sha256 checked).")
@click.option("--cell", type=click.Choice(["rnn", "lstm", "gru"]), default="lstm", show_default=True,
              help="Recurrent cell.")
@click.option("--hidden", type=int, default=128, show_default=True, help="Hidden neurons per layer.")
@click.option("--layers", type=int, default=1, show_default=True, help="Stacked recurrent layers.")
@click.option("--nonlinearity", type=click.Choice(["tanh", "relu"]), default=None,
              help="Elman RNN nonlinearity (default: the task's; navigation uses relu).")
@click.option("--space", default="none", show_default=True,
              help="Moduli space for the regularizer: circle, torus, torusK, klein, sphere, sphere3, euclidean, "
                   "euclideanK; controls l1 (uniform penalty) and permuted / permuted-SPACE (shuffled penalty); "
                   "none (off).")
@click.option("--inhibitor", default="dog", show_default=True,
              help=f"Penalty as a function of distance: {', '.join(sorted(INHIBITORS))}.")
@click.option("--invert/--no-invert", default=None,
              help="Penalise with max(f) - f instead of f. Default: inverted for dog (the paper's choice), gauss "
                   "and ripple, whose f peaks near distance 0; not for distance and square, which already make near "
                   "neurons cheap to connect and far ones expensive.")
@click.option("--strength", type=float, default=1.0, show_default=True,
              help="Regularizer weight lambda; the penalty matrix is normalised to mean 1.")
@click.option("--p", "p_norm", type=float, default=1.0, show_default=True, help="Exponent on |weight| in the penalty.")
@click.option("--learn-embedding", is_flag=True, help="Train neuron positions too (kept on the space).")
@click.option("--sparsity", type=float, default=0.0, show_default=True,
              help="Final magnitude-pruning sparsity in [0, 1) of the pruned matrices.")
@click.option("--schedule", type=click.Choice(["linear", "cubic"]), default="cubic", show_default=True,
              help="Gradual pruning schedule (linear as in the moduli paper, cubic as Zhu & Gupta).")
@click.option("--prune-mode", type=click.Choice(["per-matrix", "global"]), default="per-matrix", show_default=True,
              help="Each matrix reaches the target, or one threshold over all pruned matrices.")
@click.option("--prune-scope", type=click.Choice(["recurrent", "all"]), default="recurrent", show_default=True,
              help="Prune only recurrent matrices (weight_hh) or every weight matrix.")
@click.option("--prune-start", type=float, default=0.1, show_default=True, help="Pruning starts at this fraction of training.")
@click.option("--prune-end", type=float, default=0.7, show_default=True, help="Target reached at this fraction of training.")
@click.option("--epochs", type=int, default=10, show_default=True, help="Training epochs.")
@click.option("--batch-size", type=int, default=128, show_default=True, help="Mini-batch size.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Peak learning rate.")
@click.option("--lr-schedule", type=click.Choice(["cosine", "constant"]), default="cosine", show_default=True,
              help="Learning-rate schedule over all steps.")
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]), default="adam", show_default=True,
              help="Optimizer (sgd uses momentum 0.9).")
@click.option("--weight-decay", type=float, default=0.0, show_default=True,
              help="Weight decay of the optimizer (L2 for adam/sgd, decoupled for adamw); finite, >= 0.")
@click.option("--grad-clip", type=float, default=1.0, show_default=True, help="Gradient-norm clip (0 = off).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds model init, batch order and neuron positions.")
@click.option("--seq-len", type=int, default=None, help="Sequence length (adding, navigation, charlm; default: the task's, 50, 20 and 100).")
@click.option("--samples", type=int, default=None, help="Training sequences to generate (adding, navigation; default 20000).")
@click.option("--permute-pixels", is_flag=True, default=False, help="smnist: fixed pixel permutation (psMNIST).")
@click.option("--place-cells", type=int, default=None, help="navigation: number of place cells.")
@click.option("--tuning", type=click.Choice(["gauss", "dog"]), default=None,
              help="navigation: place-cell code; gauss (default) trains in minutes, dog is the moduli paper's "
                   "difference of Gaussians (nearly uniform, so far slower to learn).")
@click.option("--limit", type=int, default=None,
              help="Use only the first N training images (smnist) or characters (charlm), for quick runs "
                   "(0: all).")
@click.option("--out", type=PathArg(path_type=Path), required=True,
              help="Checkpoint file; written atomically after every epoch.")
@click.option("--resume", is_flag=True,
              help="Continue the interrupted run stored at --out (its stored settings are used).")
@click.option("--force", is_flag=True, help="Overwrite an existing checkpoint at --out.")
@threads_option
@quiet_option
@click.pass_context
@handle_errors
def train(ctx: click.Context, **o: Any) -> None:
    """Train a recurrent model with moduli regularization and gradual magnitude pruning.

    Writes a checkpoint to --out after every epoch; an interrupted run continues with
    --resume to exactly the result an uninterrupted run gives.

    \b
    Example:
      rnncompress train --task smnist --data ../shared/datasets/mnist --cell lstm \\
          --hidden 256 --space torus --strength 3 --sparsity 0.9 --epochs 12 --out lstm.pt
    """
    set_threads(o["threads"])
    progress = progress_for(o["quiet"])
    out: Path = o["out"]
    # Before loading data and training; an existing checkpoint is handled below (resume / --force).
    check_output_file(out, "--out", [o["data"]], force=True)
    if o["resume"]:
        if not out.exists():
            raise CliError(f"--resume: no checkpoint at {out} to continue.")
        ckpt = load_checkpoint(out)
        # Every setting of the run is stored; only where and how loudly it runs may change.
        settings = [p.name for p in ctx.command.params if p.name not in RESUME_OPTIONS]
        changed = explicit_options(ctx, settings)
        if changed:
            option = option_label(ctx, changed[0], negation=True)  # --invert/--no-invert: either was typed
            if changed[0] == "force":
                raise CliError("--force does not apply to --resume, which continues the checkpoint at --out; drop it.")
            raise CliError(f"--resume continues the stored run with its own settings; drop {option}.")
        check_resumable(ckpt)
        moved = o["data"]  # None unless given
        task = task_from_checkpoint(ckpt.task, moved)
        try:
            data = task.load()
        except DataError as e:
            if moved is None and task.source_files():
                raise DataError(f"{str(e).rstrip('.')}; if the run's files moved, give their new place with --data "
                                "(the same files: their sha256 is checked).") from None
            raise
        done = ckpt.resume["epoch"] if ckpt.resume else 0
        progress.message(f"resuming {out} after epoch {done}")
        final = resume_training(ckpt, task, data, out, progress)
    else:
        if out.is_symlink() and not out.exists() and not o["force"]:
            raise CliError(f"{out} already exists (a symbolic link to nothing: dangling, or a loop); pass --force to "
                           "replace it.")
        if out.exists() and not o["force"]:
            try:
                state = load_checkpoint(out).state
            except CheckpointError:
                state = "unknown"
            hint = "use --resume to continue it" if state == "training" else "pass --force to overwrite it"
            raise CliError(f"{out} already exists ({state} checkpoint); {hint}.")
        if o["cell"] != "rnn" and explicit_options(ctx, ["nonlinearity"]):
            raise CliError(f"--nonlinearity applies to --cell rnn only (an {o['cell']} has fixed gate nonlinearities).")
        # Options the space or the sparsity ignore would be silently dropped: say so.
        for name, applies_to in ignored_train_settings(o["space"], o["sparsity"]).items():
            refuse_inapplicable(ctx, ["p_norm" if name == "p" else name], applies_to)
        task = make_task(o["task"], task_params_from_cli(ctx, o["task"], o))
        check_output_file(out, "--out", task.guarded_files(), force=True)  # (an idx file inside --data DIR)
        config = TrainConfig(
            epochs=o["epochs"], batch_size=o["batch_size"], lr=o["lr"], lr_schedule=o["lr_schedule"],
            optimizer=o["optimizer"], weight_decay=o["weight_decay"], grad_clip=o["grad_clip"], seed=o["seed"],
            regularizer=ModuliConfig(space=o["space"], inhibitor=o["inhibitor"], invert=o["invert"],
                                     strength=o["strength"], p=o["p_norm"], learn_embedding=o["learn_embedding"],
                                     seed=o["seed"]),
            pruning=PruneSchedule(sparsity=o["sparsity"], schedule=o["schedule"], mode=o["prune_mode"],
                                  scope=o["prune_scope"], start=o["prune_start"], end=o["prune_end"]),
        )
        data = task.load()
        model_config = model_config_for(data, o["cell"], o["hidden"], o["layers"], o["nonlinearity"])
        info = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in data.info.items())
        progress.message(f"task {task.name}: {info}; model {model_config.cell} hidden {model_config.hidden_sizes}")
        final = train_new(task, data, model_config, config, out, progress,
                          provenance={"command": command_line()})
    m = final.metrics
    metric = m["metric"]
    click.echo(f"wrote {out}: test {metric} {m[f'test_{metric}']:.4f}, "
               f"recurrent sparsity {m['recurrent_sparsity']:.3f}")
