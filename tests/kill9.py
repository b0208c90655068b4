"""Run the real CLI in separate processes and SIGKILL them at chosen points (the kill -9 tests).

Starting Python, torch and leanvision costs seconds per process, more than the tiny runs
themselves, so a `Launcher` subprocess imports them once and forks one child per run: each
run is its own process executing `leanvision.cli.main.main(ARGS)`, killed with a real
SIGKILL; the launcher reaps it and reports its exit status. Nothing in it touches torch's
thread pools before forking.

Kill points are deterministic where they can be: `poll_kill` watches the file system for a
stage's file and kills the moment it appears; `kill=` makes the child SIGKILL itself right
before, or right after, its N-th rename onto a file of a given name (a Python audit hook:
`os.replace` raises the `os.rename` audit event). This is test code: src has no kill hook.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Reads one JSON request per line: {"args": [...], "kill": SPEC, "out": path prefix}; forks
# a child that runs the CLI with stdout/stderr in PREFIX.out / PREFIX.err; prints
# "pid N", then "exit CODE" (negative: killed by that signal) when the child ends.
# SPEC: "-" (no kill), "before:NAME:N" (SIGKILL at the N-th rename onto NAME, before it is
# done), "after:NAME:N" (SIGKILL at the first rename after that one: NAME is in place).
LAUNCHER = r"""
import json, os, signal, sys
import leanvision.cli.main
from leanvision.models import register_model
for module in sys.argv[1:]:
    __import__(module)
from tests.training.tiny_detector import TinyGridDetector
register_model("tiny_grid", task="detect")(lambda *, num_classes, weights_backbone=None: TinyGridDetector(num_classes))

def kill_hook(spec):
    when, name, nth = spec.split(":")
    state = {"seen": 0, "armed": False}
    def hook(event, args):
        if event != "os.rename":
            return
        if state["armed"]:
            os.kill(os.getpid(), signal.SIGKILL)
        if os.path.basename(os.fsdecode(args[1])) == name:
            state["seen"] += 1
            if state["seen"] == int(nth):
                if when == "before":
                    os.kill(os.getpid(), signal.SIGKILL)
                state["armed"] = True
    return hook

print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        out = os.open(request["out"] + ".out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        err = os.open(request["out"] + ".err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(err, 2)
        if request["kill"] != "-":
            sys.addaudithook(kill_hook(request["kill"]))
        code = 0
        try:
            leanvision.cli.main.main(request["args"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print("pid", pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print("exit", os.waitstatus_to_exitcode(status), flush=True)
"""


@dataclass
class Run:
    """One CLI run in a child process of the launcher."""

    launcher: Launcher
    pid: int
    log: Path
    code: int | None = None

    def wait(self) -> int:
        if self.code is None:
            self.code = self.launcher.exit_code()
        return self.code

    def kill(self) -> None:
        """SIGKILL the run (if it is still running) and reap it."""
        if self.code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.wait()

    @property
    def killed(self) -> bool:
        return self.wait() == -signal.SIGKILL

    @property
    def stderr(self) -> str:
        return self.log.with_suffix(".err").read_text()

    def running(self) -> bool:
        """True while the child has not exited (it is a zombie until reaped: check its state)."""
        if self.code is not None:
            return False
        try:
            with open(f"/proc/{self.pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False


class Launcher:
    """A subprocess with leanvision (and `preload` modules) imported, forking one child per run."""

    def __init__(self, workdir: Path, preload: tuple[str, ...] = ()) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.workdir = workdir
        self.process = subprocess.Popen([sys.executable, "-c", LAUNCHER, *preload], env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=workdir)
        self._count = 0
        assert self._line() == "ready"

    def _line(self) -> str:
        line = self.process.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"the launcher exited (code {self.process.wait()})")
        return line

    def start(self, args: list[str | os.PathLike[str]], *, kill: str = "-") -> Run:
        self._count += 1
        log = self.workdir / f"run{self._count}"
        self.process.stdin.write(json.dumps({"args": [str(a) for a in args], "kill": kill, "out": str(log)}) + "\n")
        self.process.stdin.flush()
        word, pid = self._line().split()
        assert word == "pid", word
        return Run(self, int(pid), log)

    def exit_code(self) -> int:
        word, code = self._line().split()
        assert word == "exit", word
        return int(code)

    def close(self) -> None:
        """End the launcher (idle: its runs have ended); no need to wait for its clean exit."""
        self.process.stdin.close()
        self.process.kill()
        self.process.wait(60)


def poll_kill(run: Run, ready: Callable[[], bool], *, timeout: float = 300) -> bool:
    """SIGKILL `run` as soon as `ready()` holds; False if it exited first."""
    deadline = time.monotonic() + timeout
    while run.running():
        if ready():
            run.kill()
            return True
        if time.monotonic() > deadline:
            run.kill()
            raise TimeoutError(f"run {run.log}: the kill point was not reached in {timeout} s")
        time.sleep(0.002)
    run.wait()
    return False


def kill_after(run: Run, seconds: float) -> bool:
    """SIGKILL `run` `seconds` from now; False if it had exited by then."""
    deadline = time.monotonic() + seconds
    while run.running() and time.monotonic() < deadline:
        time.sleep(0.002)
    was_running = run.running()
    run.kill()
    return was_running
