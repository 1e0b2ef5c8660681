"""The image you deploy: `make image` in the scratch copy, then the image alone, as a second host runs it.

No bind mount, no volume: one container parses both DAGs (`airflow dags list`, no import error)
while an audit hook records every process the CLI starts (no dbt), runs `process_user` with
`airflow tasks test` on an extract's page files streamed in through stdin (its users.csv compared
with the one this checkout's code writes from the same files), and `docker diff` shows that nothing
was written into dags/, include/ or dbt_project/. The build context is read back from a real build
and compared with what .dockerignore should let in. Runs after test_compose_stack.py (file order),
once its stack is down: it starts no compose stack.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import shlex
import subprocess
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.common import run_folder
from include.common.dbt_manifest import FINGERPRINT, MANIFEST
from include.user_processing import process, run_files
from include.user_processing.extract import seed_for
from include.user_processing.settings import DAG_ID
from include.user_processing.user_api import page_sizes, strip_secrets
from scripts import image as make_image
from scripts.local_env import REPO_ROOT
from template.standin_user_api import generate_page
from template.tests.docker.conftest import say
from template.tests.docker.project import PREFIX, ComposeProject
from template.tests.stack.compose import IMAGE_PROJECT_FOLDERS, IMAGE_PROJECT_ROOT, expected_build_context
from tests.checkout import tracked_files

pytestmark = pytest.mark.docker

PROJECT_ROOT = IMAGE_PROJECT_ROOT  # the image's AIRFLOW_HOME, WORKDIR and PYTHONPATH
PROJECT_FOLDERS = IMAGE_PROJECT_FOLDERS
DAG_IDS = {"user_processing", "users_report"}  # every DAG file of dags/
# The DAG files whose parse reads the dbt manifest (its tasks or its models' Assets): all refused together.
READS_MANIFEST = sorted(
    path.name
    for path in (REPO_ROOT / "dags").glob("*.py")
    if any(name in path.read_text() for name in ("dbt_task_group", "dbt_model_assets"))
)
LOGICAL_DATE = datetime(2024, 1, 1, tzinfo=UTC)
USERS = 300
RUN_FOLDER = run_folder.folder_of(Path(PROJECT_ROOT) / "run-folders", DAG_ID, LOGICAL_DATE)
# What the build puts into dbt_project/target/, and nothing else (the Dockerfile prunes the rest).
BUILT = {str(MANIFEST), str(FINGERPRINT), "target/partial_parse.msgpack"}
# The airflow CLI, with a Python audit hook that records every process it starts (subprocess.Popen):
# what proves that parsing the DAGs started no dbt. Run as `python -c WATCHED airflow-arguments...`.
WATCHED = """
import atexit, json, runpy, sys
started = []
sys.addaudithook(
    lambda event, args: started.append([str(args[0]), *map(str, args[1] or [])])
    if event == "subprocess.Popen" else None
)
atexit.register(lambda: print("processes started: " + json.dumps(started), flush=True))
sys.argv = ["airflow", *sys.argv[1:]]
runpy.run_module("airflow", run_name="__main__", alter_sys=True)
"""

# One container, as the image's own user: the page files from stdin, then each step, its output
# after a "== <step>" line.
RUN_ALONE = f"""
set -euo pipefail
run={shlex.quote(str(RUN_FOLDER))}
mkdir -p "$run" && tar -x -C "$run"
watched() {{ python -c {shlex.quote(WATCHED)} "$@"; }}
cd {PROJECT_ROOT}
echo "== manifest before"; sha256sum {" ".join(f"dbt_project/{path}" for path in sorted(BUILT))}
echo "== writable"
for folder in {" ".join(PROJECT_FOLDERS)} dbt_project/target; do
    if touch "$folder/.write-probe" 2>/dev/null; then echo "wrote $folder"; fi
