"""Helpers shared by the benchmark scripts: machine description, timing, Markdown tables,
and training runs that are skipped when their checkpoint already exists (so a long
benchmark can be interrupted and rerun)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from compressor.training import TrainConfig, model_config_for, train_new  # noqa: E402
from models.checkpoint import Checkpoint, load_checkpoint  # noqa: E402
from models.progress import Progress  # noqa: E402
from models.tasks import make_task  # noqa: E402

if TYPE_CHECKING:
    from compressor.prune import PruneConfig

SHARED = ROOT.parent / "shared" / "datasets"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}; Python {platform.python_version()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)")


def md_table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def mean_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def train_or_load(path: Path, task_name: str, task_params: dict[str, Any], cell: str, hidden: int, layers: int,
                  config: TrainConfig, quiet: bool = False) -> tuple[Checkpoint, float]:
    """Train unless a complete checkpoint is already at ``path``; returns it and the wall time
    (the stored time for a reused run)."""
    timing = path.with_suffix(".time.json")
    if path.exists():
        ckpt = load_checkpoint(path)
        if ckpt.state == "complete":
            seconds = json.loads(timing.read_text())["seconds"] if timing.exists() else float("nan")
            return ckpt, seconds
    task = make_task(task_name, task_params)
    data = task.load()
    mc = model_config_for(data, cell, hidden, layers)
    t0 = time.monotonic()
    ckpt = train_new(task, data, mc, config, path, Progress(enabled=not quiet, interval=30.0),
                     provenance={"command": f"benchmarks ({path.name})"})
    seconds = time.monotonic() - t0
    timing.write_text(json.dumps({"seconds": seconds}))
    return ckpt, seconds


def add_navigation_args(ap) -> None:
    """The training settings of the navigation benchmarks (navigation.py, and
    navigation_tuning.py, which trains its dense model the same way), and their parallelism."""
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=2)


def train_navigation(path: str, a: dict[str, Any], seed: int, task_params: dict[str, Any],
                     **config: Any) -> tuple[Checkpoint, float]:
    """One single-threaded navigation run (in a worker process) of ``add_navigation_args``'s
    settings ``a`` (hidden, epochs, lr), batch 200, further ``TrainConfig`` fields in
    ``config``; reused when finished. Prints its test error."""
    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=a["epochs"], batch_size=200, lr=a["lr"], seed=seed, **config)
    ck, sec = train_or_load(Path(path), "navigation", task_params, "rnn", a["hidden"], 1, cfg, quiet=True)
    print(f"{Path(path).name}: test {ck.metrics['test_position_error_cm']:.2f} cm ({sec:.0f}s)", file=sys.stderr,
          flush=True)
    return ck, sec


def torus_parent(parents: Path, strength: float, seed: int) -> Path:
    """The 90%-sparse torus-regularized seq-MNIST LSTM of benchmarks/smnist_moduli.py that the
    pruning benchmarks start from."""
    return parents / f"torus-0.9-{strength:g}-s{seed}.pt"


def shrunk_path(work: Path, keep: int, centrality: str, finetune_epochs: int, recipe_tag: str, seed: int = 0) -> Path:
    """Where the headline scripts cache a lattice-shrunk model of the seed-``seed`` parent."""
    return work / (f"shrunk-{keep}-{centrality}-ft{finetune_epochs}{recipe_tag}"
                   + (f"-s{seed}" if seed else "") + ".pt")


# The headline's fine-tuning recipe, chosen on validation by benchmarks/finetune_recipe.py
# (--keeps 128 --recipes ... rel+d2+off): headline.py prunes with it, headline_seeds.py and
# streaming.py find the headline's checkpoints by it.
HEADLINE_RECIPE = {"release_masks": True, "distill": 0.9, "finetune_strength": 0.0, "dense_teacher": True}
# The lattice centrality of the headline's shrunk models (binary variant, the CLI default).
HEADLINE_CENTRALITY = "degree"


def add_recipe_args(ap, release_masks: bool = False, distill: float = 0.0, temperature: float = 4.0,
                    finetune_strength: float | None = None, dense_teacher: bool | None = None) -> None:
    """The fine-tuning recipe options of ``rnncompress prune`` (see benchmarks/finetune_recipe.py).
    ``--dense-teacher`` is offered only by scripts that have a dense model to add (``dense_teacher``
    not None)."""
    import argparse

    ap.add_argument("--release-masks", action=argparse.BooleanOptionalAction, default=release_masks,
                    help="fine-tune every weight of the shrunk model instead of keeping the parent's masks")
    ap.add_argument("--distill", type=float, default=distill, help="distillation weight (0 = off)")
    ap.add_argument("--distill-temperature", type=float, default=temperature)
    ap.add_argument("--finetune-strength", type=float, default=finetune_strength,
                    help="moduli regularizer strength while fine-tuning (default: the parent's; 0 = off)")
    if dense_teacher is not None:
        ap.add_argument("--dense-teacher", action=argparse.BooleanOptionalAction, default=dense_teacher,
                        help="distill from the mean of the parent and the dense model of the same seed (--teacher)")


def recipe(args) -> tuple[str, str]:
    """(file-name tag, sentence) describing the fine-tuning recipe in ``args``."""
    strength = args.finetune_strength
    dense_teacher = bool(args.distill) and getattr(args, "dense_teacher", False)
    tag = ("-rel" if args.release_masks else "") + ("" if strength is None else f"-str{strength:g}") + (
        f"-d{args.distill:g}T{args.distill_temperature:g}" if args.distill else "") + ("-dt" if dense_teacher else "")
    reg = ("regularizer in force" if strength is None else "regularizer off" if strength == 0
           else f"regularizer at strength {strength:g}")
    text = f"{reg}, magnitude masks {'released' if args.release_masks else 'in force'}"
    if args.distill:
        who = "the mean of the parent and the dense model" if dense_teacher else "the parent"
        text += f", distilled from {who} (weight {args.distill:g}, temperature {args.distill_temperature:g})"
    return tag, text


def shrink_config(args, keep: int) -> "PruneConfig":
    """The headline scripts' lattice pruning of ``keep`` neurons with ``args``'s centrality,
    fine-tuning budget and recipe (``add_recipe_args``)."""
    from compressor.prune import PruneConfig

    return PruneConfig(method="lattice", keep=keep, centrality=args.centrality, finetune_epochs=args.finetune_epochs,
                       finetune_lr=args.finetune_lr, release_masks=args.release_masks, distill=args.distill,
                       distill_temperature=args.distill_temperature, finetune_strength=args.finetune_strength)


def shrink_teachers(args, dense: "Checkpoint") -> tuple:
    """The further teachers of the headline scripts' recipe: the dense model, if it asks for it."""
    return (dense,) if args.distill and args.dense_teacher else ()


