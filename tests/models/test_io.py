"""models.io: the output-path rules every command shares (probe creates nothing; check
creates; both refuse the same paths with one line)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from models.errors import RnnCompressError
from models.io import (atomic_write_text, check_writable_dir, probe_writable_dir,
                       probe_writable_file)


def test_probe_creates_nothing_and_check_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    assert probe_writable_dir(target) == target
    assert not (tmp_path / "a").exists()
    assert check_writable_dir(target) == target
    assert target.is_dir()
    assert list(target.iterdir()) == []  # the write probe left nothing behind


@pytest.mark.parametrize("check", [probe_writable_dir, check_writable_dir])
def test_a_file_where_a_directory_is_wanted(tmp_path: Path, check) -> None:
    f = tmp_path / "file"
    f.write_text("keep me")
    with pytest.raises(RnnCompressError, match="not a directory"):
        check(f)
    with pytest.raises(RnnCompressError, match="not a directory"):
        check(f / "sub")
    assert f.read_text() == "keep me"


@pytest.mark.parametrize("check", [probe_writable_dir, check_writable_dir])
def test_an_unwritable_directory(check) -> None:
    # /proc refuses new files even to root, where os.access would say yes.
    with pytest.raises(RnnCompressError, match="not writable"):
        check("/proc/rnncompress-out")


def test_probe_writable_file(tmp_path: Path) -> None:
    assert probe_writable_file(tmp_path / "x.pt", "--out") == tmp_path / "x.pt"
    with pytest.raises(RnnCompressError, match="--out .* is a directory"):
        probe_writable_file(tmp_path, "--out")
    with pytest.raises(RnnCompressError, match="for --out does not exist"):
        probe_writable_file(tmp_path / "missing" / "x.pt", "--out")
    with pytest.raises(RnnCompressError, match="for --out is not writable"):
        probe_writable_file("/proc/x.pt", "--out")


def test_atomic_write_replaces_whole_files_only(tmp_path: Path) -> None:
    f = tmp_path / "r.txt"
    atomic_write_text(f, "one")
    atomic_write_text(f, "two")
    assert f.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["r.txt"]  # no temporary left


def test_a_failed_write_names_the_file_and_leaves_the_old_one(tmp_path: Path) -> None:
    import errno

    from models.io import atomic_write_with

    target = tmp_path / "model.onnx"
    target.write_text("old")

    def disk_full(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")  # what a full disk says: no file name

    with pytest.raises(OSError) as e:
        atomic_write_with(target, disk_full)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]

    def reads_another_file(tmp: Path) -> None:
        (tmp_path / "missing").read_text()

    with pytest.raises(FileNotFoundError) as e:
        atomic_write_with(target, reads_another_file)
    assert e.value.filename == str(tmp_path / "missing")  # an error about another file keeps its name


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")
def test_a_device_or_pipe_is_never_replaced_by_a_file(tmp_path: Path) -> None:
    """Writing is a rename over the path: over a pipe (or /dev/null) it would put a regular
    file in its place. Refused by every check, --force or not, and the pipe stays."""
    from helpers import run
    from models.io import atomic_write_bytes, check_output_file

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for call in (lambda: check_output_file(fifo, "--out", force=True),
                 lambda: check_output_file(fifo, "--out", force=True, probe=False),
                 lambda: atomic_write_bytes(fifo, b"x")):
        with pytest.raises(RnnCompressError, match="is not a regular file \\(a device, pipe or socket\\)"):
            call()
    r = run(["train", "--task", "adding", "--seq-len", "4", "--samples", "64", "--hidden", "4", "--epochs", "1",
             "--out", str(fifo), "--force", "-q"])
    assert r.exit_code == 2 and "--out " + str(fifo) + " is not a regular file" in r.output, r.output
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_dangling_link_or_a_loop_counts_as_there(tmp_path: Path) -> None:
    """Replaced only with force (a link is something the user made), and as a directory it is
    one error line, not pathlib's RuntimeError."""
    from models.io import check_output_file, same_file

    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    for name in ("dangling", "loop1"):
        link = tmp_path / name
        with pytest.raises(RnnCompressError, match=f"--out {link} already exists; pass --force"):
            check_output_file(link, "--out")
        assert check_output_file(link, "--out", force=True) == link
        with pytest.raises(RnnCompressError, match=f"Output directory {link} is a symbolic link to nothing"):
            probe_writable_dir(link)
        assert same_file(link, link) and not same_file(link, tmp_path / "loop2" if name == "dangling" else
                                                        tmp_path / "dangling")
        assert link.is_symlink()


def test_a_pipe_given_as_a_model_or_pipeline_is_refused_without_reading_it(tmp_path: Path) -> None:
    """Reading a FIFO's first bytes waits for a writer forever: info and bench hung."""
    from helpers import assert_one_line_error, run

    fifo = tmp_path / "m.pt"
    os.mkfifo(fifo)
    assert_one_line_error(run(["info", str(fifo)]), match="is not a regular file (a device, pipe or socket)")
    assert_one_line_error(run(["bench", str(fifo), "--out-dir", str(tmp_path / "b")]), match="is not a file")
    assert_one_line_error(run(["run", str(fifo), "--out", str(tmp_path / "r")]),
                          match=f"Pipeline file {fifo} is not a regular file")
