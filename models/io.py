"""File helpers shared by every stage: atomic writes and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from models.errors import RnnCompressError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    Readers never see a half-written file, and a failure leaves any existing file intact.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise RnnCompressError(f"Cannot write {target}: directory {parent} does not exist.")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the result the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result into place atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def probe_writable_dir(path: str | os.PathLike, error: type[RnnCompressError] = RnnCompressError) -> Path:
    """Fail early (before slow work) if ``path`` could not be created or written; creates nothing."""
    d = Path(path)
    if d.exists() and not d.is_dir():
        raise error(f"Output path {d} exists and is not a directory.")
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise error(f"Cannot create output directory {d}: {probe} is not a directory.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise error(f"Output directory {d} is not writable ({probe} does not allow writing).")
    return d


def check_writable_dir(path: str | os.PathLike, create: bool = True) -> Path:
    """Make sure ``path`` is a directory we can write into (creating it if asked)."""
    d = Path(path)
    try:
        if create:
            d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RnnCompressError(f"Cannot create output directory {d}: {e.strerror}.") from None
    if not d.is_dir():
        raise RnnCompressError(f"Output path {d} is not a directory.")
    if not os.access(d, os.W_OK | os.X_OK):
        raise RnnCompressError(f"Output directory {d} is not writable.")
    return d
