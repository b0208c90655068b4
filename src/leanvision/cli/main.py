"""Entry point: the typer app, global options and the one-line error contract.

Every error a user can act on is printed as one line, `leanvision: error: path: problem`,
with exit code 2 and no traceback; `--debug` shows the traceback instead. An unexpected
exception (a bug) is printed the same way with exit code 3 and a hint to rerun with --debug.
Batch work that skipped items exits 1 after a one-line account, and 2 when it processed
nothing (`ui.finish_batch`); `data check` exits 1 when it found problems.
"""

from __future__ import annotations

import logging
import re
import sys

import typer

from leanvision import __version__
from leanvision.core.errors import LeanVisionError

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="leanvision",
    help="Vision models from data to a fast, measured CPU/edge deployment.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"leanvision {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
) -> None:
    """Stages: data (synth, convert, check, stats, preview), models, train, fixres, val, profile, export, predict, bench, demo."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if debug else "%(message)s",
    )
    if not debug:
        # Third-party loggers (NNCF, OpenVINO, ray) stay at warnings unless debugging.
        for name in ("nncf", "openvino", "ray", "matplotlib", "PIL", "pyvips"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _register_commands() -> None:
    from leanvision.cli import (
        bench,
        data,
        demo,
        export,
        models,
        predict,
        profile,
        quantize,
        train,
        val,
    )

    app.add_typer(data.app, name="data")
    app.command("train")(train.train)
    app.command("fixres")(train.fixres)
    app.command("val")(val.val)
    app.command("models")(models.models)
    app.command("profile")(profile.profile)
    app.command("export")(export.export)
    app.command("quantize")(quantize.quantize)
    app.command("predict")(predict.predict)
    app.command("bench")(bench.bench)
    app.command("demo")(demo.demo)


_register_commands()


def _error(message: str) -> None:
    typer.echo(f"leanvision: error: {message}", err=True)


def _given(args: list[str], opts: list[str]) -> str | None:
    """What the user typed for an option (`--opt VALUE` or `--opt=VALUE`), the last time."""
    value = None
    for i, arg in enumerate(args):
        name, eq, rest = arg.partition("=")
        if name in opts:
            value = rest if eq else (args[i + 1] if i + 1 < len(args) else None)
    return value


# Click lists the choices of a missing option one per line: "Missing option '--to'. Choose
# from:\n\tcoco,\n\tvoc,\n\tyolo".
_CHOOSE_FROM = re.compile(r"\.?\s*Choose from:\s*(?P<choices>.*)$", re.DOTALL)


def _one_line(message: str) -> str:
    """A usage message on one line: choices listed inline, whitespace runs made one space."""
    match = _CHOOSE_FROM.search(message)
    if match is not None:
        choices = ", ".join(c.strip() for c in match["choices"].rstrip(". \n").split(",") if c.strip())
        message = f"{message[: match.start()]} (choose from: {choices})"
    return " ".join(message.split())


def _usage_message(exc: typer.TyperException, args: list[str]) -> str:
    """Click's message on one line, without the validator's "Value error, " prefix, naming
    the bad value when the message does not (range checks say only "Input should be ... 1")."""
    message = _one_line(exc.format_message().replace("Value error, ", ""))
    opts = list(getattr(getattr(exc, "param", None), "opts", None) or [])
    value = _given(args, opts) if opts else None
    if value is not None and repr(value) not in message:
        message = f"{message.rstrip('.')}, got {value!r}"
    return message


def _os_error(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; exits with 0, 1 (items skipped, or a check found problems), 2 (bad input) or 3 (bug)."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="leanvision", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        _error("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: bad option, missing argument, ...
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _error(f"{_usage_message(exc, args)}{hint}")
        sys.exit(getattr(exc, "exit_code", EXIT_USER_ERROR))
    except (LeanVisionError, OSError) as exc:
        if debug:
            raise
        _error(_os_error(exc) if isinstance(exc, OSError) and not isinstance(exc, LeanVisionError) else str(exc))
        sys.exit(EXIT_USER_ERROR)
    except Exception as exc:
        if debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _error(f"internal error {type(exc).__name__}: {first} (a bug; rerun with --debug for the traceback)")
        sys.exit(EXIT_INTERNAL_ERROR)
    sys.exit(code if isinstance(code, int) else 0)
