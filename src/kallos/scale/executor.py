"""Where the per-batch compute of the indicator and signal steps runs: in this process, a local process
pool, threads of this process, or a Dask cluster (`KALLOS_EXECUTOR=local|threads|dask`,
`KALLOS_DASK_SCHEDULER=tcp://host:8786`).

The steps stay the only readers and writers of the store (docs/scaling.md explains why): they cut the coin
universe into batches, hand each batch's frame to :meth:`Executor.map_batches` together with a top-level
(picklable) pure function, and upsert what comes back, batch by batch, in the order the batches were given.
At most ``2 x workers`` batches are in flight at once: memory is bounded by the batch size, not the universe.

    with get_executor(settings) as ex:
        for result in ex.map_batches(compute, frames_generator, approx):
            write(result)

With `executor=dask` and no scheduler address, a `distributed.LocalCluster` is started for the run and closed
afterwards; with an address, the executor connects to that cluster and leaves it running.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from itertools import islice
from types import TracebackType
from typing import Any, Protocol, TypeVar

import pandas as pd

from kallos.errors import ConfigError
from kallos.log import get_logger
from kallos.scale import shared

log = get_logger(__name__)

__all__ = ["DaskExecutor", "Executor", "LocalExecutor", "ThreadExecutor", "default_workers", "get_executor"]

T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT_SECONDS = 30


def default_workers() -> int:
    """CPU count - 1 (at least 1): one core stays free for the parent, which reads and writes the store."""
    return max(1, (os.cpu_count() or 2) - 1)


class Executor(Protocol):
    name: str

    @property
    def workers(self) -> int: ...

    def map_batches(self, fn: Callable[..., R], batches: Iterable[Any], *args: Any) -> Iterator[R]: ...

    def start(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


class _Base:
    name = "base"

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass


class LocalExecutor(_Base):
    """One machine: in this process for one worker (or a single batch), else a `forkserver` process pool.

    The pool is created on the first call that needs it and reused until :meth:`close`. With the pool, frames
    cross between processes through shared memory (`kallos.scale.shared`, docs/decisions.md#D118): a batch
    that is a DataFrame is mapped by the worker, and DataFrames in a result (the result itself, or items of a
    tuple/list) are mapped by this process without a copy. `shared_memory=False` (or no `/dev/shm`) pickles
    them through the pool's pipes instead.
    """

    name = "local"

    def __init__(
        self, workers: int | None = None, *, preload: Sequence[str] = (), shared_memory: bool | None = None
    ) -> None:
        self._workers = max(1, workers or default_workers())
        self._preload = list(preload)
        self._pool: ProcessPoolExecutor | None = None
        self._shared = shared.available() if shared_memory is None else shared_memory and shared.available()
        self._token = shared.new_token()
        # Free segments kept for reuse: about what the batches in flight (2 x workers) and their results use.
        self._segments = shared.SegmentPool(self._token, cap=6 * self._workers)
        # An executor never closed still leaves nothing in /dev/shm: its segments go when it is collected or at
        # exit (after the results' own finalizers, which run first as they were created later).
        self._sweep_at_exit = weakref.finalize(self, shared.sweep, self._token) if self._shared else None

    @property
    def shared_memory(self) -> bool:
        """True when the pool's batches and results travel through shared memory."""
        return self._shared

    @property
    def workers(self) -> int:
        return self._workers

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            if self._preload:
                # '__main__' is multiprocessing's default: imported once in the forkserver instead of in every
                # worker (~0.2 s of CPU per worker for the `kallos` script or a benchmark).
                ctx.set_forkserver_preload(["__main__", *self._preload])
            if self._shared:
                shared.sweep()  # segments left by a run that was killed
            self._pool = ProcessPoolExecutor(max_workers=self._workers, mp_context=ctx)
        return self._pool

    def start(self) -> None:
        """Start the pool's forkserver now, so it imports the preload modules while this process prepares its
        first batch (a no-op with one worker)."""
        if self._workers > 1:
            self._get_pool()
            from multiprocessing import forkserver

            forkserver.ensure_running()

    def _submit(
        self, pool: ProcessPoolExecutor, fn: Callable[..., Any], batch: Any, args: tuple[Any, ...]
    ) -> Future[Any]:
        if not self._shared:
            return pool.submit(fn, batch, *args)
        segments = self._segments
        sent: list[shared.Free] = []
        if isinstance(batch, pd.DataFrame):
            handle = shared.pack_frame(batch, shared.Arena(self._token, segments))  # best fit from the free list
            sent, batch = handle.segments, handle
        try:
            fut = pool.submit(shared.run_shared, fn, batch, self._token, segments.cap, args)
        except BaseException:
            segments.give_all(sent)
            raise
        # The worker maps the batch while it runs: its segment is free again when the task ends, however it ends.
        fut.add_done_callback(functools.partial(_task_done, segments, sent))
        return fut

    def _receive(self, fut: Future[Any]) -> Any:
        result = fut.result()
        return shared.unpack_result(result, self._segments) if self._shared else result

    def map_batches(self, fn: Callable[..., R], batches: Iterable[Any], *args: Any) -> Iterator[R]:
        it = iter(batches)
        head = list(islice(it, 2))
        if self._workers <= 1 or len(head) <= 1:
            for batch in head:
                yield fn(batch, *args)
            for batch in it:
                yield fn(batch, *args)
            return
        pool = self._get_pool()

        def abandon(fut: Future[Any]) -> None:
            # A result nobody will read releases its shared memory when its task ends.
            if not fut.cancel() and self._shared:
                fut.add_done_callback(_release_result)

        yield from _in_order(
            lambda batch: self._submit(pool, fn, batch, args),
            _chain(head, it),
            2 * self._workers,
            receive=self._receive,
            abandon=abandon,
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._shared:
            self._segments.close()
            shared.sweep(self._token)  # segments still mapped by results, or left by a worker that died


class ThreadExecutor(_Base):
    """Threads of this process: the batches share its memory, so nothing is copied, pickled or mapped.

    It pays where the batch function spends its time outside the GIL: the indicator engine does (TA-Lib's C
    functions and the fused numba kernels release it; docs/decisions.md#D125), pandas-heavy work would not.
    Default size: every core, the store's reads and writes also release the GIL while they wait.
    """

    name = "threads"

    def __init__(self, workers: int | None = None) -> None:
        self._workers = max(1, workers or os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def start(self) -> None:
        """Nothing to start: threads are made on the first batch."""

    def map_batches(self, fn: Callable[..., R], batches: Iterable[Any], *args: Any) -> Iterator[R]:
        if self._workers <= 1:
            for batch in batches:
                yield fn(batch, *args)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="kallos-batch")
        pool = self._pool
        yield from _in_order(lambda batch: pool.submit(fn, batch, *args), batches, 2 * self._workers)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(_Base):
    """A Dask cluster: the one at `address`, or a LocalCluster of `workers` processes started for this run.

    Each batch is scattered to a worker and the function submitted on it (so large frames do not travel inside
    the task graph); results come back to this process in submission order.
    """

    name = "dask"

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - the scale extra is part of the test extra
            raise ConfigError(
                "KALLOS_EXECUTOR=dask needs Dask: pip install 'kallos[scale]'", setting="KALLOS_EXECUTOR"
            ) from exc
        self.address = address
        self._cluster: Any = None
        if address:
            try:
                self._client = Client(address, timeout=connect_timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    f"cannot reach the Dask scheduler at {address}: {exc}", setting="KALLOS_DASK_SCHEDULER"
                ) from exc
        else:
            self._cluster = LocalCluster(
                n_workers=workers or default_workers(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
            )
            self._client = Client(self._cluster, set_as_default=False)
        log.info(
            "dask executor ready",
            extra={
                "scheduler": self._client.scheduler.address,
                "workers": self.workers,
                "started": not address,
            },
        )

    def start(self) -> None:
        """Nothing to start: the cluster is up once the constructor returns."""

    @property
    def client(self) -> Any:
        return self._client

    @property
    def workers(self) -> int:
        """Worker threads of the cluster (at least 1, so a cluster still starting gets work queued)."""
        return max(1, sum(self._client.nthreads().values()))

    def map_batches(self, fn: Callable[..., R], batches: Iterable[Any], *args: Any) -> Iterator[R]:
        client = self._client

        def submit(batch: Any) -> Any:
            return client.submit(fn, client.scatter(batch, hash=False), *args, pure=False)

        yield from _in_order(submit, batches, 2 * self.workers)

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _task_done(segments: shared.SegmentPool, sent: list[shared.Free], _fut: Future[Any]) -> None:
    segments.give_all(sent)


def _release_result(fut: Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        shared.release_result(fut.result())


def _in_order(
    submit: Callable[[Any], Any],
    batches: Iterable[Any],
    window: int,
    *,
    receive: Callable[[Any], Any] = lambda fut: fut.result(),
    abandon: Callable[[Any], Any] = lambda fut: fut.cancel(),
) -> Iterator[Any]:
    """Every executor's contract: results in the batches' order, at most `window` batches submitted and not yet
    received (memory bounded by the batch size), and futures nobody will read abandoned when the caller stops
    early or a batch fails (an error here or in the consumer, or the generator closed)."""
    pending: deque[Any] = deque()
    try:
        for batch in batches:
            pending.append(submit(batch))
            while len(pending) >= window:
                yield receive(pending.popleft())
        while pending:
            yield receive(pending.popleft())
    finally:
        for fut in pending:
            abandon(fut)


def _chain(head: list[T], rest: Iterator[T]) -> Iterator[T]:
    yield from head
    yield from rest


def get_executor(
    settings: Any = None, *, workers: int | None = None, preload: Sequence[str] = ()
) -> LocalExecutor | ThreadExecutor | DaskExecutor:
    """The executor the settings name (`executor`, `dask_scheduler`, `workers`); close it (or use `with`).

    `workers` overrides the setting; for a remote Dask cluster the cluster's own size applies.
    """
    kind = getattr(settings, "executor", "local") if settings is not None else "local"
    n = workers or (getattr(settings, "workers", None) if settings is not None else None)
    if kind == "local":
        return LocalExecutor(n, preload=preload)
    if kind == "threads":
        return ThreadExecutor(n)
    if kind == "dask":
        return DaskExecutor(getattr(settings, "dask_scheduler", None), workers=n)
    raise ConfigError(
        f"unknown executor {kind!r}; accepted values: local, threads, dask", setting="KALLOS_EXECUTOR"
    )
