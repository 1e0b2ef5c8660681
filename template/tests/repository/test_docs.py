"""The docs name only what exists: every make target, file, dbt model and setting that README.md or a
page in docs/ names is one the repository has, so a rename or a removal cannot leave a page behind."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path, PurePosixPath

import pytest

from scripts.local_env import REPO_ROOT
from tests.checkout import makefile_text, tracked_files

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
PAGE_IDS = [str(page.relative_to(REPO_ROOT)) for page in PAGES]

# Top-level names a repository path in the docs starts with.
TOP = r"(?:dags|include|dbt_project|tests|scripts|docs|bench|requirements|template|deploy|\.ci|\.github)"
TOP_FILES = (
    r"(?:Makefile|Dockerfile|docker-compose\.yaml|\.env\.example|airflow\.env\.example|pyproject\.toml"
    r"|README\.md)"
)
# What the docs may name that is not shipped: written at run time, or a file the reader creates.
NOT_SHIPPED = (
    "logs/",
    "dbt_project/target",
    "dbt_project/dbt_packages",
    "dbt_project/logs",
    "dbt_project/packages.yml",
    "dbt_project/dependencies.yml",
    "dbt_project/selectors.yml",
)
# A file a page has the reader create, named on the line before its block: it exists once they did.
NEW_FILE = re.compile(r"^New file `([^`]+)`:$", re.M)
# A name that stands for one of the reader's own.
PLACEHOLDER = re.compile(r"<|\*|\{|my_|your_")
MODEL = re.compile(r"^(?:analytics\.)?((?:stg|int|dim|fct)_\w+|\w+_by_\w+)$")
SETTING_IN_BRACKETS = re.compile(r"\[([a-z_]+)\] ([a-z_]+)")
SETTING_IN_ENV = re.compile(r"\bAIRFLOW__([A-Z0-9_]+?)__([A-Z0-9_]+)\b")
# Options every DAG's section has (include/common/dag_defaults.py).
EVERY_DAG_OPTION = re.compile(r'(?:integer|seconds|text)\(section, "(\w+)"')


def code_spans(text: str) -> list[str]:
    """The `inline code` of a page and each line of its fenced blocks."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    inline = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    return inline + [line for block in fenced for line in block.splitlines()]


def created_by(text: str) -> set[str]:
    """The files a page has the reader create, and the folders they are in."""
    files = set(NEW_FILE.findall(text))
    return files | {str(folder) for name in files for folder in PurePosixPath(name).parents} - {"."}


def make_targets() -> set[str]:
    makefile = makefile_text()
    return {
        name for line in re.findall(r"^([a-z][\w .-]*?)\s*:(?![=])", makefile, re.M) for name in line.split()
    }


@cache
def dbt_models() -> set[str]:
    project = REPO_ROOT / "dbt_project"
    return {path.stem for path in project.rglob("*.sql") if "target" not in path.parts} | {
        path.stem for path in project.rglob("*.csv") if "target" not in path.parts
    }


@cache
def project_options() -> dict[str, set[str]]:
    """Each section the project reads (include/common/settings.py's helpers) -> its options."""
    every_dag = set(EVERY_DAG_OPTION.findall((REPO_ROOT / "include/common/dag_defaults.py").read_text()))
    options: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / "include").rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = {
            target.id: node.value.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name) and isinstance(node.value.value, str)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("integer", "seconds", "text")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
            ):
                section = node.args[0]
                name = (
                    section.value
                    if isinstance(section, ast.Constant)
                    else names.get(getattr(section, "id", ""))
                )
                if isinstance(name, str):
                    options.setdefault(name, set()).add(node.args[1].value)
    dags = {path.stem for path in (REPO_ROOT / "dags").glob("*.py")}
    for dag in dags:
        options.setdefault(dag, set()).update(every_dag)
    return options


def setting_exists(section: str, option: str) -> bool:
    if section in project_options():
        return option in project_options()[section]
    if section == "cosmos":  # Cosmos reads its options itself, with fallbacks: none is in Airflow's config
        import cosmos.settings

        return f'"{option}"' in Path(cosmos.settings.__file__).read_text()
    from airflow.configuration import conf

    # Options without a default (execution_api_server_url, say) are only in the description.
    described = conf.configuration_description.get(section, {}).get("options", {})
    return option in described or conf.has_option(section, option)


def missing_targets(text: str) -> set[str]:
    named = {
        target
        for span in code_spans(text)
        for target in re.findall(r"(?:^|[\s;&|(])make ([a-z][\w.-]*)", span)
    }
    return named - make_targets()


