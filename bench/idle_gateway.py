"""What an idle gateway costs: CPU share and wake-ups per second of ``runinfra serve`` doing nothing.

Starts ``runinfra serve`` (an empty deployments list unless ``--config`` names one), lets it
settle, then reads the process's CPU time and context switches from /proc over ``--seconds``.
Every timer that fires with nothing to do is a wake-up (a voluntary context switch of a thread).

    python bench/idle_gateway.py --seconds 30
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

from runinfra_gateway.testing import GatewayProcess


def _sample(pid: int) -> tuple[float, int]:
    """(CPU seconds, voluntary context switches) of every thread of ``pid``."""
    ticks = 0
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    switches += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return ticks / 100.0, switches  # USER_HZ is 100 on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to measure (default 30)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait after ready (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runinfra-idle-") as data_dir:
        gateway = GatewayProcess(Path(data_dir), config={"deployments": []},
                                 admin_token="ria_bench_" + secrets.token_urlsafe(16)).start()
        try:
            assert gateway.process is not None
            time.sleep(args.settle)
            cpu_before, switches_before = _sample(gateway.process.pid)
            started = time.monotonic()
            time.sleep(args.seconds)
            cpu_after, switches_after = _sample(gateway.process.pid)
            elapsed = time.monotonic() - started
        finally:
            gateway.stop()
    print(f"idle gateway over {elapsed:.1f} s: CPU {100 * (cpu_after - cpu_before) / elapsed:.2f}% of one core, "
          f"{(switches_after - switches_before) / elapsed:.1f} wake-ups/s")


if __name__ == "__main__":
    main()
