"""The Assets DAGs hand to each other: one DAG's task updates it, another DAG is scheduled on it.

An Asset names data, a table or view of the warehouse (the database of the connection `postgres`),
never the host that serves it: `x-warehouse://<schema>/<relation>`, named `<schema>.<relation>`. So
the same table is the same Asset wherever the warehouse runs (the compose service, make demo's
throwaway server, your own) and whichever dbt mode built it. (A `postgres://` URI would not do: the
postgres provider's URI rules require a host and a port in it; an `x-` scheme is Airflow's own for
user-defined URIs, taken as written.)

Build each one here, so that every DAG names the same table with the same Asset: a dbt model's from
the manifest (`dbt_model_assets`: the model is its one declaration), a loaded table's by name.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import Asset

from include.common.project import DBT_PROJECT_DIR

SCHEME = "x-warehouse"


def warehouse_relation(schema: str, relation: str) -> Asset:
    """A table or view in the warehouse, e.g. a dbt model's: its dbt tasks update one per model."""
    return Asset(name=f"{schema}.{relation}", uri=f"{SCHEME}://{schema}/{relation}")


def dbt_node_asset(node: dict) -> Asset:
    """The relation a model, seed or snapshot of the manifest builds (its schema and alias)."""
    return warehouse_relation(node["schema"], node.get("alias") or node["name"])


def dbt_model_relation(model: str, project_dir: Path = DBT_PROJECT_DIR) -> tuple[str, str]:
    """(schema, relation) that the dbt model `model` of the project builds, from its manifest."""
    node = _model(model, project_dir)
    return node["schema"], node.get("alias") or node["name"]


def dbt_model_assets(*models: str, project_dir: Path = DBT_PROJECT_DIR) -> list[Asset]:
    """The Assets of the dbt models named, e.g. for `schedule=`: a DAG that reads them runs once
    every one was rebuilt."""
    return [dbt_node_asset(_model(model, project_dir)) for model in models]


def _model(model: str, project_dir: Path) -> dict:
    from include.common.dbt_manifest import read_manifest

    manifest = read_manifest(project_dir)
    project = manifest["metadata"]["project_name"]
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model" and node["name"] == model and node["package_name"] == project:
            return node
    raise ValueError(f"the dbt project {project_dir} has no model {model!r} (models/**/{model}.sql)")
