"""A DAG's dbt selection, in dbt's own `--select` syntax, resolved against the manifest at parse time.

Each DAG builds and tests the dbt nodes it selects (include/common/dbt_tasks.py), and only the
models, seeds and snapshots of its selection are its Assets. The selection is resolved here, from
dbt_project/target/manifest.json, without starting dbt, by Cosmos' own manifest selector; the
"local" mode renders exactly the nodes resolved here, so both modes agree on what a DAG builds.

dbt's syntax as Cosmos' selector takes it: space-separated parts are a union, comma-joined ones an
intersection; a part is a model name, `path:`, `tag:`, `fqn:`, `config.<key>:`, `source:`,
`resource_type:`, `package:` or `exposure:`, with the graph operators `+` (ancestors or
descendants, optionally `2+`, `+1`) and `@`. Cosmos 1.15 refuses `@` before a method (`@source:...`),
so `@X` is resolved here as dbt defines it: `X+` by Cosmos, then every ancestor of what that selected.
A part Cosmos does not support (`state:`, `result:`, ...) or one that selects nothing is an error
naming it, when the DAG file is parsed; tests/example/integration/test_dbt_selection.py checks that the rest
selects what `dbt ls` selects.

`dbt build --select <the same selection>` (the "build" mode) runs the tests of what it selects
as well (dbt's eager indirect selection), as Cosmos' tasks do in the "local" mode.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

BUILT = ("model", "seed", "snapshot")  # the nodes that build a table or view in the warehouse
# The selector methods both dbt and Cosmos' manifest selector implement (a bare name or path needs none).
METHODS = ("fqn:", "tag:", "path:", "config.", "source:", "resource_type:", "package:", "exposure:")
GRAPH_OPERATORS = re.compile(r"^(@|\d*\+)|(\+\d*)$")


class DbtSelectionError(ValueError):
    """A selection Cosmos' selector cannot resolve, or one that selects nothing."""


def select(selection: str, manifest: Path, project_dir: Path) -> dict[str, dict]:
    """The manifest's nodes and sources that `selection` selects, by unique id (tests included)."""
    parts = selection.split()
    if not parts:
        raise DbtSelectionError(
            "the dbt selection is empty: name what the DAG builds, e.g. 'source:my_source.my_table+'"
        )
    data = json.loads(manifest.read_text())
    selected: set[str] = set()
    for part in parts:
        found = _select_part(part, _cosmos_nodes(manifest, project_dir), project_dir)
        if not found:
            raise DbtSelectionError(
                f"the dbt selection {selection!r}: {part!r} selects nothing in {manifest} (a typo? "
                "`source:` takes a source and a table, as in source:warehouse.users)"
            )
        selected |= found
    everything = {**data["nodes"], **data["sources"]}
    # As dbt's eager indirect selection: a test of anything selected runs too.
    selected |= {
        unique_id
        for unique_id, node in data["nodes"].items()
        if node["resource_type"] == "test" and selected & set(node["depends_on"]["nodes"])
    }
    return {unique_id: everything[unique_id] for unique_id in sorted(selected) if unique_id in everything}


def built(nodes: dict[str, dict]) -> list[dict]:
    """Of `nodes`, those that build a relation (models but ephemeral ones, seeds, snapshots)."""
    return [
        node
        for node in nodes.values()
        if node["resource_type"] in BUILT and node.get("config", {}).get("materialized") != "ephemeral"
    ]


def _select_part(part: str, nodes: dict, project_dir: Path) -> set[str]:
    from cosmos.dbt.selector import select_nodes
    from cosmos.exceptions import CosmosValueError

    unsupported = DbtSelectionError(
        f"the dbt selection {part!r} is not one Cosmos' manifest selector resolves: use model names, "
        f"{', '.join(METHODS)} with +, @ and commas (include/common/dbt_selection.py)"
    )
    for item in part.split(","):
        method = GRAPH_OPERATORS.sub("", item)
        if ":" in method and not method.startswith(METHODS):
            raise unsupported
    ancestors_too = part.startswith("@")
    statement = f"{part[1:]}+" if ancestors_too else part
    try:
        found = set(select_nodes(project_dir, nodes, select=[statement]))
    except (CosmosValueError, ValueError):
        raise unsupported from None
    if ancestors_too:
        found |= _ancestors(found, nodes)
    return found


def _ancestors(unique_ids: set[str], nodes: dict) -> set[str]:
    seen: set[str] = set()
    todo = [parent for unique_id in unique_ids for parent in nodes[unique_id].depends_on]
    while todo:
        unique_id = todo.pop()
        if unique_id in seen or unique_id not in nodes:
            continue
        seen.add(unique_id)
        todo += nodes[unique_id].depends_on
    return seen


def _cosmos_nodes(manifest: Path, project_dir: Path) -> dict:
    """The manifest's nodes as Cosmos loads them (its DbtNode), for its selector. Loaded afresh for
    each selection: Cosmos' selector changes the tags of test nodes as it goes."""
    from cosmos.config import ExecutionConfig, ProjectConfig, RenderConfig
    from cosmos.constants import LoadMode
    from cosmos.dbt.graph import DbtGraph

    graph = DbtGraph(
        project=ProjectConfig(dbt_project_path=project_dir, manifest_path=manifest),
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST),
        execution_config=ExecutionConfig(dbt_project_path=project_dir),
    )
    graph.load_from_dbt_manifest()
    return graph.nodes
