"""How many threads torch computes with: one per core that other processes leave free.

torch's CPU kernels split work between OpenMP threads that meet at a barrier after every
parallel region. When another process holds one of the cores, a thread waits there for a
partner the scheduler has not run yet, and every region costs a time slice: on two cores,
training beside one busy process made a quarter of its quiet-machine updates
(docs/benchmarks.md). So seqcli counts the cores it may use (its CPU affinity, capped by a
cgroup CPU quota), subtracts those that other processes keep busy, and computes with one
thread per core left, at least one. It looks while torch loads, and then every CHECK_SECONDS
of long work (`ThreadGovernor`), so that it gives a core back when another process starts and
takes it again when that process ends.

A count given by the user (`--threads`, `train.threads`, or OMP_NUM_THREADS) is used as it is
and never changed: give one for runs that must repeat bit for bit, since kernels may split
their sums differently with another thread count.

Usage, in this order: `sample_cpu_use()` when the command starts, before torch is imported;
`use_threads(requested)` once torch is needed; the returned choice's `governor`, if any,
`.check()` between units of work. /proc is read where it exists (Linux); elsewhere every usable
core counts as free.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from seqcli.errors import UsageError

MIN_SAMPLE_SECONDS = 0.2  # shorter samples are too coarse (/proc/stat counts in 10 ms ticks)
CHECK_SECONDS = 10.0  # how often long work looks at the machine again


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds of the whole machine (busy, all cores) and of this process."""

    wall: float
    machine_busy: float
    own: float


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, math.floor(quota)) if quota else cores)


def _cgroup_quota() -> float | None:
    """Cores' worth of CPU time the cgroup allows (cgroup v2 cpu.max, or v1 cfs quota/period)."""
    candidates = [
        (Path("/sys/fs/cgroup/cpu.max"), None),
        (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")),
    ]
    for quota_path, period_path in candidates:
        try:
            if period_path is None:
                quota, period = quota_path.read_text().split()[:2]
            else:
                quota, period = quota_path.read_text().strip(), period_path.read_text().strip()
        except (OSError, ValueError):
            continue
        if quota in ("max", "-1"):
            return None
        return max(int(quota) / int(period), 1.0)
    return None


def cpu_sample() -> CpuSample | None:
    """The machine's busy CPU seconds and this process's, now; None where /proc is missing."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle and iowait; guest time is in user
    busy = sum(ticks[:8]) - idle
    own = os.times()
    return CpuSample(time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system)


def busy_cores_since(start: CpuSample, end: CpuSample) -> float:
    """Cores' worth of CPU time that other processes used between two samples."""
    wall = end.wall - start.wall
    others = (end.machine_busy - start.machine_busy) - (end.own - start.own)
    return max(0.0, others / wall) if wall > 0 else 0.0


def threads_left(usable: int, busy: float) -> int:
    """One thread per usable core that other processes did not keep busy (busy: cores' worth
    of their CPU use, about 1.0 for one busy process, or 0.7 beside two threads of ours that
    share its core), at least one."""
    return max(1, usable - math.floor(busy + 0.5))


def describe(threads: int, usable: int) -> str:
    if threads == usable:
        return f"{usable} usable cores, none kept busy by other processes"
    return f"{usable} usable cores, {usable - threads} kept busy by other processes"


_started: list[CpuSample] = []  # the sample taken when the command started


def sample_cpu_use() -> None:
    """Remember the machine's CPU use now, before torch loads (see the module docstring)."""
    sample = cpu_sample()
    if sample is not None:
        _started[:] = [sample]


class ThreadGovernor:
    """Keeps torch's thread count at the free cores: `check()` between units of long work looks
    at the machine when CHECK_SECONDS have passed since the last look, and sets the count."""

    def __init__(self, usable: int, since: CpuSample | None, interval: float = CHECK_SECONDS):
        self.usable, self.interval = usable, interval
        self.last = since if since is not None else cpu_sample()

    def threads_now(self) -> int:
        """The free cores since the last look (the first: since the command started, over at
        least MIN_SAMPLE_SECONDS)."""
        if self.last is None:
            return self.usable
        end = cpu_sample()
        if end is not None and end.wall - self.last.wall < MIN_SAMPLE_SECONDS:
            time.sleep(MIN_SAMPLE_SECONDS - (end.wall - self.last.wall))
            end = cpu_sample()
        assert end is not None
        busy, self.last = busy_cores_since(self.last, end), end
        return threads_left(self.usable, busy)

    def check(self) -> str | None:
        """Set the thread count if the machine changed; a line saying so, or None."""
        import torch

        if self.last is None or time.monotonic() - self.last.wall < self.interval:
            return None
        threads = self.threads_now()
        if threads == torch.get_num_threads():
            return None
        torch.set_num_threads(threads)
        return f"threads {threads} ({describe(threads, self.usable)})"


@dataclass(frozen=True)
class ThreadChoice:
    """What `use_threads` decided: the count, why, and the governor that keeps it when the
    count follows the machine (None when it was given)."""

    threads: int
    reason: str
    governor: ThreadGovernor | None = None


def use_threads(requested: int | None, saved: int | None = None) -> ThreadChoice:
    """Import torch and set its thread count: `requested` (a flag or config field; 0 or None
    for automatic) if given,
    else OMP_NUM_THREADS if set, else the free cores, kept by a governor; a resumed run starts
    from the count it was `saved` with."""
    import torch

    if requested is not None and requested < 0:
        raise UsageError(f"--threads {requested}: must be at least 1 (or 0: one per free core)")
    environment = os.environ.get("OMP_NUM_THREADS", "")
    if requested:
        choice = ThreadChoice(requested, "as asked")
    elif environment.isdigit() and int(environment) > 0:
        choice = ThreadChoice(int(environment), "OMP_NUM_THREADS")
    else:
        usable = usable_cores()
        governor = ThreadGovernor(usable, _started[0] if _started else None)
        if saved:
            choice = ThreadChoice(saved, "as the run was saved with; then following the free cores", governor)
        else:
            threads = governor.threads_now()
            choice = ThreadChoice(threads, describe(threads, usable), governor)
    torch.set_num_threads(choice.threads)
    return choice
