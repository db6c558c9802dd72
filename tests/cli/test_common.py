"""cli.common: how failures outside the library reach the user."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import TINY, run

from cli.common import CliError, handle_errors
from models.checkpoint import load_checkpoint, save_checkpoint


def test_a_closed_pipe_stops_quietly() -> None:
    @handle_errors
    def print_to_a_reader_that_left() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(SystemExit) as e:
        print_to_a_reader_that_left()
    assert e.value.code == 141


def test_a_failed_torch_allocation_is_one_line_and_other_runtime_errors_are_bugs() -> None:
    @handle_errors
    def allocate() -> None:
        torch.empty(1 << 62, dtype=torch.uint8)

    with pytest.raises(CliError, match="out of memory"):
        allocate()

    @handle_errors
    def bug() -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        bug()


def test_an_unfinished_run_is_named_by_the_commands_that_read_it(tmp_path: Path) -> None:
    done = tmp_path / "m.pt"
    assert run(["train", *TINY, "--out", str(done)]).exit_code == 0
    ckpt = load_checkpoint(done)
    assert ckpt.unfinished() is None
    ckpt.state, ckpt.resume = "training", {"epoch": 1, "step": 2, "optimizer": {}}
    partial = tmp_path / "partial.pt"
    save_checkpoint(partial, ckpt)
    assert "unfinished training run (1 of 2 epochs" in load_checkpoint(partial).unfinished()
    r = run(["export", str(partial), "--format", "dense", "--out-dir", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0 and "note: " in r.stderr and "unfinished training run" in r.stderr


def test_top_level_help_lists_each_command_once_in_workflow_order() -> None:
    out = run(["--help"]).stdout
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines()
              if line.startswith("  ") and not line.startswith("   ")]
    assert listed == ["train", "info", "prune", "export", "sparsify", "bench", "check", "run"]
    assert "chunk" in out


def test_an_empty_checkpoint_names_what_went_wrong(tmp_path: Path) -> None:
    empty = tmp_path / "e.pt"
    empty.write_bytes(b"")
    r = run(["info", str(empty)])
    assert r.exit_code == 2 and "()" not in r.stderr


def test_a_parameter_error_names_the_option_of_the_running_command() -> None:
    """A library error names its parameter; on the command line the user typed an option."""
    import click
    from click.testing import CliRunner

    from models.errors import param_error

    @click.command()
    @click.option("--min-gain", type=float)
    @click.option("--name", "names", multiple=True)
    @click.argument("which")
    @handle_errors
    def cmd(min_gain, names, which) -> None:
        raise param_error(which, "a float in [0, 1)", 2.0)

    def first_line(which: str) -> str:
        return CliRunner().invoke(cmd, [which]).output.splitlines()[0]

    assert first_line("min_gain") == "error: --min-gain must be a float in [0, 1). Got 2.0 instead."
    assert first_line("names").startswith("error: --name must be")
    # No option of that name: the library's wording stays.
    assert first_line("seq_len") == "error: The 'seq_len' parameter must be a float in [0, 1). Got 2.0 instead."


def test_bare_rnncompress_prints_the_help_and_succeeds() -> None:
    r = run([])
    assert r.exit_code == 0 and r.stdout.startswith("Usage:") and "Compress recurrent networks" in r.stdout
