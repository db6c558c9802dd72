"""Shared pieces of the CLI: error mapping, option groups, printing helpers."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click

from models.errors import RnnCompressError
from models.progress import Progress


class CliError(click.ClickException):
    """One line on stderr and the exit code of the library error it wraps."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def handle_errors(fn: Callable) -> Callable:
    """Turn library exceptions into one-line messages with the documented exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RnnCompressError as e:
            raise CliError(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            click.echo("interrupted: files already written are complete and kept (train --resume and run continue "
                       "where they stopped).", err=True)
            sys.exit(130)
        except MemoryError:
            raise CliError("out of memory; try a smaller --batch-size or model.", 2) from None
        except OSError as e:  # the file system said no (full disk, read-only, permissions)
            where = f": {e.filename}" if e.filename else ""
            raise CliError(f"{e.strerror or e}{where}.", 2) from None

    return wrapper


def quiet_option(fn: Callable) -> Callable:
    return click.option("--quiet", "-q", is_flag=True, help="No progress output; results only.")(fn)


def threads_option(fn: Callable) -> Callable:
    return click.option("--threads", type=int, default=0, show_default=True,
                        help="torch intra-op threads for training (0 = torch's default).")(fn)


def set_threads(threads: int) -> None:
    import torch

    if threads < 0:
        raise CliError(f"The 'threads' parameter must be an int >= 0. Got {threads} instead.")
    if threads:
        torch.set_num_threads(threads)


def progress_for(quiet: bool) -> Progress:
    return Progress(enabled=not quiet)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


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
    return str(v)
