"""Keeping idle CPUs from halting while a benchmark measures (``--awake`` in the benches that offer it).

On a VM that halts its idle vCPUs without polling first (``haltpoll.guest_halt_poll_ns=0`` on the kernel
command line) every wake-up of a sleeping thread on an idle vCPU is a VM exit and an interrupt through the
host. A busy loop at the lowest priority on each CPU keeps it from halting; any real work preempts it at
once. It is in no measured process tree, so CPU time per request is unchanged.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["IDLE_LOOP", "halts_without_polling", "kept_awake"]

# Started in a session of its own, the loop also heads its own scheduler autogroup, which would get an equal
# share whatever the nice value inside it: the group's own nice value is lowered too.
IDLE_LOOP = """
import contextlib, os
os.nice(19)
with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
    group.write("19")
while True:
    pass
"""


def halts_without_polling() -> bool:
    """Whether this VM's idle vCPUs halt at once (every wake-up then costs a VM exit)."""
    return "guest_halt_poll_ns=0" in Path("/proc/cmdline").read_text()


@contextlib.contextmanager
def kept_awake(enabled: bool = True) -> Iterator[None]:
    """While inside, one nice-19 busy loop pinned to each CPU (nothing when ``enabled`` is false)."""
    loops = []
    if enabled:
        for cpu in sorted(os.sched_getaffinity(0)):
            loops.append(subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", IDLE_LOOP],
                                          start_new_session=True))
    try:
        yield
    finally:
        for loop in loops:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(loop.pid, signal.SIGKILL)
            loop.wait()
