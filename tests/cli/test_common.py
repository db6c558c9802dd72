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

    import click
    from click.testing import CliRunner

    for name, advice in [("bench", "--max-eval"), ("train", "--batch-size"), ("run", "[train] batch_size")]:
        @click.command(name=name)
        @handle_errors
        def command() -> None:
            raise MemoryError

        r = CliRunner().invoke(command, [])
        assert r.exit_code == 2 and r.output.startswith("error: out of memory; try ") and advice in r.output, r.output

    @handle_errors
    def bug() -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(CliError, match=r"^unexpected RuntimeError: shape mismatch \(rnncompress did not foresee") as e:
        bug()
    assert e.value.exit_code == 2


def test_an_unforeseen_error_is_one_line_and_exit_2_never_1(monkeypatch) -> None:
    # Python's own exit code for an uncaught exception is 1, which CI reads as "a budget is broken".
    import click
    from click.testing import CliRunner

    for name, advice in [("bench", "--max-eval"), ("train", "--batch-size"), ("run", "[train] batch_size")]:
        @click.command(name=name)
        @handle_errors
        def command() -> None:
            raise MemoryError

        r = CliRunner().invoke(command, [])
        assert r.exit_code == 2 and r.output.startswith("error: out of memory; try ") and advice in r.output, r.output

    @handle_errors
    def bug() -> None:
        raise ValueError("'bogus' is not a valid value for backend")

    with pytest.raises(CliError) as e:
        bug()
    assert e.value.exit_code == 2 and "\n" not in e.value.message
    assert e.value.message.startswith("unexpected ValueError: 'bogus' is not a valid value for backend")
    monkeypatch.setenv("RNNCOMPRESS_TRACEBACK", "1")
    with pytest.raises(ValueError, match="bogus"):
        bug()

    @handle_errors
    def budget_broken() -> None:
        raise CliError("a budget is broken", 1)

    with pytest.raises(CliError) as e:
        budget_broken()
    assert e.value.exit_code == 1  # click's and our own exceptions pass through unchanged


def test_sigterm_cleans_up_like_ctrl_c_and_exits_143(tmp_path: Path, capsys) -> None:
    import os
    import signal

    from cli.common import terminate_like_interrupt
    from models.io import atomic_path

    target = tmp_path / "m.pt"

    @handle_errors
    def write_then_get_cancelled() -> None:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"x" * 1000)
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next statement
            tmp.write_bytes(b"never reached")

    previous = signal.getsignal(signal.SIGTERM)
    try:
        terminate_like_interrupt()
        with pytest.raises(SystemExit) as e:
            write_then_get_cancelled()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert e.value.code == 143
    assert list(tmp_path.iterdir()) == []  # the half-written temporary file is gone
    assert capsys.readouterr().err.startswith("terminated (SIGTERM): files already written are complete")


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


def test_an_unforeseen_multi_line_message_stays_one_line_and_a_second_sigterm_waits(tmp_path: Path) -> None:
    import os
    import signal

    from cli.common import terminate_like_interrupt

    @handle_errors
    def torch_style() -> None:
        raise RuntimeError("Error(s) in loading state_dict:\n\tsize mismatch for w")

    with pytest.raises(CliError) as e:
        torch_style()
    assert "\n" not in e.value.message and "state_dict: size mismatch for w" in e.value.message

    @handle_errors
    def cancelled_twice() -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    try:
        terminate_like_interrupt()
        with pytest.raises(SystemExit) as stop:
            cancelled_twice()
        os.kill(os.getpid(), signal.SIGTERM)  # while the first is being handled: ignored, not a second stop
        assert stop.value.code == 143
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_ctrl_c_while_the_command_line_is_imported_is_one_line(monkeypatch, capsys) -> None:
    """The import of torch and onnxruntime takes a second or more: Ctrl-C then is exit 130
    and one line, as at any later moment (the console script imports inside a guard)."""
    import sys

    from cli import entry

    class InterruptedImport:
        def find_spec(self, name, path=None, target=None):
            if name == "cli.main":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "cli.main", raising=False)
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as e:
        entry.main()
    assert e.value.code == 130
    assert capsys.readouterr().err == "interrupted: before the command started; nothing was written.\n"


@pytest.mark.parametrize("args", [
    ["train", "--task", "adding", "--out", ""],
    ["train", "--task", "smnist", "--data", "", "--out", "m.pt"],
    ["prune", "m.pt", "--out", ""],
    ["prune", "", "--out", "p.pt"],
    ["prune", "m.pt", "--out", "p.pt", "--plot", " "],
    ["export", "m.pt", "--out-dir", ""],
    ["bench", "m.pt", "--out-dir", ""],
    ["bench", "m.pt", "--baseline", "", "--out-dir", "b"],
    ["info", ""],
    ["sparsify", "m.onnx", "--out", ""],
    ["run", "--out", ""],
    ["check", "", "--max-size-kb", "1"],
])
def test_an_empty_path_is_refused_not_taken_for_the_current_directory(args, tmp_path, monkeypatch):
    """An unset shell variable ("--out-dir $OUT") must not write into the working directory."""
    monkeypatch.chdir(tmp_path)
    r = run(args)
    assert r.exit_code == 2 and "an empty path (an unset variable?) would mean the current directory" in r.stderr
    assert list(tmp_path.iterdir()) == []
