"""Frames between this process and the local pool's workers through shared memory (docs/decisions.md#D118).

Pickling a batch's result (an indicator batch is ~115 MB) in the worker and unpickling it in the parent cost
as much as computing it, so two workers ran slower than one core. Here a frame crosses the process boundary as
a small picklable :class:`SharedFrame`: its columns live in files on `/dev/shm` (tmpfs: memory, not disk) that
both processes map.

- Parent -> worker: :func:`pack_frame` copies the batch's columns into a segment; the worker maps it and
  computes on a frame over that mapping (no unpickling).
- Worker -> parent: the function runs inside an :class:`Arena`; :func:`empty` (used by the indicator engine
  for its output block) then allocates arrays in segments, so the engine writes its result straight into
  shared memory. :func:`pack_frame` refers to columns already in a segment by name and offset and copies only
  the others (dates, string codes). The parent maps the segments and wraps them in a DataFrame without a copy.
- Reuse: a fresh segment costs a page fault and the kernel's zeroing of every page (on this VM as much time as
  the engine's compute of the batch), so segments are recycled through :class:`SegmentPool`, a free list kept
  in the names themselves: the parent frees a batch's segment when its task ends and a result's when the last
  array over its mapping is freed; any process of the executor claims the best free fit when it allocates. At
  most `cap` segments are kept free; the rest are unlinked.

Cleanup on every path: a worker that fails unlinks the segments it created or claimed; results the parent
abandons (an error, a cancelled run) are unlinked when their task ends; closing the executor unlinks every
segment of its token (free, or still mapped by frames the caller holds: their memory lives until they are
freed, the names go); names carry the parent's pid, so :func:`sweep` also removes what a killed run left.
Strings travel as integer codes with their distinct values pickled beside them.
"""

from __future__ import annotations

import mmap
import os
import pickle
import secrets
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "Arena",
    "SegmentPool",
    "SharedFrame",
    "available",
    "empty",
    "new_token",
    "pack_frame",
    "pack_result",
    "release",
    "sweep",
    "unpack_frame",
    "unpack_result",
]

SHM_DIR = "/dev/shm"
PREFIX = "kallos-"
_ALIGN = 64
# A string column is sent as codes when it has at most this share of distinct values (else pickled inline).
_MAX_DISTINCT_SHARE = 0.5


def available() -> bool:
    """True where POSIX shared memory is a tmpfs directory this process can write (Linux)."""
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK | os.X_OK)


def new_token() -> str:
    """The name prefix of one executor's segments: `kallos-<parent pid>-<random>-`."""
    return f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}-"


def _path(name: str) -> str:
    return os.path.join(SHM_DIR, name)


def _unlink(name: str) -> None:
    try:
        os.unlink(_path(name))
    except FileNotFoundError:
        pass


def _map(name: str, size: int, *, create: bool = False, write: bool = False) -> mmap.mmap:
    """Map a segment. `write`: it is about to be written whole, so MAP_POPULATE maps its pages in one call
    instead of one fault per 4 KB page; a segment to read is mapped lazily (the reader may drop columns)."""
    flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
    fd = os.open(_path(name), flags, 0o600)
    try:
        if create:
            os.ftruncate(fd, size)
        populate = getattr(mmap, "MAP_POPULATE", 0) if write or create else 0
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED | populate)
    finally:
        os.close(fd)


def _address(buf: Any) -> int:
    return int(np.frombuffer(buf, dtype=np.uint8).ctypes.data)


@dataclass
class _Segment:
    name: str
    size: int
    mm: mmap.mmap
    address: int


Free = tuple[str, int]  # a free segment: (name, size in bytes)


