"""What a benchmark ran on: library versions, CPU, threads, onnxruntime session settings."""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np
import torch



def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment(threads: int, session=None) -> dict[str, Any]:
    """The environment block of a report. ``session``: any onnxruntime session created
    for the benchmark, to record its graph optimization level and providers."""
    import onnxruntime as ort

    level, providers = "ORT_ENABLE_ALL", ["CPUExecutionProvider"]
    if session is not None:
        level = session.get_session_options().graph_optimization_level.name
        providers = list(session.get_providers())
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):  # not available on every platform
        load = None
    return {
        "onnxruntime": ort.__version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "intra_op_threads": int(threads),
        "inter_op_threads": 1,
        "torch_threads": int(threads),
        "graph_optimization_level": level,
        "execution_providers": providers,
        "load_average": load,
    }
