"""Helpers shared by test modules (fixtures live in conftest.py files)."""

from __future__ import annotations

import contextlib
import io


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """Run `leanvision ARGS` in process through the real entry point: (exit code, stdout, stderr)."""
    from leanvision.cli.main import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, stdout.getvalue(), stderr.getvalue()
