"""One `dbt build --select <a DAG's selection>` as one Airflow task; a retry of it is `dbt retry`.

Why one task and not one per model: each dbt process costs seconds of start-up and parsing, so a
task per model spends most of a run starting dbt (docs/dbt.md has the numbers, under a real
scheduler). One `dbt build` is as fast as dbt itself, and keeps what the per-model tasks gave:

- **Each model's outcome**: every model, seed and snapshot the selection builds is an Asset in the
  task's outlets (include/common/dbt_tasks.py resolves them from the manifest), so each one's updates
  show in the UI's Assets view; the task's log and its XCom `dbt_results` (every node with its
  status, failed tries included) show the rest.
- **Tests gate what follows them**: dbt builds nothing downstream of a failed test. The task then
  fails with an error that names each failed node (for a test, the model it tests) and what dbt did
  not build because of it.
- **A retry re-runs only what failed**: each try keeps dbt's run_results.json in the run folder
  (include/common/run_folder.py), and a retry of the task (Airflow's own, or a clear in the UI) runs
  `dbt retry` against it: the failed nodes and those skipped because of them, nothing else.

dbt runs from its own virtualenv as a subprocess, with the profile Cosmos builds from the Airflow
connection (its ProfileConfig), against the project folder itself: it writes only into a temporary
target folder (seeded with the last run's partial-parse file, so dbt parses only what changed),
never into the project, which may be mounted read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from cosmos.config import ProfileConfig

FAILED = ("error", "fail", "runtime error")
RUN_RESULTS = "run_results.json"
PARTIAL_PARSE = "partial_parse.msgpack"


class DbtBuildFailed(Exception):
    """dbt built part of the project: the message names what failed and what was not built."""


class DbtBuildOperator(BaseOperator):
    """`dbt build --select <select>` of the project in `project_dir`; on a later try of the same run,
    `dbt retry`. Its outlets are the Assets of what `select` builds (include/common/dbt_tasks.py)."""

    ui_color = "#ff694b"  # dbt's orange

    def __init__(
        self,
        *,
        select: str,
        project_dir: Path,
        manifest: Path,
        profile_config: ProfileConfig,
        dbt: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.select = select
        self.project_dir = Path(project_dir)
        self.profile_config = profile_config
        self.dbt = Path(dbt)
        self.manifest = Path(manifest)

    def execute(self, context: Any) -> None:
        from include.common import run_folder  # the run's folder, shared by every worker

        kept = run_folder.folder_for(context) / "dbt" / self.task_id / RUN_RESULTS  # this task's, this run's
        retry = context["ti"].try_number > 1 and kept.exists()
        with (
            tempfile.TemporaryDirectory(prefix="dbt-target-") as temporary,
            self.profile_config.ensure_profile() as (profile, profile_env),
        ):
            target = Path(temporary)
            cache = self._partial_parse_cache()
            if cache.exists():
                shutil.copyfile(cache, target / PARTIAL_PARSE)
            if retry:
                self.log.info("Try %d: `dbt retry` of what failed in %s", context["ti"].try_number, kept)
                (target / RUN_RESULTS).write_bytes(kept.read_bytes())
            command = ["retry"] if retry else ["build", "--select", *self.select.split()]
            returncode = self._dbt(command, target, profile.parent, profile_env)
            results = self._results(target / RUN_RESULTS, kept)
            if (target / PARTIAL_PARSE).exists():  # for the next run on this machine
                cache.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(target / PARTIAL_PARSE, cache.with_suffix(".partial"))
                os.replace(cache.with_suffix(".partial"), cache)
        statuses = {result["unique_id"]: result["status"] for result in results}
        context["ti"].xcom_push(key="dbt_results", value=statuses)
        if returncode != 0:
            raise DbtBuildFailed(failure_summary(results, json.loads(self.manifest.read_text())))

    def _partial_parse_cache(self) -> Path:
        """dbt's partial-parse file of the last run of this project on this machine: with it dbt parses
        only what changed. (The manifest step's own is for its profile target, which dbt would not reuse.)"""
        key = hashlib.sha256(str(self.project_dir.resolve()).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / "dbt-build-cache" / key / PARTIAL_PARSE

    def _dbt(self, command: list[str], target: Path, profiles_dir: Path, profile_env: dict[str, str]) -> int:
        """Run dbt, its output line by line into the task's log; returns its exit code."""
        argv = [str(self.dbt), "--no-use-colors", *command, "--project-dir", str(self.project_dir)]
        argv += ["--profiles-dir", str(profiles_dir), "--target-path", str(target), "--log-path", str(target)]
        env = {**os.environ, **profile_env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "0"}
        self.log.info("Running %s", " ".join(argv))
        with subprocess.Popen(
            argv, cwd=self.project_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            for line in process.stdout:
                self.log.info("%s", line.rstrip())
        return process.returncode

    def _results(self, produced: Path, kept: Any) -> list[dict]:
        """dbt's results of this try, kept in the run folder for a retry."""
        from include.common import run_folder

        if not produced.exists():  # dbt failed before it ran anything (a broken project, no database)
            return []
        with run_folder.open_for_atomic_write(kept) as file:  # a retry never reads half of it
            file.write(produced.read_bytes())
        return json.loads(produced.read_text())["results"]


def failure_summary(results: list[dict], manifest: dict) -> str:
    """What failed (a test with the model it tests) and what dbt did not build because of it."""
    failed = [result for result in results if result["status"] in FAILED]
    if not failed:
        return "dbt failed before it built anything: its own error is in the log above"
    lines = [f"dbt build: {len(failed)} node(s) failed"]
    for result in failed:
        node = manifest["nodes"].get(result["unique_id"], {})
        tested = [parent.split(".")[-1] for parent in node.get("depends_on", {}).get("nodes", [])]
        on = f" (on {', '.join(tested)})" if node.get("resource_type") == "test" and tested else ""
        message = " ".join((result.get("message") or "").split())[:300]
        lines.append(f"- {result['unique_id']}{on}: {result['status']}: {message}")
    skipped = [result["unique_id"] for result in results if result["status"] == "skipped"]
    if skipped:
        lines.append(f"not built because of them ({len(skipped)}): {', '.join(skipped)}")
    lines.append("A retry of this task runs `dbt retry`: only these run again.")
    return "\n".join(lines)
