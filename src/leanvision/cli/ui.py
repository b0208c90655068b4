"""Console helpers shared by the commands: progress bars with rate and ETA, JSON output."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from leanvision.core.io import atomic_write_text

console = Console(stderr=True)
out = Console(soft_wrap=True)  # never wrap results: users grep and parse them


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[..., None]]:
    """Yield `update(done, total, stage=None)`; draws a bar with rate and ETA on stderr.

    The bar is hidden when stderr is not a terminal (CI logs stay clean).
    """
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    )
    with bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int, stage: str | None = None) -> None:
            bar.update(task, completed=done, total=total,
                       description=f"{description}: {stage}" if stage else description)

        yield update


def emit_json(result: dict, path: Path | None) -> None:
    """Print `result` as JSON to stdout, or write it to `path` atomically."""
    text = json.dumps(result, indent=2, default=str) + "\n"
    if path is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(path, text)
