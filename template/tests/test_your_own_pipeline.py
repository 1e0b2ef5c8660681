"""docs/your-own-pipeline.md followed to the letter, on a copy of the repository.

The page's blocks are the steps, taken from the page itself: each "New file" block is written as the
file it names, each "Add to" block appended to its file, each line of a `bash` block run in the
copy, in the page's order. Two kinds of lines are not run as written, and the test names them: the page's
`.venv/bin/pytest tests/integration/test_stations.py` would start a PostgreSQL and an Airflow of
its own, so the integration test the page wrote is run in this session instead (its tests called
with this session's `airflow`, pointed at the copy, and `warehouse`); and `make shell`'s lines are
for a person at a terminal.

That integration test serves the page's weather stations (JSON of another shape than the users
API's) from a real HTTP server of its own on 127.0.0.1 and runs the new DAG with `airflow dags
test`. Then, here: every task succeeded on its first try, the table holds exactly what the server
served, the dbt models were built and every dbt test on them passed (run_results.json of the dbt
task, and the run's Asset events), and `make test-fast` passed on the copy. Last, the page's
"Removing the example": its lines run on the copy as written, the copy's `make test` and `make demo`
among them, with the stations API's connection in the shell at a server of this test's.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from include.common import dbt_selection
from include.common.assets import dbt_node_asset, warehouse_relation
from scripts.local_env import LOCAL_RUN_OWNS, REPO_ROOT, TEMPLATE_SETTINGS, without_airflow_settings
from scripts.make_env import read_user_settings
from tests.checkout import copy_checkout
from tests.conftest import AirflowCli, serving_json

pytestmark = pytest.mark.e2e

PAGE = REPO_ROOT / "docs" / "your-own-pipeline.md"
LAST_STEP = "\n## 6. Removing the example\n"
# An optional "New file `path`:" or "Add to `path`:" line, then a fenced block.
BLOCK = re.compile(r"^(?:(New file|Add to) `([^`]+)`:\n)?```(\w*)\n(.*?)^```", re.M | re.S)
INTEGRATION_TEST = "tests/integration/test_stations.py"
RUN_IN_THIS_SESSION = f".venv/bin/pytest {INTEGRATION_TEST}"
BY_HAND = {
    "make shell",
    "airflow dags test stations 2024-01-01",
    "psql \"$WAREHOUSE_URI\" -c 'SELECT * FROM analytics.stations_by_country'",
}
DAG_ID = "stations"
DATE = "2024-01-01"  # the page's integration test's
CONNECTION = "AIRFLOW_CONN_STATIONS_API"


def steps(last: bool = False) -> list[tuple[str, str, str]]:
    """(kind, path or "", body) of each step of the page, in order: "New file", "Add to", "bash";
    those before LAST_STEP, or with last=True, those after it."""
    text = PAGE.read_text()
    assert LAST_STEP in text, f"{PAGE.name} has no heading {LAST_STEP.strip()!r}"
    before, after = text.split(LAST_STEP)
    found = []
    for kind, path, language, body in BLOCK.findall(after if last else before):
        if kind:
            found.append((kind, path, body))
        elif language == "bash":
            found.append(("bash", "", body))
    return found


def follow(copy: Path, env: dict[str, str], last: bool = False) -> tuple[set[str], dict[str, str]]:
    """Do the steps of the page (steps(last)) in `copy`: the command lines it did not run, and the
    output of each it ran."""
    not_run, outputs = set(), {}
    for kind, path, body in steps(last):
        if kind == "New file":
            assert not (copy / path).exists(), f"the page creates {path}, which exists already"
            (copy / path).parent.mkdir(parents=True, exist_ok=True)
            (copy / path).write_text(body)
        elif kind == "Add to":
            assert (copy / path).exists(), f"the page adds to {path}, which does not exist at that step"
            with (copy / path).open("a") as file:
                file.write(body)
        else:
            for line in filter(None, map(str.strip, body.splitlines())):
                if line == RUN_IN_THIS_SESSION or line in BY_HAND:
                    not_run.add(line)
                    continue
                done = subprocess.run(
                    ["bash", "-c", line], cwd=copy, env=env, capture_output=True, text=True, check=False
                )
                assert done.returncode == 0, f"{line}\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
                outputs[line] = done.stdout + done.stderr
    return not_run, outputs


def page_tests(path: Path) -> tuple[object, list]:
    """The module at `path` and its test functions."""
    spec = importlib.util.spec_from_file_location("your_own_pipeline_page_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [value for name, value in vars(module).items() if name.startswith("test_") and callable(value)]
    assert tests, f"{path} has no test"
    return module, tests


@pytest.fixture
def warehouse_without_stations(warehouse):
    warehouse.execute("DROP TABLE IF EXISTS stations")
    yield warehouse
    warehouse.execute("DROP SCHEMA IF EXISTS analytics CASCADE")
    warehouse.execute("DROP TABLE IF EXISTS stations")


def test_the_page_followed_to_the_letter_gives_a_green_pipeline(
    airflow, warehouse_without_stations, tmp_path
):
    warehouse = warehouse_without_stations
    copy = copy_checkout(tmp_path / "copy", link_installed=True)
    # What a terminal of yours would hold, not this session's Airflow home or import path.
    shell = {
        key: value
        for key, value in without_airflow_settings(dict(os.environ)).items()
        if key != "PYTHONPATH" and not key.startswith("PYTEST_")
    }
    assert follow(copy, shell)[0] == {RUN_IN_THIS_SESSION, *BY_HAND}

    # The connection line the page added is one a local run and the Docker stack take.
    settings = read_user_settings(copy / "airflow.env", reserved=TEMPLATE_SETTINGS | LOCAL_RUN_OWNS)
    assert json.loads(settings[CONNECTION])["conn_type"] == "http"

    # The page's integration test, with this session's Airflow pointed at the copy, as the copy's
    # own conftest would point its Airflow at its checkout.
    at_the_copy = {"AIRFLOW__CORE__DAGS_FOLDER": str(copy / "dags"), "PYTHONPATH": str(copy)}
    copy_airflow = AirflowCli({**airflow.env, **settings, **at_the_copy}, airflow.metadata_uri)
    module, tests = page_tests(copy / INTEGRATION_TEST)
    fixtures = {"airflow": copy_airflow, "warehouse": warehouse}
    for test in tests:
        wanted = set(inspect.signature(test).parameters)
        assert wanted <= set(fixtures), f"{test.__name__} takes {wanted - set(fixtures)}: give it here"
        test(**{name: fixtures[name] for name in wanted})

    dbt_task = "transform_stations.dbt_build"
    assert airflow.task_tries(DATE, dag_id=DAG_ID) == {"create_table": 1, "load_stations": 1, dbt_task: 1}

    served = module.ANSWER["stations"]
    assert len(served) >= 2
    loaded = warehouse.execute(
        "SELECT station_id, name, country, latitude, longitude, elevation_m, active FROM stations"
    ).fetchall()
    assert sorted(loaded) == sorted(
        (
            station["id"],
            station["name"],
            station["country"],
            station["position"]["lat"],
            station["position"]["lon"],
            station["position"].get("elevation_m"),
            station["active"],
        )
        for station in served
    )
    staged = warehouse.execute("SELECT station_id, station_name FROM analytics.stg_stations").fetchall()
    assert sorted(staged) == sorted((station["id"], station["name"].strip()) for station in served)

    # dbt built the DAG's models and ran every test on them, all passing, and nothing else.
    manifest = copy / "dbt_project" / "target" / "manifest.json"
    selected = dbt_selection.select("source:weather.stations+", manifest, copy / "dbt_project")
    models = dbt_selection.built(selected)
    assert {node["name"] for node in models} == {"stg_stations", "stations_by_country"}
    tests_on_them = {key for key, node in selected.items() if node["resource_type"] == "test"}
    assert len(tests_on_them) >= 4
    run = airflow.home / "run-folders" / DAG_ID / "logical_date=20240101T000000"
    results = json.loads((run / "dbt" / dbt_task / "run_results.json").read_text())["results"]
    statuses = {result["unique_id"]: result["status"] for result in results}
    assert statuses == {
        **{node["unique_id"]: "success" for node in models},
        **dict.fromkeys(tests_on_them, "pass"),
    }
    assert airflow.asset_events(DATE, dag_id=DAG_ID) == {
        warehouse_relation("public", "stations").uri,
        *(dbt_node_asset(node).uri for node in models),
    }

    # Removing the example: the copy's make test and make demo pass without it, on the stations DAG.
    with serving_json(module.ANSWER) as url:
        not_run, outputs = follow(copy, {**shell, CONNECTION: url}, last=True)
    assert not not_run
    assert not (copy / "template").exists()
    assert not (copy / "tests" / "example").exists()
    assert {"make test", "make demo"} <= set(outputs)
    assert re.search(r" \d+ passed", outputs["make test"])
    assert "tests/integration/test_stations.py" in outputs["make test"]  # among its slowest, listed
    demo = outputs["make demo"]
    assert f"airflow dags test {DAG_ID} " in demo
    assert "user_processing" not in demo
    assert re.search(r"public\.stations\s*\|\s*" + str(len(served)) + r"\b", demo), demo[-3000:]
