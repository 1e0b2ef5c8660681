"""The stand-in user API in a process of its own, for make demo, make shell, make ui and the tests."""

from __future__ import annotations

import subprocess
import sys
from typing import IO

from scripts.local_env import REPO_ROOT


class StandInUserApi:
    """The bundled stand-in for randomuser.me, in its own process on a free 127.0.0.1 port."""

    def __init__(self, *extra_args: str, stderr: IO[str] | None = None) -> None:
        self.extra_args = extra_args
        self.stderr = stderr  # its request log; None: this process's stderr
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> StandInUserApi:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "template.standin_user_api", "--port", "0", *self.extra_args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        line = self.process.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"the stand-in user API did not start (it printed {line!r})")
        self.url = line.removeprefix("listening on ")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def __enter__(self) -> StandInUserApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
