"""The writable layer's disk use, measured off the scrape path.

A container's writable layer is its overlay's ``upper`` directory (in its
bundle, or on the layer's own filesystem when it has a size limit; see
``nodeagent.runtime.bundle``). Its size is what ``du`` says: the blocks
of every file in it, each inode once. Walking a big layer can take long,
so no scrape walks: one thread (for the whole node, started with the
metrics) measures each layer a scrape asked about, again once its figure
is :data:`REFRESH` seconds old, and a scrape reads the figures as they are.
A container seen for the first time wakes the thread, so its figure comes
within moments; until then it has none (the metric is absent, not 0).

Why a walk rather than the layer's project quota (which the kernel keeps
up to date): only containers with a size limit have one, and on a filesystem
without project quotas their layer is a loop-mounted image instead.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

__all__ = ["REFRESH", "FsUsage", "disk_usage", "writable_layer"]

REFRESH = 60.0
# bundle.LAYER_MOUNT: the mountpoint of a layer with a filesystem of its own
# (not imported: that module pulls the runtime's setup code into the agent).
_LAYER_MOUNT = "layer"


def writable_layer(bundle_dir: str) -> str:
    """The overlay's upper dir of the container whose bundle is ``bundle_dir``."""
    own = os.path.join(bundle_dir, _LAYER_MOUNT, "upper")
    return own if os.path.isdir(own) else os.path.join(bundle_dir, "upper")


def disk_usage(top: str) -> int | None:
    """Bytes of disk under ``top`` (st_blocks, each inode once, not crossing
    into other filesystems); None if ``top`` cannot be read."""
    try:
        st = os.lstat(top)
    except OSError:
        return None
    dev = st.st_dev
    seen: set[int] = set()
    total = st.st_blocks * 512
    stack = [top]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue  # removed meanwhile
        with entries:
            for entry in entries:
                try:
                    est = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if est.st_dev != dev:
                    continue
                if est.st_nlink > 1:
                    if est.st_ino in seen:
                        continue
                    seen.add(est.st_ino)
                total += est.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


class FsUsage:
    """Container id -> bytes of its writable layer, kept by one thread."""

    def __init__(self, refresh: float = REFRESH, clock: Callable[[], float] = time.monotonic,
                 measure: Callable[[str], int | None] = disk_usage) -> None:
        self.refresh = refresh
        self.clock = clock
        self.measure = measure
        self._lock = threading.Lock()
        self._wanted: dict[str, str] = {}  # id -> its writable layer (the last scrape's containers)
        self._figures: dict[str, tuple[float, int]] = {}  # id -> (when measured, bytes)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="metrics-fs", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    def figures(self, layers: dict[str, str]) -> dict[str, int]:
        """The figures of the containers in ``layers`` (id -> writable
        layer), those measured yet; from now on only these are measured."""
        with self._lock:
            self._wanted = dict(layers)
            for cid in [c for c in self._figures if c not in layers]:
                del self._figures[cid]
            new = any(cid not in self._figures for cid in layers)
            out = {cid: fig[1] for cid, fig in self._figures.items()}
        if new:
            self._wake.set()
        return out

    def pass_once(self) -> float:
        """Measure every wanted layer whose figure is missing or stale; the
        seconds until the next is due."""
        now = self.clock()
        with self._lock:
            due = [(cid, path) for cid, path in self._wanted.items()
                   if cid not in self._figures or now - self._figures[cid][0] >= self.refresh]
        for cid, path in due:
            if self._stop.is_set():
                break
            size = self.measure(path)
            with self._lock:
                if cid in self._wanted and size is not None:
                    self._figures[cid] = (self.clock(), size)
        with self._lock:
            oldest = min((t for t, _ in self._figures.values()), default=None)
        return self.refresh if oldest is None else max(1.0, oldest + self.refresh - self.clock())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                wait = self.pass_once()
            except Exception:  # a figure fewer, never a dead thread
                wait = self.refresh
            self._wake.wait(wait)
