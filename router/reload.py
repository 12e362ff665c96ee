"""Hot reload: notice a changed config (or Secret) file and swap in the new table.

Kubernetes updates a mounted ConfigMap by swapping a symlink, so the watcher
compares each file's (inode, mtime, size) through the link rather than relying
on inotify events that a symlink swap may not produce. A new config that does
not validate is logged and counted, and the router keeps the one it has.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("modelroute.reload")

Signature = tuple[tuple[int, int, int] | None, ...]


def signature(paths: Iterable[Path]) -> Signature:
    result: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            result.append(None)
        else:
            result.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(result)


class FileWatcher:
    """Calls ``on_change`` when any watched file changes; polls every ``interval`` s."""

    def __init__(
        self,
        paths: Callable[[], list[Path]],
        on_change: Callable[[], object],
        interval: float = 1.0,
    ) -> None:
        self._paths = paths
        self._on_change = on_change
        self._interval = interval
        self._last = signature(paths())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                current = signature(self._paths())
                if current != self._last:
                    self._last = current
                    self._on_change()
            except Exception:
                # Whatever one change did, the next one must still be applied: a dead
                # watcher would leave the router on an old config with /readyz green.
                log.exception("reloading after a file change failed; still watching")
