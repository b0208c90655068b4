"""Atomic file writes: a temp file in the same directory, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import shutil
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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def replace_dir(staging: Path, out: Path) -> None:
    """Move a finished `staging` directory (a sibling of `out`) to `out`, replacing any
    previous `out` whole: readers see the old directory or the new one, never a mix."""
    os.chmod(staging, 0o755)  # mkdtemp makes 0700; a model directory is meant to be shared
    if not out.exists():
        os.replace(staging, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def check_output_dir(out: Path, *, allowed: frozenset[str], what: str) -> None:
    """ConfigError unless `out` can become (or be replaced by) a directory of `what`: it is
    absent, or a directory holding only `allowed` file names; its parent is created."""
    from leanvision.core.errors import ConfigError

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


def staging_dir(out: Path) -> Path:
    """A new hidden sibling directory of `out` to build it in (then `replace_dir(staging, out)`)."""
    from leanvision.core.errors import ConfigError

    try:
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise ConfigError(f"cannot write the output directory: {exc.strerror or exc}", path=out) from None
