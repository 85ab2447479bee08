"""Writing a user's output file safely: never onto the store, never over a file without consent, never half.

docs/decisions.md#D51: the content goes to a temporary file beside the target, renamed over it only when
complete, so a full disk or a killed process leaves the old file (or none) and never a truncated one. The store's
own files are refused outright, and an existing file is replaced only when the caller says so (`--force`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from kallos.errors import InputError


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def write_atomically(
    path: Path | str,
    write: Callable[[Path], None],
    *,
    force: bool = True,
    protected: Iterable[Path | str] = (),
    option: str = "--output",
) -> Path:
    """Call `write(tmp)` for a temporary file beside `path`, then rename it to `path`.

    Raises :class:`InputError` naming the file when `path` is one of `protected` (the database), a directory,
    an existing file while `force` is false, or cannot be written (its message keeps the OS reason, e.g.
    "No space left on device")."""
    target = Path(path).expanduser()
    for guarded in protected:
        if _same(target, Path(guarded).expanduser()):
            raise InputError(
                f"refusing to write {target}: it is the Kallos database itself; choose another {option} file",
                file=str(target),
            )
    if target.is_dir():
        raise InputError(f"{target} is a directory; give a file name with {option}", file=str(target))
    if target.exists() and not force:
        raise InputError(
            f"{target} already exists; pass --force to replace it, or choose another {option} file",
            file=str(target),
        )
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        write(Path(tmp))
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise InputError(f"cannot write {target}: {reason}", file=str(target)) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return target
