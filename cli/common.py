"""Shared pieces of the CLI: error mapping, option groups, printing helpers."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

import click
from click.core import ParameterSource

from models.checkpoint import load_checkpoint
from models.errors import RnnCompressError, check_threads, clip
from models.io import text_of_name
from models.progress import Progress


class CliError(click.ClickException):
    """One line on stderr and the exit code of the library error it wraps."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


# What each command can make smaller when memory runs out (its own options).
OUT_OF_MEMORY = {
    "train": "a smaller --hidden or --layers, --batch-size, --seq-len or --samples",
    "prune": "fewer neurons to rank (a smaller model) or no fine-tuning (--finetune-epochs 0)",
    "export": "fewer verification sequences (--parity-samples, --metric-samples) or a smaller model",
    "bench": "fewer test sequences (--max-eval), a shorter --seq-len or a smaller model",
    "run": "a smaller [model] hidden or layers, [train] batch_size, or fewer or shorter [task] sequences",
}


def out_of_memory(command: str) -> str:
    return f"out of memory; try {OUT_OF_MEMORY.get(command, 'a smaller model or input')}."


_PARAMETER = re.compile(r"^The '(\w+)' parameter ")
# ctx.meta key: {library parameter name: option} for a command whose options are named otherwise.
PARAMETER_OPTIONS = "rnncompress.parameter_options"


def _spelling(p: click.Parameter, negation: bool = False) -> str:
    """How the user types option ``p``: its longest name (with ``negation``, also its --no- form)."""
    return "/".join([max(p.opts, key=len), *(getattr(p, "secondary_opts", []) if negation else [])])


def option_label(ctx: click.Context, name: str, negation: bool = False) -> str:
    """The option of the running command whose parameter is ``name`` (``feed_forward`` ->
    ``--feed-forward``; with ``negation`` ``--feed-forward/--no-feed-forward``)."""
    return _spelling(next(p for p in ctx.command.params if p.name == name), negation)


def command_line() -> str:
    """The command as typed, for a checkpoint's provenance."""
    return "rnncompress " + " ".join(sys.argv[1:])


def _in_cli_terms(message: str) -> str:
    """A library error naming a parameter (``param_error``) names the command's option for it
    instead, when the running command has one: ``--min-gain``, not ``'min_gain'``."""
    m = _PARAMETER.match(message)
    ctx = click.get_current_context(silent=True)
    if m is None or ctx is None:
        return message
    renamed = ctx.meta.get(PARAMETER_OPTIONS, {})  # a command's options named unlike their parameters
    if m.group(1) in renamed:
        return f"{renamed[m.group(1)]} " + message[m.end():]
    for p in ctx.command.params:
        if isinstance(p, click.Option) and (p.name == m.group(1) or "--" + m.group(1).replace("_", "-") in p.opts):
            return f"{_spelling(p)} " + message[m.end():]
    return message


def _file_id(path: Any) -> tuple[int, int] | None:
    """(inode, mtime in ns) of ``path``, None when there is none: checkpoints are replaced by
    rename, so a new write changes it."""
    try:
        st = os.stat(path)
    except (OSError, TypeError, ValueError):
        return None
    return st.st_ino, st.st_mtime_ns


def _train_resume_hint(out: Any, before: tuple[int, int] | None, resuming: bool) -> str:
    """What an interrupted ``train`` can do next: resume the epoch checkpoint it wrote, or
    start again when it stopped before the end of its first epoch (a file at --out it did
    not write, such as the run --force was replacing, is not this run's to resume)."""
    try:
        written = resuming or _file_id(out) != before
        resumable = out is not None and written and load_checkpoint(out).state == "training"
    except (RnnCompressError, OSError):
        resumable = False
    if resumable:
        return f" (train --resume --out {out} continues where it stopped)"
    return " (it stopped before its first epoch ended, so there is nothing to resume: start it again)"