def add_headline_model_args(ap) -> None:
    """Options that find the headline's shrunk checkpoints, for scripts that read them
    (streaming.py, int8_ops.py): its fine-tuning budget and recipe."""
    ap.add_argument("--centrality", default=HEADLINE_CENTRALITY)
    ap.add_argument("--finetune-epochs", type=int, default=10)
    add_recipe_args(ap, **HEADLINE_RECIPE)


def headline_shrunk(args, keep: int) -> Path:
    """The headline's lattice-shrunk seed-0 checkpoint of ``keep`` neurons; exits with a
    hint when benchmarks/headline.py has not made it yet."""
    path = shrunk_path(ROOT / "runs" / "headline", keep, args.centrality, args.finetune_epochs, recipe(args)[0])
    if not path.exists():
        sys.exit(f"{path} is missing: run benchmarks/headline.py first (it prunes the shrunk models)")
    return path


def reuse_note(rows: list[dict], work: Path, what: str = "runs") -> str:
    """The sentence saying how many of ``rows`` (flagged ``reused``) an earlier invocation
    produced, so a report's wall time is not read as the cost of every row; '' if none."""
    reused = [r for r in rows if r.get("reused")]
    if not reused:
        return ""
    cost = (f", where they took {sum(r['seconds'] for r in reused) / 60:.1f} min of single-thread compute"
            if all("seconds" in r for r in reused) else "")
    return (f"{len(reused)} of {len(rows)} {what} reused from an earlier invocation ({os.path.relpath(work, ROOT)})"
            f"{cost}; the wall time covers the rest.\n\n")


def write_report(path: Path, title: str, command: str, body: str, wall: float) -> None:
    text = (f"## {title}\n\n`{command}`\n\nMachine: {machine()}. "
            f"Wall time: {wall / 60:.1f} min.\n\n{body}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
