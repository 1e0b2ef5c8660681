"""`make image` without Docker: the tag it gives the code, and .dockerignore read as Docker reads it.

template/tests/docker/test_image.py builds and runs the image on a real engine, and compares the build context
with the one computed here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import image as make_image
from scripts.local_env import REPO_ROOT

GIT = (
    "git",
    "-c",
    "user.name=Template Test",
    "-c",
    "user.email=test@example.com",
    "-c",
    "init.defaultBranch=main",
)


def a_project(folder: Path) -> Path:
    """The files make image reads, a DAG and a dbt model, and a .gitignore that ignores .env."""
    for name in (".dockerignore", "Dockerfile", "docker-compose.yaml", "requirements/airflow.txt"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, folder / name)
    write(folder, "dags/my_dag.py", "print('v1')\n")
    write(folder, "dbt_project/models/my_model.sql", "select 1\n")
    write(folder, "README.md", "# mine\n")
    write(folder, ".gitignore", ".env\nlogs/\n")
    return folder


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, *args], cwd=folder, capture_output=True, text=True, check=True
    ).stdout.strip()


def committed(folder: Path) -> str:
    git(folder, "init", "--quiet")
    git(folder, "add", "--all")
    git(folder, "commit", "--quiet", "--message", "the template")
    return git(folder, "rev-parse", "HEAD")


def test_a_clean_checkout_is_tagged_with_its_commit(tmp_path):
    commit = committed(a_project(tmp_path))
    tag = make_image.code_tag(tmp_path)
    assert (tag.tag, tag.commit) == (commit[:12], commit)
    # What git ignores (.env, logs/) is no uncommitted change.
    write(tmp_path, ".env", "SECRET=1\n")
    write(tmp_path, "logs/run.log", "x\n")
    assert make_image.code_tag(tmp_path).tag == commit[:12]


def test_uncommitted_changes_never_get_the_clean_commits_tag(tmp_path):
    commit = committed(a_project(tmp_path))
    write(tmp_path, "dags/my_dag.py", "print('v2')\n")
    first = make_image.code_tag(tmp_path).tag
    assert first.startswith(f"{commit[:12]}-dirty-")
    assert first != commit[:12]
    assert make_image.code_tag(tmp_path).tag == first  # the same changes, the same tag
    write(tmp_path, "dags/my_dag.py", "print('v3')\n")
    assert make_image.code_tag(tmp_path).tag not in (first, commit[:12])  # other changes, another tag
    write(tmp_path, "dags/my_dag.py", "print('v1')\n")
    assert make_image.code_tag(tmp_path).tag == commit[:12]  # back to the commit
    write(tmp_path, "dags/new_dag.py", "print('new')\n")  # a new file git does not ignore
    assert make_image.code_tag(tmp_path).tag.startswith(f"{commit[:12]}-dirty-")
    (tmp_path / "dags" / "new_dag.py").unlink()
    write(tmp_path, "README.md", "# mine, edited\n")  # outside the image, but uncommitted all the same
    assert make_image.code_tag(tmp_path).tag.startswith(f"{commit[:12]}-dirty-")


def test_a_folder_that_is_no_git_checkout_is_tagged_with_a_digest_of_what_the_image_gets(tmp_path):
    outer = tmp_path / "outer"
    write(outer, "README.md", "# another project\n")
    committed(outer)  # an unrelated repository around it: its commit must not name this code
    project = a_project(outer / "unpacked")
    tag = make_image.code_tag(project)
    assert tag.commit is None
    assert tag.tag == f"src-{make_image.context_digest(project)}"
    assert len(tag.tag) == len("src-") + 12
    for name in ("logs/run.log", ".env", "dbt_project/target/manifest.json", "README.md"):
        write(project, name, "not in the image\n")
        assert make_image.code_tag(project).tag == tag.tag, name
    write(project, "dbt_project/models/my_model.sql", "select 2\n")
    assert make_image.code_tag(project).tag != tag.tag


def test_make_image_without_docker_says_how_to_get_it(tmp_path):
    a_project(tmp_path)
    python_only = tmp_path / "bin"
    python_only.mkdir()
    (python_only / "python").symlink_to(sys.executable)
    result = subprocess.run(
        [str(python_only / "python"), "-m", "scripts.image", "--folder", str(tmp_path)],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": str(python_only)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "make image needs Docker" in result.stderr
    assert "docs.docker.com/engine/install" in result.stderr


# .dockerignore's rules, with the examples of Docker's own documentation
# (https://docs.docker.com/build/concepts/context/#dockerignore-files).
@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["*/temp*"], "somedir/temporary.txt", True),
        (["*/temp*"], "somedir/temp", True),
        (["*/temp*"], "temporary.txt", False),
        (["*/temp*"], "a/b/temporary.txt", False),
        (["*/*/temp*"], "somedir/subdir/temporary.txt", True),
        (["temp?"], "tempa", True),
        (["temp?"], "tempab", False),
        (["**/*.go"], "a/b/c.go", True),
        (["**/*.go"], "c.go", True),
        (["*.md", "!README*.md", "README-secret.md"], "README.md", False),
        (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
        (["*.md", "!README*.md", "README-secret.md"], "docs.md", True),
        (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),
        # A folder's pattern leaves out everything inside it; an exception lets a file back in.
        (["*", "!dags/"], "dags/my_dag.py", False),
        (["*", "!dags/"], "tests/test_x.py", True),
        (["*", "!requirements/airflow.txt"], "requirements/dev.txt", True),
        (["dbt_project/target"], "dbt_project/target/parse/manifest.json", True),
        (["/logs"], "logs/x.log", True),
        (["a.b"], "axb", False),  # a dot is a dot
    ],
)
def test_dockerignore_patterns_match_as_docker_matches_them(tmp_path, patterns, path, excluded):
    (tmp_path / ".dockerignore").write_text("# a comment\n\n" + "\n".join(patterns) + "\n")
    write(tmp_path, path, "x\n")
    assert (path not in make_image.context_files(tmp_path)) == excluded