class PathArg(click.Path):
    """``click.Path`` that refuses an empty value: it would mean the current directory (to
    Python, Path("") is "."), and an empty value is an unset shell variable, not a choice."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path (an unset variable?) would mean the current directory; name the path.", param,
                      ctx)
        return super().convert(value, param, ctx)


def _command() -> str:
    """The name of the running subcommand ("" outside click)."""
    ctx = click.get_current_context(silent=True)
    return ctx.info_name if ctx else ""


def handle_errors(fn: Callable) -> Callable:
    """Turn library exceptions into one-line messages with the documented exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out_before = _file_id(kwargs["out"]) if kwargs.get("out") is not None else None
        try:
            return fn(*args, **kwargs)
        except RnnCompressError as e:
            raise CliError(_in_cli_terms(str(e)), e.exit_code) from None
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: a message and exit code already (Exit is a RuntimeError)
        except KeyboardInterrupt as e:
            name = _command()
            resume = (_train_resume_hint(kwargs.get("out"), out_before, bool(kwargs.get("resume"))) if name == "train"
                      else " (rerunning continues where it stopped)" if name == "run"
                      else " (a report cut short while being written is removed with its plots)" if name == "bench"
                      else "")
            how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
            click.echo(f"{how}: files already written are complete and kept{resume}.", err=True)
            sys.exit(143 if isinstance(e, Terminated) else 130)
        except MemoryError:
            raise CliError(out_of_memory(_command()), 2) from None
        except RuntimeError as e:  # torch's allocator reports a failed allocation this way
            if "allocate" not in str(e) and "out of memory" not in str(e).lower():
                raise _unforeseen(e) from None
            raise CliError(out_of_memory(_command()), 2) from None
        except BrokenPipeError:  # `rnncompress info X | head`: the reader left; stop quietly
            try:  # so the interpreter's own flush at exit does not fail again
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass
            sys.exit(141)  # what a shell reports for a process killed by SIGPIPE
        except OSError as e:  # the file system said no (full disk, read-only, permissions)
            where = f": {e.filename}" if e.filename else ""
            raise CliError(f"{e.strerror or e}{where}.", 2) from None
        except Exception as e:  # noqa: BLE001 -- see _unforeseen
            raise _unforeseen(e) from None

    return wrapper


def _unforeseen(e: Exception) -> Exception:
    """An exception no rule foresaw: one line and exit 2, never Python's exit 1 with a traceback
    (1 tells CI that a budget is broken). RNNCOMPRESS_TRACEBACK=1 lets it through, to see where."""
    if os.environ.get("RNNCOMPRESS_TRACEBACK", "") not in ("", "0"):
        return e
    said = clip(" ".join(str(e).split()), 200)  # one line, whatever the exception's message spans
    return CliError(f"unexpected {type(e).__name__}: {said} (rnncompress did not foresee this; "
                    "RNNCOMPRESS_TRACEBACK=1 shows where it happened; please report it if the cause is not yours).", 2)


class Terminated(KeyboardInterrupt):
    """SIGTERM (what CI systems send on cancel), raised in the main thread like Ctrl-C, so that
    temporary files are removed and the run can be resumed the same way."""


def terminate_like_interrupt() -> None:
    """Install the SIGTERM handler that raises ``Terminated``."""
    import signal

    def raise_terminated(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        raise Terminated()

    try:
        signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread (a library caller invoking the CLI): leave it
        pass


def explicit_options(ctx: click.Context, names: list[str]) -> list[str]:
    """Which of the options ``names`` the user typed (not left at their defaults)."""
    return [n for n in names if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE]


def refuse_inapplicable(ctx: click.Context, names: list[str], applies_to: str) -> None:
    """One line when an option that only ``applies_to`` something else was typed (it would be ignored)."""
    given = explicit_options(ctx, names)
    if given:
        raise CliError(f"{option_label(ctx, given[0])} applies to {applies_to} only; drop it.")


def quiet_option(fn: Callable) -> Callable:
    return click.option("--quiet", "-q", is_flag=True, help="No progress output; results only.")(fn)


def threads_option(fn: Callable) -> Callable:
    return click.option("--threads", type=int, default=0, show_default=True,
                        help="torch intra-op threads for training (0 = torch's default, one per core; at most 256). "
                             "Use 1 when other jobs share the cores: torch's threads wait on each other there.")(fn)


def data_option(fn: Callable) -> Callable:
    return click.option("--data", type=PathArg(), default=None,
                        help="Where the task's data files are now, if they moved since training (smnist, npz, "
                             "charlm; default: the location the checkpoint records).")(fn)


def set_threads(threads: int) -> None:
    import torch

    if check_threads(threads):
        torch.set_num_threads(threads)


def progress_for(quiet: bool) -> Progress:
    return Progress(enabled=not quiet)


def note_unfinished(ckpt: Any) -> None:
    """Warn on stderr when a command is given an interrupted training run."""
    if (text := ckpt.unfinished()) is not None:
        click.echo(f"note: {text}.", err=True)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinite floats as None: JSON has no NaN, and scripts parse strictly."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def echo_json(obj: Any) -> None:
    """``obj`` as strict JSON (NaN and infinities become null)."""
    click.echo(json.dumps(_finite(obj), indent=2, sort_keys=True, default=str, allow_nan=False))


def fmt_table(rows: list[list[Any]], header: list[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return text_of_name(str(v)) if isinstance(v, (str, Path)) else str(v)  # file names that are not UTF-8
