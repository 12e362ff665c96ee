"""What the kernel knows about the processes under test: CPU time, memory, steal, pinning.

The benchmark bills each proxy by the CPU time the kernel charged to its
threads, read from ``/proc/<pid>/task/*/schedstat`` (nanoseconds on CPU).
That figure does not move when other processes, the hypervisor or the load
generator compete for the machine, which wall-clock throughput and latency
do; on a small shared VM it is the one number that compares proxies fairly.
Hypervisor steal, read from ``/proc/stat``, is reported next to it so a
reader can judge how noisy the latency columns were.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def pin(cpu: int) -> None:
    """Run the calling process (and what it spawns later) on one CPU only."""
    os.sched_setaffinity(0, {cpu})


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a child process runs: usable as ``preexec_fn``."""

    cpu: int
    nice: int = 0

    def __call__(self) -> None:
        isolate(self.cpu, self.nice)


def isolate(cpu: int, nice: int) -> None:
    """Pin to ``cpu`` and run at ``nice`` even against other sessions' processes.

    For a child between fork and exec. With autogroup scheduling (the Linux
    default for desktops and many VMs) niceness only ranks processes within
    one session, so the child gets a session of its own and that session's
    autogroup gets the niceness too; anything else on the machine then
    delays the benchmark less. Failures (not root, no autogroup) are ignored:
    the run is only noisier.
    """
    pin(cpu)
    if not nice:
        return
    with contextlib.suppress(OSError):
        os.setsid()
    with contextlib.suppress(OSError):
        (PROC / "self" / "autogroup").write_text(str(nice))
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, nice)


def schedstat(pid: int) -> tuple[int, int]:
    """Nanoseconds on CPU and waiting for a CPU, summed over the live threads of ``pid``.

    The wait (time runnable but not running) is how much other work on the
    core delayed this process: the noise figure that matters for latency.
    Both are 0 once the process is gone.
    """
    on_cpu = waiting = 0
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return 0, 0
    for task in tasks:
        try:
            fields = (task / "schedstat").read_text().split()
            on_cpu += int(fields[0])
            waiting += int(fields[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that exited between listing and reading
    return on_cpu, waiting


def sched(pids: list[int]) -> tuple[int, int]:
    """:func:`schedstat` of several processes together (nginx: master and worker)."""
    readings = [schedstat(pid) for pid in pids]
    return sum(r[0] for r in readings), sum(r[1] for r in readings)


def rss_kib(pids: list[int]) -> int:
    """Resident memory (VmRSS) of several processes together, in KiB."""
    total = 0
    for pid in pids:
        try:
            for line in (PROC / str(pid) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (nginx's worker below its master)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = list((PROC / str(parent) / "task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(children)
            stack.extend(children)
    return found


def steal_jiffies() -> tuple[int, int]:
    """All jiffies so far and those stolen by the hypervisor, machine-wide (``/proc/stat``)."""
    fields = (PROC / "stat").read_text().split("\n", 1)[0].split()
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    values = [int(v) for v in fields[1:9]]
    return sum(values), values[7]


def machine() -> dict[str, str]:
    """The facts a reader needs to compare this run with theirs."""
    model = "unknown"
    try:
        for line in (PROC / "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hypervisor = ""
    try:
        if " hypervisor" in (PROC / "cpuinfo").read_text():
            hypervisor = " (virtual machine)"
    except OSError:
        pass
    return {
        "cpu": model + hypervisor,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": _os_name(),
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()
