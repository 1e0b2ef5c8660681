"""`make image`: build the image you deploy (the project baked in), tagged with the code in it.

The tag names the code the image holds:

- a git checkout with nothing uncommitted: the commit, `<12 hex digits>`;
- uncommitted changes (or new files git does not ignore): `<commit>-dirty-<digest>`, never the clean
  commit's tag; the digest is of the files the image is built from, so two different sets of changes
  never share a tag;
- a folder that is no git checkout (an unpacked archive): `src-<digest>`.

The name comes from docker-compose.yaml (AIRFLOW_IMAGE_NAME's default, without its tag), so the
stack and `make image` build the same repository; `IMAGE=` names another, e.g. your registry's.
Which files the build gets is read from .dockerignore with Docker's own rules (`context_files`):
template/tests/docker/test_image.py compares them with the context a real build receives. Standard library
only: it needs Docker and git, no virtualenv.

    python3 -m scripts.image [--name NAME] [--folder FOLDER]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import posixpath
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_IMAGE = re.compile(r"\$\{AIRFLOW_IMAGE_NAME:-(?P<name>[^}]+):(?P<tag>[^}:/]+)\}")
# Docker always sends these two with the context, whatever .dockerignore says; they shape the image.
BUILD_FILES = ("Dockerfile", ".dockerignore")
DIGEST_LENGTH = 12
DOCKER_HINT = """make image needs Docker: the docker CLI and an engine it can reach (`docker info` works).
  Debian/Ubuntu: sudo apt-get install -y docker.io; other systems: https://docs.docker.com/engine/install/"""


@dataclass(frozen=True)
class Tag:
    tag: str
    commit: str | None  # the full commit, when built from a git checkout
    why: str  # what the tag says, in words


def default_name(folder: Path = REPO_ROOT) -> str:
    """The repository part of docker-compose.yaml's AIRFLOW_IMAGE_NAME default."""
    match = COMPOSE_IMAGE.search((folder / "docker-compose.yaml").read_text())
    if match is None:
        raise SystemExit(f"no ${{AIRFLOW_IMAGE_NAME:-name:tag}} in {folder / 'docker-compose.yaml'}")
    return match["name"]


def code_tag(folder: Path = REPO_ROOT) -> Tag:
    """The tag for an image built from `folder` (see the module docstring)."""
    commit = _git_commit(folder)
    if commit is None:
        return Tag(f"src-{context_digest(folder)}", None, "not a git checkout: a digest of its files")
    if _git(folder, "status", "--porcelain", "--untracked-files=normal"):
        return Tag(
            f"{commit[:DIGEST_LENGTH]}-dirty-{context_digest(folder)}",
            commit,
            f"commit {commit[:DIGEST_LENGTH]} and uncommitted changes (commit them for the commit's tag)",
        )
    return Tag(commit[:DIGEST_LENGTH], commit, f"commit {commit[:DIGEST_LENGTH]}")


def _git_commit(folder: Path) -> str | None:
    """HEAD's commit, if `folder` is the top of a git checkout (not a folder inside another one)."""
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != folder.resolve():
        return None
    return _git(folder, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")


def _git(folder: Path, *args: str) -> str | None:
    if shutil.which("git") is None:
        return None
    result = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def context_digest(folder: Path) -> str:
    """A digest of every file the build gets (names, link targets, contents)."""
    digest = hashlib.sha256()
    for name in sorted(set(context_files(folder)) | {n for n in BUILD_FILES if (folder / n).exists()}):
        path = folder / name
        content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:DIGEST_LENGTH]


# --- .dockerignore, as Docker reads it (github.com/moby/patternmatcher) ---------------------------


@dataclass(frozen=True)
class _Pattern:
    text: str
    regex: re.Pattern
    exception: bool  # a `!pattern` line: lets back in what an earlier line left out


def ignore_patterns(folder: Path) -> list[_Pattern]:
    path = folder / ".dockerignore"
    patterns = []
    for raw in path.read_text().splitlines() if path.exists() else []:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
        if not line:
            continue
        line = posixpath.normpath(line)
        if len(line) > 1 and line.startswith("/"):
            line = line[1:]
        patterns.append(_Pattern(line, re.compile(_translate(line)), exception))
    return patterns


