"""The small parts scripts/compose_stack.py is built from: compose interpolation and the local mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.compose_stack import (
    InterpolationError,
    default_services,
    dependencies,
    dockerfile_env,
    interpolate,
    interpolate_all,
    map_hosts,
    map_paths,
    parse_volume,
    read_env_file,
    service_environment,
    start_order,
    variables_referenced,
)
from scripts.make_env import render

VARIABLES = {"SET": "value", "EMPTY": "", "PORT": "5433"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${SET}", "value"),
        ("$SET/x", "value/x"),
        ("${UNSET}", ""),
        ("${UNSET:-default}", "default"),
        ("${EMPTY:-default}", "default"),  # `:-` also replaces an empty value
        ("${EMPTY-default}", ""),  # `-` only an unset one
        ("${UNSET-default}", "default"),
        ("${SET:-default}", "value"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${UNSET:-${SET}}", "value"),  # nested
        ("127.0.0.1:${PORT:-5433}:5432", "127.0.0.1:5433:5432"),
        ("$${HOSTNAME}", "${HOSTNAME}"),  # $$ escapes: the shell in the container expands it
        ("$$(id -u)", "$(id -u)"),
        ("costs $5", "costs $5"),
        ("a:${SET:?required}@b", "a:value@b"),
    ],
)
def test_interpolate_follows_compose(text, expected):
    assert interpolate(text, VARIABLES) == expected


@pytest.mark.parametrize(
    "text", ["${UNSET:?run make env}", "${EMPTY:?run make env}", "${UNSET?run make env}"]
)
def test_a_required_variable_without_a_value_stops_with_its_message(text):
    with pytest.raises(InterpolationError, match="run make env"):
        interpolate(text, VARIABLES)


def test_an_empty_value_is_enough_for_the_colonless_form():
    assert interpolate("${EMPTY?required}", VARIABLES) == ""


@pytest.mark.parametrize("text", ["${SET", "${1BAD}", "${SET:x}"])
def test_malformed_expressions_are_errors(text):
    with pytest.raises(InterpolationError):
        interpolate(text, VARIABLES)


def test_interpolate_all_touches_values_not_keys():
    assert interpolate_all({"${SET}": ["${SET}", 1, None, {"k": "$SET"}]}, VARIABLES) == {
        "${SET}": ["value", 1, None, {"k": "value"}]
    }


def test_variables_referenced_skips_escaped_dollars():
    assert variables_referenced("${A:-x} $B $${HOSTNAME} $$(id -u) ${C:?${D}}") == {"A", "B", "C", "D"}


ENDPOINTS = {"postgres": {5432: 40001}, "redis": {6379: 40002}, "airflow-apiserver": {8080: 40003}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "postgresql+psycopg2://airflow:test-pw@postgres/airflow",
            "postgresql+psycopg2://airflow:test-pw@127.0.0.1:40001/airflow",
        ),
        ("redis://:@redis:6379/0", "redis://:@127.0.0.1:40002/0"),
        ("http://airflow-apiserver:8080/execution/", "http://127.0.0.1:40003/execution/"),
        # A user or database named like a service is not a host.
        (
            "postgresql://postgres:test-pw@postgres:5432/postgres",
            "postgresql://postgres:test-pw@127.0.0.1:40001/postgres",
        ),
        ("http://randomuser.me/https", "http://randomuser.me/https"),
        ('{"host": "postgres"}', '{"host": "postgres"}'),  # only URLs are mapped
        ("CeleryExecutor", "CeleryExecutor"),
    ],
)
def test_map_hosts_points_service_urls_at_local_ports(value, expected):
    assert map_hosts(value, ENDPOINTS, ["postgres", "redis", "airflow-apiserver", "flower"]) == expected


def test_map_hosts_refuses_what_would_not_resolve():
    with pytest.raises(ValueError, match="not running"):
        map_hosts("http://user-api:8000", ENDPOINTS, ["user-api"])
    with pytest.raises(ValueError, match="port 9999"):
        map_hosts("http://airflow-apiserver:9999/", ENDPOINTS)


def test_map_paths_moves_the_image_project_root_only():
    root = Path("/srv/c/opt/airflow")
    assert map_paths("file:///opt/airflow/staging", root) == "file:///srv/c/opt/airflow/staging"
    assert map_paths("/opt/airflow", root) == "/srv/c/opt/airflow"
    assert map_paths("/opt/airflow-other /x/opt/airflow", root) == "/opt/airflow-other /x/opt/airflow"


def test_parse_volume_tells_bind_mounts_from_named_volumes():
    assert parse_volume("./dags:/opt/airflow/dags") == ("./dags", "/opt/airflow/dags", True)
    assert parse_volume("/abs/include:/opt/airflow/include:ro") == (
        "/abs/include",
        "/opt/airflow/include",
        True,
    )
    assert parse_volume("staging:/opt/airflow/staging") == ("staging", "/opt/airflow/staging", False)


def test_service_environment_reads_env_files_then_environment(tmp_path):
    (tmp_path / ".env").write_text("# comment\nA=from-file\nB='{\"json\": 1}'\nC=from-file\n")
    service = {"env_file": [".env"], "environment": {"C": "from-service", "D": None, "E": 1}}
    assert service_environment(service, tmp_path) == {
        "A": "from-file",
        "B": '{"json": 1}',
        "C": "from-service",
        "D": "",
        "E": "1",
    }
    assert service_environment({"environment": ["X=1", "Y"]}, tmp_path) == {"X": "1", "Y": ""}


def test_read_env_file_reads_env_files_as_compose_does(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# a comment\n\nPLAIN=a b  # trailing comment\nexport EXPORTED=1\nEMPTY=\n"
        'SINGLE=\'{"conn_type": "http"} # kept\'\nDOUBLE="line\\none \\"q\\""\nHASH=a#b\n'
    )
    assert read_env_file(env_file) == {
        "PLAIN": "a b",
        "EXPORTED": "1",
        "EMPTY": "",
        "SINGLE": '{"conn_type": "http"} # kept',
        "DOUBLE": 'line\none "q"',
        "HASH": "a#b",
    }


def test_start_order_puts_dependencies_first_and_finds_cycles():
    services = {
        "worker": {"depends_on": {"api": {"condition": "service_healthy"}, "db": None}},
        "api": {"depends_on": ["init", "db"]},
        "init": {"depends_on": {"db": {"condition": "service_healthy"}}},
        "db": {},
        "flower": {"profiles": ["flower"]},
    }
    assert start_order(services, ["worker"]) == ["db", "init", "api", "worker"]
    assert dependencies(services["api"]) == {"init": "service_started", "db": "service_started"}
    assert default_services({"services": services}) == ["worker", "api", "init", "db"]
    assert "flower" in default_services({"services": services}, ["flower"])
    with pytest.raises(ValueError, match="cycle"):
        start_order({"a": {"depends_on": ["b"]}, "b": {"depends_on": ["a"]}}, ["a"])


def test_dockerfile_env_reads_both_env_forms(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text('FROM x\nENV A=1 B="two words"\nENV C 3\nRUN echo ENV=no\n')
    assert dockerfile_env(dockerfile) == {
        "AIRFLOW_HOME": "/opt/airflow",
        "A": "1",
        "B": "two words",
        "C": "3",
    }


def test_make_env_render_replaces_only_the_named_values():
    template = "# A=comment\nA=\nB=keep\n"
    assert render(template, {"A": "secret"}) == "# A=comment\nA=secret\nB=keep\n"
    with pytest.raises(ValueError, match="MISSING"):
        render(template, {"MISSING": "x"})
