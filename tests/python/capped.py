"""Running a script in a fresh interpreter with its address space capped
(RLIMIT_AS) and a time limit: a reader that allocates what a header claims
instead of what the file holds fails there with a MemoryError or a crash, a
hang with a timeout, and neither takes the test process down."""

from __future__ import annotations

import subprocess
import sys
from typing import Sequence

# Prepended to every script: ``cap_address_space(headroom)`` caps the process
# at what it has mapped so far (the interpreter, numpy, torch...) plus
# ``headroom`` bytes, so that the cap does not depend on how much address
# space the imports happen to reserve on this machine.
_PREAMBLE = """
import resource as _resource


def cap_address_space(headroom):
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    _, hard = _resource.getrlimit(_resource.RLIMIT_AS)
    _resource.setrlimit(_resource.RLIMIT_AS, (kib * 1024 + headroom, hard))
"""


def run_capped(script: str, args: Sequence[str] = (), *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Runs ``script`` (which calls ``cap_address_space`` once its imports are
    done) with ``args`` as ``sys.argv[1:]``; fails the test if it runs past
    ``timeout`` seconds or does not exit with 0."""
    done = subprocess.run(
        [sys.executable, "-c", _PREAMBLE + script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done
