"""The error hierarchy. The CLI maps each class to one line and an exit code."""

from __future__ import annotations

import dataclasses
import math
import numbers


class RnnCompressError(Exception):
    """Base class: a problem with the user's input or an operation that must refuse."""

    exit_code = 2


class ConfigError(RnnCompressError):
    """A parameter (CLI option, TOML key, function argument) has an invalid value."""


class DataError(RnnCompressError):
    """A dataset is missing, corrupt, or has the wrong shape, dtype or values."""


class CheckpointError(RnnCompressError):
    """A checkpoint is missing, truncated, foreign, or carries pickled code."""


class ExportError(RnnCompressError):
    """An ONNX export or transform could not be done."""


class ParityError(ExportError):
    """An exported model disagrees with the torch model beyond tolerance."""

    exit_code = 3


class InvariantError(RnnCompressError):
    """A self-check failed (e.g. the shrunk model differs from the masked one): a bug, not
    bad input; nothing is written."""

    exit_code = 3


class ReportError(RnnCompressError):
    """A benchmark report is not ours, is from an incompatible version, or is corrupt."""


class BudgetExceeded(RnnCompressError):
    """A measured value breaks a CI budget."""

    exit_code = 1


def clip(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters (ending in "...") for a one-line message."""
    return text if len(text) <= width else text[: width - 3] + "..."


def is_finite_number(value: object) -> bool:
    """A real number (numpy's included; a bool is not one) that is finite: NaN, Inf and an
    int beyond any float are not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def is_fraction(value: object) -> bool:
    """A finite number in [0, 1] (a sparsity, an accuracy)."""
    return is_finite_number(value) and 0 <= value <= 1


# Optimizer settings reach torch as float32 scalars: a larger finite float (1e39) is refused
# there as an overflow, deep in the first step.
FLOAT32_MAX = 3.4028234663852886e38


def is_float32(value: float) -> bool:
    """Finite and within float32's range."""
    return is_finite_number(value) and abs(value) <= FLOAT32_MAX


def param_error(name: str, rule: str, value: object) -> ConfigError:
    """The scikit-learn style message: names the parameter, the rule and the value (None:
    a value that was needed and not given)."""
    got = "It was not given." if value is None else f"Got {value!r} instead."
    return ConfigError(f"The '{name}' parameter must be {rule}. {got}")


# More threads than this is a typo, not a machine: torch and onnxruntime crash or hang
# trying to start 100 000 of them.
MAX_THREADS = 256


def check_threads(value: object, minimum: int = 0, name: str = "threads") -> int:
    """``value`` as a thread count in [minimum, MAX_THREADS] (0 = the library's default)."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_THREADS:
        default = " (0 = the library's default)" if minimum == 0 else ""
        raise param_error(name, f"an int in [{minimum}, {MAX_THREADS}]{default}", value)
    return value


# Seeds are mixed into derived seeds (seed * 1_000_003 + epoch and the like) that torch and
# numpy take as 64-bit ints: a 32-bit range leaves room and is numpy's legacy seed range.
MAX_SEED = 2**32 - 1


def check_seed(value: object, name: str = "seed") -> int:
    """``value`` as a seed in [0, MAX_SEED]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= MAX_SEED:
        raise param_error(name, f"an int in [0, {MAX_SEED}]", value)
    return int(value)


# Field annotations check_field_types understands -> the Python types a value may have.
_FIELD_KINDS: dict[str, tuple[type, ...]] = {"int": (numbers.Integral,), "float": (numbers.Real,), "bool": (bool,),
                                             "str": (str,)}


def check_field_types(obj: object) -> None:
    """Each field of dataclass ``obj`` annotated ``int``, ``float``, ``bool`` or ``str`` (or
    one of those ``| None``) holds a value of that kind (an int is a float; a bool is neither
    an int nor a float), so a "2" from a caller is refused here, not as a TypeError deep in
    training. A numpy scalar (``np.int64(3)``, ``np.float32(0.5)``) is stored as the Python
    number it equals: it would pass, then fail where a config is written as JSON or a seed
    is given to torch. Other annotations are the class's own business."""
    for f in dataclasses.fields(obj):
        parts = [p.strip() for p in str(f.type).split("|")]
        kinds = [p for p in parts if p != "None"]
        if len(kinds) != 1 or kinds[0] not in _FIELD_KINDS:
            continue
        value = getattr(obj, f.name)
        if value is None and "None" in parts:
            continue
        kind = kinds[0]
        if not isinstance(value, _FIELD_KINDS[kind]) or (kind != "bool" and isinstance(value, bool)):
            rule = {"int": "an int", "float": "a number", "bool": "a bool (true or false)", "str": "a string"}[kind]
            raise param_error(f.name, rule + (" (or unset)" if "None" in parts else ""), value)
        if kind == "int" and type(value) is not int:
            object.__setattr__(obj, f.name, int(value))  # (frozen dataclasses too)
        elif kind == "float" and type(value) not in (int, float):
            object.__setattr__(obj, f.name, float(value))

