"""A small progress reporter for long work (training epochs, benchmark runs).

Library code takes a ``Progress`` (or ``None``); the CLI decides whether it prints.
On a terminal it redraws one line; in a log (CI) it prints a line every few seconds.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, enabled: bool = True, interval: float = 5.0):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.interval = interval
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._label = ""
        self._total = 0
        self._start = 0.0

    def start(self, label: str, total: int) -> None:
        self._label, self._total, self._start, self._last = label, total, time.monotonic(), 0.0

    def update(self, done: int, info: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        final = done >= self._total
        if not final and now - self._last < (0.2 if self._tty else self.interval):
            return
        self._last = now
        width = 24
        frac = min(1.0, done / self._total) if self._total else 1.0
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        elapsed = now - self._start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        line = f"{self._label} [{bar}] {done}/{self._total} {elapsed:5.0f}s eta {eta:4.0f}s {info}"
        if self._tty:
            self.stream.write("\r" + line[:160].ljust(100))
            if final:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()


SILENT = Progress(enabled=False)