done
find {" ".join(PROJECT_FOLDERS)} \\( \\! -user root -o -perm /022 \\) -printf 'not read-only: %p %u %m\\n'
echo "== files"; find {" ".join(PROJECT_FOLDERS)} -type f -o -type l
airflow db migrate >/tmp/migrate.log 2>&1 || {{ cat /tmp/migrate.log; exit 1; }}
echo "== dags list"; watched dags list --local --output json
echo "== import errors"; watched dags list-import-errors --local --output json
echo "== process_user"; airflow tasks test {DAG_ID} process_user {LOGICAL_DATE:%Y-%m-%d} 2>&1
echo "== users.csv"; cat "$run/users.csv"
echo "== manifest after"; sha256sum {" ".join(f"dbt_project/{path}" for path in sorted(BUILT))}
"""

# The same image with its dbt project changed after the build (as root): as the image's user the parse
# must refuse the stale manifest with a clear error and start no dbt (the CLI then exits 1: it found an
# import error); as root, who can write target/, the watch sees the dbt parse it then starts (so it
# would have seen one above).
AS_IMAGE_USER = "setpriv --reuid=50000 --regid=0 --clear-groups"
CHANGED_AFTER_BUILD = f"""
set -euo pipefail
watched() {{ python -c {shlex.quote(WATCHED)} "$@"; }}
cd {PROJECT_ROOT}
{AS_IMAGE_USER} airflow db migrate >/tmp/migrate.log 2>&1 || {{ cat /tmp/migrate.log; exit 1; }}
echo "-- changed after the build" >> dbt_project/models/staging/users/stg_users.sql
echo "== import errors"
{AS_IMAGE_USER} python -c {shlex.quote(WATCHED)} dags list-import-errors --local --output json || true
echo "== as root"; watched dags list --local --output json
"""


def test_make_image_tags_the_image_with_the_code_it_holds(project: ComposeProject, image: str):
    # The scratch copy is no git checkout: a digest of the files the build got.
    expected = make_image.code_tag(project.folder)
    assert expected.commit is None
    assert image == f"{make_image.default_name(project.folder)}:{expected.tag}"
    assert re.fullmatch(r"src-[0-9a-f]{12}", expected.tag), expected
    labels = json.loads(
        project.engine.docker("image", "inspect", "--format", "{{json .Config.Labels}}", image).stdout
    )
    assert labels.get("org.opencontainers.image.version") == expected.tag, labels
    # The containers run as the image's user, not as root (the Dockerfile builds the project as root).
    user = project.engine.docker("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    assert user == "50000"


def test_the_build_context_holds_the_lock_files_and_the_project_and_nothing_else(project: ComposeProject):
    """What a real `docker build` of the scratch copy receives (read back from a FROM scratch build),
    after the compose run wrote .env, airflow.env, logs/ and dbt's target/ into it: exactly the lock
    files and the files git has in dags/, include/ and dbt_project/, as scripts/image.py computes."""
    received = build_context(project)
    expected = {name for name in expected_build_context(tracked_files()) if (project.folder / name).exists()}
    assert (project.folder / ".env").exists()  # with its secrets, beside the context's files
    assert (project.folder / "airflow.env").exists()
    assert received == expected, (
        f"left out: {sorted(expected - received)}; let in: {sorted(received - expected)}"
    )
    assert set(make_image.context_files(project.folder)) == received


def build_context(project: ComposeProject) -> set[str]:
    """The files a `docker build` of the project folder gets, as COPY sees them."""
    probe = f"{PREFIX}context-probe-{secrets.token_hex(3)}"
    built = subprocess.run(
        ["docker", "build", "--quiet", "--tag", probe, "--file", "-", str(project.folder)],
        input="FROM scratch\nCOPY . /context/\n",
        env=project.engine.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    try:
        container = project.engine.docker("create", probe, "none").stdout.strip()
        try:
            exported = subprocess.run(
                ["docker", "export", container], env=project.engine.env, capture_output=True, check=True
            ).stdout
        finally:
            project.engine.docker("rm", container, check=False)
    finally:
        project.engine.docker("image", "rm", probe, check=False)
    with tarfile.open(fileobj=io.BytesIO(exported)) as archive:
        return {
            member.name.removeprefix("context/")
            for member in archive.getmembers()
            if member.name.startswith("context/") and not member.isdir()
        }


def test_the_image_alone_parses_both_dags_without_dbt_runs_a_task_and_writes_nothing_into_the_project(
    project: ComposeProject, image: str
):
    pages, expected_csv = extract_files()
    container = f"{PREFIX}image-alone-{secrets.token_hex(3)}"
    started = time.monotonic()
    run = subprocess.run(
        ["docker", "run", "--interactive", "--name", container, image, "bash", "-c", RUN_ALONE],
        input=pages,
        env=project.engine.env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    took = time.monotonic() - started
    try:
        output = run.stdout.decode(errors="replace")
        assert run.returncode == 0, f"{output[-4000:]}{run.stderr.decode(errors='replace')[-3000:]}"
        inspected = json.loads(project.engine.docker("inspect", container).stdout)[0]
        changes = project.engine.docker("diff", container).stdout.splitlines()
    finally:
        project.engine.docker("rm", "--force", container, check=False)
    steps = sections(output)
    # Alone: no bind mount, no volume, nothing of the checkout.
    assert inspected["Mounts"] == [], inspected["Mounts"]
    assert inspected["HostConfig"]["Binds"] in (None, []), inspected["HostConfig"]["Binds"]

    # The project, read-only to the image's user; exactly the context's files, the manifest and bytecode.
    assert steps["writable"] == [], steps["writable"]
    files = set(steps["files"])
    context = {name for name in make_image.context_files(project.folder) if name.startswith(PROJECT_FOLDERS)}
    built = {f"dbt_project/{path}" for path in BUILT}
    compiled = {
        str(Path(name).parent / "__pycache__" / f"{Path(name).stem}.cpython-311.pyc")
        for name in context
        if name.endswith(".py")
    }
    expected = context | built | compiled
    assert files == expected, f"missing: {sorted(expected - files)}; extra: {sorted(files - expected)}"

    # Both DAGs parsed, no import error, and no process of dbt started by either parse.
    dags, started_by_list = cli_output(steps["dags list"])
    assert {dag["dag_id"] for dag in dags} == DAG_IDS
    import_errors, started_by_errors = cli_output(steps["import errors"])
    assert import_errors == []
    dbt = [argv for argv in started_by_list + started_by_errors if "dbt" in " ".join(argv)]
    assert not dbt, f"parsing the DAGs started dbt: {dbt}"
    assert steps["manifest after"] == steps["manifest before"]
    assert len(steps["manifest before"]) == len(BUILT)

    # process_user, alone: its users.csv is the one this checkout's code writes from the same pages.
    states = re.findall(r"new_state=(\w+)", "\n".join(steps["process_user"]))
    assert states[-1:] == ["success"], "\n".join(steps["process_user"][-40:])
    assert "\n".join(steps["users.csv"]) + "\n" == expected_csv

    # Nothing written into dags/, include/ or dbt_project/; what was written is where Airflow writes.
    written = [line.split(" ", 1)[1] for line in changes]
    into_project = [
        path for path in written if path.startswith(tuple(f"{PROJECT_ROOT}/{f}" for f in PROJECT_FOLDERS))
    ]
    assert not into_project, f"written into the project: {into_project}"
    assert f"{RUN_FOLDER}/users.csv" in written, written
    assert f"{PROJECT_ROOT}/airflow.db" in written, written
    say(
        f"the image alone: both DAGs parsed, no dbt started, process_user success ({USERS} users), "
        f"{len(written)} paths written, none in the project, in {took:.0f} s"
    )


def test_a_dbt_project_changed_after_the_build_is_refused_clearly_never_parsed(
    project: ComposeProject, image: str
):
    started = time.monotonic()
    run = subprocess.run(
        ["docker", "run", "--rm", "--user", "0", image, "bash", "-c", CHANGED_AFTER_BUILD],
        env=project.engine.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, f"{run.stdout[-4000:]}{run.stderr[-3000:]}"
    steps = sections(run.stdout)
    import_errors, started_as_user = cli_output(steps["import errors"])
    assert sorted(Path(error["filepath"]).name for error in import_errors) == READS_MANIFEST, import_errors
    for error in import_errors:
        assert "is read-only here, so it cannot be rebuilt" in error["error"], error
    assert not [argv for argv in started_as_user if "dbt" in " ".join(argv)], started_as_user
    # The control: where target/ is writable, the watch sees the dbt parse the changed project needs.
    _, started_as_root = cli_output(steps["as root"])
    parses = [argv for argv in started_as_root if "dbt" in argv[0] and "parse" in argv]
    assert parses, f"no dbt parse seen as root: {started_as_root}\n{run.stdout[-3000:]}"
    say(
        f"a dbt project changed after the build: refused, no dbt started ({time.monotonic() - started:.0f} s)"
    )


# --- helpers ------------------------------------------------------------------------------------------


def extract_files() -> tuple[bytes, str]:
    """A tar stream of what extract_user writes for LOGICAL_DATE (raw/ pages, secrets stripped, and its
    manifest), from the stand-in API's pages; and the users.csv this checkout's process_user writes
    from them."""
    seed = seed_for(DAG_ID, LOGICAL_DATE)
    sizes = page_sizes(USERS)
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder)
        for page, size in enumerate(sizes, start=1):
            users = [strip_secrets(user) for user in generate_page(seed, page, size)["results"]]
            path = run_files.page_path(run, page)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(json.dumps(users, ensure_ascii=False).encode())
        manifest = {"seed": seed, "users": USERS, "pages": len(sizes)}
        run_files.manifest_path(run).write_text(json.dumps(manifest))
        stream = io.BytesIO()
        with tarfile.open(fileobj=stream, mode="w") as archive:
            archive.add(run_files.raw_folder(run), arcname="raw")
        rows = process.write_run_csv(run)
        assert rows == USERS
        return stream.getvalue(), run_files.users_csv_path(run).read_text()


def sections(output: str) -> dict[str, list[str]]:
    """The container's output split at its `== <step>` lines: step -> its lines."""
    found: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("== "):
            current = line[3:].strip()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return found


def cli_output(lines: list[str]) -> tuple[list, list[list[str]]]:
    """A watched CLI's JSON answer (its one line that is a JSON list) and the processes it started."""
    answers = [json.loads(line) for line in lines if line.startswith("[")]
    started = [
        line.removeprefix("processes started: ") for line in lines if line.startswith("processes started: ")
    ]
    assert len(answers) == 1, "\n".join(lines[-40:])
    assert len(started) == 1, "\n".join(lines[-40:])
    return answers[0], json.loads(started[0])
