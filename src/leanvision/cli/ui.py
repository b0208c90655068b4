"""Console helpers shared by the commands: progress bars with rate and ETA, JSON output, and
the batch exit-code rule.

Results go to stdout (`out`), progress and warnings to stderr (`console`). `--json FILE` on
every command writes the command's JSON result to FILE; `--json -` prints only the JSON on
stdout, so it pipes to `jq`: while the command runs, whatever it would print on stdout goes
to stderr instead (`json_result`).

Batch work (`predict`, `val`, `bench`, `quantize`) ends by `finish_batch`: every item
processed, exit 0; some skipped, exit 1 after a one-line account on stderr (how many, which
files and why: the first few named, the count of the rest); none processed, a one-line
error with exit 2.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from leanvision.core.errors import DataError, plural
from leanvision.core.io import atomic_write_text

# Rich markup is off: the text printed holds file names, label values and class names, in
# which "[/b]" is a closing tag (a MarkupError) and "[nan, 3, 18, 27]" a style that vanishes.
# A print that styles its own words passes markup=True and `escape`s what the user wrote.
console = Console(stderr=True, markup=False)
# Piped or logged, rich would wrap at 80 columns and split one warning over two lines, which
# breaks grep: off a terminal, each message stays one line.
console.soft_wrap = not console.is_terminal
out = Console(soft_wrap=True, markup=False)  # never wrap results: users grep and parse them

JSON_STDOUT = "-"
EXIT_SKIPPED = 1
SHOWN_SKIPPED = 3  # files named in a skip account; the rest are counted


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[..., None]]:
    """Yield `update(done, total, stage=None)`; draws a bar with rate and ETA on stderr.

    The bar is hidden when stderr is not a terminal (CI logs stay clean).
    """
    bar = Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    )
    with bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int, stage: str | None = None) -> None:
            bar.update(task, completed=done, total=total,
                       description=f"{description}: {stage}" if stage else description)

        yield update


def json_option(what: str = "the result") -> Any:
    """The `--json FILE|-` option every command shares."""
    return typer.Option(None, "--json", metavar="FILE|-",
                        help=f"Write {what} as JSON to FILE; '-' prints only the JSON on stdout (the rest goes to stderr).")


def emit_json(result: dict, path: Path | None) -> None:
    """Print `result` as JSON to stdout (`path` None or '-'), or write it to `path` atomically."""
    text = json.dumps(result, indent=2, default=str) + "\n"
    if path is None or str(path) == JSON_STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_text(path, text)


@contextlib.contextmanager
def json_result(target: Path | None) -> Iterator[Callable[[dict], None]]:
    """Run a command's body; yield `emit(result)`, which writes the `--json` result to `target`.

    `target` None: `emit` does nothing. '-': the JSON is the only thing on stdout; within
    the block stdout is stderr (tables, summaries, stray prints of libraries), and `emit`
    writes to the real stdout.
    """
    stdout = sys.stdout
    to_stdout = target is not None and str(target) == JSON_STDOUT

    def emit(result: dict) -> None:
        if target is None:
            return
        if to_stdout:
            stdout.write(json.dumps(result, indent=2, default=str) + "\n")
            stdout.flush()
        else:
            emit_json(result, target)

    if not to_stdout:
        yield emit
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield emit


def warn(text: str) -> None:
    """`warning: TEXT` on stderr, the word in yellow on a terminal; TEXT printed as written."""
    console.print(f"[yellow]warning[/]: {escape(text)}", markup=True, highlight=False)


def skip_account(skipped: Sequence[tuple[object, str]], *, noun: str, total: int | None = None,
                 listed_in: Path | None = None) -> str:
    """One line: how many `noun`s were skipped and why, the first few files named.

    `skipped`: (file, reason) pairs; `total`: how many there were; `listed_in`: a file
    listing them all.
    """
    head = f"{len(skipped)} of {plural(total, noun)}" if total is not None else plural(len(skipped), noun)
    shown = "; ".join(f"{path}: {' '.join(str(reason).split())}" for path, reason in skipped[:SHOWN_SKIPPED])
    rest = len(skipped) - SHOWN_SKIPPED
    more = f"; and {rest} more" if rest > 0 else ""
    where = f" (all listed in {listed_in})" if listed_in is not None and rest > 0 else ""
    return f"{head} skipped: {shown}{more}{where}"


def finish_batch(skipped: Sequence[tuple[object, str]], *, done: int, noun: str, total: int | None = None,
                 listed_in: Path | None = None) -> None:
    """Apply the batch exit-code rule after the results are printed and written.

    Raises:
        DataError: nothing was processed (`done` 0): exit 2, the account as its message.
        typer.Exit: some items were skipped: exit 1, after the account on stderr.
    """
    if done == 0:
        account = skip_account(skipped, noun=noun, total=total, listed_in=listed_in) if skipped else ""
        raise DataError(f"no {noun} processed" + (f": {account}" if account else ""))
    if skipped:
        typer.echo(f"leanvision: warning: {skip_account(skipped, noun=noun, total=total, listed_in=listed_in)}",
                   err=True)
        raise typer.Exit(EXIT_SKIPPED)
