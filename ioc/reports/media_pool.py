"""Media work (photo, video and radio audio checks, re-encoding, thumbnails, speech) in a bounded pool of processes.

Decoding a 40-megapixel PNG takes ~160 MB and re-encoding a 4K clip keeps a core busy for seconds.
Done in the API process (threads), that memory stays with the process after the request (the
allocator keeps it) and the work competes with every other request for the interpreter. Here:

* ``workers`` processes (default: one fewer than the CPUs, at least 1, at most 4) at a lower priority (nice 10), so the
  API's own requests are served first when the cores are busy;
* a **queue limit**: at most ``queue`` jobs wait; beyond that :class:`MediaBusy` (503 with
  Retry-After) instead of an unbounded backlog of uploads held in memory;
* a **time limit** per job: a job over it is refused, and its pool's processes are killed and
  replaced (a stuck decoder cannot be interrupted any other way);
* workers are **recycled** after ``tasks_per_child`` jobs, so memory a decoder kept is returned;
* the event loop only awaits: it never decodes.

Processes start from a forkserver with the media modules preloaded: a new worker is a fork, not
a fresh interpreter importing Pillow.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from ioc.reports.media import MediaRefused

log = logging.getLogger("ioc.reports.media_pool")
T = TypeVar("T")

PHOTO_TIMEOUT_S = 30.0
VIDEO_TIMEOUT_S = 180.0


class MediaBusy(RuntimeError):
    """Too many media jobs waiting: try again shortly (503)."""


def _libc() -> Any:
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError):
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return None


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def _start_worker() -> None:
    """Lower priority (the API's own requests first), and memory that goes back to the system: a
    fixed mmap threshold keeps glibc from serving the next 150 MB decode from a heap it never
    shrinks (its default threshold grows after the first large free)."""
    with contextlib.suppress(OSError):
        os.nice(10)
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(AttributeError):
            libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)


def _run_job(fn: Callable[..., T], *args: Any) -> tuple[int, T]:
    """One job (its result and the worker's pid), then whatever the heap can give back is returned
    to the system."""
    try:
        return os.getpid(), fn(*args)
    finally:
        libc = _libc()
        if libc is not None:
            with contextlib.suppress(AttributeError):
                libc.malloc_trim(0)


def _ready() -> bool:
    return True


class MediaPool:
    def __init__(self, workers: int | None = None, queue: int = 64, tasks_per_child: int = 25) -> None:
        # One core is left to the API process itself (event loop, database calls): reads stay fast
        # while media work saturates the rest.
        self.workers = workers or max(1, min(4, (os.cpu_count() or 2) - 1))
        self.queue = queue
        self.tasks_per_child = tasks_per_child
        self._pending = 0
        #: Jobs a worker finished (with a result or an exception), by function name, and the pid of
        #: the worker that last returned a result for each: where the work ran, for tests and logs.
        self.jobs: collections.Counter[str] = collections.Counter()
        self.ran_in: dict[str, int] = {}
        self._slots: asyncio.Semaphore | None = None
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["ioc.reports.media", "PIL.Image", "soundfile"])  # OpenCV: on a first video
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_start_worker, max_tasks_per_child=self.tasks_per_child
            )
        return self._executor

    def warm(self) -> None:
        """Start the forkserver and the workers now (in the background), so the first upload after
        a start does not wait for them."""
        for _ in range(self.workers):
            self._pool().submit(_ready)

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, fn: Callable[..., T], *args: Any, timeout_s: float) -> T:
        """``fn(*args)`` in a worker; :class:`MediaBusy` when the queue is full, :class:`MediaRefused`
        when it runs longer than ``timeout_s`` (time waiting in the queue does not count)."""
        if self._pending >= self.workers + self.queue:
            raise MediaBusy(f"{self._pending} media jobs in progress or waiting")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        self._pending += 1
        try:
            async with self._slots:  # the queue: a job is handed to the pool only when a worker is free
                future = asyncio.get_running_loop().run_in_executor(self._pool(), _run_job, fn, *args)
                name = getattr(getattr(fn, "func", fn), "__qualname__", repr(fn))  # a partial: its function
                try:
                    pid, result = await asyncio.wait_for(future, timeout_s)
                except TimeoutError as exc:
                    self._kill()
                    raise MediaRefused(f"xử lý tệp quá {timeout_s:.0f} giây (processing took too long)") from exc
                except BrokenProcessPool as exc:  # a worker died (killed above, or out of memory)
                    self._kill()
                    raise MediaBusy("a media worker stopped; try again") from exc
                except Exception:  # the job's own refusal, raised in the worker
                    self.jobs[name] += 1
                    raise
                self.jobs[name] += 1
                self.ran_in[name] = pid
                return result
        finally:
            self._pending -= 1

    def _kill(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        processes = list(getattr(executor, "_processes", {}).values())  # no public way to stop a running job
        for process in processes:
            with contextlib.suppress(Exception):
                process.kill()
        executor.shutdown(wait=False, cancel_futures=True)
        log.warning("media pool restarted: a job ran past its time limit or a worker died")

    def worker_pids(self) -> list[int]:
        executor = self._executor
        return [p.pid for p in getattr(executor, "_processes", {}).values()] if executor else []

    def shutdown(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def media_pool(app: Any) -> MediaPool:
    """The app's pool, made on first use (an app that never receives media starts no process)."""
    pool = getattr(app.state, "media_pool", None)
    if pool is None:
        settings = app.state.ioc.settings
        pool = MediaPool(workers=settings.media_workers or None, queue=settings.media_queue)
        app.state.media_pool = pool
    return pool


def shutdown_media_pool(app: Any) -> None:
    pool = getattr(app.state, "media_pool", None)
    if pool is not None:
        pool.shutdown()
        app.state.media_pool = None
