"""One convention for every DAG: dags/<name>.py and its logic in include/<name>/ use only that package and
include/common/, so a DAG can be copied, renamed or deleted without touching another one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from scripts.local_env import REPO_ROOT

DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))


def include_imports(path: Path) -> set[str]:
    """The include.* modules a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found |= {module for module in modules if module.split(".")[0] == "include"}
    return found


def package_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def files_of(dag_file: Path) -> list[Path]:
    package = REPO_ROOT / "include" / dag_file.stem
    return [dag_file, *sorted(package.rglob("*.py"))]


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.name)
def test_a_dag_has_its_own_package_in_include(dag_file):
    assert (REPO_ROOT / "include" / dag_file.stem / "__init__.py").exists(), (
        f"put {dag_file.name}'s logic in include/{dag_file.stem}/ (docs/your-own-pipeline.md, step 2)"
    )


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.name)
def test_a_dag_uses_only_its_own_package_and_include_common(dag_file):
    allowed = {"common", dag_file.stem}
    strays = {
        f"{path.relative_to(REPO_ROOT)}: {module}"
        for path in files_of(dag_file)
        for module in include_imports(path)
        if package_of(module) not in allowed
    }
    assert not strays, (
        "a DAG's files may import include.common and their own package only; move what they share "
        "to include/common/:\n" + "\n".join(sorted(strays))
    )


def test_include_common_depends_on_no_dag():
    strays = {
        f"{path.relative_to(REPO_ROOT)}: {module}"
        for path in sorted((REPO_ROOT / "include" / "common").rglob("*.py"))
        for module in include_imports(path)
        if package_of(module) != "common"
    }
    assert not strays, "\n".join(sorted(strays))


def test_the_check_finds_a_stray_import(tmp_path):
    stray = tmp_path / "stray.py"
    stray.write_text("def task():\n    from include.user_processing.settings import DAG_ID\n")
    assert include_imports(stray) == {
        "include.user_processing.settings",
        "include.user_processing.settings.DAG_ID",
    }
    assert package_of("include.user_processing.settings") == "user_processing"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each include module -> the include modules it imports (at the top or inside functions)."""
    files = {module_name(path): path for path in sorted(root.rglob("*.py"))}
    return {
        module: {name for name in include_imports(path) if name in files and name != module}
        for module, path in files.items()
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle of the graph, once each, starting at its smallest module."""
    cycles = set()

    def walk(path: list[str]) -> None:
        for module in sorted(graph.get(path[-1], ())):
            if module == path[0]:
                cycles.add(tuple(path))
            elif module not in path and module > path[0]:
                walk([*path, module])

    for start in sorted(graph):
        walk([start])
    return [list(cycle) for cycle in sorted(cycles)]


def test_no_module_of_include_imports_itself_round_a_cycle():
    cycles = import_cycles(import_graph(REPO_ROOT / "include"))
    assert not cycles, "modules that import each other (move what both need into one of them):\n" + "\n".join(
        " -> ".join([*cycle, cycle[0]]) for cycle in cycles
    )


def test_the_cycle_check_finds_a_cycle():
    graph = {
        "include.a": {"include.b"},
        "include.b": {"include.c"},
        "include.c": {"include.a"},
        "include.d": set(),
    }
    assert import_cycles(graph) == [["include.a", "include.b", "include.c"]]
