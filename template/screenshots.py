"""`make screenshots`: the pictures in the README, taken from a real run in a real browser.

Starts `make ui` (scripts/ui.py) on its throwaway services, triggers user_processing, and once the
run is green saves to docs/img/: the graph with the dbt task group expanded, the grid, a task's
log, the Assets (one per dbt model, with the run's event), and dbt's own docs (`dbt docs
generate`, `dbt docs serve` on 127.0.0.1) with the lineage graph. Only stand-in users appear in
them. Not part of `make test`, so the tree stays clean.

    python -m template.screenshots
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError

from include.common.dbt_manifest import project_config
from scripts.airflow_api import AirflowApi
from scripts.local_env import DBT_BIN, LOCAL_DIR, REPO_ROOT, dbt_env, free_port
from template.browser import browser_page, expand_all_task_groups, logged_in_page

IMAGES = REPO_ROOT / "docs" / "img"
RUN_ID = "screenshots"
BANNER = re.compile(r"user admin, password (\S+) .*?psql \"([^\"]+)\"", re.S)


def main() -> int | str:
    IMAGES.mkdir(parents=True, exist_ok=True)
    port = free_port()
    LOCAL_DIR.mkdir(exist_ok=True)
    log = LOCAL_DIR / "screenshots-ui.log"  # a file, not a pipe: a full pipe would stall the services
    with log.open("w") as output:
        ui = subprocess.Popen(
            [sys.executable, "-m", "scripts.ui", "--port", str(port), "--unpause"],
            cwd=REPO_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        password, warehouse_uri = _wait_for_banner(ui, log)
        url = f"http://127.0.0.1:{port}"
        api = AirflowApi(url).login("admin", password)
        api.wait_for_dag("user_processing", timeout=180)
        api.request(
            "POST", "/api/v2/dags/user_processing/dagRuns", {"dag_run_id": RUN_ID, "logical_date": None}
        )
        if api.wait_for_run("user_processing", RUN_ID, timeout=600) != "success":
            return f"the run failed: see {log} and the task logs it names"
        with logged_in_page(url, "admin", password) as page:
            run_page = f"{url}/dags/user_processing/runs/{RUN_ID}"
            page.goto(run_page)
            page.get_by_role("button", name="Show Grid (Press g)").click()
            expand_all_task_groups(page)
            page.get_by_test_id(f"grid-{RUN_ID}-transform_users.dbt_build").wait_for()
            _save(page, "grid.png", clip={"x": 0, "y": 0, "width": 1400, "height": 600})

            page.get_by_role("button", name="Show Graph (Press g)").click()
            page.locator(".react-flow__node").first.wait_for()
            page.get_by_role("button", name="Collapse Details Panel").click()  # the graph gets the width
            expand_all_task_groups(page)
            time.sleep(1)
            page.get_by_role("button", name="fit view").click()
            time.sleep(1.5)  # the view animates into place
            _save(page, "graph.png", clip=_around(page.locator(".react-flow__node")))

            page.goto(f"{run_page}/tasks/extract_user")
            page.get_by_role("button", name="Show Grid (Press g)").click()
            page.get_by_text("Returned value was").first.wait_for()
            _save(page, "task-log.png", clip={"x": 0, "y": 0, "width": 1400, "height": 600})

            page.goto(f"{url}/assets")
            page.get_by_role("link", name="analytics.dim_users", exact=True).wait_for()
            _save(page, "assets.png", clip={"x": 0, "y": 0, "width": 1400, "height": 600})
        _dbt_lineage(warehouse_uri)
    finally:
        os.killpg(ui.pid, signal.SIGINT)
        ui.wait(timeout=180)
    print(f"==> wrote {', '.join(sorted(p.name for p in IMAGES.glob('*.png')))} to {IMAGES}")
    return 0


def _wait_for_banner(ui: subprocess.Popen, log: Path) -> tuple[str, str]:
    while ui.poll() is None:
        if match := BANNER.search(log.read_text()):
            return match.group(1), match.group(2)
        time.sleep(1)
    raise SystemExit(f"make ui ended before it served:\n{log.read_text()[-4000:]}")


def _save(page, name: str, clip: dict | None = None) -> None:
    page.screenshot(path=IMAGES / name, clip=clip)
    print(f"    {name}", flush=True)


def _around(elements, margin: int = 24) -> dict:
    """The box around every element of a locator, plus a margin: the picture cropped to them."""
    boxes = [elements.nth(i).bounding_box() for i in range(elements.count())]
    left = min(box["x"] for box in boxes) - margin
    top = min(box["y"] for box in boxes) - margin
    right = max(box["x"] + box["width"] for box in boxes) + margin
    bottom = max(box["y"] + box["height"] for box in boxes) + margin
    return {
        "x": max(left, 0),
        "y": max(top, 0),
        "width": right - max(left, 0),
        "height": bottom - max(top, 0),
    }


def _dbt_lineage(warehouse_uri: str) -> None:
    """dbt docs of the loaded warehouse, served on 127.0.0.1, with the lineage graph open."""
    env = {**os.environ, **dbt_env(warehouse_uri)}
    port = free_port()
    with tempfile.TemporaryDirectory() as target:  # dbt_project/target keeps Cosmos' manifest
        dbt = [str(DBT_BIN / "dbt"), "--quiet"]
        subprocess.run(
            [*dbt, "docs", "generate", "--target-path", target],
            cwd=REPO_ROOT / "dbt_project",
            env=env,
            check=True,
        )
        serve = subprocess.Popen(
            [
                *dbt,
                "docs",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-browser",
                "--target-path",
                target,
            ],
            cwd=REPO_ROOT / "dbt_project",
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            with browser_page() as page:
                page.set_viewport_size({"width": 1400, "height": 800})
                for _ in range(30):  # until dbt docs serve answers
                    try:
                        project = project_config(REPO_ROOT / "dbt_project")["name"]
                        page.goto(f"http://127.0.0.1:{port}/#!/model/model.{project}.dim_users")
                        break
                    except PlaywrightError:
                        time.sleep(1)
                page.get_by_text("dim_users").first.wait_for()
                page.locator(".launcher-btn a").click()  # "View Lineage Graph"
                page.locator("#graph-viz-wrapper canvas, #cy canvas").first.wait_for()
                page.locator(".launcher-actions a:visible").first.click()  # the graph, full size
                page.mouse.move(0, 0)  # no tooltip over it
                time.sleep(2)  # the graph lays itself out
                _save(page, "dbt-lineage.png")
        finally:
            serve.terminate()
            serve.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
