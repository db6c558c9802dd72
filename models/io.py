"""File helpers shared by every stage: atomic writes and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Sequence

from models.errors import RnnCompressError, param_error


# atomic_path's temporary names: "." + the target's name + "." + mkstemp's 8 random characters + ".tmp".
_ATOMIC_TMP = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


def atomic_leftover_target(path: str | os.PathLike) -> str | None:
    """The name of the file whose write left ``path`` behind, if ``path`` is a temporary file
    of ``atomic_path`` (left only when the process was killed mid-write; never read)."""
    m = _ATOMIC_TMP.match(Path(path).name)
    return m.group("target") if m else None


def is_atomic_leftover(path: str | os.PathLike) -> bool:
    return atomic_leftover_target(path) is not None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    Readers never see a half-written file, and a failure leaves any existing file intact.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise RnnCompressError(f"Cannot write {target}: directory {parent} does not exist.")
    refuse_special_file(target, "Output")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise RnnCompressError(f"Cannot write {target}: {(e.strerror or str(e)).lower()} in {parent}.") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the result the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    except OSError as e:
        if e.filename not in (None, str(tmp_path)):
            raise
        # A full disk says only "No space left on device": name the file that was being written.
        raise OSError(e.errno, e.strerror or str(e), str(target)) from None
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


@contextlib.contextmanager
def removed_on_failure(paths: Sequence[str | os.PathLike], directory: str | os.PathLike | None = None,
                       whole_set: bool = False) -> Iterator[None]:
    """Files a block is about to write: if it fails, those of ``paths`` that did not exist
    before it are removed (each file is still written atomically; this takes back the set),
    and so is ``directory`` if the block created it and left it empty. ``whole_set``: the
    files only mean something together (a report and its plots), so an earlier set the
    block was replacing goes too: none is better than a mix of old and new."""
    new = [Path(p) for p in paths if whole_set or not Path(p).exists()]
    created = directory is not None and not Path(directory).exists()
    try:
        yield
    except BaseException:
        for p in new:
            with contextlib.suppress(OSError):  # (never written, or under a path that is not a directory)
                p.unlink()
        if created:
            with contextlib.suppress(OSError):
                Path(directory).rmdir()
        raise


def text_of_name(name: str | os.PathLike) -> str:
    """A file name as text that can be encoded (metadata, reports): bytes of the name that are
    not UTF-8 (Python holds them as surrogates) become U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _can_create_in(d: Path) -> bool:
    """Whether a file can really be created in directory ``d`` (os.access says yes to root
    on read-only or virtual file systems such as /proc); the probe file is removed."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".rnncompress-probe.", dir=d)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


def probe_writable_file(path: str | os.PathLike, option: str,
                        error: type[RnnCompressError] = RnnCompressError) -> Path:
    """Fail early (before slow work) if the file ``path`` (given as ``option``) could not be
    written: its directory must exist and accept new files, and it must not be a directory."""
    p = Path(path)
    parent = p.absolute().parent
    if not parent.is_dir():
        raise error(f"Directory {parent} for {option} does not exist.")
    if p.is_dir():
        raise error(f"{option} {p} is a directory; give a file name.")
    refuse_special_file(p, option, error)
    if not _can_create_in(parent):
        raise error(f"Directory {parent} for {option} is not writable.")
    return p


def refuse_special_file(path: Path, option: str, error: type[RnnCompressError] = RnnCompressError) -> None:
    """Outputs are written beside their path and renamed over it: over a device (/dev/null),
    a pipe or a socket that rename would put a regular file in its place, so such a path is
    refused, whatever ``--force`` says."""
    if path.exists() and not path.is_dir() and not path.is_file():
        raise error(f"{option} {path} is not a regular file (a device, pipe or socket); outputs are written as "
                    "files and renamed into place, which would replace it: give a file path.")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether paths ``a`` and ``b`` name the same file (after resolving links and ``..``)."""
    a, b = Path(a), Path(b)
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError):  # (a symlink loop: pathlib raises RuntimeError resolving it)
        return os.path.abspath(a) == os.path.abspath(b)


