"""The files of this checkout that git would commit: what the repository-wide scans read."""

from __future__ import annotations

import subprocess

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
