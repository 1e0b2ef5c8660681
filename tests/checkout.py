"""The files of this checkout that git would commit: what the repository-wide scans read."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

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