def check_output_file(path: str | os.PathLike, option: str, inputs: Sequence[str | os.PathLike | None] = (),
                      force: bool = False, error: type[RnnCompressError] = RnnCompressError,
                      probe: bool = True, outputs: dict[str, str | os.PathLike] | None = None) -> Path:
    """The rules for a file a command is about to write, checked before any slow work: it is
    none of the command's ``inputs`` (never overwritten, even with ``force``) nor of its other
    ``outputs`` (option -> path), not a directory, not an existing file unless ``force``, and
    (``probe``) its directory exists and accepts files."""
    if not isinstance(force, bool):  # (force="no" is true: it would overwrite)
        raise param_error("force", "a bool (true or false)", force)
    p = Path(path)
    for source in inputs:
        if source is not None and same_file(p, source):
            raise error(f"{option} {p} is one of the inputs; inputs are never overwritten, choose another path.")
    for other, target in (outputs or {}).items():
        if same_file(p, target):
            raise error(f"{option} {p} is also {other}; give each output its own path.")
    if probe:
        probe_writable_file(p, option, error)
    elif p.is_dir():
        raise error(f"{option} {p} is a directory; give a file name.")
    else:
        refuse_special_file(p, option, error)
    if (p.exists() or p.is_symlink()) and not force:  # (a dangling link or a loop is there too)
        # (an option's own flag; a file named otherwise may be written from the CLI or from Python)
        how = "--force" if option.startswith("--") else "--force (force=True from Python)"
        raise error(f"{option} {p} already exists; pass {how} to overwrite it.")
    return p


def probe_writable_dir(path: str | os.PathLike, error: type[RnnCompressError] = RnnCompressError) -> Path:
    """Fail early (before slow work) if ``path`` could not be created or written; leaves
    nothing behind (the directory is not created, the probe file is removed)."""
    d = Path(path)
    if d.exists() and not d.is_dir():
        raise error(f"Output path {d} exists and is not a directory.")
    if d.is_symlink() and not d.exists():
        raise error(f"Output directory {d} is a symbolic link to nothing (dangling, or a loop); point it at a "
                    "directory or give another path.")
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise error(f"Cannot create output directory {d}: {probe} is not a directory.")
    if not _can_create_in(probe):
        raise error(f"Output directory {d} is not writable ({probe} does not allow writing).")
    return d


def check_writable_dir(path: str | os.PathLike,
                       error: type[RnnCompressError] = RnnCompressError) -> Path:
    """Make sure ``path`` is a directory we can write into, creating it (and its parents)."""
    d = probe_writable_dir(path, error)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise error(f"Cannot create output directory {d}: {e.strerror}.") from None
    return d


def _head(path: Path) -> bytes:
    """The first 4 bytes of a regular file (b"" for anything else: reading a pipe would wait)."""
    if not path.is_file():
        return b""
    try:
        with open(path, "rb") as f:
            return f.read(4)
    except OSError:
        return b""


def looks_like_a_model(path: str | os.PathLike) -> bool:
    """Whether ``path``'s first bytes (or its .onnx name) say torch checkpoint or ONNX model:
    False for any other file (a README, an image), which a command taking either names as such."""
    head = _head(Path(path))
    # torch's zip format, a legacy torch file (a pickle: protocol opcode 0x80), ONNX's IR version field
    return (head.startswith(b"PK\x03\x04") or head[:1] in (b"\x80", b"\x08")
            or Path(path).suffix.lower() == ".onnx")


def model_file_kind(path: str | os.PathLike) -> str:
    """"checkpoint" or "onnx": what a model file is, by its first bytes where they tell
    (a torch checkpoint is a zip archive; an ONNX model starts with its IR version, protobuf
    field 1), else by its extension (``.onnx``: ONNX). A renamed file is still read right."""
    p = Path(path)
    head = _head(p)
    if head.startswith(b"PK\x03\x04"):
        return "checkpoint"
    if head[:1] == b"\x08":
        return "onnx"
    return "onnx" if p.suffix.lower() == ".onnx" else "checkpoint"