class SegmentPool:
    """The free segments of one executor, shared by its processes through their names.

    A free segment is renamed `<token>free-<size>-<random>`; a process that needs memory claims the best fit by
    renaming it to a name of its own (atomic: of two claimants one wins, the other tries the next). So a worker
    writes its result into whatever the parent freed up to the moment it allocates, not only what was free when
    its task was submitted. At most `cap` segments are kept free; the rest are unlinked.
    """

    def __init__(self, token: str, cap: int) -> None:
        self.token = token
        self.cap = cap
        self._closed = False

    def _free(self) -> list[Free]:
        head = f"{self.token}free-"
        free = []
        for name in os.listdir(SHM_DIR):
            if name.startswith(head):
                size = name[len(head) :].split("-", 1)[0]
                if size.isdigit():
                    free.append((name, int(size)))
        return free

    @property
    def free(self) -> list[Free]:
        return self._free()

    def take(self, size: int) -> Free | None:
        """Claim the smallest free segment of at least `size` bytes: (its new name, its size), or None."""
        for name, have in sorted((f for f in self._free() if f[1] >= size), key=lambda f: f[1]):
            mine = f"{self.token}{os.getpid()}-{secrets.token_hex(6)}"
            try:
                os.rename(_path(name), _path(mine))
            except FileNotFoundError:
                continue  # another process claimed it first
            return mine, have
        return None

    def give(self, name: str, size: int) -> None:
        """A segment nobody maps for writing any more: kept for reuse, or unlinked when the pool is full or
        closed."""
        if not self._closed and len(self._free()) < self.cap:
            try:
                os.rename(_path(name), _path(f"{self.token}free-{size}-{secrets.token_hex(6)}"))
                return
            except FileNotFoundError:
                return  # already removed (the executor closed)
        _unlink(name)

    def give_all(self, free: Iterable[Free]) -> None:
        for name, size in free:
            self.give(name, size)

    def close(self) -> None:
        self._closed = True
        release(name for name, _ in self._free())


