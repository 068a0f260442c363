"""The ``ironsafe`` console script: the command line of crates/ironsafe-cli,
run inside the extension module."""

from __future__ import annotations

import signal
import sys

from ironsafe._ironsafe import cli_main


def main() -> int:
    """Runs ``ironsafe`` with this process's arguments; returns the exit status."""
    # The command runs in Rust with the GIL released, where Python's
    # KeyboardInterrupt cannot stop it: let Ctrl-C end the process at once,
    # as it ends the Rust binary (every file is written atomically, so none
    # is left half-written). SIGPIPE stays ignored, as Python sets it: the
    # command sees the closed pipe and exits 0 quietly.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return cli_main(["ironsafe", *sys.argv[1:]])