def missing_files(page: Path, text: str) -> set[str]:
    missing = set()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        if not (page.parent / target.split("#")[0]).resolve().exists():
            missing.add(target)
    # A repository path anywhere in the text (prose, code, commands), and a top-level file in code.
    paths = [match[0] for match in re.finditer(rf"(?<![\w/.-]){TOP}/[\w./-]*\w", text)]
    paths += [span for span in map(str.strip, code_spans(text)) if re.fullmatch(TOP_FILES, span)]
    created = created_by(text)
    for path in paths:
        if not (
            PLACEHOLDER.search(path)
            or path.startswith(NOT_SHIPPED)
            or path in created
            or (REPO_ROOT / path).exists()
        ):
            missing.add(path)
    return missing


def missing_models(text: str) -> set[str]:
    named = {match[1] for span in code_spans(text) if (match := MODEL.match(span.strip()))}
    created = {PurePosixPath(name).stem for name in created_by(text) if name.startswith("dbt_project/")}
    return named - dbt_models() - created


def missing_settings(text: str) -> set[str]:
    named = set(SETTING_IN_BRACKETS.findall(text)) | {
        (section.lower(), option.lower()) for section, option in SETTING_IN_ENV.findall(text)
    }
    return {f"[{section}] {option}" for section, option in named if not setting_exists(section, option)}


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_make_target_a_page_names_exists(page: Path):
    assert not missing_targets(page.read_text()), "no such make target (Makefile)"


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_file_a_page_links_or_names_exists(page: Path):
    assert not missing_files(page, page.read_text()), "no such file in the repository"


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_dbt_model_a_page_names_exists(page: Path):
    assert not missing_models(page.read_text()), "no such dbt model, seed or snapshot in dbt_project/"


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_setting_a_page_names_exists(page: Path):
    assert not missing_settings(page.read_text()), "no such setting: neither the project nor Airflow reads it"


# Measured figures live in the pages `make bench` generates; the other pages link to them, so a new
# run cannot leave a copy behind. A measure is a decimal with a unit (not a setting's round number),
# a ratio that is not a target (not after >= or <=), or a throughput.
GENERATED = re.compile(r"^benchmarks(-\w+)?\.md$")
MEASURE = re.compile(
    r"\b\d+\.\d+ ?(?:s|ms|min|MB|GB)\b"
    r"|(?<![≥≤] )(?<![\d.])\d+(?:\.\d+)?x\b"
    r"|\b\d[\d.,]*k?(?:/s| (?:rows|users)/s)"
)


def measures(text: str) -> list[str]:
    return [match.group(0) for match in MEASURE.finditer(text)]


@pytest.mark.parametrize("page", [p for p in PAGES if not GENERATED.match(p.name)], ids=str)
def test_measured_figures_are_only_in_the_generated_benchmark_pages(page: Path):
    found = measures(page.read_text())
    assert not found, f"{page.name} copies measured figures {found}: link to docs/benchmarks*.md instead"


def test_the_checks_catch_what_they_are_for():
    page = REPO_ROOT / "docs" / "a-page.md"
    stale = (
        "Run `make dbt-build`, edit `include/common/gone.py` or [this](gone.md), query `dim_gone`,\n"
        "read scripts/gone.py,\n"
        "set `[user_processing] dbt_gone` or AIRFLOW__CORE__NO_SUCH_OPTION=1.\n"
        "```bash\nmake demo && make no-such-target\n```\n"
    )
    stale += "New file `include/mine/one.py`:\n```python\n```\nNot include/mine/two.py nor `stg_mine`.\n"
    assert missing_targets(stale) == {"dbt-build", "no-such-target"}
    assert missing_files(page, stale) == {
        "include/common/gone.py",
        "gone.md",
        "scripts/gone.py",
        "include/mine/two.py",
    }
    assert missing_models(stale) == {"dim_gone", "stg_mine"}
    assert missing_settings(stale) == {"[user_processing] dbt_gone", "[core] no_such_option"}
    fine = (
        "Run `make demo`, edit `include/common/settings.py` or [this](pipeline.md#x), query `stg_users`,\n"
        "set `[user_processing] sensor_timeout`, `[user_processing] retries` (every DAG's),\n"
        "`[core] executor`,"
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL (no default), your `include/my_report/report.py`.\n"
        "New file `dbt_project/models/mine/stg_mine.sql`:\n```sql\nselect 1\n```\n"
        "It is in dbt_project/models/mine, and `stg_mine` is a model.\n"
    )
    assert not (
        missing_targets(fine) | missing_files(page, fine) | missing_models(fine) | missing_settings(fine)
    )
    assert measures("took 93.4 s, 1.6x faster, 185k rows/s, 20.7k/s, 226.5 MB") == [
        "93.4 s",
        "1.6x",
        "185k rows/s",
        "20.7k/s",
        "226.5 MB",
    ]
    assert not measures("a target of ≥ 4x and ≤ 1.5x, a poke every 30 s, 1 MB chunks, rows/s")


def test_every_relative_link_in_the_docs_points_at_a_file():
    broken = []
    for name in tracked_files():
        if name.endswith(".md"):
            page = REPO_ROOT / name
            for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
                if "://" not in target and not (page.parent / target).exists():
                    broken.append(f"{name}: {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)