class Arena:
    """The segments one task writes (a worker's result, or the parent's packed batch).

    A segment is claimed from the executor's free segments (`reuse`, best fit by size) or created. Inside a
    task (a context manager) it is the active arena that :func:`empty` allocates from; on an exception every
    segment it claimed or created is unlinked.
    """

    _active: Arena | None = None

    def __init__(self, token: str, reuse: SegmentPool | None = None) -> None:
        self.token = token
        self.reuse = reuse
        self.segments: list[_Segment] = []

    def __enter__(self) -> Arena:
        Arena._active = self
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        Arena._active = None
        if exc_type is not None:
            self.unlink_all()

    def new(self, size: int) -> _Segment:
        size = max(int(size), 1)  # a zero-length mapping is not allowed
        free = self.reuse.take(size) if self.reuse is not None else None
        if free is not None:
            name, size = free
            mm = _map(name, size, write=True)
        else:
            name = f"{self.token}{os.getpid()}-{secrets.token_hex(6)}"
            mm = _map(name, size, create=True)
        seg = _Segment(name, size, mm, _address(mm))
        self.segments.append(seg)
        return seg

    def array(self, shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
        dt = np.dtype(dtype)
        seg = self.new(int(np.prod(shape, dtype=np.int64)) * dt.itemsize)
        return np.ndarray(shape, dtype=dt, buffer=seg.mm)

    def find(self, arr: np.ndarray) -> tuple[str, int] | None:
        """(segment name, byte offset) when `arr`'s data lies inside one of this arena's segments."""
        if arr.size == 0:
            return None
        start = int(arr.__array_interface__["data"][0])
        for seg in self.segments:
            if seg.address <= start < seg.address + seg.size:
                return seg.name, start - seg.address
        return None

    def unlink_all(self) -> None:
        release(seg.name for seg in self.segments)
        self.segments.clear()

    def spare(self, keep: set[str]) -> list[Free]:
        """Segments of this arena outside `keep`: free for reuse."""
        spare = [(seg.name, seg.size) for seg in self.segments if seg.name not in keep]
        self.segments = [seg for seg in self.segments if seg.name in keep]
        return spare


def empty(shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """`np.empty`, or an array in a shared segment inside a pool worker's task (the result block)."""
    arena = Arena._active
    if arena is None:
        return np.empty(shape, dtype=dtype)
    return arena.array(shape, dtype)


@dataclass
class _Column:
    name: Any
    kind: str  # "array" | "codes" | "inline"
    dtype: Any  # the pandas dtype to restore
    ref: tuple[str, int] | None = None  # (segment, byte offset) of the array / the codes
    array_dtype: str = ""
    strides: tuple[int, ...] = ()
    inline: Any = None  # pickled column, or the distinct strings of a coded column


@dataclass
class SharedFrame:
    """A picklable handle to a DataFrame whose columns live in shared segments (see the module docstring)."""

    rows: int
    columns: list[_Column]
    index: Any = None  # None: a RangeIndex
    segments: list[Free] = field(default_factory=list)  # every segment referenced, with its size
    column_index: bytes = b""  # the pickled column Index (its type and name)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.segments]


def _is_string(dtype: Any) -> bool:
    return isinstance(dtype, pd.StringDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "O")


def pack_frame(frame: pd.DataFrame, arena: Arena) -> SharedFrame:
    """The frame as a SharedFrame: columns already in `arena`'s segments are referenced, the others copied into
    one new segment (strings as codes). The frame is not changed."""
    n = len(frame)
    plans: list[tuple[_Column, np.ndarray | None]] = []
    copy_bytes = 0
    for pos in range(frame.shape[1]):
        name = frame.columns[pos]
        series = frame.iloc[:, pos]
        dtype = series.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "biufcmM" and n:
            arr = series.to_numpy()
            col = _Column(name, "array", dtype, array_dtype=arr.dtype.str)
            found = arena.find(arr)
            if found is not None:
                col.ref, col.strides = found, arr.strides
                plans.append((col, None))
            else:
                plans.append((col, arr))
                copy_bytes += _aligned(arr.nbytes)
            continue
        if _is_string(dtype) and n:
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
            if len(uniques) <= _MAX_DISTINCT_SHARE * n:
                codes = codes.astype(np.int32 if len(uniques) < 2**31 else np.int64)
                col = _Column(name, "codes", dtype, array_dtype=codes.dtype.str, inline=list(uniques))
                plans.append((col, codes))
                copy_bytes += _aligned(codes.nbytes)
                continue
        plans.append((_Column(name, "inline", dtype, inline=pickle.dumps(series, protocol=5)), None))
    names: set[str] = set()
    seg = arena.new(copy_bytes) if copy_bytes else None
    offset = 0
    for col, data in plans:
        if data is not None:
            assert seg is not None
            target = np.ndarray(data.shape, dtype=data.dtype, buffer=seg.mm, offset=offset)
            target[...] = data
            col.ref, col.strides = (seg.name, offset), target.strides
            offset += _aligned(data.nbytes)
        if col.ref is not None:
            names.add(col.ref[0])
    index = (
        None
        if isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
        else pickle.dumps(frame.index, protocol=5)
    )
    sizes = {s.name: s.size for s in arena.segments}
    return SharedFrame(
        n,
        [c for c, _ in plans],
        index,
        sorted((name, sizes[name]) for name in names),
        pickle.dumps(frame.columns, protocol=5),
    )


def _aligned(nbytes: int) -> int:
    return (nbytes + _ALIGN - 1) // _ALIGN * _ALIGN


def unpack_frame(handle: SharedFrame, pool: SegmentPool | None = None) -> pd.DataFrame:
    """The DataFrame over the handle's segments (no copy of the arrays).

    `pool` (the receiver of a result): each segment goes back to it once the last array over its mapping is
    freed. Without one (a worker reading its batch) the segments stay the sender's.
    """
    maps: dict[str, mmap.mmap] = {}
    for name, size in handle.segments:
        mm = _map(name, size)
        maps[name] = mm
        if pool is not None:
            weakref.finalize(mm, pool.give, name, size)
    n = handle.rows
    pieces: list[pd.DataFrame] = []
    run: list[_Column] = []

    def flush() -> None:
        if not run:
            return
        first = run[0]
        assert first.ref is not None
        if len(run) == 1:
            pieces.append(pd.DataFrame({first.name: _series(first, maps, n)}, copy=False))
        else:
            step = run[1].ref[1] - first.ref[1]  # type: ignore[index]
            block = np.ndarray(
                (len(run), n),
                dtype=first.array_dtype,
                buffer=maps[first.ref[0]],
                offset=first.ref[1],
                strides=(step, first.strides[0]),
            )
            pieces.append(pd.DataFrame(block.T, columns=[c.name for c in run], copy=False))
        run.clear()

    for col in handle.columns:
        if run and not _continues(run, col):
            flush()
        if col.kind == "array" and np.dtype(col.array_dtype) == np.float64 and len(col.strides) == 1:
            run.append(col)
            continue
        flush()
        pieces.append(pd.DataFrame({col.name: _series(col, maps, n)}, copy=False))
    flush()
    if not pieces:
        out = pd.DataFrame(index=pd.RangeIndex(n))
    else:
        out = pd.concat(pieces, axis=1) if len(pieces) != 1 else pieces[0]
    out.columns = pickle.loads(handle.column_index)
    if handle.index is not None:
        out.index = pickle.loads(handle.index)
    return out


def _continues(run: list[_Column], col: _Column) -> bool:
    """`col` extends the run of float columns as the next row of one 2-D block (same segment, same spacing)."""
    if col.kind != "array" or col.array_dtype != run[0].array_dtype or col.strides != run[0].strides:
        return False
    assert col.ref is not None and run[-1].ref is not None and run[0].ref is not None
    if col.ref[0] != run[0].ref[0]:
        return False
    step = col.ref[1] - run[-1].ref[1]
    if step <= 0:
        return False
    return len(run) == 1 or step == run[1].ref[1] - run[0].ref[1]  # type: ignore[index]


def _series(col: _Column, maps: dict[str, mmap.mmap], n: int) -> Any:
    if col.kind == "inline":
        return pickle.loads(col.inline).array
    assert col.ref is not None
    arr = np.ndarray((n,), dtype=col.array_dtype, buffer=maps[col.ref[0]], offset=col.ref[1], strides=col.strides)
    if col.kind == "array":
        return arr
    uniques = col.inline
    if isinstance(col.dtype, pd.StringDtype):
        taken = pa.array(uniques, type=pa.large_string()).take(pa.array(arr, mask=arr < 0))
        return pd.array(taken, dtype=col.dtype)
    values = np.asarray(uniques, dtype=object)[arr]
    values[arr < 0] = np.nan
    return values


def release(names: Iterable[str]) -> None:
    """Unlink segments by name (already gone is fine)."""
    for name in names:
        _unlink(name)


@dataclass
class Packed:
    """A worker's result with its DataFrames as SharedFrames, and the segments it leaves free for reuse."""

    value: Any
    spare: list[Free]

    def frames(self) -> list[SharedFrame]:
        v = self.value
        if isinstance(v, SharedFrame):
            return [v]
        if isinstance(v, tuple | list):
            return [x for x in v if isinstance(x, SharedFrame)]
        return []


def pack_result(result: Any, arena: Arena) -> Packed:
    """A task's result with its DataFrames (itself, or items of a tuple/list) as SharedFrames; the arena's
    segments the packed result does not reference are returned as spare."""
    if isinstance(result, pd.DataFrame):
        value: Any = pack_frame(result, arena)
    elif isinstance(result, tuple | list):
        value = type(result)(pack_frame(x, arena) if isinstance(x, pd.DataFrame) else x for x in result)
    else:
        value = result
    packed = Packed(value, [])
    packed.spare = arena.spare({name for h in packed.frames() for name in h.names})
    return packed


def unpack_result(packed: Packed, pool: SegmentPool) -> Any:
    """The inverse of :func:`pack_result` in the receiving process: spare segments go to `pool`, and so does
    each frame's segments once the frame is freed."""
    pool.give_all(packed.spare)
    value = packed.value
    try:
        if isinstance(value, SharedFrame):
            return unpack_frame(value, pool)
        if isinstance(value, tuple | list):
            return type(value)(unpack_frame(x, pool) if isinstance(x, SharedFrame) else x for x in value)
    except BaseException:
        release_result(packed)
        raise
    return value


def release_result(packed: Packed) -> None:
    """Unlink the segments of a packed result that will not be unpacked."""
    release(name for name, _ in packed.spare)
    for handle in packed.frames():
        release(handle.names)


def sweep(token: str | None = None) -> int:
    """Unlink this executor's leftover segments (`token`), or, without a token, those of processes that no
    longer exist (a killed run). Returns how many were removed."""
    if not available():
        return 0
    removed = 0
    for name in os.listdir(SHM_DIR):
        if not name.startswith(PREFIX):
            continue
        if token is not None:
            stale = name.startswith(token)
        else:
            pid = name[len(PREFIX) :].split("-", 1)[0]
            stale = pid.isdigit() and not os.path.exists(f"/proc/{pid}")
        if stale:
            _unlink(name)
            removed += 1
    return removed


def run_shared(fn: Any, batch: Any, token: str, cap: int, args: tuple[Any, ...]) -> Packed:
    """Worker side of one task: the batch frame mapped from shared memory, `fn` run inside an arena that claims
    the executor's free segments first, its result packed into shared memory; the segments it used but the
    result does not reference are freed here."""
    pool = SegmentPool(token, cap)
    with Arena(token, pool) as arena:
        if isinstance(batch, SharedFrame):
            batch = unpack_frame(batch)
        result = fn(batch, *args)
        del batch
        packed = pack_result(result, arena)
    pool.give_all(packed.spare)
    packed.spare = []
    return packed
