"""Atomic file writes: a temp file in the same directory, then rename over the target.

A process killed with SIGKILL cannot clean up: what it leaves is a hidden temp file
(`.NAME.XXXXXXXX.tmpSUFFIX`) or staging directory beside the target, never a half target.
The next writer of the same directory removes staging directories whose writer died (a
flock tells a dead writer from a live one); run directories remove their stale temp files.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import glob
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically.

    Readers never see a half-written file; on error the temporary file is removed and any
    previous `path` is left as it was. The suffix is kept so libraries that choose a format
    by extension (cv2, PIL, matplotlib) still do the right thing.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp files `atomic_path(path)` left when its writer was killed; return them.

    Only for a file this process alone writes (e.g. a run directory's checkpoints): a temp
    file of another writer still at work would be removed from under it.
    """
    target = Path(path)
    pattern = f".{glob.escape(target.stem)}.{'?' * 8}.tmp{glob.escape(target.suffix)}"
    removed = []
    for stale in sorted(target.parent.glob(pattern)):
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system
    or the file system cannot. The standard library has no renameat2."""
    if sys.platform != "linux":
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def replace_dir(staging: Path, out: Path) -> None:
    """Move a finished `staging` directory (a sibling of `out`) to `out`, replacing any
    previous `out` whole: readers see the old directory or the new one, never a mix.

    On Linux the two are exchanged in one atomic step, so even a process killed here leaves
    `out` complete (old or new; the old one then sits in `staging`, which the caller removes).
    Elsewhere the old `out` is moved aside first: a kill between the two renames leaves it in
    a hidden `.OUT.*.old` sibling and no `out`.
    """
    os.chmod(staging, 0o755)  # mkdtemp makes 0700; a model directory is meant to be shared
    if not out.exists():
        os.replace(staging, out)
        return
    if _exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def refuse_symlink(out: Path) -> None:
    """ConfigError if the output path `out` is itself a symlink (dangling or not).

    A directory is replaced by swapping a staging sibling in its place: for a symlink that
    swap would move the link, not the folder it names, and leave it beside `out` (a folder
    on the way to `out` may be a symlink: only the last component is swapped).
    """
    from leanvision.core.errors import ConfigError

    if out.is_symlink():
        raise ConfigError(f"the output path is a symlink (to {os.readlink(out)!r}); give the folder itself, "
                          "or a new path", path=out)


def check_output_dir(out: Path, *, allowed: frozenset[str], what: str) -> None:
    """ConfigError unless `out` can become (or be replaced by) a directory of `what`: it is
    absent, or a directory holding only `allowed` file names, and not a symlink; its parent
    is created."""
    from leanvision.core.errors import ConfigError

    refuse_symlink(out)
    if out.exists() and not out.is_dir():
        raise ConfigError("the output path exists and is not a directory", path=out)
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in allowed)
        if foreign:
            raise ConfigError(f"refusing to replace a directory that is not {what} (it holds {foreign[0]!r}); "
                              "choose another --out", path=out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output directory: {exc.strerror or exc}", path=out) from None


_STAGING_SUFFIX = ".tmp"
_NEW_SUFFIX = ".new"


def _try_lock(folder: Path) -> int | None:
    """An fd holding an exclusive flock on `folder`, or None if a live process holds it (or
    it vanished). The kernel drops the lock when its holder dies, even by SIGKILL."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_stale_staging(out: Path) -> list[Path]:
    """Delete the staging siblings of `out` whose writer has died (killed mid-write); return them.

    A live writer holds a lock on its staging directory, so another `export`, `quantize` or
    `convert` writing the same `out` at the same time keeps its own.
    """
    removed = []
    pattern = f".{glob.escape(out.name)}.{'?' * 8}{_STAGING_SUFFIX}"
    for stale in sorted(out.parent.glob(pattern)):
        if stale.is_symlink():  # a symlink `out` swapped in by a version that did not refuse one
            stale.unlink(missing_ok=True)
            removed.append(stale)
            continue
        fd = _try_lock(stale)
        if fd is None:
            continue
        try:
            shutil.rmtree(stale, ignore_errors=True)
        finally:
            os.close(fd)
        removed.append(stale)
    return removed


@contextlib.contextmanager
def staging_dir(out: Path) -> Iterator[Path]:
    """A new hidden sibling directory of `out` to build it in (then `replace_dir(staging, out)`
    inside the block); removed when the block ends, committed or not.

    It is locked while this process lives, and staging siblings left by writers that were
    killed are removed first: a killed run leaves nothing behind after the next one.

    Raises:
        ConfigError: `out` is a symlink (`refuse_symlink`), or the staging folder cannot be made.
    """
    from leanvision.core.errors import ConfigError

    refuse_symlink(out)
    remove_stale_staging(out)
    try:
        fresh = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=_NEW_SUFFIX, dir=out.parent))
    except OSError as exc:
        raise ConfigError(f"cannot write the output directory: {exc.strerror or exc}", path=out) from None
    fd = _try_lock(fresh)
    if fd is None:  # only a file system without flock gets here
        shutil.rmtree(fresh, ignore_errors=True)
        raise ConfigError("cannot lock a staging directory beside the output", path=out)
    # Named *.tmp only once locked, so a sweeper never takes a directory still being set up.
    staging = fresh.with_name(fresh.name[: -len(_NEW_SUFFIX)] + _STAGING_SUFFIX)
    try:
        os.rename(fresh, staging)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(fresh, ignore_errors=True)
        os.close(fd)
