"""The console script's entry point. It imports the command line (and with it torch and
onnxruntime, which take a second or more) inside a guard, so that Ctrl-C during that import
is one line and exit code 130, like Ctrl-C at any later moment, not a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from cli.main import main as run_cli
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: before the command started; nothing was written.\n")
        sys.exit(130)
    run_cli()
