"""Keep the quantization libraries' chatter out of the user's console, for one call.

NNCF sets its logger to INFO when it is first imported (after the CLI configured logging)
and prints a line per ignored node; ONNX Runtime's quantizer logs a line per bias copy on the
*root* logger. `quiet` raises those loggers to WARNING for the duration of a call and puts
the levels back afterwards; with debug logging on (`leanvision --debug`) it does nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Raise loggers `names` ("" for the root logger) to WARNING inside the block."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    loggers = [logging.getLogger(name or None) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
