"""A Docker engine for `make test-docker`: the one you have, or a private dockerd for the run.

- `docker info` answers (Docker Desktop, a system dockerd, DOCKER_HOST): that engine is used as it is.
- Otherwise, as root on Debian/Ubuntu: `apt-get install docker.io` when dockerd is missing, then a
  private dockerd with its own socket, pidfile and exec-root under /run, stopped at the end of the run.
  Its data-root is under ~/.cache, outside the checkout, so the next run reuses the images it built.
- Anywhere else: EngineNotAvailable, with the command that installs Docker.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scripts.local_env import apt_get_install

CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "user-processing-template"
DATA_ROOT = CACHE_DIR / "docker"  # images and build cache, kept between runs
RUN_DIR = Path("/run/user-processing-docker")  # socket, pidfile, exec-root: short paths, gone at reboot
START_TIMEOUT = 60  # seconds for a dockerd we start to answer

INSTALL_HINT = """No Docker engine answers (`docker info` failed), and none can be started here.
Install Docker and start it, then run make test-docker again:
  Debian/Ubuntu:  sudo apt-get install -y docker.io && sudo systemctl start docker
                  (as root, make test-docker installs docker.io and starts a private dockerd itself)
  Fedora/RHEL:    sudo dnf install -y moby-engine && sudo systemctl start docker
  macOS/Windows:  Docker Desktop, https://docs.docker.com/desktop/
Your user must be allowed to use it (`docker info` works), e.g. the `docker` group on Linux."""


class EngineNotAvailable(RuntimeError):
    pass


@dataclass
class DockerEngine:
    """Where `docker` commands go (env), and the private dockerd to stop, if we started one."""

    env: dict[str, str]
    description: str
    dockerd: subprocess.Popen | None = None
    log: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, say: Callable[[str], None] = print) -> DockerEngine:
        env = dict(os.environ)
        if shutil.which("docker") and _answers(env):
            return cls(env, f"your Docker engine: {_versions(env)}")
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise EngineNotAvailable(INSTALL_HINT)
        return cls._start_private(say)

    @classmethod
    def _start_private(cls, say: Callable[[str], None]) -> DockerEngine:
        if not (shutil.which("dockerd") and shutil.which("docker")):
            say("no Docker engine answers and none is installed: installing docker.io with apt-get ...")
            apt_get_install("docker.io")
        env = {**os.environ, "DOCKER_HOST": f"unix://{RUN_DIR}/docker.sock"}
        _stop_leftover_dockerd()
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        DATA_ROOT.mkdir(parents=True, exist_ok=True)
        log = CACHE_DIR / "dockerd.log"
        command = [
            "dockerd",
            f"--data-root={DATA_ROOT}",
            f"--exec-root={RUN_DIR}/exec",
            f"--pidfile={RUN_DIR}/docker.pid",
            f"--host=unix://{RUN_DIR}/docker.sock",
        ]
        try:
            dockerd = start_dockerd(command, env, log)
        except DockerdDidNotStart as error:
            shutil.rmtree(RUN_DIR, ignore_errors=True)
            raise EngineNotAvailable(f"the private {error}") from None
        return cls(env, f"a private dockerd (data-root {DATA_ROOT}): {_versions(env)}", dockerd, log)

    def docker(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        result = subprocess.run(["docker", *args], env=self.env, check=False, **kwargs)
        if check and result.returncode != 0:
            raise DockerError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def stop(self) -> None:
        """Stop the private dockerd (and its containerd); the user's own engine is left alone."""
        if self.dockerd is None or self._stopped:
            return
        self._stopped = True
        stop_dockerd(self.dockerd)
        shutil.rmtree(RUN_DIR, ignore_errors=True)


class DockerError(RuntimeError):
    pass


class DockerdDidNotStart(RuntimeError):
    pass


def start_dockerd(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`command` (a dockerd command line) started in a session of its own (a Ctrl-C reaches us, and we
    stop it after the stack is down), its output in `log`; returned once `docker info` answers at
    env's DOCKER_HOST. If it exits or does not answer within START_TIMEOUT, it is stopped and
    DockerdDidNotStart gives the end of its log."""
    with log.open("w") as output:
        dockerd = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(env):
        if dockerd.poll() is not None or time.monotonic() > deadline:
            stop_dockerd(dockerd)
            raise DockerdDidNotStart(f"dockerd did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return dockerd


def stop_dockerd(dockerd: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM, so that it stops its containerd too; SIGKILL if it has not ended after `timeout` s."""
    if dockerd.poll() is not None:
        return
    dockerd.terminate()
    try:
        dockerd.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        dockerd.kill()
        dockerd.wait()


def _answers(env: dict[str, str]) -> bool:
    probe = subprocess.run(["docker", "info"], env=env, capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def _versions(env: dict[str, str]) -> str:
    server = subprocess.run(
        ["docker", "version", "--format", "Docker Engine {{.Server.Version}}, client {{.Client.Version}}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return server.stdout.strip()


def _stop_leftover_dockerd() -> None:
    """A private dockerd of an earlier run that was killed before it could stop it holds the data-root."""
    pidfile = RUN_DIR / "docker.pid"
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    try:
        if "dockerd" not in Path(f"/proc/{pid}/cmdline").read_text():
            return  # the pid was reused by something else
        os.kill(pid, signal.SIGTERM)
    except (OSError, ProcessLookupError):
        return
    for _ in range(120):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