def _translate(pattern: str) -> str:
    """A .dockerignore pattern as a regular expression: `**` any number of folders, `*` and `?` within
    one name, `[...]` a character class, `\\` escapes the next character."""
    regex, index = "^", 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char == "*" and pattern[index : index + 1] == "*":
            index += 1
            if pattern[index : index + 1] == "/":
                index += 1
            regex += ".*" if index >= len(pattern) else "(.*/)?"
        elif char == "*":
            regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char == "\\" and index < len(pattern):
            regex += re.escape(pattern[index])
            index += 1
        elif char in ".+()|{}$":
            regex += "\\" + char
        else:
            regex += char
    return regex + "$"


def _excluded(path: str, patterns: list[_Pattern]) -> bool:
    """Whether .dockerignore leaves `path` out: the last line that matches it, or a folder above it,
    decides."""
    parents = path.split("/")[:-1]
    excluded = False
    for pattern in patterns:
        if pattern.exception != excluded:
            continue  # only an exception can let a left-out path back in, and the reverse
        if pattern.regex.match(path) or any(
            pattern.regex.match("/".join(parents[: depth + 1])) for depth in range(len(parents))
        ):
            excluded = not pattern.exception
    return excluded


def context_files(folder: Path) -> list[str]:
    """The files (and symlinks) of `folder` that a `docker build` of it receives, by relative path;
    Docker adds BUILD_FILES to them."""
    patterns = ignore_patterns(folder)
    exceptions = [pattern.text for pattern in patterns if pattern.exception]
    found = []
    for root, folders, files in os.walk(folder):
        relative = Path(root).relative_to(folder).as_posix()
        prefix = "" if relative == "." else f"{relative}/"
        # A left-out folder is not even walked, unless an exception names something inside it.
        folders[:] = [
            name
            for name in folders
            if not _excluded(prefix + name, patterns)
            or any(f"{text}/".startswith(f"{prefix}{name}/") for text in exceptions)
        ]
        folders.sort()
        for name in files + [name for name in os.listdir(root) if (Path(root) / name).is_symlink()]:
            if not _excluded(prefix + name, patterns):
                found.append(prefix + name)
    return sorted(set(found))


# --- make image -----------------------------------------------------------------------------------


def build(folder: Path, name: str) -> str:
    """`docker build` of `folder`, tagged name:<code tag>; returns the image reference."""
    if shutil.which("docker") is None:
        raise SystemExit(DOCKER_HINT)
    tag = code_tag(folder)
    reference = f"{name}:{tag.tag}"
    labels = {"org.opencontainers.image.version": tag.tag}
    if tag.commit:
        labels["org.opencontainers.image.revision"] = tag.commit
    print(f"Building {reference} ({tag.why}) ...", flush=True)
    command = ["docker", "build", "--tag", reference]
    command += [f"--label={key}={value}" for key, value in labels.items()]
    if subprocess.run([*command, str(folder)], check=False).returncode != 0:
        raise SystemExit(f"docker build failed (its output is above); no image was tagged {reference}")
    size = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", reference],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    size_text = f"{int(size) / 1e9:.2f} GB" if size.isdigit() else "size unknown"
    print(
        f"\nimage: {reference}\n"
        f"  {tag.why}, {size_text}\n"
        "  It holds dags/, include/ and dbt_project/ (dbt packages and manifest built): it runs with\n"
        "  no mount of the project (docs/docker.md, 'The stack is for development, the image is what\n"
        "  you deploy')."
    )
    if "/" in name:  # a registry's name already
        print(f"  Push it where your hosts pull from: docker push {reference}")
        return reference
    registry = f"registry.example.com/your-team/{name}"
    print(
        "  Push it where your hosts pull from:\n"
        f"    docker tag {reference} {registry}:{tag.tag}\n"
        f"    docker push {registry}:{tag.tag}\n"
        f"  or build it under that name at once: make image IMAGE={registry}"
    )
    return reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path.cwd(), help="the checkout to build")
    parser.add_argument("--name", help="image name without tag (default: docker-compose.yaml's)")
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    build(folder, args.name or default_name(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
