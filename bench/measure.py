"""Run a command and measure its wall time and peak memory.

Peak memory is the peak RSS of the whole process tree: a thread samples the sum of VmRSS
over the process and all its descendants (from /proc) every 10 ms, and the result is
raised to at least ru_maxrss from wait4() (the exact peak of the largest single process,
which a 10 ms sampler can miss). Linux only.

`limit` (bytes) stops a command whose tree grows past it (a peer that would take the shared
machine's memory): its process group is killed and the run raises MemoryLimitExceeded with
the time and peak it reached.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024


@dataclass
class Measurement:
    label: str
    wall: float  # seconds
    peak: int  # bytes

    @property
    def peak_mb(self) -> float:
        return self.peak / MB


class MemoryLimitExceeded(RuntimeError):
    def __init__(self, measurement: Measurement, limit: int) -> None:
        super().__init__(f"{measurement.label}: killed at {measurement.peak_mb:,.0f} MB "
                         f"(limit {limit / MB:,.0f} MB) after {measurement.wall:.0f} s")
        self.measurement = measurement


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _tree_rss(root: int) -> int:
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
        stack += _children(pid)
    return total


def run(label: str, command: list[str], *, env: dict | None = None, cwd: Path | None = None,
        log: Path | None = None, limit: int | None = None) -> Measurement:
    """Run `command` to completion; raise CalledProcessError (with its log, and the time and
    peak it took as `.measurement`) on failure,
    MemoryLimitExceeded if its tree's RSS passes `limit` bytes."""
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=limit is not None)
    peak, done, killed = [0], threading.Event(), [False]

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(process.pid))
            if limit is not None and peak[0] > limit and not killed[0]:
                killed[0] = True
                os.killpg(process.pid, signal.SIGKILL)
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if log:
        out.close()
    if killed[0]:
        raise MemoryLimitExceeded(Measurement(label, wall, peak[0]), limit)
    if process.returncode != 0:
        tail = Path(log).read_text()[-2000:] if log else ""
        failure = subprocess.CalledProcessError(process.returncode, command, output=tail)
        failure.measurement = Measurement(label, wall, max(peak[0], usage.ru_maxrss * 1024))
        raise failure
    return Measurement(label, wall, max(peak[0], usage.ru_maxrss * 1024))
